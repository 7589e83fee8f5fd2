/* Identifiers: time-ordered UUIDs (version 7) and validation of UUID text. */
#ifndef FV_ID_H
#define FV_ID_H

#include <stdbool.h>

#define FV_UUID_STRLEN 36

/* Writes a new UUIDv7 (48-bit unix ms, random rest) in lower-case text into out[37]. */
void fv_id_new(char out[FV_UUID_STRLEN + 1]);
/* True when s is a canonical 8-4-4-4-12 hex UUID (either case). */
bool fv_id_valid(const char *s);

#endif

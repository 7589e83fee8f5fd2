/* The queue envelope: how one submission travels as a Redis stream entry from a front end to a
 * worker. Both sides use only this module, so the field list lives in one place.
 *
 * Stream entry fields (all values are text):
 *   v             envelope format version, "1"
 *   id            submission id (UUID), the responses table's primary key
 *   survey_id     UUID
 *   survey_version  integer, the definition the data was validated against (0 with the
 *                 nil survey_id when an unverified submission's survey was not known)
 *   deployment_id UUID
 *   submitted_by  UUID of the user
 *   received_at   unix time in milliseconds when the front end accepted it
 *   data          the answers, a JSON object (validated)
 *   location      {"lat":..,"lon":..,"accuracy":..} as JSON, or "" when absent
 *   collected_at  RFC 3339 text from the client, or "" when absent
 *   verified      "1" when the front end checked the submitter's permission, "0" otherwise
 */
#ifndef FV_ENVELOPE_H
#define FV_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fv_id.h"

#define FV_ENVELOPE_VERSION "1"
/* survey_id of an unverified submission whose survey the front end could not look up (its
 * survey_version is then 0): the worker resolves it from the deployment. */
#define FV_ENVELOPE_UNKNOWN_SURVEY "00000000-0000-0000-0000-000000000000"
#define FV_ENVELOPE_NFIELDS 11

typedef struct fv_envelope {
    char id[FV_UUID_STRLEN + 1];
    char survey_id[FV_UUID_STRLEN + 1];
    int survey_version;
    char deployment_id[FV_UUID_STRLEN + 1];
    char submitted_by[FV_UUID_STRLEN + 1];
    int64_t received_at_ms;
    const char *data; /* borrowed: JSON text, not NUL-terminated necessarily */
    size_t data_len;
    const char *location; /* borrowed: JSON text or empty */
    size_t location_len;
    const char *collected_at; /* borrowed: text or empty */
    size_t collected_at_len;
    bool verified;
} fv_envelope;

/* Builds the argv of `XADD <stream> * field value ...` for e. The strings in argv borrow from
 * e, stream and scratch (a caller-provided buffer of at least 64 bytes for the numbers);
 * returns argc (3 + 2 * FV_ENVELOPE_NFIELDS). argv/argvlen must hold that many slots. */
int fv_envelope_xadd_argv(const fv_envelope *e, const char *stream, char *scratch, size_t scratchlen,
                          const char **argv, size_t *argvlen);

/* Fills e from the field/value pairs of one stream entry (fields[i], lens[i], 2*npairs items).
 * Pointers in e borrow from the pairs. Returns 0, or -1 with a reason in err when a field is
 * missing or malformed (such an entry is poison: the worker dead-letters it). */
int fv_envelope_parse(fv_envelope *e, const char *const *items, const size_t *lens, size_t nitems,
                      char *err, size_t errlen);

#endif

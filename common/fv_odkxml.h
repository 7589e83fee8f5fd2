/* The answers of a decrypted ODK submission (submission.xml), flattened: one field per leaf
 * element of the instance, named by its path below the root ("grp/age"), in document order (a
 * repeat's leaves appear once per instance). Used offline by fv-decrypt; knows nothing of HTTP.
 *
 * Hardening as fv_xform's: a DOCTYPE is refused as soon as it starts (no entities at all),
 * elements nest at most FV_ODKXML_MAX_DEPTH deep, at most FV_ODKXML_MAX_FIELDS leaves, a text at
 * most FV_ODKXML_MAX_TEXT bytes, the input at most FV_ODKXML_MAX_BYTES. */
#ifndef FV_ODKXML_H
#define FV_ODKXML_H

#include <stdbool.h>
#include <stddef.h>

#define FV_ODKXML_MAX_BYTES (64u << 20)
#define FV_ODKXML_MAX_DEPTH 64
#define FV_ODKXML_MAX_FIELDS 100000
#define FV_ODKXML_MAX_TEXT (1u << 20)

typedef struct fv_odkxml_field {
    char *path;  /* owned */
    char *value; /* owned, the element's text (whitespace kept) */
} fv_odkxml_field;

/* A parsed submission; everything owned by it (fv_odkxml_free). */
typedef struct fv_odkxml {
    char *form_id;     /* the root's id attribute, "" when absent */
    char *version;     /* the root's version attribute, "" when absent */
    char *instance_id; /* meta/instanceID's text, "" when absent */
    fv_odkxml_field *f;
    size_t n, cap;
} fv_odkxml;

/* Parses xml[len] (borrowed). True and *out filled, or false with why (at most whylen bytes). */
bool fv_odkxml_parse(const char *xml, size_t len, fv_odkxml *out, char *why, size_t whylen);
void fv_odkxml_free(fv_odkxml *x);

#endif

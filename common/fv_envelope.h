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
 *   rversion      the front end's revocation version (fe_revoke_version) of the permission
 *                 answer it checked a verified entry with, "-1" when unverified or unknown;
 *                 optional on input (an older front end's entry: -1). The worker re-checks a
 *                 verified entry whose submitter has a `permissions` revocation newer than it
 *                 (wk_verify_revoked), so a removal that committed before the entry is written
 *                 but after the front end checked it still refuses it.
 *   openrosa      optional (OpenRosa submissions only, docs/api/openrosa.md): a JSON object
 *                 {"instance_id": text, "xml": the instance XML byte for byte, "attachments":
 *                 [{"name", "content_type", "size", "sha256" (hex), "data" (base64)}]}; absent
 *                 for a JSON submission. The worker stores the XML with the response and the
 *                 attachments beside it (migration 023).
 *   sealed        data, location and openrosa sealed together (common/fv_qseal.h: "q1.<key id>.
 *                 <base64url>"). A sealed entry has no data, location or openrosa field (an entry
 *                 with both is malformed); the worker opens it before anything reads them. Every
 *                 front end seals; an entry without it (an older front end's, or a hand-made one)
 *                 is accepted by the worker while [worker] queue_accept_unsealed is on.
 *
 * A dead letter (the dead-letter stream, common/dead_stream) is the entry's own fields, unchanged,
 * followed by three the worker appends (fv_envelope_dead_argv):
 *   error         why the worker gave up on it (text)
 *   stream_id     the entry's id on the submissions stream
 *   deliveries    how many times it had been delivered (decimal)
 * fvctl lists them (fv_envelope_dead_parse) and requeues the entry's own fields only.
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
#define FV_ENVELOPE_NFIELDS 12
/* The fields every entry must have: all but rversion (and data and location when sealed). */
#define FV_ENVELOPE_NREQUIRED 11
/* The most fields an entry has: those above and the optional openrosa. */
#define FV_ENVELOPE_MAX_FIELDS (FV_ENVELOPE_NFIELDS + 1)
/* A sealed entry's fields: data, location and openrosa give way to sealed. */
#define FV_ENVELOPE_NSEALED (FV_ENVELOPE_NFIELDS - 1)
/* A submission id's claim in Redis (frontend/io/fe_subid.h): this prefix and the id is the key,
 * "<submitted_by>:<deployment_id>" the value. The worker reads the claims of its batch
 * (wk_stream_id_holders) to refuse the entries of those that lost one. */
#define FV_SUBID_KEY_PREFIX "fv:subid:"

/* The field names, as they are on the stream. */
#define FV_ENVELOPE_F_VERSION "v"
#define FV_ENVELOPE_F_ID "id"
#define FV_ENVELOPE_F_SURVEY_ID "survey_id"
#define FV_ENVELOPE_F_SURVEY_VERSION "survey_version"
#define FV_ENVELOPE_F_DEPLOYMENT_ID "deployment_id"
#define FV_ENVELOPE_F_SUBMITTED_BY "submitted_by"
#define FV_ENVELOPE_F_RECEIVED_AT "received_at"
#define FV_ENVELOPE_F_DATA "data"
#define FV_ENVELOPE_F_LOCATION "location"
#define FV_ENVELOPE_F_COLLECTED_AT "collected_at"
#define FV_ENVELOPE_F_VERIFIED "verified"
#define FV_ENVELOPE_F_RVERSION "rversion"
#define FV_ENVELOPE_F_OPENROSA "openrosa"
#define FV_ENVELOPE_F_SEALED "sealed"
/* The dead-letter fields, appended after the entry's own. */
#define FV_ENVELOPE_F_ERROR "error"
#define FV_ENVELOPE_F_STREAM_ID "stream_id"
#define FV_ENVELOPE_F_DELIVERIES "deliveries"
#define FV_ENVELOPE_DEAD_NFIELDS 3

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
    long long rversion;   /* -1: unknown (see rversion above) */
    const char *openrosa; /* borrowed: JSON object text, or NULL (a JSON submission) */
    size_t openrosa_len;
    const char *sealed; /* borrowed: the sealed payload (fv_qseal.h), or NULL (not sealed) */
    size_t sealed_len;
} fv_envelope;

/* Builds the argv of `XADD <stream> * field value ...` for e. The strings in argv borrow from
 * e, stream and scratch (a caller-provided buffer of at least 64 bytes for the numbers);
 * returns argc (3 + 2 * FV_ENVELOPE_NFIELDS, 2 more with openrosa; with e->sealed set,
 * 3 + 2 * FV_ENVELOPE_NSEALED: sealed instead of data, location and openrosa). argv/argvlen must
 * hold that many slots. */
int fv_envelope_xadd_argv(const fv_envelope *e, const char *stream, char *scratch, size_t scratchlen,
                          const char **argv, size_t *argvlen);

/* Fills e from the field/value pairs of one stream entry (fields[i], lens[i], 2*npairs items).
 * Pointers in e borrow from the pairs. A sealed entry leaves data, location and openrosa unset
 * (e->sealed set): fv_qseal_open fills them. Returns 0, or -1 with a reason in err when a field is
 * missing or malformed (such an entry is poison: the worker dead-letters it). */
int fv_envelope_parse(fv_envelope *e, const char *const *items, const size_t *lens, size_t nitems,
                      char *err, size_t errlen);

/* What fv_envelope_dead_parse reads back from a dead letter. Pointers borrow from the items. */
typedef struct fv_dead_letter {
    const char *error; /* NULL when the entry has none */
    size_t error_len;
    const char *stream_id; /* NULL when the entry has none */
    size_t stream_id_len;
    long long deliveries; /* -1 when missing or not a number */
    size_t own_items;     /* the items before the dead-letter fields: the entry's own */
} fv_dead_letter;

/* Writes the 2 * FV_ENVELOPE_DEAD_NFIELDS items (field, value, ...) the worker appends to a dead
 * letter into argv/argvlen. Borrows error, stream_id and scratch (at least 24 bytes, for the
 * number). Returns how many items it wrote. */
int fv_envelope_dead_argv(const char *error, const char *stream_id, long long deliveries, char *scratch,
                          size_t scratchlen, const char **argv, size_t *argvlen);

/* Reads the dead-letter fields back from the items of a dead letter (field/value pairs). They
 * count only at the end, where the worker puts them, each once, in any order: an entry's own
 * field called "error" before them stays its own. */
void fv_envelope_dead_parse(fv_dead_letter *d, const char *const *items, const size_t *lens,
                            size_t nitems);

/* The index in items of the value of field name (its last occurrence among the first nitems), or
 * -1 when it is not there. */
long fv_envelope_find(const char *const *items, const size_t *lens, size_t nitems, const char *name);

#endif

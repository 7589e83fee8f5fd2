/* The worker's side of envelope encryption (docs/security.md "Envelope encryption"): an OpenRosa
 * entry's instance XML and attachments are sealed under the data key of the organisation of the
 * entry's deployment (common/fv_datakey.h, migrations 025 and 026) before they reach PostgreSQL.
 * The data key is created (version 1) the first time an organisation needs one. */
#ifndef WK_SEAL_H
#define WK_SEAL_H

#include <stdbool.h>
#include <stddef.h>

#include "fv_datakey.h"
#include "fv_json.h"
#include "fv_keys.h"
#include "wk_batch.h"
#include "wk_store.h"

/* Keeps a ring of unwrapped data keys made from ks (copied). Returns 0, or -1 (out of memory). */
int wk_seal_init(const fv_keyset *ks);
void wk_seal_free(void);
/* The ring (NULL before wk_seal_init). */
fv_dkring *wk_seal_ring(void);

/* The current data key of org (a uuid), creating version 1 when the org has none, in st's
 * transaction. Sets *version and returns the key (valid until the next call), or NULL with why. */
const unsigned char *wk_seal_org_key(wk_store *st, const char *org, int *version, char *err,
                                     size_t errlen);

/* Rewrites an entry's openrosa field (fv_envelope.h: {"instance_id", "xml", "attachments":
 * [{"name", "content_type", "size", "sha256", "data" (base64)}]}) into what the worker's INSERT
 * stores for response response_id, sealed under the current data key of the organisation of deployment:
 *   {"instance_id", "org_id", "key_version", "xml_sha256" (hex), "xml_body" (base64 of the sealed
 *    XML), "attachments": [{"name", "content_type", "size", "sha256", "data" (base64 of the sealed
 *    content), "questions"}]} (fv_orseal.h; answers: the entry's answers in clear)
 * Returns the new text (the caller frees it), or NULL with why in err (an attachment whose
 * content does not match its size or SHA-256 is refused: a malformed entry). */
char *wk_seal_openrosa(wk_store *st, const char *response_id, const char *deployment,
                       const char *openrosa, size_t len, const char *answers, size_t answers_len,
                       char *err, size_t errlen);

/* ---- answers (migration 027, common/fv_answers.h) ----
 * The data keys a batch's entries are sealed under: per deployment, its org, the org's current
 * key (copied, wiped by wk_seal_keys_free) and whether its survey is encrypted end to end (an
 * entry that is the ODK envelope of such a survey is ciphertext already: stored as it came). */
typedef struct wk_seal_dep {
    char dep[40], org[40];
    int kv;
    bool encrypted;
    unsigned char key[FV_DATAKEY_BYTES];
} wk_seal_dep;
typedef struct wk_seal_keys {
    wk_seal_dep *d; /* owned */
    size_t n;
} wk_seal_keys;

/* Reads, in st's transaction, the keys of the deployments of b's entries in state NEW (only the
 * one of index only when only >= 0), creating an org's version 1 when it has none; each key row is
 * locked FOR SHARE until the transaction ends, so `fvctl rotate-data-key --retire` cannot drop a
 * version a batch is sealing under. An unknown deployment has no entry (its INSERT fails its
 * foreign key). Returns 0, or -1 with why. */
int wk_seal_batch_keys(wk_store *st, const wk_batch *b, long only, wk_seal_keys *out, char *err,
                       size_t errlen);
void wk_seal_keys_free(wk_seal_keys *k);

/* Writes the members "data", "location" and "answers_kv" of e as the INSERT stores them: sealed
 * under its deployment's key (fv_answers_seal), or as sent (answers_kv null) for an unknown
 * deployment or an end-to-end encrypted envelope. Returns 0, or -1 with why (memory, cipher). */
int wk_seal_answers(fv_jgen *j, const wk_seal_keys *k, const fv_envelope *e, char *err, size_t errlen);

/* One entry's answers and location as wk_seal_answers stores them, as texts (the caller frees
 * both; the location "" for none) and their key version (*kv 0: as sent), for the quarantine and
 * its refusals (wk_verify.c). Returns 0, or -1 with why. */
int wk_seal_entry_texts(wk_store *st, const fv_envelope *e, char **data, char **loc, int *kv, char *err,
                        size_t errlen);

/* The answers' part of the sweep (wk_seal_answers.c): up to rows responses (each with its
 * versions), refused and quarantined submissions in clear or under an older data key version,
 * sealed under their org's current one. Returns how many were; *failed counts the failures (a
 * row whose answers do not open is logged, marked answers_seal_error and left alone). */
int wk_seal_answers_sweep(wk_store *st, int rows, int *failed);

/* The re-seal sweep, between two batches, every every_ms (sooner while work is left): up to rows
 * values stored in clear (before migration 026) or under an older data key version than their
 * org's current one are sealed under the current one, each by compare-and-set, autocommitted.
 * Does nothing unless st is connected and idle. A value that does not open is logged, naming its
 * row, and left as it is. */
void wk_seal_sweep(wk_store *st, int every_ms, int rows);

#endif

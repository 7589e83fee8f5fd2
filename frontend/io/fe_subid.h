/* Submission id claims: each accepted submission claims its id in Redis, the key
 * fv:subid:<id> holding "<submitter>:<deployment>" for submission_claim_ttl_s, sent just before
 * its XADD on the same connection (fe_queue_submit: SET NX GET EX, XADD; one round trip, no
 * added latency). A claim held by another submitter or for another deployment means the id is
 * taken: the front end answers 409 id_conflict at once, without PostgreSQL; the entry the
 * XADD added anyway is refused by the worker, which asks the claims of its batch
 * (worker/wk_subid.h) and keeps such entries in refused_submissions. The claim also lets
 * GET /v1/submissions/{id} answer "queued" before the worker has written the submission. What
 * the claim cannot see (an id stored before the claim's TTL, Redis down: spooled entries are not
 * claimed) the worker refuses by the stored response (refused_submissions, migration 007). */
#ifndef FE_SUBID_H
#define FE_SUBID_H

#include <stdbool.h>

#include "fv_id.h"

#define FE_SUBID_KEY_MAX (sizeof "fv:subid:" + FV_UUID_STRLEN)
#define FE_SUBID_VALUE_MAX (2 * FV_UUID_STRLEN + 2)

/* Whether submissions claim their ids (submission_claim_ttl_s > 0). */
bool fe_subid_enabled(void);

/* The claim of id (lower-case UUID) for submitter and deployment: its key and its value. */
void fe_subid_claim_of(const char *id, const char *submitter, const char *deployment,
                       char key[FE_SUBID_KEY_MAX], char value[FE_SUBID_VALUE_MAX]);

typedef enum fe_subid_holder {
    FE_SUBID_HELD_BY_USER, /* a live claim of user's */
    FE_SUBID_NOT_USERS,    /* no claim, or another user's (the caller is told nothing of it) */
    FE_SUBID_CANNOT_TELL,  /* Redis could not be asked */
} fe_subid_holder;

typedef void (*fe_subid_lookup_cb)(fe_subid_holder holder, void *arg);

/* Whether user holds the claim of id. cb runs exactly once: later from the event loop, or before
 * this returns (FE_SUBID_CANNOT_TELL) when Redis cannot be asked. */
void fe_subid_lookup(const char *id, const char *user, fe_subid_lookup_cb cb, void *arg);

#endif

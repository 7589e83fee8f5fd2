/* Submission id claims: each accepted submission claims its id in Redis (SET fv:subid:<id>
 * "<submitter>:<deployment>" NX GET EX submission_claim_ttl_s), one command on the child's Redis
 * connection before the XADD. A claim held by another submitter or deployment means the id is
 * taken: the front end answers 409 id_conflict at once, without PostgreSQL. The claim also lets
 * GET /v1/submissions/{id} answer "queued" before the worker has written the submission. What
 * the claim cannot see (an id stored before the claim's TTL, Redis down) the worker refuses
 * (refused_submissions, migration 007). */
#ifndef FE_SUBID_H
#define FE_SUBID_H

#include <stdbool.h>

typedef enum fe_subid_outcome {
    FE_SUBID_NEW,     /* claimed now */
    FE_SUBID_RETRY,   /* claimed before by the same submitter for the same deployment */
    FE_SUBID_TAKEN,   /* claimed by another submitter or for another deployment */
    FE_SUBID_UNKNOWN, /* Redis could not say (down, claims off, an error reply): go on unclaimed */
} fe_subid_outcome;

typedef void (*fe_subid_cb)(fe_subid_outcome outcome, void *arg);

/* Claims id (lower-case UUID) for submitter and deployment. cb runs exactly once: later from the
 * event loop, or before this returns with FE_SUBID_UNKNOWN when nothing could be sent (or when
 * submission_claim_wait is off: the claim is then sent without waiting for its answer). */
void fe_subid_claim(const char *id, const char *submitter, const char *deployment, fe_subid_cb cb,
                    void *arg);

typedef enum fe_subid_holder {
    FE_SUBID_HELD_BY_USER, /* a live claim of user's */
    FE_SUBID_NOT_USERS,    /* no claim, or another user's (the caller is told nothing of it) */
    FE_SUBID_CANNOT_TELL,  /* Redis could not be asked */
} fe_subid_holder;

typedef void (*fe_subid_lookup_cb)(fe_subid_holder holder, void *arg);

/* Whether user holds the claim of id. cb runs exactly once, as for fe_subid_claim. */
void fe_subid_lookup(const char *id, const char *user, fe_subid_lookup_cb cb, void *arg);

#endif

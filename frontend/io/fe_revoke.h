/* Revocations: what every front-end child must forget or refuse within seconds of a change made
 * anywhere (logout, password change, a revoked or suspended API key, a removed member).
 *
 * The writer inserts a row into the `revocations` table in the same statement as the change
 * (so the two commit together), deletes any Redis-shared cache entry it knows of, and calls
 * fe_revoke_poll_now() so its own child applies it at once. Every child reads new rows every
 * revocation_poll_ms (one indexed query) and applies them: session ids and per-user "not before"
 * times are kept here for verifying session tokens; api_key, permissions, deployment and survey
 * rows are handed to the handlers registered with fe_revoke_on (which drop their cached entries).
 *
 * Why a poll and not Redis pub/sub (DESIGN section 2 said pub/sub): a message published while a
 * child's subscription is reconnecting is lost for good and leaves a cache stale until its TTL;
 * a poll of an append-only table by id cannot miss a row, costs one index probe per second per
 * child, and the table is where the change itself is committed. While PostgreSQL is down nothing
 * can be revoked anyway (the change cannot be written).
 *
 * Lifecycle (per child): FE_REVOKE_LOADING until the first query (every live row) succeeded,
 * then FE_REVOKE_CURRENT; a failed poll keeps the state and what is known. */
#ifndef FE_REVOKE_H
#define FE_REVOKE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum { FE_REVOKE_LOADING, FE_REVOKE_CURRENT } fe_revoke_state;

typedef enum {
    FE_REVOKE_SESSION,       /* subject: session id */
    FE_REVOKE_USER_SESSIONS, /* subject: user id; sessions issued before not_before are void */
    FE_REVOKE_API_KEY,       /* subject: SHA-256 hex of the key */
    FE_REVOKE_PERMISSIONS,   /* subject: user id whose memberships or roles changed */
    FE_REVOKE_DEPLOYMENT,    /* subject: deployment id whose principals changed, or closed/reopened */
    FE_REVOKE_SURVEY,        /* subject: survey id archived/unarchived, or whose grants changed */
    FE_REVOKE_NKINDS
} fe_revoke_kind;

/* Called on the loop for each new row of its kind; subject is borrowed for the call. */
typedef void (*fe_revoke_fn)(const char *subject);

/* Starts polling on base (borrowed) every poll_ms. Returns 0 or -1. */
int fe_revoke_init(struct event_base *base, int poll_ms);
void fe_revoke_shutdown(void);
fe_revoke_state fe_revoke_get_state(void);
/* Registers fn for rows of kind (any kind; at most 4 per kind). */
void fe_revoke_on(fe_revoke_kind kind, fe_revoke_fn fn);
/* True when the session token (session_id of user_id, issued at issued_at and expiring at
 * expires_at, Unix seconds) has been revoked: logged out, or issued before the user's sessions
 * were voided; or when it may have been and the revocation was forgotten early because the
 * revocation cache was full (fail closed: only tokens ending before the forgotten ones). */
bool fe_revoke_session_void(const char *session_id, const char *user_id, int64_t issued_at,
                            int64_t expires_at);

/* Versions of cached answers (fe_auth's API keys, fe_depcache's permissions, shared through Redis
 * too): take fe_revoke_version() BEFORE asking PostgreSQL and keep it with the answer. It is the
 * id up to which every revocation row has been read (the lowest id still missing, less one), so
 * every change whose row is at or below it had committed before the question was asked. -1 while
 * the revocations are not loaded (nothing may be cached or shared then). */
long long fe_revoke_version(void);
/* True when an answer about subject (a key hash for FE_REVOKE_API_KEY, a user id for
 * FE_REVOKE_PERMISSIONS or FE_REVOKE_USER_SESSIONS, a deployment or survey id for
 * FE_REVOKE_DEPLOYMENT/_SURVEY) taken at
 * version is still good: the revocations are loaded and no row of
 * that kind about subject newer than version is known (nor any forgotten early). An answer whose
 * version is older than the subject's newest revocation may predate it: not to be used. */
bool fe_revoke_unchanged_since(fe_revoke_kind kind, const char *subject, long long version);
/* Polls at once (after this child wrote a revocation), without waiting for the timer. */
void fe_revoke_poll_now(void);

#endif

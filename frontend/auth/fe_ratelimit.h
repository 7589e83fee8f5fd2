/* Per-API-key rate limit: a fixed-window counter in Redis shared by every front end, strikes
 * for keys that keep hitting it, and their automatic suspension in PostgreSQL.
 *
 * Per request (after authentication, API-key credentials only): INCR fv:rl:<key id>:<window> and
 * EXPIRE, pipelined on the child's one async Redis connection. Over api_key_rate_limit -> 429
 * rate_limited + Retry-After. The first refusal of a window is a strike (INCR
 * fv:rl:strikes:<key id>, kept an hour from the first); at api_key_suspend_after strikes the key
 * is suspended (one SQL statement: suspended_at, an apikey.suspend audit row per organisation of
 * the owner, a revocations row) and its Redis-shared cache entry deleted.
 *
 * A request well under the limit by this child's view (the highest count Redis answered for the
 * key's window plus this child's counts still unanswered, at most half the limit) does not wait
 * for its count: the INCR goes out and the handler runs. Near the limit every request waits, so
 * refusals start at the limit (a count past it that was not waited for, other children's
 * requests having arrived meanwhile, is a strike all the same).
 *
 * Session tokens are limited the same way per user (fv:rl:user:<user id>:<window>,
 * session_rate_limit per session_rate_window_s, all of the user's sessions together), without
 * strikes (a session cannot be suspended; it ends by itself); so are the OpenRosa routes' HTTP
 * Basic callers and app users (fe_openrosa_auth.h), counted with the user's sessions.
 *
 * Fails open: with Redis down (or a command that fails) requests are not limited; with
 * PostgreSQL down a due suspension is retried at the next strike. */
#ifndef FE_RATELIMIT_H
#define FE_RATELIMIT_H

#include "fe_reply.h"

/* r->user must be set (an API-key or session caller). Calls next(r) when within the limit, when the limit
 * is off or when Redis cannot count; otherwise answers 429. r->state must be free (NULL) on
 * entry; it is NULL again when next runs. */
void fe_ratelimit_check(fe_req *r, fe_handler next);

/* Frees this child's views of the counters (at exit). */
void fe_ratelimit_shutdown(void);

/* The Redis key of the strike counter of key_id into out (at least 64 bytes). */
void fe_ratelimit_strikes_key(const char *key_id, char *out, size_t outlen);

#endif

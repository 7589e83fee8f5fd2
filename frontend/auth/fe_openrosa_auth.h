/* Authentication of the OpenRosa routes (issue 13): what ODK Collect, KoboCollect and Enketo can
 * send. One step, fe_openrosa_authenticate, run by the dispatcher for every route whose auth mode
 * is FE_AUTH_OPENROSA (fe_routes.c), before its handler; a handler of such a route finds r->user
 * set and decides access in SQL with fv_openrosa_verdict(r->user->id, deployment) (migration 020:
 * it knows app users), as fe_openrosa.c does. Three credentials:
 *
 *   - an app-user token in the path: /v1/key/{token}/openrosa/... is the route /v1/openrosa/...
 *     (the dispatcher strips the prefix into r->app_token); the token (fva_...) is found by its
 *     SHA-256 (cache, then PostgreSQL) and must belong to the deployment of path parameter 0
 *     (else 404); r->user is the app user (cred FE_CRED_APP_USER, cred_id its deployment id).
 *     Only routes with FE_AUTH_OPENROSA exist under the prefix (the JSON API does not).
 *   - HTTP Basic (email and password; no API key as password): PBKDF2 on the work pool, never on
 *     the event loop, throttled like logins (fe_throttle: 429 + Retry-After), then kept in this
 *     child's cache for openrosa_basic_cache_ttl_s under HMAC-SHA256(a random key of this child,
 *     email and password), so a device sending the same header on every request costs one
 *     PBKDF2 per child per TTL; requests with the same credentials that arrive while their check
 *     runs wait for it (coalesced), so a burst of them is one attempt for the throttle. An entry counts only while no user_sessions or permissions
 *     revocation of its user newer than its lookup is known (password change, erasure, removal
 *     from an org: within revocation_poll_ms on every front end). Accounts with
 *     TOTP enrolled are refused (401): a password alone is not their credential; their devices
 *     use app-user tokens. cred FE_CRED_BASIC (mfa false: the TOTP policy's admin powers never
 *     come with it).
 *   - Authorization: Bearer (API keys, session tokens), as fe_auth.c.
 *
 * Basic callers and app users are then rate-limited per user as sessions are (fe_ratelimit.h).
 *
 * Refusals are OpenRosa XML envelopes with X-OpenRosa-Version: 1.0; with no credentials (or bad
 * ones) 401 with WWW-Authenticate: Basic realm="fieldvault" (never Digest). */
#ifndef FE_OPENROSA_AUTH_H
#define FE_OPENROSA_AUTH_H

#include <event2/event.h>
#include <stdbool.h>

#include "fe_reply.h"

#define FE_APP_TOKEN_PREFIX "fva_"
#define FE_APP_TOKEN_LEN 47 /* "fva_" + 43 base64url characters of 32 random bytes */
/* The path prefix of app-user tokens: /v1/key/{token}/<rest> is the route /v1/<rest>. */
#define FE_APP_KEY_PATH "/v1/key/"

/* base (borrowed) runs the restarts of Basic requests that waited for a check (see the .c). */
int fe_openrosa_auth_init(struct event_base *base);
void fe_openrosa_auth_shutdown(void);
/* Authenticates r (see above); on success sets r->user and calls next(r), else answers. */
void fe_openrosa_authenticate(fe_req *r, fe_handler next);
/* A new app-user token into out; false when the random generator failed. */
bool fe_app_token_new(char out[FE_APP_TOKEN_LEN + 1]);
/* Answers r with status and an OpenRosa envelope <message nature="error">message</message>
 * (message a plain string, XML-escaped here), X-OpenRosa-Version: 1.0. Takes over r. */
void fe_openrosa_reply_error(fe_req *r, int status, const char *message);

#endif

/* Authentication of a request's bearer token. An API key (fvk_) is looked up by its SHA-256: in
 * this child's cache (auth_cache_ttl_s; misses for a few seconds too, so a flood of wrong keys
 * does not reach the database), then the cache shared through Redis, then PostgreSQL; then its
 * rate limit is counted (fe_ratelimit.h). A session token (fvs_) is verified by its signature
 * alone (fe_session_auth.c). */
#ifndef FE_AUTH_H
#define FE_AUTH_H

#include "fe_reply.h"

int fe_auth_init(void);
void fe_auth_shutdown(void);
/* Authenticates r; on success sets r->user and calls next(r), else answers 401 (unknown, revoked
 * or malformed), 403 key_suspended, 429 rate_limited or 503. */
void fe_auth_authenticate(fe_req *r, fe_handler next);
void fe_auth_user_free(fe_user *u);
/* Answers 401 with code and message and WWW-Authenticate: Bearer. */
void fe_auth_unauthorized(fe_req *r, const char *code, const char *message);

#endif

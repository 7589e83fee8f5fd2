/* Authentication of a request's bearer API key: looked up by its SHA-256 in PostgreSQL, cached
 * in the child for auth_cache_ttl_s (misses for a few seconds too, so a flood of wrong keys does
 * not reach the database). */
#ifndef FE_AUTH_H
#define FE_AUTH_H

#include "fe_http.h"

int fe_auth_init(void);
void fe_auth_shutdown(void);
/* Authenticates r; on success sets r->user and calls next(r), else answers 401 (or 503). */
void fe_auth_authenticate(fe_req *r, fe_handler next);
void fe_auth_user_free(fe_user *u);

#endif

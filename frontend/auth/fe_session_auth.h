/* Session tokens: verified by their signature alone, without PostgreSQL (fe_session_auth.c). */
#ifndef FE_SESSION_AUTH_H
#define FE_SESSION_AUTH_H

#include "fe_reply.h"

/* A bearer starting with this prefix is a session token. */
#define FE_SESSION_TOKEN_PREFIX "fvs_"
/* Verifies the session token (borrowed); on success sets r->user and calls next(r), else
 * answers 401. Never blocks and needs no PostgreSQL (signed tokens; fe_revoke knows revocations). */
void fe_session_authenticate(fe_req *r, const char *token, fe_handler next);

#endif

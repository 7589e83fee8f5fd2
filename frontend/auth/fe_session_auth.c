/* Session tokens: verification of a bearer "fvs_..." token without PostgreSQL (common/fv_token.h:
 * signed with a key of the key file, so every front end verifies it alone, even while PostgreSQL
 * is down), then the revocations this child knows of (fe_revoke: logouts, password changes). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fe_auth.h"
#include "fe_session_auth.h"
#include "fe_config.h"
#include "fe_ratelimit.h"
#include "fe_revoke.h"
#include "fv_token.h"

void fe_session_authenticate(fe_req *r, const char *token, fe_handler next)
{
    fv_token t;
    fv_token_result v = fv_token_verify(&fe_keys, token, time(NULL), &t);
    if (v == FV_TOKEN_EXPIRED) {
        fe_auth_unauthorized(r, "token_expired", "the session has expired; sign in again");
        return;
    }
    if (v != FV_TOKEN_OK || fe_revoke_session_void(t.session_id, t.user_id, t.issued_at, t.expires_at)) {
        fe_auth_unauthorized(r, "invalid_token", "the session token is not valid");
        return;
    }
    /* email and name are not in the token: empty strings here (GET /v1/me reads them). */
    fe_user *u = calloc(1, sizeof *u);
    if (!u || !(u->email = strdup("")) || !(u->name = strdup(""))) {
        fe_auth_user_free(u);
        fe_reply_oom(r);
        return;
    }
    memcpy(u->id, t.user_id, sizeof u->id);
    memcpy(u->cred_id, t.session_id, sizeof u->cred_id);
    u->cred = FE_CRED_SESSION;
    u->mfa = t.mfa;
    u->is_admin = false; /* operator power comes with API keys made by fvctl, not in the token */
    r->user = u;
    fe_ratelimit_check(r, next); /* per user, like API keys per key */
}

/* The caller's own sessions (OWASP ASVS 3.3.4): GET /v1/me/sessions lists the live ones (where
 * and when each was opened, whether with TOTP, which one is the caller's); DELETE
 * /v1/me/sessions/{id} ends one and DELETE /v1/me/sessions every other one. Ending sessions needs
 * a session and the current password again (fe_reauth): a stolen token alone must not sign its
 * owner out, and an API key is not a person at a keyboard. Login and logout: fe_sessions.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_config.h"
#include "fe_handlers.h"
#include "fe_reauth.h"
#include "fe_revoke.h"
#include "fe_verdict.h"

/* ---- GET /v1/me/sessions ---- */

/* Live sessions of $1 (not ended, not expired, not voided by a later password change), oldest
 * first (session ids are UUIDv7); current: the session this request was made with ($2). */
static const char sql_list[] = FE_VERDICT_PAGE_SQL(
    "'ok'",
    "SELECT s.id, jsonb_build_object('id', s.id, 'created_at', fv_ts(s.created_at), "
    "       'expires_at', fv_ts(s.expires_at), 'address', host(s.address), 'mfa', s.mfa, "
    "       'current', COALESCE(s.id = $2::uuid, false)) AS j "
    "FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.user_id = $1::uuid AND s.revoked_at IS NULL AND s.expires_at > now() "
    "  AND s.created_at >= u.sessions_valid_after AND ($3::uuid IS NULL OR s.id > $3::uuid)",
    "id", "page.id::text", "page.j", "$4");

void fe_mysessions_list(fe_req *r)
{
    const char *current = r->user->cred == FE_CRED_SESSION ? r->user->cred_id : NULL;
    const char *params[] = {r->user->id, current};
    fe_verdict_page_list(r, FE_PAGE_UUID, sql_list, 2, params, "session");
}

/* ---- DELETE /v1/me/sessions/{id} and DELETE /v1/me/sessions ---- */

/* Ends the sessions of $2 chosen by $1 (one id, or NULL for all but the caller's own, $3): each
 * ended and revoked (every child refuses it within a poll), one audit entry per session.
 * 'hidden' when one id was asked for and the caller has no such live session. Column 2: how many
 * were ended. */
static const char sql_end[] =
    "WITH s AS (UPDATE sessions SET revoked_at = now() "
    "           WHERE user_id = $2::uuid AND revoked_at IS NULL AND expires_at > now() "
    "             AND (($1::uuid IS NOT NULL AND id = $1::uuid) "
    "                  OR ($1::uuid IS NULL AND id IS DISTINCT FROM $3::uuid)) "
    "           RETURNING id, expires_at), "
    "     v AS (INSERT INTO revocations (kind, subject, expires_at) "
    "           SELECT 'session', id::text, expires_at FROM s), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address) "
    "           SELECT $2::uuid, 'auth.session_end', 'session', id::text, NULLIF($4, '')::inet FROM s) "
    "SELECT CASE WHEN $1::uuid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM s) THEN 'hidden' ELSE 'ok' END, "
    "       NULL, (SELECT count(*) FROM s)";

static void ended(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    const char *verdict = PQntuples(res->res) == 1 ? PQgetvalue(res->res, 0, 0) : "hidden";
    if (strcmp(verdict, "ok") != 0) {
        fe_verdict_reply(r, verdict, "session");
        return;
    }
    fe_revoke_poll_now();
    if (r->param[0][0]) {
        fe_reply_text(r, 204, "application/json", NULL, 0);
        return;
    }
    char body[48];
    int n = snprintf(body, sizeof body, "{\"ended\":%s}", PQgetvalue(res->res, 0, 2));
    fe_reply_text(r, 200, "application/json", body, (size_t)n);
}

/* After the password was given again: end the session(s). */
static void end_go(fe_req *r)
{
    const char *one = r->param[0][0] ? r->param[0] : NULL;
    const char *params[] = {one, r->user->id, r->user->cred_id, r->address};
    fe_pg_query(sql_end, 4, params, ended, r);
}

static void end_sessions(fe_req *r)
{
    if (r->user->cred != FE_CRED_SESSION) {
        fe_reply_error(r, 403, "session_required",
                       "sign in with your password (POST /v1/auth/login) to end sessions");
        return;
    }
    fe_reauth(r, false, end_go);
}

void fe_mysessions_end(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "session")) return;
    end_sessions(r);
}

void fe_mysessions_end_others(fe_req *r)
{
    r->param[0][0] = '\0';
    end_sessions(r);
}

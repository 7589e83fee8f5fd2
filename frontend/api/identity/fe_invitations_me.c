/* Invitations, the invitee's side: GET /v1/me/invitations (the caller's open invitations, by
 * their user id or their email), POST /v1/me/invitations/{id}/accept (creates the membership,
 * with its audit row in the org) and .../decline. Another user's invitation is 404. Accepting
 * needs a session and the current password (and the TOTP code when TOTP is on, fe_reauth.h):
 * a membership gives its org's admins power over the member's API keys (reinstating a suspended
 * one, migration 011), so neither a leaked key nor a stolen session may join an organisation
 * (say a thief's own) on the owner's behalf. An email invitation also needs its code: emails are
 * not verified. Declining needs no more than a signed-in caller: it only closes the invitation. */
#include <stdlib.h>
#include <string.h>

#include "fe_handlers.h"
#include "fe_reauth.h"
#include "fe_verdict.h"
#include "fv_crypto.h"

#define CODE_MAX 100

/* ---- GET /v1/me/invitations ---- */

static const char sql_my_invitations[] = FE_VERDICT_PAGE_SQL(
    "'ok'",
    "SELECT i.id, fv_invitation_me_json(i) AS j FROM invitations i "
    "WHERE (i.user_id = $1 "
    "       OR i.email_hmac = (SELECT u.email_hmac FROM users u WHERE u.id = $1) "
    "       OR (i.email IS NOT NULL AND lower(i.email) = (SELECT lower(u.email) FROM users u WHERE u.id = $1))) "
    "  AND fv_invitation_open_verdict(i) = 'ok' AND ($2::uuid IS NULL OR i.id > $2::uuid)",
    "id", "page.id::text", "page.j", "$3");

void fe_invitations_me_list(fe_req *r)
{
    const char *params[] = {r->user->id};
    fe_verdict_page_list(r, FE_PAGE_UUID, sql_my_invitations, 1, params, "invitation");
}

/* ---- POST /v1/me/invitations/{id}/accept ---- */

/* The invitation, locked (of two accepts at once, the second sees it used), must be the caller's
 * and open; an email invitation's code must match ($3: the SHA-256 of the code sent, compared as
 * API keys are: by digest, so timing says nothing about the code). Then the membership (an
 * existing one on that branch or team takes the role offered), a `permissions` revocation, and
 * the audit row in the org: from here on the org knows the member. */
static const char sql_accept[] =
    "WITH i AS (SELECT x FROM invitations x WHERE x.id = $2 AND fv_invitation_is_for(x, $1) FOR UPDATE), "
    "     v AS (SELECT CASE "
    "             WHEN i.x IS NULL THEN 'hidden' "
    "             WHEN fv_invitation_open_verdict(i.x) <> 'ok' THEN fv_invitation_open_verdict(i.x) "
    "             WHEN (i.x).code_hash IS NOT NULL AND (i.x).code_hash IS DISTINCT FROM $3 "
    "               THEN 'wrong_invitation_code' "
    "             ELSE 'ok' END AS verdict "
    "           FROM (SELECT 1) one LEFT JOIN i ON true), "
    "     up AS (UPDATE invitations x SET accepted_at = now(), accepted_by = $1 "
    "            WHERE x.id = $2 AND x.accepted_at IS NULL AND (SELECT verdict FROM v) = 'ok' "
    "            RETURNING x.org_id, x.role, x.branch_id, x.team_id, x.invited_by), "
    "     mb AS (INSERT INTO memberships AS m (id, org_id, user_id, role, branch_id) "
    "            SELECT $4, up.org_id, $1, up.role, up.branch_id FROM up WHERE up.branch_id IS NOT NULL "
    "            ON CONFLICT (user_id, branch_id) WHERE branch_id IS NOT NULL "
    "            DO UPDATE SET role = EXCLUDED.role "
    "            RETURNING m.id, m.org_id, m.role, m.branch_id, m.team_id, m.created_at), "
    "     mt AS (INSERT INTO memberships AS m (id, org_id, user_id, role, team_id) "
    "            SELECT $4, up.org_id, $1, up.role, up.team_id FROM up WHERE up.team_id IS NOT NULL "
    "            ON CONFLICT (user_id, team_id) WHERE team_id IS NOT NULL "
    "            DO UPDATE SET role = EXCLUDED.role "
    "            RETURNING m.id, m.org_id, m.role, m.branch_id, m.team_id, m.created_at), "
    "     m AS (SELECT * FROM mb UNION ALL SELECT * FROM mt), "
    "     rv AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'permissions', $1::text, now() + interval '1 day' FROM m), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1, 'invitation.accept', 'user', $1::text, NULLIF($5, '')::inet, m.org_id, "
    "                  jsonb_build_object('invitation_id', $2::uuid, 'invited_by', "
    "                      (SELECT invited_by FROM up), 'role', m.role, 'branch_id', m.branch_id, "
    "                      'team_id', m.team_id) FROM m) "
    "SELECT v.verdict, (SELECT jsonb_build_object('id', m.id, 'org_id', m.org_id, 'user_id', $1::uuid, "
    "                          'role', m.role, 'branch_id', m.branch_id, 'team_id', m.team_id, "
    "                          'created_at', fv_ts(m.created_at), 'invitation_id', $2::uuid)::text "
    "                   FROM m) FROM v";

/* The invitation accepted, once the caller proved who they are (fe_reauth). */
static void accept_go(fe_req *r)
{
    const char *code = fv_json_get_str(r->body, "code"); /* shape checked by fe_invitations_me_accept */
    char hash[FV_SHA256_HEXLEN + 1], membership[FV_UUID_STRLEN + 1];
    if (code) fv_sha256_hex(code, strlen(code), hash);
    fv_id_new(membership);
    const char *params[] = {r->user->id, r->param[0], code ? hash : NULL, membership, r->address};
    fe_verdict_run(r, sql_accept, 5, params, 200, "invitation", r->user->id);
}

void fe_invitations_me_accept(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "invitation")) return;
    if (r->user->cred != FE_CRED_SESSION) {
        fe_reply_error(r, 403, "session_required",
                       "accepting an invitation needs a session (log in) and your password: an API "
                       "key cannot join an organisation");
        return;
    }
    yajl_val code = fv_json_get(r->body, "code");
    if (code && !YAJL_IS_NULL(code) &&
        (!YAJL_IS_STRING(code) || !code->u.string[0] || strlen(code->u.string) > CODE_MAX)) {
        const char *f[] = {"code"}, *why[] = {"the invitation code, a string of at most 100 characters"};
        fe_reply_error_fields(r, 422, "validation_failed", "the acceptance is invalid", 1, f, why);
        return;
    }
    fe_reauth(r, true, accept_go);
}

/* ---- POST /v1/me/invitations/{id}/decline ---- */

/* Closes the caller's open invitation. The audit row is the account's (no org_id): the org is
 * not told that the invitee has an account, nor that they said no. */
static const char sql_decline[] =
    "WITH i AS (SELECT x FROM invitations x WHERE x.id = $2 AND fv_invitation_is_for(x, $1) FOR UPDATE), "
    "     v AS (SELECT CASE WHEN i.x IS NULL THEN 'hidden' ELSE fv_invitation_open_verdict(i.x) END "
    "                  AS verdict FROM (SELECT 1) one LEFT JOIN i ON true), "
    "     up AS (UPDATE invitations x SET declined_at = now() "
    "            WHERE x.id = $2 AND (SELECT verdict FROM v) = 'ok' RETURNING x.id), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address) "
    "           SELECT $1, 'invitation.decline', 'invitation', up.id::text, NULLIF($3, '')::inet FROM up) "
    "SELECT v.verdict, NULL FROM v";

void fe_invitations_me_decline(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "invitation")) return;
    const char *params[] = {r->user->id, r->param[0], r->address};
    fe_verdict_run(r, sql_decline, 3, params, 204, "invitation", NULL);
}

/* Revert of a compromised account: POST /v1/orgs/{org}/revert {user_id, since, until, force?}
 * (org admin, with the TOTP session the org requires of its admins) makes a job of kind 'revert'
 * (migration 013) and answers 202 {"job_id"}; a worker then puts every response and site of the
 * org the user changed in [since, until) back to its state before their first change there
 * (worker/jobs/wk_job_revert.c, fv_job_revert_step). The window is checked in SQL against the
 * server's clock: since in the future, or since >= until, is 422; until later than now is taken
 * as now (the window's versions are then fixed). A user who was never in the org is 422. */
#include <stdio.h>
#include <string.h>

#include "fe_handlers.h"
#include "fe_verdict.h"
#include "fv_check.h"
#include "fv_id.h"

/* $1 caller, $2 org, $3 mfa, $4 job id, $5 user, $6 since, $7 until, $8 force, $9 address. */
static const char sql_revert[] =
    "WITH v AS (SELECT CASE "
    "             WHEN fv_org_admin_verdict($1, $2, $3::boolean) <> 'ok' "
    "               THEN fv_org_admin_verdict($1, $2, $3::boolean) "
    "             WHEN $6::timestamptz > now() THEN 'invalid:since:the window is in the future' "
    "             WHEN $6::timestamptz >= $7::timestamptz THEN 'invalid:until:must be later than since' "
    "             WHEN NOT fv_user_ever_in_org($5::uuid, $2) "
    "               THEN 'invalid:user_id:not a member of this organisation, now or before' "
    "             ELSE 'ok' END AS verdict), "
    "     ins AS (INSERT INTO jobs AS j (id, org_id, kind, params, created_by) "
    "             SELECT $4, $2, 'revert', jsonb_build_object('user_id', $5::uuid, "
    "                    'since', fv_ts($6::timestamptz), 'until', fv_ts(LEAST($7::timestamptz, now())), "
    "                    'force', $8::boolean), $1 "
    "             FROM v WHERE v.verdict = 'ok' RETURNING j.id, j.params), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1, 'org.revert', 'user', $5::uuid::text, NULLIF($9, '')::inet, $2, "
    "                  ins.params || jsonb_build_object('job_id', ins.id) FROM ins) "
    "SELECT v.verdict, (SELECT jsonb_build_object('job_id', ins.id)::text FROM ins) FROM v";

void fe_revert_create(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "organisation")) return;
    const char *user = fv_json_get_str(r->body, "user_id"), *since = fv_json_get_str(r->body, "since"),
               *until = fv_json_get_str(r->body, "until"), *bad[4], *why[4];
    yajl_val forcev = fv_json_get(r->body, "force");
    size_t nbad = 0;
    if (!user || !fv_id_valid(user)) bad[nbad] = "user_id", why[nbad++] = "required: a user id (UUID)";
    if (!since || !fv_check_datetime(since))
        bad[nbad] = "since", why[nbad++] = "required: an RFC 3339 date-time";
    if (!until || !fv_check_datetime(until))
        bad[nbad] = "until", why[nbad++] = "required: an RFC 3339 date-time";
    bool force = false;
    if (forcev && !YAJL_IS_NULL(forcev)) {
        if (YAJL_IS_TRUE(forcev)) force = true;
        else if (!YAJL_IS_FALSE(forcev)) bad[nbad] = "force", why[nbad++] = "a boolean";
    }
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "the revert request is invalid", nbad, bad,
                              why);
        return;
    }
    char id[FV_UUID_STRLEN + 1];
    fv_id_new(id);
    const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r),        id,        user,
                            since,       until,       force ? "true" : "false", r->address};
    fe_verdict_run(r, sql_revert, 9, params, 202, "organisation", NULL);
}

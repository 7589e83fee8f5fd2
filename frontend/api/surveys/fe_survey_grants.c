/* A survey's grants: GET /v1/surveys/{id}/access lists them (survey admins; viewers see the survey
 * but not who else may: 403), DELETE /v1/surveys/{id}/access/{type}/{principal_id} removes one
 * (survey admins, as PUT access; 204, 404 when there is none). PUT access is in fe_surveys.c.
 * Access is decided in SQL by verdict (fe_verdict.h, fv_survey_grants_read_verdict and
 * fv_survey_admin_verdict). */
#include <ctype.h>
#include <string.h>

#include "fe_handlers.h"
#include "fe_verdict.h"

/* $1 caller, $2 survey, $3 the cursor (the last principal id), $4 the page size. */
static const char sql_grant_list[] = FE_VERDICT_PAGE_SQL(
    "fv_survey_grants_read_verdict($1, $2)",
    "SELECT g.principal_id AS id, fv_survey_grant_json(g) AS j FROM survey_grants g "
    "WHERE g.survey_id = $2 AND ($3::uuid IS NULL OR g.principal_id > $3::uuid)",
    "id", "page.id::text", "page.j", "$4");

void fe_survey_grants_list(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "survey")) return;
    const char *params[] = {r->user->id, r->param[0]};
    fe_verdict_page_list(r, FE_PAGE_UUID, sql_grant_list, 2, params, "survey");
}

/* $1 survey, $2 caller, $3 principal type, $4 principal id, $5 mfa, $6 address. Removes the grant,
 * writes the audit entry (the role removed and who had granted it) and the revocations that make
 * every front end drop what it cached about the survey (`survey`) and, for a user principal, the
 * user's permissions (`permissions`), in one statement. */
static const char sql_grant_remove[] =
    "WITH s AS (SELECT x.id, x.org_id, fv_survey_admin_verdict($2, x.id, $5::boolean) AS verdict "
    "           FROM surveys x WHERE x.id = $1), "
    "     del AS (DELETE FROM survey_grants g USING s "
    "             WHERE s.verdict = 'ok' AND g.survey_id = s.id "
    "               AND g.principal_type = $3::text AND g.principal_id = $4::uuid "
    "             RETURNING g.role, g.granted_by, g.created_at), "
    "     rv AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'survey', s.id::text, now() + interval '1 day' FROM s WHERE EXISTS (SELECT 1 FROM del) "
    "            UNION ALL "
    "            SELECT 'permissions', $4::text, now() + interval '1 day' "
    "            WHERE $3::text = 'user' AND EXISTS (SELECT 1 FROM del)), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, 'survey.access_remove', 'survey', s.id::text, NULLIF($6, '')::inet, s.org_id, "
    "                  jsonb_build_object('principal_type', $3::text, 'principal_id', $4::text, "
    "                                     'role', del.role, 'granted_by', del.granted_by, "
    "                                     'granted_at', fv_ts(del.created_at)) "
    "           FROM s, del) "
    "SELECT CASE WHEN s.verdict = 'ok' AND NOT EXISTS (SELECT 1 FROM del) THEN 'no_such_grant' "
    "            ELSE s.verdict END, NULL FROM s";

void fe_survey_grants_remove(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "survey")) return;
    const char *type = r->param[1];
    if ((strcmp(type, "user") && strcmp(type, "team") && strcmp(type, "branch")) ||
        !fv_id_valid(r->param[2])) {
        fe_verdict_reply(r, "no_such_grant", "grant");
        return;
    }
    char pid[FV_UUID_STRLEN + 1];
    for (int i = 0; i <= FV_UUID_STRLEN; i++) pid[i] = (char)tolower((unsigned char)r->param[2][i]);
    const char *params[] = {r->param[0], r->user->id, type, pid, fe_verdict_mfa(r), r->address};
    fe_verdict_run_revoking(r, sql_grant_remove, 6, params, 204, "survey", NULL);
}

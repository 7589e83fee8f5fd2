/* Archiving a survey: POST /v1/surveys/{id}/archive and /unarchive (survey admins). An archived
 * survey is left out of GET /v1/surveys unless ?archived=true, refuses new definitions, new
 * deployments and submissions to its deployments (409 survey_archived), and keeps everything
 * readable and its responses reviewable. Access is decided in SQL by verdict (fe_verdict.h). */
#include "fe_handlers.h"
#include "fe_verdict.h"

/* $1 survey, $2 caller, $3 mfa, $4 archive (true) or unarchive (false), $5 address. A change
 * writes the audit entry and the `survey` revocation (every front end drops what it cached about
 * the survey's deployments at once); asking for the state the survey is in changes nothing. */
static const char sql_archive[] =
    "WITH s AS (SELECT x.*, fv_survey_admin_verdict($2, x.id, $3::boolean) AS verdict "
    "           FROM surveys x WHERE x.id = $1 FOR UPDATE), "
    "     u AS (UPDATE surveys y SET archived_at = CASE WHEN $4::boolean THEN now() END "
    "           FROM s WHERE y.id = s.id AND s.verdict = 'ok' AND (s.archived_at IS NOT NULL) <> $4::boolean "
    "           RETURNING y.*), "
    "     rv AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'survey', u.id::text, now() + interval '1 day' FROM u), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, CASE WHEN $4::boolean THEN 'survey.archive' ELSE 'survey.unarchive' END, 'survey', "
    "                  u.id::text, NULLIF($5, '')::inet, u.org_id, "
    "                  jsonb_build_object('archived', jsonb_build_object('old', NOT $4::boolean, 'new', $4::boolean)) "
    "           FROM u) "
    "SELECT s.verdict, COALESCE((SELECT fv_survey_json(ROW(u.*)::surveys, $2, false) FROM u), "
    "                           (SELECT fv_survey_json(x, $2, false) FROM surveys x WHERE x.id = s.id))::text "
    "FROM s";

static void set_archived(fe_req *r, const char *archive)
{
    if (!fe_verdict_id(r, 0, "survey")) return;
    const char *params[] = {r->param[0], r->user->id, fe_verdict_mfa(r), archive, r->address};
    fe_verdict_run_revoking(r, sql_archive, 5, params, 200, "survey", NULL);
}

void fe_surveys_archive(fe_req *r)
{
    set_archived(r, "true");
}

void fe_surveys_unarchive(fe_req *r)
{
    set_archived(r, "false");
}

/* A response's history and its restore: GET /v1/responses/{id}/history (every version, paged by
 * version number) and POST /v1/responses/{id}/restore (a soft-deleted response back). Who may is
 * decided in SQL by verdict (fe_verdict.h) with the functions of migration 012
 * (fv_response_history_verdict, fv_response_restore_verdict), which call the reading and managing
 * rules; each version is written by fv_response_version_json, masking confidential answers as
 * reads do (fv_response_json). */
#include <stdlib.h>

#include "fe_handlers.h"
#include "fe_verdict.h"

/* $1 response, $2 caller, $3 the last version of the page before (NULL: from the first), $4 the
 * page size. Survey admins see confidential answers in every version, others never. */
static const char sql_history[] = FE_VERDICT_PAGE_SQL(
    "fv_response_history_verdict($2, $1)",
    "SELECT e.version, fv_response_version_json(e, COALESCE(fv_survey_role($2, r.survey_id) = 'admin', false)) "
    "         AS j "
    "FROM responses r JOIN response_events e ON e.response_id = r.id "
    "WHERE r.id = $1 AND ($3::bigint IS NULL OR e.version > $3::bigint)",
    "version", "page.version::text", "page.j", "$4");

void fe_response_history(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "response")) return;
    const char *params[] = {r->param[0], r->user->id};
    fe_verdict_page_list(r, FE_PAGE_INT, sql_history, 2, params, "response");
}

/* $1 response, $2 caller, $3 address, $4 mfa: those who may delete it restore it
 * (fv_response_restore_verdict); the row is locked and the verdict taken on it as locked. The new
 * version holds the state as it was before the delete, deleted_at cleared. */
static const char sql_restore[] =
    "WITH c AS (SELECT x.id, s.org_id, fv_response_restore_verdict($2, x, $4::boolean) AS verdict "
    "           FROM responses x JOIN surveys s ON s.id = x.survey_id "
    "           WHERE x.id = $1 FOR UPDATE OF x), "
    "     u AS (UPDATE responses y SET deleted_at = NULL, version = y.version + 1, updated_at = now() "
    "           FROM c WHERE y.id = c.id AND c.verdict = 'ok' AND y.deleted_at IS NOT NULL RETURNING y), "
    "     e AS (INSERT INTO response_events (response_id, version, action, stage, status, actor, state) "
    "           SELECT (u.y).id, (u.y).version, 'restore', (u.y).stage, (u.y).status, $2, to_jsonb(u.y) "
    "           FROM u), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, 'response.restore', 'response', (u.y).id::text, NULLIF($3, '')::inet, c.org_id, "
    "                  jsonb_build_object('version', (u.y).version) "
    "           FROM u, c) "
    "SELECT c.verdict, "
    "       (SELECT fv_response_json(u.y, COALESCE(fv_survey_role($2, (u.y).survey_id) = 'admin', false))::text "
    "        FROM u) "
    "FROM c";

void fe_response_restore(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "response")) return;
    const char *params[] = {r->param[0], r->user->id, r->address, fe_verdict_mfa(r)};
    fe_verdict_run(r, sql_restore, 4, params, 200, "response", NULL);
}

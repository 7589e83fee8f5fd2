/* Reading responses: GET /v1/responses/{id} and the list of a survey's responses, each row
 * filtered by the reading rule in SQL (fv_can_read_response, fv_response_visible) and answered by
 * verdict (fe_verdict.h); fv_response_json writes them. */
#include <stdlib.h>
#include <string.h>

#include "fe_handlers.h"
#include "fe_verdict.h"

/* The reading rule (fv_can_read_response): survey admins and managers any status, approvers of
 * stage k pending at k and final, viewers final, enumerators their own; deleted ones nobody. */
static const char sql_response_get[] =
    "SELECT 'ok', fv_response_json(r, COALESCE(fv_survey_role($2, r.survey_id) = 'admin', false))::text "
    "FROM responses r WHERE r.id = $1 AND fv_can_read_response($2, r.id)";

void fe_responses_get(fe_req *r)
{
    fe_verdict_get(r, sql_response_get, "response");
}

/* $1 survey, $2 caller, $3 deployment, $4 status, $5 $6 the cursor (created_at, id), $7 the
 * page size. The caller's access to each deployment of the survey is computed once
 * (fv_deployment_access) and every row is filtered by the reading rule (fv_response_visible). */
static const char sql_response_list[] = FE_VERDICT_PAGE_SQL(
    "fv_survey_read_verdict($2, $1)",
    "WITH a AS MATERIALIZED (SELECT d.id, fv_deployment_access($2, d.id) AS acc "
    "                        FROM deployments d WHERE d.survey_id = $1), "
    "     adm AS MATERIALIZED (SELECT COALESCE(fv_survey_role($2, $1) = 'admin', false) AS yes) "
    "SELECT r.id, r.created_at, fv_response_json(r, adm.yes) AS j "
    "FROM a JOIN responses r ON r.deployment_id = a.id, adm "
    "WHERE r.survey_id = $1 "
    "  AND fv_response_visible(a.acc, $2, r.submitted_by, r.status, r.stage, r.deleted_at) "
    "  AND ($3::uuid IS NULL OR r.deployment_id = $3::uuid) "
    "  AND ($4::text IS NULL OR r.status = $4) "
    "  AND ($5::timestamptz IS NULL OR (r.created_at, r.id) > ($5::timestamptz, $6::uuid))",
    "created_at, id", "fv_ts(page.created_at) || '|' || page.id::text", "page.j", "$7");

void fe_responses_list(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "survey")) return;
    char *dep = fe_query_param(r, "deployment"), *status = fe_query_param(r, "status");
    char *after = fe_query_param(r, "after"), *limit = fe_query_param(r, "limit");
    const char *bad[4], *why[4];
    size_t nbad = 0;
    fe_page pg;
    if (dep && !fv_id_valid(dep)) bad[nbad] = "deployment", why[nbad++] = "must be a UUID";
    if (status && strcmp(status, "pending") && strcmp(status, "final") && strcmp(status, "rejected"))
        bad[nbad] = "status", why[nbad++] = "must be pending, final or rejected";
    nbad += fe_page_parse(&pg, FE_PAGE_TS_UUID, after, limit, bad + nbad, why + nbad);
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", nbad, bad, why);
    } else {
        const char *params[] = {r->param[0],        r->user->id,           dep,          status,
                                fe_page_after(&pg), fe_page_after_id(&pg), pg.limit_text};
        fe_verdict_list(r, &pg, sql_response_list, 7, params, "survey");
    }
    free(dep);
    free(status);
    free(after);
    free(limit);
}

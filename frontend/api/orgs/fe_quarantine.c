/* The quarantine: GET /v1/orgs/{org}/quarantine lists, for the organisation's admins, the
 * submissions accepted `unverified` while PostgreSQL was down that the worker refused (not an
 * enumerator, answers failing the form), with the reason. Entries naming a deployment no
 * organisation owns are seen only through the database (fvctl). */
#include <stdlib.h>

#include "fe_handlers.h"
#include "fe_verdict.h"

static const char sql_quarantine_list[] = FE_VERDICT_PAGE_SQL(
    "fv_org_admin_verdict($1, $2, $3::boolean)",
    "SELECT q.* FROM quarantine q JOIN deployments d ON d.id = q.deployment_id "
    "JOIN surveys s ON s.id = d.survey_id WHERE s.org_id = $2 AND ($4::uuid IS NULL OR q.id > $4::uuid)",
    "jsonb_build_object('id', page.id, 'deployment_id', page.deployment_id, 'submitted_by', "
    "page.submitted_by, 'reason', page.reason, 'data', page.data, 'location', page.location, "
    "'collected_at', fv_ts(page.collected_at), 'received_at', fv_ts(page.received_at), "
    "'quarantined_at', fv_ts(page.created_at))",
    "$5");

void fe_quarantine_list(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such organisation");
        return;
    }
    char limit[16], *after;
    if (!fe_verdict_page(r, false, limit, &after)) return;
    const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r), after, limit};
    fe_verdict_run(r, sql_quarantine_list, 5, params, 200, "organisation", NULL);
    free(after);
}

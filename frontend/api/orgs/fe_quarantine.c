/* The quarantine: GET /v1/orgs/{org}/quarantine lists, for the organisation's admins, the
 * submissions accepted `unverified` while PostgreSQL was down that the worker refused (not an
 * enumerator, answers failing the form), with the reason. Entries naming a deployment no
 * organisation owns, and those of submitters with no tie to the organisation (org_visible false:
 * their content is never shown to it), are the operator's: fvctl quarantine. */
#include "fe_handlers.h"
#include "fe_verdict.h"

static const char sql_quarantine_list[] = FE_VERDICT_PAGE_SQL(
    "fv_org_admin_verdict($1, $2, $3::boolean)",
    "SELECT q.* FROM quarantine q JOIN deployments d ON d.id = q.deployment_id "
    "JOIN surveys s ON s.id = d.survey_id WHERE s.org_id = $2 AND q.org_visible AND ($4::uuid IS NULL OR q.id > $4::uuid)",
    "id", "page.id::text",
    "jsonb_build_object('id', page.id, 'deployment_id', page.deployment_id, 'submitted_by', "
    "page.submitted_by, 'reason', page.reason, 'data', page.data, 'location', page.location, "
    "'collected_at', fv_ts(page.collected_at), 'received_at', fv_ts(page.received_at), "
    "'quarantined_at', fv_ts(page.created_at), "
    /* the answers are sealed (migration 027): opened by fe_verdict (fv_answers_finish) */
    "'_fv', fv_answers_hint(page.id, $2::uuid, page.answers_kv))",
    "$5");

void fe_quarantine_list(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "organisation")) return;
    const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r)};
    fe_verdict_page_list(r, FE_PAGE_UUID, sql_quarantine_list, 3, params, "organisation");
}

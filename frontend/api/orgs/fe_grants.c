/* GET /v1/orgs/{org}/grants[?granted_by=<user id>]: the survey grants on the organisation's
 * surveys, all of them or those made by one user, for the org's admins (TOTP policy as for every
 * org-admin action; other members 403, others 404). After removing a member, the admin reviews
 * here the grants that person made to others: a removal keeps them (they were the org's decision
 * at the time) and neither drops them silently nor lets them pass unseen. Paged by an opaque
 * cursor over fv_grant_key (a grant's key is three columns; migration 009). */
#include <stdlib.h>

#include "fe_handlers.h"
#include "fe_verdict.h"

static const char sql_grant_list[] = FE_VERDICT_PAGE_SQL(
    "fv_org_admin_verdict($1, $2, $3::boolean)",
    "SELECT fv_grant_key(g) AS k, fv_grant_json(g) AS j FROM survey_grants g "
    "JOIN surveys s ON s.id = g.survey_id "
    "WHERE s.org_id = $2 AND ($4::uuid IS NULL OR g.granted_by = $4::uuid) "
    "  AND ($5::uuid IS NULL OR fv_grant_key(g) > $5::uuid)",
    "k", "page.k::text", "page.j", "$6");

void fe_grants_list(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "organisation")) return;
    char *by = fe_query_param(r, "granted_by");
    if (by && !fv_id_valid(by)) {
        const char *bad[] = {"granted_by"}, *why[] = {"a user id (UUID)"};
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", 1, bad, why);
    } else {
        const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r), by};
        fe_verdict_page_list(r, FE_PAGE_UUID, sql_grant_list, 4, params, "organisation");
    }
    free(by);
}

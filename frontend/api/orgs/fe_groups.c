/* The members of a team and of a branch: GET /v1/orgs/{org}/teams/{team}/members and
 * GET /v1/orgs/{org}/branches/{branch}/members (org members, as GET /v1/orgs/{org}/members), one
 * item per membership (fv_membership_json: an email only on the caller's own rows). A branch's
 * list holds the memberships on that branch; with ?below=true those on every branch below it too
 * (a principal {branch} does not include them: see fv_principal_includes). Paged by membership
 * id (fe_page.h). Access is decided in SQL by verdict (fe_verdict.h). */
#include <stdlib.h>
#include <string.h>

#include "fe_handlers.h"
#include "fe_verdict.h"

/* $1 caller, $2 org, $3 team, $4 cursor, $5 page size. A team of another org answers 404. */
static const char sql_team_members[] = FE_VERDICT_PAGE_SQL(
    "CASE WHEN fv_member_verdict($1, $2) <> 'ok' THEN 'hidden' "
    "     WHEN NOT EXISTS (SELECT 1 FROM teams t WHERE t.id = $3 AND t.org_id = $2) THEN 'hidden' "
    "     ELSE 'ok' END",
    "SELECT m.id, fv_membership_json(m, u, $1) AS j FROM memberships m JOIN users u ON u.id = m.user_id "
    "WHERE m.org_id = $2 AND m.team_id = $3 AND ($4::uuid IS NULL OR m.id > $4::uuid)",
    "id", "page.id::text", "page.j", "$5");

/* $1 caller, $2 org, $3 branch, $4 below (boolean), $5 cursor, $6 page size. */
static const char sql_branch_members[] = FE_VERDICT_PAGE_SQL(
    "CASE WHEN fv_member_verdict($1, $2) <> 'ok' THEN 'hidden' "
    "     WHEN NOT EXISTS (SELECT 1 FROM branches b WHERE b.id = $3 AND b.org_id = $2) THEN 'hidden' "
    "     ELSE 'ok' END",
    "SELECT m.id, fv_membership_json(m, u, $1) AS j FROM memberships m JOIN users u ON u.id = m.user_id "
    "WHERE m.org_id = $2 AND ($5::uuid IS NULL OR m.id > $5::uuid) "
    "  AND (m.branch_id = $3 OR ($4::boolean AND m.branch_id IN (SELECT fv_branch_and_descendants($3))))",
    "id", "page.id::text", "page.j", "$6");

/* Answers 404 (the org's own answer for a bad org id) and returns false unless both path ids are
 * UUIDs. */
static bool ids_ok(fe_req *r, const char *what)
{
    if (!fv_id_valid(r->param[0])) {
        fe_verdict_reply(r, "hidden", "organisation");
        return false;
    }
    return fe_verdict_id(r, 1, what);
}

void fe_groups_team_members(fe_req *r)
{
    if (!ids_ok(r, "team")) return;
    const char *params[] = {r->user->id, r->param[0], r->param[1]};
    fe_verdict_page_list_pii(r, FE_PAGE_UUID, sql_team_members, 3, params, "team");
}

void fe_groups_branch_members(fe_req *r)
{
    if (!ids_ok(r, "branch")) return;
    char *below = fe_query_param(r, "below");
    if (below && strcmp(below, "true") && strcmp(below, "false")) {
        free(below);
        const char *bad[] = {"below"}, *why[] = {"true or false"};
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", 1, bad, why);
        return;
    }
    const char *params[] = {r->user->id, r->param[0], r->param[1],
                            below && !strcmp(below, "true") ? "true" : "false"};
    free(below);
    fe_verdict_page_list_pii(r, FE_PAGE_UUID, sql_branch_members, 4, params, "branch");
}

/* Organisations: create, list, read, change (name, TOTP policy); their branches (a tree under the
 * root), teams, members and audit log. Access is decided in SQL by verdict (fe_verdict.h); every
 * change writes its audit row (with org_id) in the same statement. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "fe_verdict.h"
#include "fe_handlers.h"

#define FE_NAME_MAX 200

/* ---- POST /v1/orgs ---- */

/* State of one creation: owned by the request. */
typedef struct org_create {
    char id[FV_UUID_STRLEN + 1];
    char root[FV_UUID_STRLEN + 1];
    char *name; /* owned */
} org_create;

static void org_create_free(void *p)
{
    org_create *s = p;
    free(s->name);
    free(s);
}

/* One statement, so the org, its root branch, the admin membership and the audit entry are
 * written together or not at all. */
static const char sql_org_create[] =
    "WITH o AS (INSERT INTO orgs (id, name, root_branch_id, created_by) VALUES ($1, $2, $3, $4) "
    "           RETURNING id, created_at), "
    "     b AS (INSERT INTO branches (id, org_id, parent_id, name) VALUES ($3, $1, NULL, $2)), "
    "     m AS (INSERT INTO memberships (id, org_id, user_id, role, branch_id) "
    "           VALUES ($5, $1, $4, 'admin', $3)), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id) "
    "           VALUES ($4, 'org.create', 'org', $1::text, NULLIF($6, '')::inet, $1)) "
    "SELECT fv_ts(created_at) FROM o";

static void org_created(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    org_create *s = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, s->id);
    fv_jgen_key(j, "name");
    fv_jgen_str(j, s->name);
    fv_jgen_key(j, "root_branch_id");
    fv_jgen_str(j, s->root);
    fv_jgen_key(j, "require_admin_totp");
    fv_jgen_bool(j, false);
    fv_jgen_key(j, "role");
    fv_jgen_str(j, "admin");
    fv_jgen_key(j, "org_admin");
    fv_jgen_bool(j, true);
    fv_jgen_key(j, "created_at");
    fv_jgen_str(j, PQntuples(res->res) ? PQgetvalue(res->res, 0, 0) : NULL);
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 201, j);
}

/* True when v is a string of 1 to FE_NAME_MAX bytes. */
static bool name_ok(yajl_val v)
{
    return v && YAJL_IS_STRING(v) && v->u.string[0] && strlen(v->u.string) <= FE_NAME_MAX;
}

/* An optional id member: absent or null (*out = NULL) or a UUID string. False when malformed. */
static bool optional_id(yajl_val body, const char *key, const char **out)
{
    yajl_val v = fv_json_get(body, key);
    *out = NULL;
    if (!v || YAJL_IS_NULL(v)) return true;
    if (!YAJL_IS_STRING(v) || !fv_id_valid(v->u.string)) return false;
    *out = v->u.string;
    return true;
}

void fe_orgs_create(fe_req *r)
{
    yajl_val namev = fv_json_get(r->body, "name");
    if (!name_ok(namev)) {
        const char *f[] = {"name"}, *why[] = {"required: a string of 1 to 200 characters"};
        fe_reply_error_fields(r, 422, "validation_failed", "the organisation is invalid", 1, f, why);
        return;
    }
    org_create *s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(namev->u.string))) {
        free(s);
        fe_reply_oom(r);
        return;
    }
    r->state = s;
    r->state_free = org_create_free;
    fv_id_new(s->id);
    fv_id_new(s->root);
    char membership[FV_UUID_STRLEN + 1];
    fv_id_new(membership);
    const char *params[] = {s->id, s->name, s->root, r->user->id, membership, r->address};
    fe_pg_query(sql_org_create, 6, params, org_created, r);
}

/* ---- GET /v1/orgs, GET /v1/orgs/{org}, PATCH /v1/orgs/{org} ---- */

/* The caller's organisations: every org where they hold a membership. */
static const char sql_org_list[] = FE_VERDICT_PAGE_SQL(
    "'ok'",
    "SELECT o.id, fv_org_json(o, $1) AS j FROM orgs o "
    "WHERE o.id IN (SELECT fv_member_orgs($1)) "
    "  AND ($2::uuid IS NULL OR o.id > $2::uuid)",
    "id", "page.id::text", "page.j", "$3");

void fe_orgs_list(fe_req *r)
{
    const char *params[] = {r->user->id};
    fe_verdict_page_list(r, FE_PAGE_UUID, sql_org_list, 1, params, "organisation");
}

/* Members read their org; anyone else gets 404. */
static const char sql_org_get[] =
    "SELECT 'ok', fv_org_json(o, $2)::text FROM orgs o WHERE o.id = $1 AND fv_is_org_member($2, o.id)";

/* Answers 404 and returns false when the path's org id is not a UUID. */
static bool org_param_ok(fe_req *r)
{
    return fe_verdict_id(r, 0, "organisation");
}

void fe_orgs_get(fe_req *r)
{
    fe_verdict_get(r, sql_org_get, "organisation");
}

/* Org admin (with TOTP when the org requires it; turning the requirement on needs TOTP too). */
static const char sql_org_update[] =
    "WITH v AS (SELECT fv_org_update_verdict($1, $2, $3::boolean, $5::boolean) AS verdict), "
    "     u AS (UPDATE orgs o SET name = COALESCE($4::text, o.name), "
    "                  require_admin_totp = COALESCE($5::boolean, o.require_admin_totp) "
    "           WHERE o.id = $2 AND (SELECT verdict FROM v) = 'ok' "
    "           RETURNING o.id, fv_org_json(o, $1) AS j), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1, 'org.update', 'org', u.id::text, NULLIF($6, '')::inet, u.id, "
    "                  jsonb_strip_nulls(jsonb_build_object('name', $4::text, "
    "                                                       'require_admin_totp', $5::boolean)) FROM u) "
    "SELECT v.verdict, (SELECT u.j::text FROM u) FROM v";

void fe_orgs_update(fe_req *r)
{
    if (!org_param_ok(r)) return;
    yajl_val name = fv_json_get(r->body, "name"), totp = fv_json_get(r->body, "require_admin_totp");
    const char *bad[3], *why[3];
    size_t nbad = 0;
    if (name && !name_ok(name)) bad[nbad] = "name", why[nbad++] = "a string of 1 to 200 characters";
    if (totp && !YAJL_IS_TRUE(totp) && !YAJL_IS_FALSE(totp))
        bad[nbad] = "require_admin_totp", why[nbad++] = "a boolean";
    if (!nbad && !name && !totp)
        bad[nbad] = "name", why[nbad++] = "nothing to change: send name or require_admin_totp";
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "the change is invalid", nbad, bad, why);
        return;
    }
    const char *params[] = {r->user->id,
                            r->param[0],
                            fe_verdict_mfa(r),
                            name ? name->u.string : NULL,
                            totp ? (YAJL_IS_TRUE(totp) ? "true" : "false") : NULL,
                            r->address};
    fe_verdict_run(r, sql_org_update, 6, params, 200, "organisation", NULL);
}

/* ---- branches ---- */

/* The parent (default: the root) must be a branch of the org; the caller an admin of it or of one
 * of its ancestors. */
static const char sql_branch_create[] =
    "WITH p AS (SELECT COALESCE($6::uuid, o.root_branch_id) AS parent FROM orgs o WHERE o.id = $2), "
    "     v AS (SELECT CASE "
    "             WHEN NOT fv_is_org_member($1, $2) THEN 'hidden' "
    "             WHEN NOT EXISTS (SELECT 1 FROM branches b, p WHERE b.id = p.parent AND b.org_id = $2) "
    "               THEN 'invalid:parent_id:not a branch of this organisation' "
    "             ELSE fv_admin_verdict($1, $2, (SELECT parent FROM p), $3::boolean) END AS verdict), "
    "     ins AS (INSERT INTO branches AS b (id, org_id, parent_id, name) "
    "             SELECT $4, $2, p.parent, $5 FROM p WHERE (SELECT verdict FROM v) = 'ok' "
    "             RETURNING jsonb_build_object('id', b.id, 'org_id', b.org_id, 'parent_id', b.parent_id, "
    "                                          'name', b.name, 'created_at', fv_ts(b.created_at)) AS j), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1, 'branch.create', 'branch', $4::text, NULLIF($7, '')::inet, $2, "
    "                  jsonb_build_object('name', $5::text, 'parent_id', (SELECT parent FROM p)) FROM ins) "
    "SELECT v.verdict, (SELECT ins.j::text FROM ins) FROM v";

void fe_orgs_branch_create(fe_req *r)
{
    if (!org_param_ok(r)) return;
    yajl_val name = fv_json_get(r->body, "name");
    const char *parent, *bad[2], *why[2];
    size_t nbad = 0;
    if (!name_ok(name)) bad[nbad] = "name", why[nbad++] = "required: a string of 1 to 200 characters";
    if (!optional_id(r->body, "parent_id", &parent))
        bad[nbad] = "parent_id", why[nbad++] = "a branch id (UUID)";
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "the branch is invalid", nbad, bad, why);
        return;
    }
    char id[FV_UUID_STRLEN + 1];
    fv_id_new(id);
    const char *params[] = {r->user->id,    r->param[0], fe_verdict_mfa(r), id,
                            name->u.string, parent,      r->address};
    fe_verdict_run(r, sql_branch_create, 7, params, 201, "organisation", NULL);
}

static const char sql_branch_list[] = FE_VERDICT_PAGE_SQL(
    "fv_member_verdict($1, $2)",
    "SELECT b.id, b.parent_id, b.name, b.created_at FROM branches b "
    "WHERE b.org_id = $2 AND ($3::uuid IS NULL OR b.id > $3::uuid)",
    "id", "page.id::text",
    "jsonb_build_object('id', page.id, 'parent_id', page.parent_id, 'name', page.name, "
    "                   'created_at', fv_ts(page.created_at))",
    "$4");

void fe_orgs_branch_list(fe_req *r)
{
    if (!org_param_ok(r)) return;
    const char *params[] = {r->user->id, r->param[0]};
    fe_verdict_page_list(r, FE_PAGE_UUID, sql_branch_list, 2, params, "organisation");
}

/* ---- teams ---- */

static const char sql_team_create[] =
    "WITH v AS (SELECT fv_org_admin_verdict($1, $2, $3::boolean) AS verdict), "
    "     ins AS (INSERT INTO teams AS t (id, org_id, name) "
    "             SELECT $4, $2, $5 WHERE (SELECT verdict FROM v) = 'ok' "
    "             RETURNING jsonb_build_object('id', t.id, 'org_id', t.org_id, 'name', t.name, "
    "                                          'created_at', fv_ts(t.created_at)) AS j), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1, 'team.create', 'team', $4::text, NULLIF($6, '')::inet, $2, "
    "                  jsonb_build_object('name', $5::text) FROM ins) "
    "SELECT v.verdict, (SELECT ins.j::text FROM ins) FROM v";

void fe_orgs_team_create(fe_req *r)
{
    if (!org_param_ok(r)) return;
    yajl_val name = fv_json_get(r->body, "name");
    if (!name_ok(name)) {
        const char *f[] = {"name"}, *why[] = {"required: a string of 1 to 200 characters"};
        fe_reply_error_fields(r, 422, "validation_failed", "the team is invalid", 1, f, why);
        return;
    }
    char id[FV_UUID_STRLEN + 1];
    fv_id_new(id);
    const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r), id, name->u.string, r->address};
    fe_verdict_run(r, sql_team_create, 6, params, 201, "organisation", NULL);
}

static const char sql_team_list[] = FE_VERDICT_PAGE_SQL(
    "fv_member_verdict($1, $2)",
    "SELECT t.id, t.name, t.created_at FROM teams t "
    "WHERE t.org_id = $2 AND ($3::uuid IS NULL OR t.id > $3::uuid)",
    "id", "page.id::text",
    "jsonb_build_object('id', page.id, 'name', page.name, 'created_at', fv_ts(page.created_at))", "$4");

void fe_orgs_team_list(fe_req *r)
{
    if (!org_param_ok(r)) return;
    const char *params[] = {r->user->id, r->param[0]};
    fe_verdict_page_list(r, FE_PAGE_UUID, sql_team_list, 2, params, "organisation");
}

/* ---- members ---- */

/* Sets the role of user $4 on a branch ($6; default the root) or a team ($7). Who may: the org
 * admin; for a branch, an admin of it or of an ancestor (so only the org admin on the root).
 * Only for users who are already members of the org (they consented to join it): anyone else is
 * 'not_a_member' whether or not the id is an account, so the org learns nothing and must invite
 * them (fe_invitations.c); the user's memberships are locked (cur), so a removal committing
 * meanwhile is seen and the change does not re-add them. Refuses to demote the last org admin. The `permissions` revocation is written with the change:
 * every child drops the user's cached permissions within revocation_poll_ms. */
static const char sql_member_set[] =
    "WITH o AS (SELECT id, root_branch_id FROM orgs WHERE id = $2), "
    "     cur AS (SELECT m.id FROM memberships m WHERE m.user_id = $4 AND m.org_id = $2 FOR UPDATE), "
    "     t AS (SELECT CASE WHEN $7::uuid IS NULL THEN COALESCE($6::uuid, o.root_branch_id) END AS branch_id, "
    "                  $7::uuid AS team_id, o.root_branch_id FROM o), "
    "     v AS (SELECT CASE WHEN p.verdict <> 'ok' THEN p.verdict "
    "             WHEN NOT EXISTS (SELECT 1 FROM cur) THEN 'not_a_member' "
    "             WHEN t.branch_id = t.root_branch_id AND $5 <> 'admin' AND fv_is_last_org_admin($4, $2) "
    "               THEN 'last_admin' "
    "             ELSE 'ok' END AS verdict "
    "           FROM (SELECT 1) one LEFT JOIN t ON true, LATERAL (SELECT fv_membership_place_verdict("
    "                $1, $2, t.branch_id, t.team_id, t.root_branch_id, $3::boolean) AS verdict) p), "
    "     prev AS (SELECT m.role FROM memberships m, t WHERE m.user_id = $4 "
    "              AND (m.branch_id = t.branch_id OR m.team_id = t.team_id)), "
    "     mb AS (INSERT INTO memberships AS m (id, org_id, user_id, role, branch_id) "
    "            SELECT $8, $2, $4, $5, t.branch_id FROM t "
    "            WHERE t.branch_id IS NOT NULL AND (SELECT verdict FROM v) = 'ok' "
    "            ON CONFLICT (user_id, branch_id) WHERE branch_id IS NOT NULL "
    "            DO UPDATE SET role = EXCLUDED.role "
    "            RETURNING m.id, m.role, m.branch_id, m.team_id, m.created_at), "
    "     mt AS (INSERT INTO memberships AS m (id, org_id, user_id, role, team_id) "
    "            SELECT $8, $2, $4, $5, t.team_id FROM t "
    "            WHERE t.team_id IS NOT NULL AND (SELECT verdict FROM v) = 'ok' "
    "            ON CONFLICT (user_id, team_id) WHERE team_id IS NOT NULL "
    "            DO UPDATE SET role = EXCLUDED.role "
    "            RETURNING m.id, m.role, m.branch_id, m.team_id, m.created_at), "
    "     m AS (SELECT * FROM mb UNION ALL SELECT * FROM mt), "
    "     rv AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'permissions', $4::text, now() + interval '1 day' FROM m), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1, 'member.set', 'user', $4::text, NULLIF($9, '')::inet, $2, "
    "                  jsonb_build_object('role', m.role, 'branch_id', m.branch_id, 'team_id', m.team_id, "
    "                                     'previous_role', (SELECT role FROM prev)) FROM m) "
    "SELECT v.verdict, (SELECT jsonb_build_object('id', m.id, 'org_id', $2::uuid, 'user_id', $4::uuid, "
    "                          'role', m.role, 'branch_id', m.branch_id, 'team_id', m.team_id, "
    "                          'created_at', fv_ts(m.created_at))::text FROM m) FROM v";

/* Answers 404 and returns false when the path's user id is not a UUID. */
static bool user_param_ok(fe_req *r)
{
    if (fv_id_valid(r->param[1])) return true;
    fe_verdict_reply(r, "no_such_user", "user");
    return false;
}

void fe_orgs_member_set(fe_req *r)
{
    if (!org_param_ok(r) || !user_param_ok(r)) return;
    const char *role = fv_json_get_str(r->body, "role"), *branch, *team, *bad[3], *why[3];
    size_t nbad = 0;
    if (!role || (strcmp(role, "admin") && strcmp(role, "manager") && strcmp(role, "member")))
        bad[nbad] = "role", why[nbad++] = "required: admin, manager or member";
    if (!optional_id(r->body, "branch_id", &branch))
        bad[nbad] = "branch_id", why[nbad++] = "a branch id (UUID)";
    if (!optional_id(r->body, "team_id", &team)) bad[nbad] = "team_id", why[nbad++] = "a team id (UUID)";
    else if (team && branch) bad[nbad] = "team_id", why[nbad++] = "give branch_id or team_id, not both";
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "the membership is invalid", nbad, bad, why);
        return;
    }
    char id[FV_UUID_STRLEN + 1], user[FV_UUID_STRLEN + 1];
    fv_id_new(id);
    for (int i = 0; i <= FV_UUID_STRLEN; i++) user[i] = (char)tolower((unsigned char)r->param[1][i]);
    const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r), user, role, branch,
                            team,        id,          r->address};
    fe_verdict_run(r, sql_member_set, 9, params, 200, "organisation", user);
}

/* Removes every membership of user $4 in the org, or only the one on branch $5 or team $6. Org
 * admin only; refuses to remove the last org admin. What the memberships gave goes with them at
 * once: every right needs current membership (migration 009) and the `permissions` revocation
 * makes every front end drop the user's cached permissions within revocation_poll_ms. When the
 * user keeps no membership in the org, the same statement deletes the grants and deployment roles
 * naming them as a user principal on the org's surveys and deployments, so that joining again
 * restores none of them. The audit entry lists what was removed: the memberships, those grants
 * and roles, the surveys whose creator rights lapsed, and how many grants the user made to others
 * (kept: the admin reviews them with GET /v1/orgs/{org}/grants?granted_by=). The statement is
 * fv_member_remove (migration 021): it locks the user's memberships before it reads them, so a
 * PUT of a further membership, a grant or a deployment role naming the user that committed
 * meanwhile is seen and removed too, and one that comes after waits and finds no member. */
static const char sql_member_remove[] =
    "SELECT verdict, body FROM fv_member_remove($1, $2, $3::boolean, $4, $5::uuid, $6::uuid, $7)";

void fe_orgs_member_remove(fe_req *r)
{
    if (!org_param_ok(r) || !user_param_ok(r)) return;
    char *branch = fe_query_param(r, "branch_id"), *team = fe_query_param(r, "team_id");
    const char *bad[2], *why[2];
    size_t nbad = 0;
    if (branch && !fv_id_valid(branch)) bad[nbad] = "branch_id", why[nbad++] = "a branch id (UUID)";
    if (team && !fv_id_valid(team)) bad[nbad] = "team_id", why[nbad++] = "a team id (UUID)";
    else if (team && branch) bad[nbad] = "team_id", why[nbad++] = "give branch_id or team_id, not both";
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", nbad, bad, why);
    } else {
        char user[FV_UUID_STRLEN + 1];
        for (int i = 0; i <= FV_UUID_STRLEN; i++) user[i] = (char)tolower((unsigned char)r->param[1][i]);
        const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r), user,
                                branch,      team,        r->address};
        fe_verdict_run(r, sql_member_remove, 7, params, 204, "organisation", user);
    }
    free(branch);
    free(team);
}

/* Org members see who is in their org, one item per membership; an email only on the caller's own
 * rows (fv_membership_json: a member joined by consent, yet other members need not learn their
 * address). */
static const char sql_member_list[] = FE_VERDICT_PAGE_SQL(
    "fv_member_verdict($1, $2)",
    "SELECT m.id, fv_membership_json(m, u, $1) AS j FROM memberships m JOIN users u ON u.id = m.user_id "
    "WHERE m.org_id = $2 AND ($3::uuid IS NULL OR m.id > $3::uuid)",
    "id", "page.id::text", "page.j", "$4");

void fe_orgs_member_list(fe_req *r)
{
    if (!org_param_ok(r)) return;
    const char *params[] = {r->user->id, r->param[0]};
    fe_verdict_page_list_pii(r, FE_PAGE_UUID, sql_member_list, 2, params, "organisation");
}

/* ---- audit ---- */

/* The org's audit entries, newest first; the cursor is the last entry's id. */
static const char sql_audit_list[] = FE_VERDICT_PAGE_SQL(
    "fv_org_admin_verdict($1, $2, $3::boolean)",
    "SELECT a.* FROM audit a WHERE a.org_id = $2 AND ($4::bigint IS NULL OR a.id < $4::bigint)",
    "id DESC", "page.id::text",
    "jsonb_build_object('id', page.id::text, 'actor', page.actor, 'action', page.action, "
    "                   'target_type', page.target_type, 'target_id', page.target_id, "
    "                   'address', host(page.address), 'at', fv_ts(page.at), 'detail', page.detail)",
    "$5");

void fe_orgs_audit(fe_req *r)
{
    if (!org_param_ok(r)) return;
    const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r)};
    fe_verdict_page_list(r, FE_PAGE_INT, sql_audit_list, 3, params, "organisation");
}

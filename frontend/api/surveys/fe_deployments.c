/* Deployments: POST /v1/surveys/{id}/deployments sends a survey to a branch or team with its
 * enumerators, viewers, managers and approval stages; GET /v1/surveys/{id}/deployments and
 * GET /v1/deployments/{id} read them (survey admins and viewers: all; others: those where they
 * hold a role, fv_can_see_deployment). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_access.h"
#include "fe_verdict.h"
#include "fe_handlers.h"

#define FE_NAME_MAX 200
#define FE_MAX_STAGES 16
#define FE_MAX_PRINCIPALS 1000

/* State of one creation: owned by the request. */
typedef struct dep_create {
    char id[FV_UUID_STRLEN + 1];
    char survey_id[FV_UUID_STRLEN + 1];
    char *name;  /* owned */
    char *roles; /* owned: JSON array of {role, stage, ptype, pid} rows */
    int stages;
} dep_create;

static void dep_create_free(void *p)
{
    dep_create *s = p;
    free(s->name);
    free(s->roles);
    free(s);
}

/* One statement: checks the caller may deploy (survey admin, fv_survey_role), that the branch
 * or team belongs to the survey's organisation and that every principal exists (a user anywhere;
 * a team or branch in the survey's organisation), and writes the deployment, its roles and the
 * audit entry together. Columns: visible, admin, needs TOTP, the first unknown principal's id,
 * then the deployment (branch_id, team_id, created_at; NULL created_at: bad branch or team). */
static const char sql_dep_create[] =
    "WITH s AS (SELECT s.id, s.org_id, o.root_branch_id, fv_can_see_survey($2, s.id) AS visible, "
    "                  COALESCE(fv_survey_role($2, s.id, $10::boolean) = 'admin', false) AS admin, "
    "                  fv_survey_admin_needs_totp($2, s.id, $10::boolean) AS totp "
    "           FROM surveys s JOIN orgs o ON o.id = s.org_id WHERE s.id = $1), "
    "     x AS (SELECT * FROM jsonb_to_recordset($8::jsonb) AS x(role text, stage int, ptype text, pid uuid)), "
    "     bad AS (SELECT x.pid FROM x, s WHERE NOT CASE x.ptype "
    "               WHEN 'user' THEN EXISTS (SELECT 1 FROM users u WHERE u.id = x.pid) "
    "               WHEN 'team' THEN EXISTS (SELECT 1 FROM teams t WHERE t.id = x.pid AND t.org_id = s.org_id) "
    "               WHEN 'branch' THEN EXISTS (SELECT 1 FROM branches b WHERE b.id = x.pid AND b.org_id = s.org_id) "
    "               ELSE false END LIMIT 1), "
    "     d AS (INSERT INTO deployments (id, survey_id, name, branch_id, team_id, approval_stages, created_by) "
    "           SELECT $3, s.id, $4, CASE WHEN $6::uuid IS NULL THEN COALESCE($5::uuid, s.root_branch_id) END, "
    "                  $6::uuid, $7::int, $2 FROM s "
    "           WHERE s.admin AND NOT EXISTS (SELECT 1 FROM bad) "
    "             AND ($5::uuid IS NULL OR EXISTS (SELECT 1 FROM branches b WHERE b.id = $5::uuid AND b.org_id = s.org_id)) "
    "             AND ($6::uuid IS NULL OR EXISTS (SELECT 1 FROM teams t WHERE t.id = $6::uuid AND t.org_id = s.org_id)) "
    "           RETURNING id, branch_id, team_id, created_at), "
    "     r AS (INSERT INTO deployment_roles (deployment_id, role, stage, principal_type, principal_id) "
    "           SELECT DISTINCT d.id, x.role, x.stage, x.ptype, x.pid FROM d, x), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, 'deployment.create', 'deployment', d.id::text, NULLIF($9, '')::inet, s.org_id, "
    "                  jsonb_build_object('survey_id', s.id, 'roles', $8::jsonb) FROM d, s) "
    "SELECT s.visible, s.admin, s.totp, (SELECT pid FROM bad), d.branch_id, d.team_id, fv_ts(d.created_at) "
    "FROM s LEFT JOIN d ON true";

static void dep_created(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    dep_create *s = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    fe_access_check c = {fe_access_pg_true(p, 0), fe_access_pg_true(p, 1), fe_access_pg_true(p, 2)};
    if (fe_access_deny(r, &c, "survey", "only the survey's admins may deploy it")) return;
    if (!PQgetisnull(p, 0, 3)) {
        const char *f[] = {"roles"}, *why[] = {"a principal does not exist (users), or is not a team or branch of the survey's organisation"};
        fe_reply_error_fields(r, 422, "validation_failed", "the deployment is invalid", 1, f, why);
        return;
    }
    if (PQgetisnull(p, 0, 6)) {
        const char *f[] = {"branch_id"}, *why[] = {"not a branch or team of the survey's organisation"};
        fe_reply_error_fields(r, 422, "validation_failed", "the deployment is invalid", 1, f, why);
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, s->id);
    fv_jgen_key(j, "survey_id");
    fv_jgen_str(j, s->survey_id);
    fv_jgen_key(j, "name");
    fv_jgen_str(j, s->name);
    fv_jgen_key(j, "branch_id");
    fv_jgen_str(j, PQgetisnull(p, 0, 4) ? NULL : PQgetvalue(p, 0, 4));
    fv_jgen_key(j, "team_id");
    fv_jgen_str(j, PQgetisnull(p, 0, 5) ? NULL : PQgetvalue(p, 0, 5));
    fv_jgen_key(j, "approval_stages");
    fv_jgen_int(j, s->stages);
    fv_jgen_key(j, "created_at");
    fv_jgen_str(j, PQgetvalue(p, 0, 6));
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 201, j);
}

/* Appends the principals of list (an array of {type, id}) as role rows to out. Returns NULL,
 * or the reason the list is invalid. */
static const char *add_principals(fv_jgen *out, yajl_val list, const char *role, int stage, int *count)
{
    if (!list) return NULL;
    if (!YAJL_IS_ARRAY(list)) return "must be an array of {type, id}";
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val p = list->u.array.values[i];
        const char *e = fe_access_principal_error(p);
        if (e) return e;
        const char *type = fv_json_get_str(p, "type"), *id = fv_json_get_str(p, "id");
        if (++*count > FE_MAX_PRINCIPALS) return "too many principals";
        fv_jgen_map_open(out);
        fv_jgen_key(out, "role");
        fv_jgen_str(out, role);
        fv_jgen_key(out, "stage");
        fv_jgen_int(out, stage);
        fv_jgen_key(out, "ptype");
        fv_jgen_str(out, type);
        fv_jgen_key(out, "pid");
        fv_jgen_str(out, id);
        fv_jgen_map_close(out);
    }
    return NULL;
}

void fe_deployments_create(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such survey");
        return;
    }
    const char *name = fv_json_get_str(r->body, "name");
    yajl_val branch = fv_json_get(r->body, "branch_id"), team = fv_json_get(r->body, "team_id");
    yajl_val roles = fv_json_get(r->body, "roles");
    const char *bad[12], *why[12]; /* at most 9 problems are reported */
    size_t nbad = 0;
    if (!name || !*name || strlen(name) > FE_NAME_MAX)
        bad[nbad] = "name", why[nbad++] = "required: a string of 1 to 200 characters";
    if (branch && !YAJL_IS_NULL(branch) && !(YAJL_IS_STRING(branch) && fv_id_valid(branch->u.string)))
        bad[nbad] = "branch_id", why[nbad++] = "must be a UUID";
    if (team && !YAJL_IS_NULL(team) && !(YAJL_IS_STRING(team) && fv_id_valid(team->u.string)))
        bad[nbad] = "team_id", why[nbad++] = "must be a UUID";
    if (branch && YAJL_IS_STRING(branch) && team && YAJL_IS_STRING(team))
        bad[nbad] = "team_id", why[nbad++] = "give branch_id or team_id, not both";
    if (roles && !YAJL_IS_OBJECT(roles)) bad[nbad] = "roles", why[nbad++] = "must be an object";

    fv_jgen *rows = fv_jgen_new();
    if (!rows) {
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }
    int count = 0, stages = 0;
    fv_jgen_array_open(rows);
    if (roles && YAJL_IS_OBJECT(roles)) {
        static const struct { const char *key, *role; } lists[] = {
            {"enumerators", "enumerator"}, {"viewers", "viewer"}, {"managers", "manager"}};
        for (size_t k = 0; k < 3; k++) {
            const char *e = add_principals(rows, fv_json_get(roles, lists[k].key), lists[k].role, 0, &count);
            if (e) bad[nbad] = lists[k].key, why[nbad++] = e;
        }
        yajl_val approvers = fv_json_get(roles, "approvers");
        if (approvers && !YAJL_IS_ARRAY(approvers)) {
            bad[nbad] = "approvers", why[nbad++] = "must be an array with one list of principals per stage";
        } else if (approvers && approvers->u.array.len > FE_MAX_STAGES) {
            bad[nbad] = "approvers", why[nbad++] = "at most 16 approval stages";
        } else if (approvers) {
            stages = (int)approvers->u.array.len;
            for (int st = 0; st < stages; st++) {
                yajl_val stage = approvers->u.array.values[st];
                const char *e = add_principals(rows, stage, "approver", st + 1, &count);
                if (!e && (!YAJL_IS_ARRAY(stage) || stage->u.array.len == 0))
                    e = "every stage needs at least one approver";
                if (e) {
                    bad[nbad] = "approvers", why[nbad++] = e;
                    break;
                }
            }
        }
    }
    fv_jgen_array_close(rows);
    if (nbad) {
        fv_jgen_free(rows);
        fe_reply_error_fields(r, 422, "validation_failed", "the deployment is invalid", nbad, bad, why);
        return;
    }
    dep_create *s = calloc(1, sizeof *s);
    if (s) {
        s->name = strdup(name);
        s->roles = strdup(fv_jgen_buf(rows, NULL));
    }
    fv_jgen_free(rows);
    if (!s || !s->name || !s->roles) {
        if (s) dep_create_free(s);
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }
    r->state = s;
    r->state_free = dep_create_free;
    s->stages = stages;
    fv_id_new(s->id);
    memcpy(s->survey_id, r->param[0], sizeof s->survey_id); /* a valid UUID: 36 chars + NUL */
    char stages_txt[8];
    snprintf(stages_txt, sizeof stages_txt, "%d", stages);
    const char *params[] = {s->survey_id, r->user->id, s->id, s->name,
                            branch && YAJL_IS_STRING(branch) ? branch->u.string : NULL,
                            team && YAJL_IS_STRING(team) ? team->u.string : NULL,
                            stages_txt, s->roles, r->address, fe_verdict_mfa(r)};
    fe_pg_query(sql_dep_create, 10, params, dep_created, r);
}

/* ---- reading ---- */

/* Columns of a deployment as read: id, survey_id, name, branch_id, team_id, approval_stages,
 * created_at, roles (fv_deployment_roles_json). */
#define DEP_COLS                                                                                  \
    "d.id, d.survey_id, d.name, d.branch_id, d.team_id, d.approval_stages, fv_ts(d.created_at), " \
    "fv_deployment_roles_json(d.id)::text"

static void write_deployment(fv_jgen *j, PGresult *p, int row)
{
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, PQgetvalue(p, row, 0));
    fv_jgen_key(j, "survey_id");
    fv_jgen_str(j, PQgetvalue(p, row, 1));
    fv_jgen_key(j, "name");
    fv_jgen_str(j, PQgetvalue(p, row, 2));
    fv_jgen_key(j, "branch_id");
    fv_jgen_str(j, PQgetisnull(p, row, 3) ? NULL : PQgetvalue(p, row, 3));
    fv_jgen_key(j, "team_id");
    fv_jgen_str(j, PQgetisnull(p, row, 4) ? NULL : PQgetvalue(p, row, 4));
    fv_jgen_key(j, "approval_stages");
    fv_jgen_int(j, atoll(PQgetvalue(p, row, 5)));
    fv_jgen_key(j, "created_at");
    fv_jgen_str(j, PQgetvalue(p, row, 6));
    fv_jgen_key(j, "roles");
    fv_jgen_raw(j, PQgetvalue(p, row, 7), (size_t)PQgetlength(p, row, 7));
    fv_jgen_map_close(j);
}

static const char sql_dep_get[] =
    "SELECT " DEP_COLS " FROM deployments d WHERE d.id = $1 AND fv_can_see_deployment($2, d.id)";

static void dep_got(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_reply_error(r, 404, "not_found", "no such deployment");
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    write_deployment(j, res->res, 0);
    fe_reply_gen_send(r, 200, j);
}

void fe_deployments_get(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such deployment");
        return;
    }
    const char *params[] = {r->param[0], r->user->id};
    fe_pg_query(sql_dep_get, 2, params, dep_got, r);
}

/* One row per visible deployment, after the cursor; the first column says whether the survey is
 * visible at all (a survey the caller may not see answers 404, even with no deployments). The
 * header row (d.id NULL) always comes first. */
static const char sql_dep_list[] =
    "WITH s AS MATERIALIZED (SELECT x.id, fv_survey_role($2, x.id) IS NOT NULL AS all_rows, "
    "                               fv_can_see_survey($2, x.id) AS visible FROM surveys x WHERE x.id = $1) "
    "(SELECT s.visible, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0 FROM s) "
    "UNION ALL (SELECT true, " DEP_COLS ", 1 FROM s JOIN deployments d ON d.survey_id = s.id "
    "           WHERE ($3::uuid IS NULL OR d.id > $3::uuid) "
    "             AND (s.all_rows OR fv_access_any(fv_deployment_access($2, d.id))) "
    "           ORDER BY d.id LIMIT $4) "
    "ORDER BY 10, 2";

static void deps_listed(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    int limit = *(int *)r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    int n = PQntuples(p);
    if (n < 1 || !fe_access_pg_true(p, 0)) {
        fe_reply_error(r, 404, "not_found", "no such survey");
        return;
    }
    n--; /* the header row */
    bool more = n > limit;
    if (more) n = limit;
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "items");
    fv_jgen_array_open(j);
    for (int i = 1; i <= n; i++) {
        /* write_deployment reads columns from 0: the rows here are shifted by one column */
        fv_jgen_map_open(j);
        static const char *const keys[] = {"id", "survey_id", "name", "branch_id", "team_id"};
        for (int k = 0; k < 5; k++) {
            fv_jgen_key(j, keys[k]);
            fv_jgen_str(j, PQgetisnull(p, i, k + 1) ? NULL : PQgetvalue(p, i, k + 1));
        }
        fv_jgen_key(j, "approval_stages");
        fv_jgen_int(j, atoll(PQgetvalue(p, i, 6)));
        fv_jgen_key(j, "created_at");
        fv_jgen_str(j, PQgetvalue(p, i, 7));
        fv_jgen_key(j, "roles");
        fv_jgen_raw(j, PQgetvalue(p, i, 8), (size_t)PQgetlength(p, i, 8));
        fv_jgen_map_close(j);
    }
    fv_jgen_array_close(j);
    fv_jgen_key(j, "next");
    fv_jgen_str(j, more ? PQgetvalue(p, n, 1) : NULL);
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}

void fe_deployments_list(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such survey");
        return;
    }
    int limit;
    char after[FV_UUID_STRLEN + 1];
    if (!fe_access_list_params(r, &limit, after)) return;
    int *st = malloc(sizeof *st);
    if (!st) {
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }
    *st = limit;
    r->state = st;
    r->state_free = free;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {r->param[0], r->user->id, after[0] ? after : NULL, lim};
    fe_pg_query(sql_dep_list, 4, params, deps_listed, r);
}

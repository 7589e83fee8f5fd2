/* Deployments: POST /v1/surveys/{id}/deployments sends a survey to a branch or team with its
 * enumerators, viewers, managers and approval stages. */
#include <stdlib.h>
#include <string.h>

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

/* One statement: checks the caller may deploy (survey creator or org admin), that the branch or
 * team belongs to the survey's organisation, and writes the deployment, its roles and the audit
 * entry together. The first columns tell a stranger (404) from a member who is not an admin
 * (403) and from a bad branch or team (422). */
static const char sql_dep_create[] =
    "WITH s AS (SELECT s.id, s.org_id, o.root_branch_id FROM surveys s JOIN orgs o ON o.id = s.org_id "
    "           WHERE s.id = $1 AND (s.created_by = $2 OR fv_is_org_admin($2, s.org_id))), "
    "     d AS (INSERT INTO deployments (id, survey_id, name, branch_id, team_id, approval_stages, created_by) "
    "           SELECT $3, s.id, $4, CASE WHEN $6::uuid IS NULL THEN COALESCE($5::uuid, s.root_branch_id) END, "
    "                  $6::uuid, $7::int, $2 FROM s "
    "           WHERE ($5::uuid IS NULL OR EXISTS (SELECT 1 FROM branches b WHERE b.id = $5::uuid AND b.org_id = s.org_id)) "
    "             AND ($6::uuid IS NULL OR EXISTS (SELECT 1 FROM teams t WHERE t.id = $6::uuid AND t.org_id = s.org_id)) "
    "           RETURNING id, branch_id, team_id, created_at), "
    "     r AS (INSERT INTO deployment_roles (deployment_id, role, stage, principal_type, principal_id) "
    "           SELECT DISTINCT d.id, x.role, x.stage, x.ptype, x.pid "
    "           FROM d, jsonb_to_recordset($8::jsonb) AS x(role text, stage int, ptype text, pid uuid)), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address) "
    "           SELECT $2, 'deployment.create', 'deployment', d.id::text, NULLIF($9, '')::inet FROM d) "
    "SELECT EXISTS (SELECT 1 FROM surveys x WHERE x.id = $1 AND (fv_is_org_member($2, x.org_id) "
    "               OR x.created_by = $2)), "
    "       EXISTS (SELECT 1 FROM s), d.branch_id, d.team_id, fv_ts(d.created_at) "
    "FROM (SELECT 1) one LEFT JOIN d ON true";

static void dep_created(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    dep_create *s = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    if (PQntuples(p) != 1 || PQgetvalue(p, 0, 0)[0] != 't') {
        fe_reply_error(r, 404, "not_found", "no such survey");
        return;
    }
    if (PQgetvalue(p, 0, 1)[0] != 't') {
        fe_reply_error(r, 403, "forbidden", "only the survey's administrators may deploy it");
        return;
    }
    if (PQgetisnull(p, 0, 4)) {
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
    fv_jgen_str(j, PQgetisnull(p, 0, 2) ? NULL : PQgetvalue(p, 0, 2));
    fv_jgen_key(j, "team_id");
    fv_jgen_str(j, PQgetisnull(p, 0, 3) ? NULL : PQgetvalue(p, 0, 3));
    fv_jgen_key(j, "approval_stages");
    fv_jgen_int(j, s->stages);
    fv_jgen_key(j, "created_at");
    fv_jgen_str(j, PQgetvalue(p, 0, 4));
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
        const char *type = fv_json_get_str(p, "type"), *id = fv_json_get_str(p, "id");
        if (!type || (strcmp(type, "user") && strcmp(type, "team") && strcmp(type, "branch")))
            return "each principal needs type user, team or branch";
        if (!id || !fv_id_valid(id)) return "each principal needs an id (a UUID)";
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
                            stages_txt, s->roles, r->address};
    fe_pg_query(sql_dep_create, 9, params, dep_created, r);
}

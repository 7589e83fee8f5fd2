/* Deployments: POST /v1/surveys/{id}/deployments sends a survey to a branch or team with its
 * enumerators, viewers, managers and approval stages; GET /v1/surveys/{id}/deployments and
 * GET /v1/deployments/{id} read them (survey admins and viewers: all; others: those where they
 * hold a role, fv_can_see_deployment); PATCH /v1/deployments/{id} renames it, replaces the
 * principals of the roles it lists, closes or reopens it (its managers,
 * fv_deployment_manage_verdict). Access is decided in SQL by verdict (fe_verdict.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_verdict.h"
#include "fe_handlers.h"

#define FE_NAME_MAX 200
#define FE_MAX_STAGES 16
#define FE_MAX_PRINCIPALS 1000

/* One statement: checks the caller may deploy (fv_survey_admin_verdict), that every principal may
 * be named (fv_principal_valid: a member of the survey's organisation, else 422
 * principal_not_member, its memberships locked (lk) so that a removal in flight is waited for and
 * one that starts meanwhile sees these roles: fv_member_remove, migration 021; a team or branch
 * of that organisation) and so may the branch or team, and writes the deployment, its roles and the audit entry
 * together. $1 survey, $2 caller, $3 id, $4 name, $5 branch, $6 team, $7 stages, $8 roles (rows
 * {role, stage, ptype, pid}), $9 address, $10 mfa, $11 the OpenRosa base (fe_openrosa_base). */
static const char sql_dep_create[] =
    "WITH s AS (SELECT s.id, s.org_id, o.root_branch_id, s.archived_at, "
    "                  fv_survey_admin_verdict($2, s.id, $10::boolean) AS verdict "
    "           FROM surveys s JOIN orgs o ON o.id = s.org_id WHERE s.id = $1), "
    "     x AS (SELECT * FROM jsonb_to_recordset($8::jsonb) AS x(role text, stage int, ptype text, pid uuid)), "
    "     lk AS (SELECT m.user_id FROM memberships m, s WHERE m.org_id = s.org_id "
    "              AND m.user_id IN (SELECT x.pid FROM x WHERE x.ptype = 'user') ORDER BY m.id FOR SHARE OF m), "
    "     c AS (SELECT s.*, CASE "
    "             WHEN s.verdict <> 'ok' THEN s.verdict "
    "             WHEN s.archived_at IS NOT NULL THEN 'survey_archived' "
    "             WHEN EXISTS (SELECT 1 FROM x WHERE x.ptype = 'user' "
    "                          AND x.pid NOT IN (SELECT lk.user_id FROM lk)) "
    "               THEN 'principal_not_member:roles' "
    "             WHEN EXISTS (SELECT 1 FROM x WHERE NOT fv_principal_valid(x.ptype, x.pid, s.org_id)) "
    "               THEN 'invalid:roles:a principal is not a team or branch of the survey''s organisation' "
    "             WHEN ($5::uuid IS NOT NULL AND NOT fv_principal_valid('branch', $5::uuid, s.org_id)) "
    "               OR ($6::uuid IS NOT NULL AND NOT fv_principal_valid('team', $6::uuid, s.org_id)) "
    "               THEN 'invalid:branch_id:not a branch or team of the survey''s organisation' "
    "             ELSE 'ok' END AS outcome FROM s), "
    "     d AS (INSERT INTO deployments AS y (id, survey_id, name, branch_id, team_id, approval_stages, created_by) "
    "           SELECT $3, c.id, $4, CASE WHEN $6::uuid IS NULL THEN COALESCE($5::uuid, c.root_branch_id) END, "
    "                  $6::uuid, $7::int, $2 FROM c WHERE c.outcome = 'ok' "
    "           RETURNING y.*), "
    "     r AS (INSERT INTO deployment_roles (deployment_id, role, stage, principal_type, principal_id) "
    "           SELECT DISTINCT d.id, x.role, x.stage, x.ptype, x.pid FROM d, x), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, 'deployment.create', 'deployment', d.id::text, NULLIF($9, '')::inet, c.org_id, "
    "                  jsonb_build_object('survey_id', c.id, 'roles', $8::jsonb) FROM d, c) "
    "SELECT c.outcome, (SELECT jsonb_build_object('id', d.id, 'survey_id', d.survey_id, 'name', d.name, "
    "                          'branch_id', d.branch_id, 'team_id', d.team_id, "
    "                          'approval_stages', d.approval_stages, 'created_at', fv_ts(d.created_at), "
    "                          'openrosa_url', fv_openrosa_url($11, d.id))::text "
    "                   FROM d) FROM c";

/* Checks v is a principal object {type: user|team|branch, id: UUID}: NULL, or the reason. */
static const char *principal_error(yajl_val v)
{
    if (!v || !YAJL_IS_OBJECT(v)) return "each principal must be an object {type, id}";
    const char *type = fv_json_get_str(v, "type"), *id = fv_json_get_str(v, "id");
    if (!type || (strcmp(type, "user") && strcmp(type, "team") && strcmp(type, "branch")))
        return "each principal needs type user, team or branch";
    if (!id || !fv_id_valid(id)) return "each principal needs an id (a UUID)";
    return NULL;
}

/* Appends the principals of list (an array of {type, id}) as role rows to out. Returns NULL,
 * or the reason the list is invalid. */
static const char *add_principals(fv_jgen *out, yajl_val list, const char *role, int stage, int *count)
{
    if (!list) return NULL;
    if (!YAJL_IS_ARRAY(list)) return "must be an array of {type, id}";
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val p = list->u.array.values[i];
        const char *e = principal_error(p);
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

/* Ends the role rows of a create or a change (rows: taken and freed): with problems, answers 422
 * with them (message) and returns NULL; else the rows' JSON text, owned by the caller, or NULL
 * after answering 500 when memory runs out. */
static char *rows_done(fe_req *r, fv_jgen *rows, const char *message, size_t nbad, const char **bad,
                       const char **why)
{
    fv_jgen_array_close(rows);
    if (nbad) {
        fv_jgen_free(rows);
        fe_reply_error_fields(r, 422, "validation_failed", message, nbad, bad, why);
        return NULL;
    }
    const char *rows_json = fv_jgen_buf(rows, NULL); /* NULL: generation failed, as out of memory */
    char *rows_text = rows_json ? strdup(rows_json) : NULL;
    fv_jgen_free(rows);
    if (!rows_text) fe_reply_oom(r);
    return rows_text;
}

void fe_deployments_create(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "survey")) return;
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
        fe_reply_oom(r);
        return;
    }
    int count = 0, stages = 0;
    fv_jgen_array_open(rows);
    if (roles && YAJL_IS_OBJECT(roles)) {
        static const struct {
            const char *key, *role;
        } lists[] = {{"enumerators", "enumerator"}, {"viewers", "viewer"}, {"managers", "manager"}};
        for (size_t k = 0; k < 3; k++) {
            const char *e = add_principals(rows, fv_json_get(roles, lists[k].key), lists[k].role, 0,
                                           &count);
            if (e) bad[nbad] = lists[k].key, why[nbad++] = e;
        }
        yajl_val approvers = fv_json_get(roles, "approvers");
        if (approvers && !YAJL_IS_ARRAY(approvers)) {
            bad[nbad] = "approvers",
            why[nbad++] = "must be an array with one list of principals per stage";
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
    char *rows_text = rows_done(r, rows, "the deployment is invalid", nbad, bad, why);
    if (!rows_text) return;
    char id[FV_UUID_STRLEN + 1], stages_txt[8];
    fv_id_new(id);
    snprintf(stages_txt, sizeof stages_txt, "%d", stages);
    const char *params[] = {r->param[0],
                            r->user->id,
                            id,
                            name,
                            branch && YAJL_IS_STRING(branch) ? branch->u.string : NULL,
                            team && YAJL_IS_STRING(team) ? team->u.string : NULL,
                            stages_txt,
                            rows_text,
                            r->address,
                            fe_verdict_mfa(r),
                            fe_openrosa_base()};
    fe_verdict_run(r, sql_dep_create, 11, params, 201, "survey", NULL);
    free(rows_text);
}

/* ---- reading ---- */

/* $3: the OpenRosa base (fe_openrosa_base). */
static const char sql_dep_get[] =
    "SELECT 'ok', (fv_deployment_json(d) || jsonb_build_object('openrosa_url', fv_openrosa_url($3, d.id)))::text "
    "FROM deployments d WHERE d.id = $1 AND fv_can_see_deployment($2, d.id)";

void fe_deployments_get(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "deployment")) return;
    const char *params[] = {r->param[0], fe_verdict_user(r), fe_openrosa_base()};
    fe_verdict_run(r, sql_dep_get, 3, params, 200, "deployment", NULL);
}

/* The deployments of a survey the caller may see (a survey they may not see answers 404, even
 * with no deployments). */
static const char sql_dep_list[] = FE_VERDICT_PAGE_SQL(
    "fv_survey_read_verdict($2, $1)",
    "SELECT d.id, fv_deployment_json(d) || jsonb_build_object('openrosa_url', fv_openrosa_url($3, d.id)) AS j "
    "FROM deployments d "
    "WHERE d.survey_id = $1 AND ($4::uuid IS NULL OR d.id > $4::uuid) AND fv_can_see_deployment($2, d.id)",
    "id", "page.id::text", "page.j", "$5");

void fe_deployments_list(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "survey")) return;
    const char *params[] = {r->param[0], r->user->id, fe_openrosa_base()};
    fe_verdict_page_list(r, FE_PAGE_UUID, sql_dep_list, 3, params, "survey");
}

/* ---- changing (PATCH /v1/deployments/{id}) ---- */

/* One statement: checks the caller manages the deployment (fv_deployment_manage_verdict) and that
 * the revision it read is the one it locked (else 409 conflict: a concurrent change committed in
 * between), that every principal may be named (fv_principal_valid: a user must be a member of
 * the survey's organisation, else 422 principal_not_member; locked as at creation), none twice in a role or
 * stage, at most FE_MAX_PRINCIPALS in all, and that no response is pending at a stage the change
 * removes (409 responses_pending); then replaces the principals of the roles listed (rows kept
 * are neither deleted nor inserted: one statement sees one snapshot), renames,
 * closes or reopens, writes the audit entry (every change, the principals before and after) and,
 * when who may submit or see changed (principals, stages, closed), the `deployment` revocation
 * that makes every front end drop what it cached about it. $1 deployment, $2 caller, $3 mfa,
 * $4 address, $5 name or NULL, $6 closed (true/false) or NULL, $7 the new principal rows
 * [{role, stage, ptype, pid}] of the roles replaced, $8 the roles replaced (text[]), $9 the new
 * number of approval stages or NULL (approvers not listed), $10 the OpenRosa base. */
static const char sql_dep_patch[] =
    "WITH d AS (SELECT x.*, s.org_id, fv_deployment_manage_verdict($2, x.id, $3::boolean) AS verdict "
    "           FROM deployments x JOIN surveys s ON s.id = x.survey_id WHERE x.id = $1 FOR UPDATE OF x), "
    "     snap AS (SELECT y.revision FROM deployments y WHERE y.id = $1), "
    "     x AS (SELECT * FROM jsonb_to_recordset($7::jsonb) AS x(role text, stage int, ptype text, pid uuid)), "
    "     lk AS (SELECT m.user_id FROM memberships m, d WHERE m.org_id = d.org_id "
    "              AND m.user_id IN (SELECT x.pid FROM x WHERE x.ptype = 'user') ORDER BY m.id FOR SHARE OF m), "
    "     kept AS (SELECT dr.role, dr.stage, dr.principal_type AS ptype, dr.principal_id AS pid "
    "              FROM deployment_roles dr WHERE dr.deployment_id = $1 AND dr.role <> ALL ($8::text[])), "
    "     old AS (SELECT dr.role, dr.stage, dr.principal_type AS ptype, dr.principal_id AS pid "
    "             FROM deployment_roles dr WHERE dr.deployment_id = $1 AND dr.role = ANY ($8::text[])), "
    "     c AS (SELECT d.*, CASE "
    "             WHEN d.verdict <> 'ok' THEN d.verdict "
    "             WHEN d.revision <> (SELECT revision FROM snap) THEN 'conflict' "
    "             WHEN EXISTS (SELECT 1 FROM x GROUP BY x.role, x.stage, x.ptype, x.pid HAVING count(*) > 1) "
    "               THEN 'invalid:roles:a principal is named twice in one role or stage' "
    "             WHEN EXISTS (SELECT 1 FROM x WHERE x.ptype = 'user' "
    "                          AND x.pid NOT IN (SELECT lk.user_id FROM lk)) "
    "               THEN 'principal_not_member:roles' "
    "             WHEN EXISTS (SELECT 1 FROM x WHERE NOT fv_principal_valid(x.ptype, x.pid, d.org_id)) "
    "               THEN 'invalid:roles:a principal is not a team or branch of the survey''s organisation' "
    "             WHEN (SELECT count(*) FROM kept) + (SELECT count(*) FROM x) > 1000 "
    "               THEN 'invalid:roles:a deployment names at most 1000 principals' "
    "             WHEN $9::int IS NOT NULL AND $9::int < d.approval_stages AND EXISTS ("
    "                  SELECT 1 FROM responses r WHERE r.deployment_id = d.id AND r.status = 'pending' "
    "                    AND r.stage > $9::int AND r.deleted_at IS NULL) THEN 'responses_pending' "
    "             ELSE 'ok' END AS outcome FROM d), "
    "     del AS (DELETE FROM deployment_roles dr USING c "
    "             WHERE c.outcome = 'ok' AND dr.deployment_id = c.id AND dr.role = ANY ($8::text[]) "
    "               AND NOT EXISTS (SELECT 1 FROM x WHERE x.role = dr.role AND x.stage = dr.stage "
    "                               AND x.ptype = dr.principal_type AND x.pid = dr.principal_id)), "
    "     ins AS (INSERT INTO deployment_roles (deployment_id, role, stage, principal_type, principal_id) "
    "             SELECT c.id, x.role, x.stage, x.ptype, x.pid FROM c, x WHERE c.outcome = 'ok' "
    "               AND NOT EXISTS (SELECT 1 FROM old WHERE old.role = x.role AND old.stage = x.stage "
    "                               AND old.ptype = x.ptype AND old.pid = x.pid)), "
    "     u AS (UPDATE deployments y SET name = COALESCE($5, y.name), "
    "                  approval_stages = COALESCE($9::int, y.approval_stages), revision = y.revision + 1, "
    "                  closed_at = CASE WHEN $6::boolean IS NULL THEN y.closed_at "
    "                                   WHEN $6::boolean THEN COALESCE(y.closed_at, now()) END "
    "           FROM c WHERE y.id = c.id AND c.outcome = 'ok' RETURNING y.*), "
    "     ch AS (SELECT u.id, c.org_id, "
    "                   (SELECT jsonb_agg(jsonb_build_object('role', role, 'stage', stage, 'ptype', ptype, "
    "                                                        'pid', pid)) "
    "                    FROM (SELECT * FROM kept UNION ALL SELECT * FROM x) n) AS new_rows, "
    "                   jsonb_strip_nulls(jsonb_build_object("
    "                     'name', CASE WHEN u.name <> c.name THEN jsonb_build_object('old', c.name, 'new', u.name) END, "
    "                     'closed', CASE WHEN (u.closed_at IS NULL) <> (c.closed_at IS NULL) "
    "                                    THEN jsonb_build_object('old', c.closed_at IS NOT NULL, "
    "                                                            'new', u.closed_at IS NOT NULL) END, "
    "                     'approval_stages', CASE WHEN u.approval_stages <> c.approval_stages "
    "                                    THEN jsonb_build_object('old', c.approval_stages, 'new', u.approval_stages) END, "
    "                     'roles', CASE WHEN cardinality($8::text[]) > 0 THEN jsonb_build_object("
    "                                    'replaced', to_jsonb($8::text[]), "
    "                                    'old', (SELECT COALESCE(jsonb_agg(jsonb_build_object('role', role, 'stage', "
    "                                            stage, 'type', ptype, 'id', pid)), '[]') FROM old), "
    "                                    'new', (SELECT COALESCE(jsonb_agg(jsonb_build_object('role', role, 'stage', "
    "                                            stage, 'type', ptype, 'id', pid)), '[]') FROM x)) END)) AS changes, "
    "                   cardinality($8::text[]) > 0 OR (u.closed_at IS NULL) <> (c.closed_at IS NULL) "
    "                     OR u.approval_stages <> c.approval_stages AS revoke "
    "            FROM u, c), "
    "     rv AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'deployment', ch.id::text, now() + interval '1 day' FROM ch WHERE ch.revoke), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, 'deployment.update', 'deployment', ch.id::text, NULLIF($4, '')::inet, ch.org_id, "
    "                  ch.changes FROM ch) "
    "SELECT c.outcome, (SELECT (fv_deployment_json(ROW(u.*)::deployments) "
    "                          || jsonb_build_object('roles', fv_roles_json_of(ch.new_rows, u.approval_stages), "
    "                                                'openrosa_url', fv_openrosa_url($10, u.id)))::text "
    "                   FROM u, ch) FROM c";

/* Rejects keys of obj not in keys[n]: returns the first unknown key, or NULL. */
static const char *unknown_key(yajl_val obj, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < obj->u.object.len; i++) {
        size_t k = 0;
        while (k < n && strcmp(obj->u.object.keys[i], keys[k])) k++;
        if (k == n) return obj->u.object.keys[i];
    }
    return NULL;
}

void fe_deployments_patch(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "deployment")) return;
    static const char *const top[] = {"name", "closed", "roles"};
    static const struct {
        const char *key, *role;
    } lists[] = {{"enumerators", "enumerator"},
                 {"viewers", "viewer"},
                 {"managers", "manager"},
                 {"approvers", "approver"}};
    static const char *const role_keys[] = {"enumerators", "viewers", "managers", "approvers"};
    yajl_val namev = fv_json_get(r->body, "name"), closed = fv_json_get(r->body, "closed");
    yajl_val roles = fv_json_get(r->body, "roles");
    const char *bad[12], *why[12]; /* at most 9 problems are reported */
    size_t nbad = 0;
    if (unknown_key(r->body, top, 3))
        bad[nbad] = "body", why[nbad++] = "only name, closed and roles can be changed";
    else if (!namev && !closed && !roles) bad[nbad] = "body", why[nbad++] = "give name, closed or roles";
    if (namev &&
        !(YAJL_IS_STRING(namev) && namev->u.string[0] && strlen(namev->u.string) <= FE_NAME_MAX))
        bad[nbad] = "name", why[nbad++] = "a string of 1 to 200 characters";
    if (closed && !YAJL_IS_TRUE(closed) && !YAJL_IS_FALSE(closed))
        bad[nbad] = "closed", why[nbad++] = "true to close, false to reopen";
    if (roles && !YAJL_IS_OBJECT(roles)) bad[nbad] = "roles", why[nbad++] = "must be an object";
    else if (roles && unknown_key(roles, role_keys, 4))
        bad[nbad] = "roles", why[nbad++] = "only enumerators, viewers, managers and approvers";

    fv_jgen *rows = fv_jgen_new();
    if (!rows) {
        fe_reply_oom(r);
        return;
    }
    /* replaced: the roles listed, as an SQL array literal of plain words */
    char replaced_txt[64] = "{";
    int count = 0, stages = -1;
    fv_jgen_array_open(rows);
    if (!nbad && roles) {
        for (size_t k = 0; k < 4; k++) {
            yajl_val list = fv_json_get(roles, lists[k].key);
            if (!list) continue;
            if (strlen(replaced_txt) > 1) strcat(replaced_txt, ",");
            strcat(replaced_txt, lists[k].role);
            if (k < 3) {
                const char *e = add_principals(rows, list, lists[k].role, 0, &count);
                if (e) bad[nbad] = lists[k].key, why[nbad++] = e;
                continue;
            }
            if (!YAJL_IS_ARRAY(list)) {
                bad[nbad] = "approvers",
                why[nbad++] = "must be an array with one list of principals per stage";
            } else if (list->u.array.len > FE_MAX_STAGES) {
                bad[nbad] = "approvers", why[nbad++] = "at most 16 approval stages";
            } else {
                stages = (int)list->u.array.len;
                for (int st = 0; st < stages; st++) {
                    yajl_val stage = list->u.array.values[st];
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
    }
    strcat(replaced_txt, "}");
    char *rows_text = rows_done(r, rows, "the change is invalid", nbad, bad, why);
    if (!rows_text) return;
    char stages_txt[8];
    snprintf(stages_txt, sizeof stages_txt, "%d", stages);
    const char *params[] = {r->param[0],
                            r->user->id,
                            fe_verdict_mfa(r),
                            r->address,
                            namev ? namev->u.string : NULL,
                            closed ? (YAJL_IS_TRUE(closed) ? "true" : "false") : NULL,
                            rows_text,
                            replaced_txt,
                            stages >= 0 ? stages_txt : NULL,
                            fe_openrosa_base()};
    char dep[FV_UUID_STRLEN + 1]; /* as the deployment cache keys it */
    for (int i = 0; i <= FV_UUID_STRLEN; i++) dep[i] = (char)tolower((unsigned char)r->param[0][i]);
    fe_verdict_run_revoking(r, sql_dep_patch, 10, params, 200, "deployment", dep);
    free(rows_text);
}

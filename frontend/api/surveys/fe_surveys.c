/* Surveys: create (with a first definition), list, read, new definition versions, and the
 * admin/viewer grants. Every permission is decided in SQL by the rule functions of migration 004
 * (fv_survey_role, fv_can_see_survey); a handler only turns their columns into replies. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_access.h"
#include "fe_verdict.h"
#include "fe_handlers.h"
#include "fv_form.h"

#define FE_NAME_MAX 200

/* State of one creation: owned by the request. */
typedef struct survey_create {
    char id[FV_UUID_STRLEN + 1];
    char org_id[FV_UUID_STRLEN + 1];
    char *name;       /* owned */
    char *definition; /* owned: the definition as stored */
} survey_create;

static void survey_create_free(void *p)
{
    survey_create *s = p;
    free(s->name);
    free(s->definition);
    free(s);
}

static const char sql_survey_create[] =
    "WITH s AS (INSERT INTO surveys (id, org_id, name, created_by) "
    "           SELECT $1, $2, $3, $4 WHERE fv_is_org_member($4, $2) RETURNING id, created_at), "
    "     v AS (INSERT INTO survey_versions (survey_id, version, definition, created_by) "
    "           SELECT id, 1, $5::jsonb, $4 FROM s), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id) "
    "           SELECT $4, 'survey.create', 'survey', id::text, NULLIF($6, '')::inet, $2 FROM s) "
    "SELECT fv_ts(created_at) FROM s";

static void survey_created(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    survey_create *s = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_reply_error(r, 404, "org_not_found", "no such organisation, or you are not a member of it");
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, s->id);
    fv_jgen_key(j, "org_id");
    fv_jgen_str(j, s->org_id);
    fv_jgen_key(j, "name");
    fv_jgen_str(j, s->name);
    fv_jgen_key(j, "version");
    fv_jgen_int(j, 1);
    fv_jgen_key(j, "definition");
    fv_jgen_raw(j, s->definition, strlen(s->definition));
    fv_jgen_key(j, "created_at");
    fv_jgen_str(j, PQgetvalue(res->res, 0, 0));
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 201, j);
}

void fe_surveys_create(fe_req *r)
{
    const char *org_id = fv_json_get_str(r->body, "org_id");
    const char *name = fv_json_get_str(r->body, "name");
    yajl_val def = fv_json_get(r->body, "definition");
    const char *bad[3], *why[3];
    size_t nbad = 0;
    if (!org_id || !fv_id_valid(org_id)) bad[nbad] = "org_id", why[nbad++] = "required: a UUID";
    if (!name || !*name || strlen(name) > FE_NAME_MAX)
        bad[nbad] = "name", why[nbad++] = "required: a string of 1 to 200 characters";
    if (!def || !YAJL_IS_OBJECT(def)) bad[nbad] = "definition", why[nbad++] = "required: an object";
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "the survey is invalid", nbad, bad, why);
        return;
    }
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    fv_form *form = fv_form_compile(def, &errs);
    if (!form) {
        fe_reply_form_errors(r, "the form definition is invalid", &errs);
        fv_form_errors_free(&errs);
        return;
    }
    fv_form_free(form);
    fv_form_errors_free(&errs);

    survey_create *s = calloc(1, sizeof *s);
    fv_jgen *j = fv_jgen_new();
    if (s) s->name = strdup(name);
    if (!s || !j || !s->name) {
        if (s) survey_create_free(s);
        fv_jgen_free(j);
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }
    fv_jgen_tree(j, def);
    s->definition = strdup(fv_jgen_buf(j, NULL));
    fv_jgen_free(j);
    r->state = s;
    r->state_free = survey_create_free;
    if (!s->definition) {
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }
    fv_id_new(s->id);
    snprintf(s->org_id, sizeof s->org_id, "%s", org_id);
    const char *params[] = {s->id, s->org_id, s->name, r->user->id, s->definition, r->address};
    fe_pg_query(sql_survey_create, 6, params, survey_created, r);
}

/* Compiles def (borrowed) and answers 422 with every problem when it is not a valid form.
 * Returns the definition as JSON text (caller frees), or NULL after r was answered. */
static char *definition_text(fe_req *r, yajl_val def)
{
    if (!def || !YAJL_IS_OBJECT(def)) {
        const char *f[] = {"definition"}, *why[] = {"required: an object"};
        fe_reply_error_fields(r, 422, "validation_failed", "the survey is invalid", 1, f, why);
        return NULL;
    }
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    fv_form *form = fv_form_compile(def, &errs);
    if (!form) {
        fe_reply_form_errors(r, "the form definition is invalid", &errs);
        fv_form_errors_free(&errs);
        return NULL;
    }
    fv_form_free(form);
    fv_form_errors_free(&errs);
    fv_jgen *j = fv_jgen_new();
    char *text = NULL;
    if (j) {
        fv_jgen_tree(j, def);
        text = strdup(fv_jgen_buf(j, NULL));
        fv_jgen_free(j);
    }
    if (!text) fe_reply_error(r, 503, "overloaded", "out of memory");
    return text;
}

/* ---- reading ---- */

/* Columns: id, org_id, name, version, definition, created_at, updated_at, the caller's survey
 * role. Visible to survey admins and viewers and to anyone with a role in one of its deployments
 * (an enumerator needs the form to fill it in). */
static const char sql_survey_get[] =
    "SELECT s.id, s.org_id, s.name, s.current_version, sv.definition::text, fv_ts(s.created_at), "
    "       fv_ts(s.updated_at), fv_survey_role($2, s.id) "
    "FROM surveys s JOIN survey_versions sv ON sv.survey_id = s.id AND sv.version = s.current_version "
    "WHERE s.id = $1 AND fv_can_see_survey($2, s.id)";

static void write_survey(fv_jgen *j, PGresult *p, int row, bool with_definition)
{
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, PQgetvalue(p, row, 0));
    fv_jgen_key(j, "org_id");
    fv_jgen_str(j, PQgetvalue(p, row, 1));
    fv_jgen_key(j, "name");
    fv_jgen_str(j, PQgetvalue(p, row, 2));
    fv_jgen_key(j, "version");
    fv_jgen_int(j, atoll(PQgetvalue(p, row, 3)));
    if (with_definition) {
        fv_jgen_key(j, "definition");
        fv_jgen_raw(j, PQgetvalue(p, row, 4), (size_t)PQgetlength(p, row, 4));
    }
    fv_jgen_key(j, "created_at");
    fv_jgen_str(j, PQgetvalue(p, row, 5));
    fv_jgen_key(j, "updated_at");
    fv_jgen_str(j, PQgetvalue(p, row, 6));
    fv_jgen_key(j, "role"); /* the caller's survey role: admin, viewer or null */
    fv_jgen_str(j, PQgetisnull(p, row, 7) ? NULL : PQgetvalue(p, row, 7));
    fv_jgen_map_close(j);
}

static void survey_got(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_reply_error(r, 404, "not_found", "no such survey");
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    write_survey(j, res->res, 0, true);
    fe_reply_gen_send(r, 200, j);
}

void fe_surveys_get(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such survey");
        return;
    }
    const char *params[] = {r->param[0], r->user->id};
    fe_pg_query(sql_survey_get, 2, params, survey_got, r);
}

/* The candidates are the surveys of the caller's organisations, the ones they created, and the
 * ones naming them as a user principal (a team or branch principal implies a membership in the
 * survey's org, see sql_access_put and fe_deployments.c); each is then filtered by the rule. */
static const char sql_survey_list[] =
    "WITH c AS (SELECT s.id FROM surveys s "
    "           WHERE s.org_id IN (SELECT m.org_id FROM memberships m WHERE m.user_id = $1) "
    "              OR s.created_by = $1 "
    "           UNION SELECT g.survey_id FROM survey_grants g "
    "                 WHERE g.principal_type = 'user' AND g.principal_id = $1 "
    "           UNION SELECT d.survey_id FROM deployment_roles dr JOIN deployments d ON d.id = dr.deployment_id "
    "                 WHERE dr.principal_type = 'user' AND dr.principal_id = $1) "
    "SELECT s.id, s.org_id, s.name, s.current_version, NULL, fv_ts(s.created_at), fv_ts(s.updated_at), "
    "       fv_survey_role($1, s.id) "
    "FROM c JOIN surveys s ON s.id = c.id "
    "WHERE ($2::uuid IS NULL OR s.id > $2::uuid) AND fv_can_see_survey($1, s.id) "
    "ORDER BY s.id LIMIT $3";

static void surveys_listed(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    int limit = *(int *)r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    int n = PQntuples(p);
    bool more = n > limit;
    if (more) n = limit;
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "items");
    fv_jgen_array_open(j);
    for (int i = 0; i < n; i++) write_survey(j, p, i, false);
    fv_jgen_array_close(j);
    fv_jgen_key(j, "next");
    fv_jgen_str(j, more ? PQgetvalue(p, n - 1, 0) : NULL);
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}

void fe_surveys_list(fe_req *r)
{
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
    const char *params[] = {r->user->id, after[0] ? after : NULL, lim};
    fe_pg_query(sql_survey_list, 3, params, surveys_listed, r);
}

/* ---- a new definition version (survey admin) ---- */

/* $1 survey, $2 caller, $3 definition, $4 mfa, $5 address. The first three columns are the
 * access check (visible, admin, needs TOTP); the new version follows when it was written. */
static const char sql_definition_put[] =
    "WITH s AS (SELECT x.id, x.org_id, fv_can_see_survey($2, x.id) AS visible, "
    "                  COALESCE(fv_survey_role($2, x.id, $4::boolean) = 'admin', false) AS admin, "
    "                  fv_survey_admin_needs_totp($2, x.id, $4::boolean) AS totp "
    "           FROM surveys x WHERE x.id = $1 FOR UPDATE), "
    "     u AS (UPDATE surveys y SET current_version = y.current_version + 1, updated_at = now() "
    "           FROM s WHERE y.id = s.id AND s.admin RETURNING y.id, y.current_version, y.updated_at), "
    "     v AS (INSERT INTO survey_versions (survey_id, version, definition, created_by) "
    "           SELECT u.id, u.current_version, $3::jsonb, $2 FROM u), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, 'survey.definition', 'survey', u.id::text, NULLIF($5, '')::inet, s.org_id, "
    "                  jsonb_build_object('version', u.current_version) FROM u, s) "
    "SELECT s.visible, s.admin, s.totp, u.current_version, fv_ts(u.updated_at) "
    "FROM s LEFT JOIN u ON true";

static void definition_put(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    fe_access_check c = {fe_access_pg_true(p, 0), fe_access_pg_true(p, 1), fe_access_pg_true(p, 2)};
    if (fe_access_deny(r, &c, "survey", "only the survey's admins may change its form")) return;
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, r->param[0]);
    fv_jgen_key(j, "version");
    fv_jgen_int(j, atoll(PQgetvalue(p, 0, 3)));
    fv_jgen_key(j, "definition");
    const char *def = r->state;
    fv_jgen_raw(j, def, strlen(def));
    fv_jgen_key(j, "updated_at");
    fv_jgen_str(j, PQgetvalue(p, 0, 4));
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}

void fe_surveys_put_definition(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such survey");
        return;
    }
    char *def = definition_text(r, fv_json_get(r->body, "definition"));
    if (!def) return;
    r->state = def;
    r->state_free = free;
    const char *params[] = {r->param[0], r->user->id, def, fe_verdict_mfa(r), r->address};
    fe_pg_query(sql_definition_put, 5, params, definition_put, r);
}

/* ---- grants (survey admin) ---- */

/* $1 survey, $2 caller, $3 principal type, $4 principal id, $5 role or NULL (remove), $6 mfa,
 * $7 address. A user principal needs only to exist; a team or branch must belong to the
 * survey's organisation. Columns: visible, admin, needs TOTP, principal exists, the role now. */
static const char sql_access_put[] =
    "WITH s AS (SELECT x.id, x.org_id, fv_can_see_survey($2, x.id) AS visible, "
    "                  COALESCE(fv_survey_role($2, x.id, $6::boolean) = 'admin', false) AS admin, "
    "                  fv_survey_admin_needs_totp($2, x.id, $6::boolean) AS totp "
    "           FROM surveys x WHERE x.id = $1), "
    "     p AS (SELECT CASE $3::text "
    "             WHEN 'user' THEN EXISTS (SELECT 1 FROM users WHERE id = $4::uuid) "
    "             WHEN 'team' THEN EXISTS (SELECT 1 FROM teams t WHERE t.id = $4::uuid AND t.org_id = s.org_id) "
    "             WHEN 'branch' THEN EXISTS (SELECT 1 FROM branches b WHERE b.id = $4::uuid AND b.org_id = s.org_id) "
    "             ELSE false END AS ok FROM s), "
    "     del AS (DELETE FROM survey_grants g USING s "
    "             WHERE $5::text IS NULL AND s.admin AND g.survey_id = s.id "
    "               AND g.principal_type = $3::text AND g.principal_id = $4::uuid RETURNING g.role), "
    "     up AS (INSERT INTO survey_grants (survey_id, principal_type, principal_id, role, granted_by) "
    "            SELECT s.id, $3::text, $4::uuid, $5::text, $2 FROM s, p "
    "            WHERE $5::text IS NOT NULL AND s.admin AND p.ok "
    "            ON CONFLICT (survey_id, principal_type, principal_id) "
    "            DO UPDATE SET role = EXCLUDED.role, granted_by = EXCLUDED.granted_by, created_at = now() "
    "            RETURNING role), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, 'survey.access', 'survey', s.id::text, NULLIF($7, '')::inet, s.org_id, "
    "                  jsonb_build_object('principal_type', $3::text, 'principal_id', $4::text, "
    "                                     'role', $5::text, 'previous', (SELECT role FROM del)) "
    "           FROM s WHERE EXISTS (SELECT 1 FROM up) OR EXISTS (SELECT 1 FROM del)) "
    "SELECT s.visible, s.admin, s.totp, p.ok, (SELECT role FROM up) FROM s, p";

/* State: the grant as asked; owned by the request. */
typedef struct access_put {
    char ptype[8];
    char pid[FV_UUID_STRLEN + 1];
} access_put;

static void access_put_done(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    access_put *a = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    fe_access_check c = {fe_access_pg_true(p, 0), fe_access_pg_true(p, 1), fe_access_pg_true(p, 2)};
    if (fe_access_deny(r, &c, "survey", "only the survey's admins may change who has access")) return;
    bool removing = fv_json_get_str(r->body, "role") == NULL;
    if (!removing && !fe_access_pg_true(p, 3)) {
        const char *f[] = {"principal_id"},
                   *why[] = {"no such user, or no such team or branch in the survey's organisation"};
        fe_reply_error_fields(r, 422, "validation_failed", "the grant is invalid", 1, f, why);
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "survey_id");
    fv_jgen_str(j, r->param[0]);
    fv_jgen_key(j, "principal_type");
    fv_jgen_str(j, a->ptype);
    fv_jgen_key(j, "principal_id");
    fv_jgen_str(j, a->pid);
    fv_jgen_key(j, "role");
    fv_jgen_str(j, PQgetisnull(p, 0, 4) ? NULL : PQgetvalue(p, 0, 4));
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}

void fe_surveys_put_access(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such survey");
        return;
    }
    const char *type = fv_json_get_str(r->body, "principal_type");
    const char *id = fv_json_get_str(r->body, "principal_id");
    yajl_val role = fv_json_get(r->body, "role");
    const char *bad[3], *why[3];
    size_t nbad = 0;
    if (!type || (strcmp(type, "user") && strcmp(type, "team") && strcmp(type, "branch")))
        bad[nbad] = "principal_type", why[nbad++] = "required: user, team or branch";
    if (!id || !fv_id_valid(id)) bad[nbad] = "principal_id", why[nbad++] = "required: a UUID";
    if (!role || !(YAJL_IS_NULL(role) || (YAJL_IS_STRING(role) && (!strcmp(role->u.string, "admin") ||
                                                                    !strcmp(role->u.string, "viewer")))))
        bad[nbad] = "role", why[nbad++] = "required: admin, viewer, or null to remove the grant";
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "the grant is invalid", nbad, bad, why);
        return;
    }
    access_put *a = calloc(1, sizeof *a);
    if (!a) {
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }
    r->state = a;
    r->state_free = free;
    snprintf(a->ptype, sizeof a->ptype, "%s", type);
    for (int i = 0; i <= FV_UUID_STRLEN; i++) a->pid[i] = (char)tolower((unsigned char)id[i]);
    const char *params[] = {r->param[0], r->user->id, a->ptype, a->pid,
                            YAJL_IS_STRING(role) ? role->u.string : NULL, fe_verdict_mfa(r), r->address};
    fe_pg_query(sql_access_put, 7, params, access_put_done, r);
}

/* Surveys: create (with a first definition), list, read, new definition versions, and the
 * admin/viewer grants. Every permission is decided in SQL by verdict (fe_verdict.h) with the rule
 * functions of migrations 004 and 006 (fv_survey_admin_verdict, fv_can_see_survey). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_verdict.h"
#include "fe_handlers.h"
#include "fv_form.h"

#define FE_NAME_MAX 200

/* Compiles def (borrowed) and answers 422 with every problem when it is not a valid form (code
 * pattern_too_complex when a pattern is over the limits of fv_form.h, else validation_failed).
 * Returns the definition as JSON text (caller frees), or NULL after r was answered. Called only
 * once the caller's right to store the definition is known (a stranger's form is never
 * compiled); the statement that stores it checks that right again. */
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
        if (fv_form_errors_pattern_too_complex(&errs))
            fe_reply_form_errors_code(r, "pattern_too_complex",
                                      "a constraint pattern of the form is over the limits", &errs);
        else fe_reply_form_errors(r, "the form definition is invalid", &errs);
        fv_form_errors_free(&errs);
        return NULL;
    }
    fv_form_free(form);
    fv_form_errors_free(&errs);
    char *text = fv_json_text(def);
    if (!text) fe_reply_oom(r);
    return text;
}

/* $1 id, $2 org, $3 name, $4 caller, $5 definition, $6 address: a member of the org creates. */
static const char sql_survey_create[] =
    "WITH v AS (SELECT CASE WHEN fv_is_org_member($4, $2) THEN 'ok' ELSE 'no_such_org' END AS verdict), "
    "     s AS (INSERT INTO surveys AS x (id, org_id, name, created_by) "
    "           SELECT $1, $2, $3, $4 FROM v WHERE v.verdict = 'ok' RETURNING x.*), "
    "     sv AS (INSERT INTO survey_versions (survey_id, version, definition, created_by) "
    "            SELECT id, 1, $5::jsonb, $4 FROM s), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id) "
    "           SELECT $4, 'survey.create', 'survey', id::text, NULLIF($6, '')::inet, $2 FROM s) "
    "SELECT v.verdict, (SELECT jsonb_build_object('id', s.id, 'org_id', s.org_id, 'name', s.name, "
    "                          'version', 1, 'definition', $5::jsonb, 'created_at', fv_ts(s.created_at))::text "
    "                   FROM s) FROM v";

/* $1 caller, $2 org: whether the caller may create a survey there, asked before the form is
 * compiled (sql_survey_create decides again as it inserts). */
static const char sql_survey_may_create[] =
    "SELECT CASE WHEN fv_is_org_member($1::uuid, $2::uuid) THEN 'ok' ELSE 'no_such_org' END";

static void survey_create_permitted(const fe_pg_result *res, void *arg);

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
    const char *params[] = {r->user->id, org_id};
    fe_pg_query(sql_survey_may_create, 2, params, survey_create_permitted, r);
}

static void survey_create_permitted(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (!fe_verdict_answer(r, res, "organisation")) return;
    const char *org_id = fv_json_get_str(r->body, "org_id");
    const char *name = fv_json_get_str(r->body, "name");
    char *text = definition_text(r, fv_json_get(r->body, "definition"));
    if (!text) return;
    char id[FV_UUID_STRLEN + 1];
    fv_id_new(id);
    const char *params[] = {id, org_id, name, r->user->id, text, r->address};
    fe_verdict_run(r, sql_survey_create, 6, params, 201, "organisation", NULL);
    free(text);
}

/* ---- reading ---- */

/* Visible to survey admins and viewers and to anyone with a role in one of its deployments (an
 * enumerator needs the form to fill it in). */
static const char sql_survey_get[] = "SELECT 'ok', fv_survey_json(s, $2, true)::text FROM surveys s "
                                     "WHERE s.id = $1 AND fv_can_see_survey($2, s.id)";

void fe_surveys_get(fe_req *r)
{
    fe_verdict_get(r, sql_survey_get, "survey");
}

/* The candidates are the surveys of the caller's organisations, the ones they created, and the
 * ones naming them as a user principal (a team or branch principal implies a membership in the
 * survey's org, see sql_access_put and fe_deployments.c); each is then filtered by the rule.
 * Archived surveys too with $2 (?archived=true). */
static const char sql_survey_list[] = FE_VERDICT_PAGE_SQL(
    "'ok'",
    "WITH c AS (SELECT s.id FROM surveys s "
    "           WHERE s.org_id IN (SELECT fv_member_orgs($1)) "
    "              OR s.created_by = $1 "
    "           UNION SELECT g.survey_id FROM survey_grants g "
    "                 WHERE g.principal_type = 'user' AND g.principal_id = $1 "
    "           UNION SELECT d.survey_id FROM deployment_roles dr JOIN deployments d ON d.id = dr.deployment_id "
    "                 WHERE dr.principal_type = 'user' AND dr.principal_id = $1) "
    "SELECT s.id, fv_survey_json(s, $1, false) AS j FROM c JOIN surveys s ON s.id = c.id "
    "WHERE ($3::uuid IS NULL OR s.id > $3::uuid) AND (s.archived_at IS NULL OR $2::boolean) "
    "  AND fv_can_see_survey($1, s.id)",
    "id", "page.id::text", "page.j", "$4");

void fe_surveys_list(fe_req *r)
{
    char *archived = fe_query_param(r, "archived");
    if (archived && strcmp(archived, "true") && strcmp(archived, "false")) {
        free(archived);
        const char *bad[] = {"archived"}, *why[] = {"true (archived surveys too) or false"};
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", 1, bad, why);
        return;
    }
    const char *params[] = {r->user->id, archived && !strcmp(archived, "true") ? "true" : "false"};
    free(archived);
    fe_verdict_page_list(r, FE_PAGE_UUID, sql_survey_list, 2, params, "survey");
}

/* ---- a new definition version (survey admin) ---- */

/* $1 survey, $2 caller, $3 definition, $4 mfa, $5 address. An archived survey: 409 survey_archived. */
static const char sql_definition_put[] =
    "WITH s AS (SELECT x.id, x.org_id, "
    "                  CASE WHEN v.verdict = 'ok' AND x.archived_at IS NOT NULL THEN 'survey_archived' "
    "                       ELSE v.verdict END AS verdict "
    "           FROM surveys x, LATERAL (SELECT fv_survey_admin_verdict($2, x.id, $4::boolean) AS verdict) v "
    "           WHERE x.id = $1 FOR UPDATE OF x), "
    "     u AS (UPDATE surveys y SET current_version = y.current_version + 1, updated_at = now() "
    "           FROM s WHERE y.id = s.id AND s.verdict = 'ok' RETURNING y.id, y.current_version, y.updated_at), "
    "     v AS (INSERT INTO survey_versions (survey_id, version, definition, created_by) "
    "           SELECT u.id, u.current_version, $3::jsonb, $2 FROM u), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, 'survey.definition', 'survey', u.id::text, NULLIF($5, '')::inet, s.org_id, "
    "                  jsonb_build_object('version', u.current_version) FROM u, s) "
    "SELECT s.verdict, (SELECT jsonb_build_object('id', u.id, 'version', u.current_version, "
    "                          'definition', $3::jsonb, 'updated_at', fv_ts(u.updated_at))::text FROM u) "
    "FROM s";

/* $1 survey, $2 caller, $3 mfa: whether the caller may give the survey a new definition, asked
 * before the form is compiled (sql_definition_put decides again as it writes). */
static const char sql_definition_may_put[] =
    "SELECT CASE WHEN v.verdict = 'ok' AND x.archived_at IS NOT NULL THEN 'survey_archived' ELSE v.verdict END "
    "FROM surveys x, LATERAL (SELECT fv_survey_admin_verdict($2::uuid, x.id, $3::boolean) AS verdict) v "
    "WHERE x.id = $1::uuid";

static void definition_put_permitted(const fe_pg_result *res, void *arg);

void fe_surveys_put_definition(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "survey")) return;
    const char *params[] = {r->param[0], r->user->id, fe_verdict_mfa(r)};
    fe_pg_query(sql_definition_may_put, 3, params, definition_put_permitted, r);
}

static void definition_put_permitted(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (!fe_verdict_answer(r, res, "survey")) return;
    char *def = definition_text(r, fv_json_get(r->body, "definition"));
    if (!def) return;
    const char *params[] = {r->param[0], r->user->id, def, fe_verdict_mfa(r), r->address};
    fe_verdict_run(r, sql_definition_put, 5, params, 200, "survey", NULL);
    free(def);
}

/* ---- grants (survey admin) ---- */

/* $1 survey, $2 caller, $3 principal type, $4 principal id, $5 role or NULL (remove), $6 mfa,
 * $7 address. A user principal must be a member of the survey's organisation (else 422
 * principal_not_member), a team or branch must belong to it (fv_principal_valid, migration 009).
 * A change writes a `survey` revocation: every front end drops what it cached about the survey's
 * deployments (a viewer's grant decides 403 or 404). */
static const char sql_access_put[] =
    "WITH s AS (SELECT x.id, x.org_id, "
    "                  CASE WHEN v.verdict <> 'ok' OR $5::text IS NULL "
    "                            OR fv_principal_valid($3::text, $4::uuid, x.org_id) THEN v.verdict "
    "                       WHEN $3::text = 'user' THEN 'principal_not_member:principal_id' "
    "                       ELSE 'invalid:principal_id:no such team or branch in the survey''s organisation' "
    "                  END AS verdict "
    "           FROM surveys x, LATERAL (SELECT fv_survey_admin_verdict($2, x.id, $6::boolean) AS verdict) v "
    "           WHERE x.id = $1), "
    "     del AS (DELETE FROM survey_grants g USING s "
    "             WHERE $5::text IS NULL AND s.verdict = 'ok' AND g.survey_id = s.id "
    "               AND g.principal_type = $3::text AND g.principal_id = $4::uuid RETURNING g.role), "
    "     up AS (INSERT INTO survey_grants (survey_id, principal_type, principal_id, role, granted_by) "
    "            SELECT s.id, $3::text, $4::uuid, $5::text, $2 FROM s "
    "            WHERE $5::text IS NOT NULL AND s.verdict = 'ok' "
    "            ON CONFLICT (survey_id, principal_type, principal_id) "
    "            DO UPDATE SET role = EXCLUDED.role, granted_by = EXCLUDED.granted_by, created_at = now() "
    "            RETURNING role), "
    "     rv AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'survey', s.id::text, now() + interval '1 day' FROM s "
    "            WHERE EXISTS (SELECT 1 FROM up) OR EXISTS (SELECT 1 FROM del)), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, 'survey.access', 'survey', s.id::text, NULLIF($7, '')::inet, s.org_id, "
    "                  jsonb_build_object('principal_type', $3::text, 'principal_id', $4::text, "
    "                                     'role', $5::text, 'previous', (SELECT role FROM del)) "
    "           FROM s WHERE EXISTS (SELECT 1 FROM up) OR EXISTS (SELECT 1 FROM del)) "
    "SELECT s.verdict, jsonb_build_object('survey_id', s.id, 'principal_type', $3::text, "
    "                                     'principal_id', $4::uuid, 'role', (SELECT role FROM up))::text "
    "FROM s";

void fe_surveys_put_access(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "survey")) return;
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
    char pid[FV_UUID_STRLEN + 1];
    for (int i = 0; i <= FV_UUID_STRLEN; i++) pid[i] = (char)tolower((unsigned char)id[i]);
    const char *params[] = {
        r->param[0],       r->user->id, type, pid, YAJL_IS_STRING(role) ? role->u.string : NULL,
        fe_verdict_mfa(r), r->address};
    fe_verdict_run_revoking(r, sql_access_put, 7, params, 200, "survey", NULL);
}

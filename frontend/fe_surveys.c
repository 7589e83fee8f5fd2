/* Surveys: POST /v1/surveys (create with a first definition), GET /v1/surveys/{id}. */
#include <stdlib.h>
#include <string.h>

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
    "           SELECT id, 1, $5::jsonb, $4 FROM s) "
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
    const char *params[] = {s->id, s->org_id, s->name, r->user->id, s->definition};
    fe_pg_query(sql_survey_create, 5, params, survey_created, r);
}

/* Readable by the organisation's members and by anyone holding a role in one of the survey's
 * deployments (an enumerator needs the form to fill it in). */
static const char sql_survey_get[] =
    "SELECT s.id, s.org_id, s.name, s.current_version, sv.definition::text, fv_ts(s.created_at), "
    "       fv_ts(s.updated_at) "
    "FROM surveys s JOIN survey_versions sv ON sv.survey_id = s.id AND sv.version = s.current_version "
    "WHERE s.id = $1 AND (fv_is_org_member($2, s.org_id) OR EXISTS ("
    "      SELECT 1 FROM deployments d WHERE d.survey_id = s.id "
    "      AND fv_has_deployment_role($2, d.id, NULL)))";

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
    PGresult *p = res->res;
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, PQgetvalue(p, 0, 0));
    fv_jgen_key(j, "org_id");
    fv_jgen_str(j, PQgetvalue(p, 0, 1));
    fv_jgen_key(j, "name");
    fv_jgen_str(j, PQgetvalue(p, 0, 2));
    fv_jgen_key(j, "version");
    fv_jgen_int(j, atoll(PQgetvalue(p, 0, 3)));
    fv_jgen_key(j, "definition");
    fv_jgen_raw(j, PQgetvalue(p, 0, 4), (size_t)PQgetlength(p, 0, 4));
    fv_jgen_key(j, "created_at");
    fv_jgen_str(j, PQgetvalue(p, 0, 5));
    fv_jgen_key(j, "updated_at");
    fv_jgen_str(j, PQgetvalue(p, 0, 6));
    fv_jgen_map_close(j);
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

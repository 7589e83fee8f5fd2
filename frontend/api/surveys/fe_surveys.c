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
#include "fv_odkcrypt.h"
#include "fv_xform.h"
#include "fe_workpool.h"
#include "fe_identity.h"

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

/* A version's form as it is stored: the Fieldvault definition (JSON text) and its XForm, either
 * the one uploaded (kept byte for byte) or one generated from the JSON definition. Every string is
 * owned by the struct except xform_src (borrowed from the request body). */
typedef struct survey_form {
    char *def;              /* JSON text */
    fv_odkcrypt_pubkey key; /* the version's RSA public key (key.pem NULL: submissions in clear) */
    char *xform_gen;        /* generated XForm, or NULL when uploaded */
    const char *xform_src;  /* the uploaded XForm (borrowed), or NULL */
    char *form_id, *version;
} survey_form;

static void survey_form_free(survey_form *sf)
{
    free(sf->def), free(sf->xform_gen), free(sf->form_id), free(sf->version);
    fv_odkcrypt_pubkey_free(&sf->key);
    memset(sf, 0, sizeof *sf);
}

static const char *survey_form_xml(const survey_form *sf)
{
    return sf->xform_src ? sf->xform_src : sf->xform_gen;
}

static void reply_xform_error(fe_req *r, const char *why)
{
    const char *f[] = {"xform"}, *w[] = {why};
    fe_reply_error_fields(r, 422, "validation_failed", "the XForm is refused", 1, f, w);
}

static void reply_key_error(fe_req *r, const char *why)
{
    const char *f[] = {"public_key"}, *w[] = {why};
    fe_reply_error_fields(r, 422, "validation_failed", "the public key is refused", 1, f, w);
}

/* The body's public_key is absent, null or a string (checked before the permission: a shape). */
static bool key_given_ok(fe_req *r, const char **bad, const char **why, size_t *nbad)
{
    yajl_val k = fv_json_get(r->body, "public_key");
    if (!k || YAJL_IS_NULL(k) || YAJL_IS_STRING(k)) return true;
    bad[*nbad] = "public_key", why[(*nbad)++] = "must be a PEM RSA public key (a string) or null";
    return false;
}

/* Decides the new version's RSA public key (ODK encryption, common/fv_odkcrypt.h) into sf->key:
 * the body's public_key (PEM), or, for an uploaded XForm, its <submission base64RsaPublicKey>
 * (xform_key, borrowed, NULL when it has none; a public_key given with it must be the same key);
 * when the body says nothing, a JSON definition keeps the current version's key (current_pem,
 * NULL for a new survey or a version in clear). A version in clear after an encrypted one needs
 * "public_key": null said explicitly, so that no edit turns encryption off by omission. Parsing
 * a key (at most FV_ODKCRYPT_MAX_PEM bytes) takes microseconds: done here, on the loop. False
 * after r was answered (422 naming public_key). */
static bool survey_form_key(fe_req *r, survey_form *sf, const char *xform_key, const char *current_pem)
{
    yajl_val k = fv_json_get(r->body, "public_key");
    const char *why = NULL;
    fv_odkcrypt_pubkey body = {0};
    if (k && YAJL_IS_STRING(k) &&
        (why = fv_odkcrypt_pubkey_from_pem(k->u.string, strlen(k->u.string), &body))) {
        reply_key_error(r, why);
        return false;
    }
    if (xform_key) {
        if ((why = fv_odkcrypt_pubkey_from_b64(xform_key, strlen(xform_key), &sf->key))) {
            char w[256];
            snprintf(w, sizeof w, "the XForm's base64RsaPublicKey: %s", why);
            fv_odkcrypt_pubkey_free(&body);
            reply_key_error(r, w);
            return false;
        }
        bool differs = body.pem ? strcmp(body.der_b64, sf->key.der_b64) != 0 : k && YAJL_IS_NULL(k);
        fv_odkcrypt_pubkey_free(&body);
        if (differs) {
            reply_key_error(
                r, "must be the key of the XForm's <submission base64RsaPublicKey> (or left out)");
            return false;
        }
        return true;
    }
    if (sf->xform_src && body.pem) {
        fv_odkcrypt_pubkey_free(&body);
        reply_key_error(r, "an uploaded XForm is kept as it is: put the key into its "
                           "<submission base64RsaPublicKey> (base64 of the DER public key)");
        return false;
    }
    if (body.pem) {
        sf->key = body;
        return true;
    }
    if (!k && current_pem && !sf->xform_src) {
        /* a new JSON definition of an encrypted survey stays encrypted */
        if ((why = fv_odkcrypt_pubkey_from_pem(current_pem, strlen(current_pem), &sf->key))) {
            fe_reply_error(r, 500, "internal", "the survey's stored public key cannot be read");
            return false;
        }
        return true;
    }
    if (current_pem && !(k && YAJL_IS_NULL(k))) {
        reply_key_error(r, "the survey's current version is encrypted: give \"public_key\": null to "
                           "store a version whose submissions travel in clear");
        return false;
    }
    return true;
}

/* The version's key as the statements' parameters (NULL, NULL when in clear). */
static const char *key_pem(const survey_form *sf)
{
    return sf->key.pem;
}
static const char *key_bytes(const survey_form *sf, char buf[16])
{
    if (!sf->key.pem) return NULL;
    snprintf(buf, 16, "%d", sf->key.bytes);
    return buf;
}

/* ---- XForm parses on the work pool ----
 * An XForm is parsed off the event loop (a 1 MiB body of many elements takes tens of ms): the
 * job owns a copy of the XML and its results; the request's state (xform_state) holds the job's
 * handle while it runs and detaches it when the request goes first. */
typedef struct xform_job {
    char *xml; /* owned copy */
    size_t len;
    char *def_json, *form_id, *version; /* results, owned; NULL when refused */
    char *key_b64;                      /* its <submission base64RsaPublicKey>, owned, or NULL */
    char why[256];
} xform_job;

static void xform_job_free(void *p)
{
    xform_job *j = p;
    if (!j) return;
    free(j->xml), free(j->def_json), free(j->form_id), free(j->version), free(j->key_b64);
    free(j);
}

static void xform_job_run(void *p)
{
    xform_job *j = p;
    fv_xform *x = fv_xform_parse(j->xml, j->len, j->why, sizeof j->why);
    if (!x) return;
    j->def_json = fv_xform_definition(x);
    j->form_id = strdup(fv_xform_id(x));
    j->version = strdup(fv_xform_version(x));
    const char *key = fv_xform_public_key(x);
    j->key_b64 = key ? strdup(key) : NULL;
    if (!j->def_json || !j->form_id || !j->version || (key && !j->key_b64)) {
        free(j->def_json), free(j->form_id), free(j->version);
        j->def_json = j->form_id = j->version = NULL;
        snprintf(j->why, sizeof j->why, "out of memory");
    }
    fv_xform_free(x);
}

/* What the request does once its XForm is parsed. Owned by the request (r->state). */
typedef struct xform_state {
    fe_work *work; /* the job while it runs (owned by the pool) */
    bool put;      /* a new version (else a new survey) */
    char id[FV_UUID_STRLEN + 1];
    char *form_id;     /* put: the survey's formID (owned) */
    char *current;     /* put: the current version's uploaded XForm version, or NULL (owned) */
    char *current_key; /* put: the current version's public key (PEM), or NULL (owned) */
} xform_state;

static void xform_state_free(void *p)
{
    xform_state *st = p;
    if (st->work) fe_work_detach(st->work);
    free(st->form_id), free(st->current), free(st->current_key);
    free(st);
}

/* Fills sf from a finished job's results (copied) and checks the derived definition as any
 * other. False after r was answered. */
static bool survey_form_from_job(fe_req *r, survey_form *sf, const xform_job *j, const char *current_key)
{
    memset(sf, 0, sizeof *sf);
    if (!j->def_json) {
        if (strcmp(j->why, "out of memory") == 0) fe_reply_oom(r);
        else reply_xform_error(r, j->why);
        return false;
    }
    char err[128];
    yajl_val def = fv_json_parse(j->def_json, err, sizeof err);
    sf->form_id = strdup(j->form_id);
    sf->version = strdup(j->version);
    if (!def || !sf->form_id || !sf->version) {
        yajl_tree_free(def);
        survey_form_free(sf);
        fe_reply_oom(r);
        return false;
    }
    sf->def = definition_text(r, def);
    yajl_tree_free(def);
    if (!sf->def) {
        survey_form_free(sf);
        return false;
    }
    sf->xform_src = fv_json_get_str(r->body, "xform");
    if (!survey_form_key(r, sf, j->key_b64, current_key)) {
        survey_form_free(sf);
        return false;
    }
    return true;
}

static void xform_parsed(void *job, bool ran, void *owner);

/* Queues the parse of the body's "xform" (FE_WORK_BULK: never in the way of logins). Takes over
 * st (r's state from here). */
static void xform_parse_start(fe_req *r, xform_state *st)
{
    r->state = st;
    r->state_free = xform_state_free;
    const char *xml = fv_json_get_str(r->body, "xform");
    xform_job *j = calloc(1, sizeof *j);
    if (j) j->len = strlen(xml);
    if (j && !(j->xml = strndup(xml, j->len))) {
        free(j);
        j = NULL;
    }
    if (!j) {
        fe_reply_oom(r);
        return;
    }
    st->work = fe_work_submit_bulk(j, xform_job_run, xform_parsed, xform_job_free, r);
    if (!st->work) {
        xform_job_free(j);
        fe_reply_pool_full(r);
    }
}

/* Builds the stored form of a request with a JSON "definition": checked, then an XForm generated
 * with gen_form_id and a fresh version string. Returns false after r was answered (422, or 500
 * when out of memory). */
static bool survey_form_build(fe_req *r, survey_form *sf, const char *gen_form_id, const char *name,
                              const char *current_key)
{
    memset(sf, 0, sizeof *sf);
    yajl_val def = fv_json_get(r->body, "definition");
    if (!(sf->def = definition_text(r, def))) return false;
    if (!survey_form_key(r, sf, NULL, current_key)) {
        survey_form_free(sf);
        return false;
    }
    char ver[FV_UUID_STRLEN + 1];
    fv_id_new(ver); /* a new version string for each generated XForm (clients compare them) */
    sf->form_id = strdup(gen_form_id);
    sf->version = strdup(ver);
    sf->xform_gen = sf->form_id && sf->version
                        ? fv_xform_generate_keyed(def, sf->form_id, sf->version, name, sf->key.der_b64)
                        : NULL;
    if (!sf->xform_gen) {
        survey_form_free(sf);
        fe_reply_oom(r);
        return false;
    }
    return true;
}

/* The body names exactly one of definition (an object) and xform (a string). */
static bool form_given(fe_req *r, const char **bad, const char **why, size_t *nbad)
{
    yajl_val def = fv_json_get(r->body, "definition"), xv = fv_json_get(r->body, "xform");
    if (def && xv) {
        bad[*nbad] = "xform", why[(*nbad)++] = "give either definition or xform, not both";
        return false;
    }
    if (xv && !YAJL_IS_STRING(xv)) {
        bad[*nbad] = "xform", why[(*nbad)++] = "must be a string (the XForm's XML)";
        return false;
    }
    if (!xv && (!def || !YAJL_IS_OBJECT(def))) {
        bad[*nbad] = "definition", why[(*nbad)++] = "required: an object (or xform: a string)";
        return false;
    }
    return true;
}

/* $1 id, $2 org, $3 name, $4 caller, $5 definition, $6 address, $7 XForm, $8 its formID, $9 its
 * version, $10 whether it was generated, $11 the public key (PEM) or NULL, $12 its modulus bytes:
 * a member of the org creates. */
static const char sql_survey_create[] =
    "WITH v AS (SELECT CASE WHEN fv_is_org_member($4, $2) THEN 'ok' ELSE 'no_such_org' END AS verdict), "
    "     s AS (INSERT INTO surveys AS x (id, org_id, name, created_by, xform_form_id) "
    "           SELECT $1, $2, $3, $4, $8 FROM v WHERE v.verdict = 'ok' RETURNING x.*), "
    "     sv AS (INSERT INTO survey_versions (survey_id, version, definition, created_by, xform, "
    "                                         xform_form_id, xform_version, xform_generated, "
    "                                         public_key, public_key_bytes) "
    "            SELECT id, 1, $5::jsonb, $4, $7, $8, $9, $10::boolean, $11::text, $12::int FROM s), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id) "
    "           SELECT $4, 'survey.create', 'survey', id::text, NULLIF($6, '')::inet, $2 FROM s) "
    "SELECT v.verdict, (SELECT jsonb_build_object('id', s.id, 'org_id', s.org_id, 'name', s.name, "
    "                          'version', 1, 'definition', $5::jsonb, 'created_at', fv_ts(s.created_at), "
    "                          'form_id', $8::text, 'public_key', $11::text)::text "
    "                   FROM s) FROM v";

/* $1 caller, $2 org: whether the caller may create a survey there, asked before the form is
 * compiled (sql_survey_create decides again as it inserts). */
static const char sql_survey_may_create[] =
    "SELECT CASE WHEN fv_is_org_member($1::uuid, $2::uuid) THEN 'ok' ELSE 'no_such_org' END";

static void survey_create_permitted(const fe_pg_result *res, void *arg);
static void survey_create_store(fe_req *r, const char *id, const survey_form *sf);
static void definition_put_store(fe_req *r, survey_form *sf, const char *form_id, const char *cur);

void fe_surveys_create(fe_req *r)
{
    const char *org_id = fv_json_get_str(r->body, "org_id");
    const char *name = fv_json_get_str(r->body, "name");
    const char *bad[4], *why[4];
    size_t nbad = 0;
    if (!org_id || !fv_id_valid(org_id)) bad[nbad] = "org_id", why[nbad++] = "required: a UUID";
    if (!name || !*name || strlen(name) > FE_NAME_MAX)
        bad[nbad] = "name", why[nbad++] = "required: a string of 1 to 200 characters";
    form_given(r, bad, why, &nbad);
    key_given_ok(r, bad, why, &nbad);
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
    char id[FV_UUID_STRLEN + 1];
    fv_id_new(id);
    if (fv_json_get_str(r->body, "xform")) {
        xform_state *st = calloc(1, sizeof *st);
        if (!st) {
            fe_reply_oom(r);
            return;
        }
        memcpy(st->id, id, sizeof st->id);
        xform_parse_start(r, st);
        return;
    }
    survey_form sf;
    if (!survey_form_build(r, &sf, id, fv_json_get_str(r->body, "name"), NULL)) return;
    survey_create_store(r, id, &sf);
    survey_form_free(&sf);
}

/* Stores the new survey with its form (borrowed). */
static void survey_create_store(fe_req *r, const char *id, const survey_form *sf)
{
    char kb[16];
    const char *params[] = {id,
                            fv_json_get_str(r->body, "org_id"),
                            fv_json_get_str(r->body, "name"),
                            r->user->id,
                            sf->def,
                            r->address,
                            survey_form_xml(sf),
                            sf->form_id,
                            sf->version,
                            sf->xform_gen ? "true" : "false",
                            key_pem(sf),
                            key_bytes(sf, kb)};
    fe_verdict_run(r, sql_survey_create, 12, params, 201, "organisation", NULL);
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

/* The current version's XForm, byte for byte as uploaded (or as generated from the JSON
 * definition), to whoever may read the survey. A version stored before migration 016 has none:
 * 404 (until a new version is stored). */
static const char sql_survey_xform[] =
    "SELECT CASE WHEN v.xform IS NULL THEN 'hidden' ELSE 'ok' END, v.xform, md5(v.xform) "
    "FROM surveys s JOIN survey_versions v ON v.survey_id = s.id AND v.version = s.current_version "
    "WHERE s.id = $1::uuid AND fv_can_see_survey($2::uuid, s.id)";

static void survey_xform_read(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    const char *xml = fe_verdict_answer(r, res, "survey XForm");
    if (!xml) return;
    fe_reply_text(r, 200, "text/xml; charset=utf-8", xml, strlen(xml));
}

void fe_surveys_get_xform(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "survey")) return;
    const char *params[] = {r->param[0], r->user->id};
    fe_pg_query(sql_survey_xform, 2, params, survey_xform_read, r);
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

/* $1 survey, $2 caller, $3 definition, $4 mfa, $5 address, $6 XForm, $7 its formID, $8 its
 * version, $9 whether it was generated, $10 the public key (PEM) or NULL, $11 its modulus bytes.
 * An archived survey: 409 survey_archived. */
static const char sql_definition_put[] =
    "WITH s AS (SELECT x.id, x.org_id, "
    "                  CASE WHEN v.verdict = 'ok' AND x.archived_at IS NOT NULL THEN 'survey_archived' "
    "                       ELSE v.verdict END AS verdict "
    "           FROM surveys x, LATERAL (SELECT fv_survey_admin_verdict($2, x.id, $4::boolean) AS verdict) v "
    "           WHERE x.id = $1 FOR UPDATE OF x), "
    "     u AS (UPDATE surveys y SET current_version = y.current_version + 1, updated_at = now() "
    "           FROM s WHERE y.id = s.id AND s.verdict = 'ok' RETURNING y.id, y.current_version, y.updated_at), "
    "     v AS (INSERT INTO survey_versions (survey_id, version, definition, created_by, xform, "
    "                                        xform_form_id, xform_version, xform_generated, "
    "                                        public_key, public_key_bytes) "
    "           SELECT u.id, u.current_version, $3::jsonb, $2, $6, $7, $8, $9::boolean, $10::text, $11::int FROM u), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, 'survey.definition', 'survey', u.id::text, NULLIF($5, '')::inet, s.org_id, "
    "                  jsonb_build_object('version', u.current_version, 'encrypted', $10::text IS NOT NULL) FROM u, s) "
    "SELECT s.verdict, (SELECT jsonb_build_object('id', u.id, 'version', u.current_version, "
    "                          'definition', $3::jsonb, 'updated_at', fv_ts(u.updated_at), "
    "                          'public_key', $10::text)::text FROM u) "
    "FROM s";

/* $1 survey, $2 caller, $3 mfa: whether the caller may give the survey a new definition, asked
 * before the form is compiled (sql_definition_put decides again as it writes). */
static const char sql_definition_may_put[] =
    "SELECT CASE WHEN v.verdict = 'ok' AND x.archived_at IS NOT NULL THEN 'survey_archived' ELSE v.verdict END, "
    "       COALESCE(x.xform_form_id, x.id::text), "
    "       (SELECT sv.xform_version FROM survey_versions sv "
    "        WHERE sv.survey_id = x.id AND sv.version = x.current_version AND NOT sv.xform_generated), "
    "       (SELECT sv.public_key FROM survey_versions sv "
    "        WHERE sv.survey_id = x.id AND sv.version = x.current_version) "
    "FROM surveys x, LATERAL (SELECT fv_survey_admin_verdict($2::uuid, x.id, $3::boolean) AS verdict) v "
    "WHERE x.id = $1::uuid";

static void definition_put_permitted(const fe_pg_result *res, void *arg);

void fe_surveys_put_definition(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "survey")) return;
    const char *bad[2], *why[2];
    size_t nbad = 0;
    form_given(r, bad, why, &nbad);
    key_given_ok(r, bad, why, &nbad);
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "the definition is invalid", nbad, bad, why);
        return;
    }
    const char *params[] = {r->param[0], r->user->id, fe_verdict_mfa(r)};
    fe_pg_query(sql_definition_may_put, 3, params, definition_put_permitted, r);
}

static void definition_put_permitted(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    const char *form_id = fe_verdict_answer(r, res, "survey");
    if (!form_id) return;
    /* The current version's uploaded XForm version, or NULL (none, or a generated one). */
    const char *cur = PQgetisnull(res->res, 0, 2) ? NULL : PQgetvalue(res->res, 0, 2);
    const char *cur_key = PQgetisnull(res->res, 0, 3) ? NULL : PQgetvalue(res->res, 0, 3);
    if (fv_json_get_str(r->body, "xform")) {
        xform_state *st = calloc(1, sizeof *st); /* res is freed after this callback: copies */
        if (st) {
            st->put = true, st->form_id = strdup(form_id), st->current = cur ? strdup(cur) : NULL;
            st->current_key = cur_key ? strdup(cur_key) : NULL;
        }
        if (!st || !st->form_id || (cur && !st->current) || (cur_key && !st->current_key)) {
            if (st) xform_state_free(st);
            fe_reply_oom(r);
            return;
        }
        xform_parse_start(r, st);
        return;
    }
    survey_form sf;
    if (!survey_form_build(r, &sf, form_id, "", cur_key)) return;
    definition_put_store(r, &sf, form_id, cur);
}

/* Checks an uploaded XForm against the survey's formID and current version, then stores the new
 * version. Frees what sf holds. */
static void definition_put_store(fe_req *r, survey_form *sf, const char *form_id, const char *cur)
{
    if (sf->xform_src && strcmp(sf->form_id, form_id) != 0) {
        char w[FV_XFORM_MAX_ID * 2 + 80];
        snprintf(w, sizeof w, "the formID must stay \"%s\" (this XForm has \"%s\")", form_id,
                 sf->form_id);
        reply_xform_error(r, w);
    } else if (sf->xform_src && cur && strcmp(sf->version, cur) == 0) {
        reply_xform_error(
            r, "a new XForm needs a new version attribute (this one is the current version's)");
    } else {
        char kb[16];
        const char *params[] = {r->param[0],       r->user->id,      sf->def,
                                fe_verdict_mfa(r), r->address,       survey_form_xml(sf),
                                sf->form_id,       sf->version,      sf->xform_gen ? "true" : "false",
                                key_pem(sf),       key_bytes(sf, kb)};
        fe_verdict_run(r, sql_definition_put, 11, params, 200, "survey", NULL);
    }
    survey_form_free(sf);
}

/* The parse finished (or the pool stopped before running it). */
static void xform_parsed(void *job, bool ran, void *owner)
{
    fe_req *r = owner;
    xform_state *st = r->state;
    st->work = NULL;
    if (!ran) {
        fe_reply_pool_full(r);
        return;
    }
    survey_form sf;
    if (!survey_form_from_job(r, &sf, job, st->current_key)) return;
    /* The store's statement takes r->state for its own call (fe_verdict_run): st leaves r here
     * and is freed once the statement has copied what it names. */
    r->state = NULL;
    r->state_free = NULL;
    if (st->put) definition_put_store(r, &sf, st->form_id, st->current);
    else {
        survey_create_store(r, st->id, &sf);
        survey_form_free(&sf);
    }
    xform_state_free(st);
}

/* ---- grants (survey admin) ---- */

/* $1 survey, $2 caller, $3 principal type, $4 principal id, $5 role or NULL (remove), $6 mfa,
 * $7 address. A user principal must be a member of the survey's organisation (else 422
 * principal_not_member), a team or branch must belong to it (fv_principal_valid, migration 009).
 * The member's memberships are locked (lk) while it is checked, so a removal in flight is waited
 * for and seen, and a removal that starts meanwhile sees this grant (fv_member_remove, 021).
 * A change writes a `survey` revocation: every front end drops what it cached about the survey's
 * deployments (a viewer's grant decides 403 or 404). */
static const char sql_access_put[] =
    "WITH lk AS (SELECT m.id FROM memberships m JOIN surveys x ON x.org_id = m.org_id "
    "            WHERE x.id = $1 AND $3::text = 'user' AND $5::text IS NOT NULL AND m.user_id = $4::uuid "
    "            ORDER BY m.id FOR SHARE OF m), "
    "     s AS (SELECT x.id, x.org_id, "
    "                  CASE WHEN v.verdict <> 'ok' OR $5::text IS NULL "
    "                            OR CASE WHEN $3::text = 'user' THEN EXISTS (SELECT 1 FROM lk) "
    "                                    ELSE fv_principal_valid($3::text, $4::uuid, x.org_id) END THEN v.verdict "
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

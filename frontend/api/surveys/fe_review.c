/* Changes to a response: edit or resubmit (PATCH), delete, approve, reject. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "fe_access.h"
#include "fe_handlers.h"
#include "fe_verdict.h"
#include "fe_responses.h"
#include "fv_check.h"
#include "fv_form.h"
#include "fv_log.h"

/* ---- changes: edit or resubmit, delete, approve, reject ----
 * Written synchronously to PostgreSQL (503 + Retry-After while it is down; DESIGN section 5 says
 * edits are queued: not yet). Each change bumps responses.version and appends the
 * response_events row of that version in the same statement. */

#define FE_MESSAGE_MAX 2000

/* The location of an edit as stored JSON: *out is NULL for JSON null, else caller frees.
 * Returns NULL, or the reason loc is invalid. */
static const char *location_json(yajl_val loc, char **out)
{
    *out = NULL;
    if (YAJL_IS_NULL(loc)) return NULL;
    fv_geopoint g;
    const char *why = fv_check_geopoint(loc, &g);
    if (why) return why;
    *out = fv_geopoint_json(&g);
    return *out ? NULL : "out of memory";
}

/* Lifecycle of a PATCH (patch.step):
 *   PATCH_LOAD   reading the response, the caller's rights and the current form
 *   PATCH_WRITE  the UPDATE, conditional on the version read (409 if it moved meanwhile) */
typedef enum { PATCH_LOAD, PATCH_WRITE } patch_step;

/* State of one PATCH: owned by the request. */
typedef struct patch {
    patch_step step;
    bool set_location;  /* the body has a "location" key */
    char *location;     /* owned; NULL: JSON null */
    char *data;         /* owned: the answers to store (after the merge), set at PATCH_WRITE */
} patch;

static void patch_free(void *p)
{
    patch *s = p;
    free(s->location);
    free(s->data);
    free(s);
}

/* $1 response, $2 caller, $3 mfa. Columns: status, mine, visible, manager (org-admin power
 * counted only as the TOTP policy allows), enumerator, version, current survey version, its
 * definition, survey admin, the stored confidential answers, manager without the TOTP policy. */
static const char sql_patch_load[] =
    "SELECT r.status, r.submitted_by = $2, fv_can_read_response($2, r.id), "
    "       fv_is_deployment_manager($2, r.deployment_id, $3::boolean), "
    "       fv_has_deployment_role($2, r.deployment_id, 'enumerator'), r.version, s.current_version, "
    "       sv.definition::text, COALESCE(fv_survey_role($2, s.id) = 'admin', false), "
    "       (SELECT COALESCE(jsonb_object_agg(e.key, e.value), '{}'::jsonb) FROM jsonb_each(r.data) e "
    "        WHERE e.key = ANY (fv_confidential_names(sv.definition)))::text, "
    "       fv_is_deployment_manager($2, r.deployment_id) "
    "FROM responses r JOIN surveys s ON s.id = r.survey_id "
    "JOIN survey_versions sv ON sv.survey_id = s.id AND sv.version = s.current_version "
    "WHERE r.id = $1 AND r.deleted_at IS NULL";

/* $1 response, $2 caller, $3 data, $4 location, $5 set location, $6 action (edit|resubmit),
 * $7 the version read, $8 the survey version validated against. */
static const char sql_patch_write[] =
    "WITH u AS (UPDATE responses x SET data = $3::jsonb, "
    "             location = CASE WHEN $5::boolean THEN $4::jsonb ELSE x.location END, "
    "             survey_version = $8::int, version = x.version + 1, updated_at = now(), "
    "             status = CASE WHEN $6::text = 'resubmit' "
    "                           THEN CASE WHEN d.approval_stages > 0 THEN 'pending' ELSE 'final' END "
    "                           ELSE x.status END, "
    "             stage = CASE WHEN $6::text = 'resubmit' "
    "                          THEN CASE WHEN d.approval_stages > 0 THEN 1 ELSE 0 END ELSE x.stage END, "
    "             rejection_message = CASE WHEN $6::text = 'resubmit' THEN NULL ELSE x.rejection_message END "
    "           FROM deployments d "
    "           WHERE x.id = $1 AND d.id = x.deployment_id AND x.version = $7::int AND x.deleted_at IS NULL "
    "           RETURNING x.*), "
    "     e AS (INSERT INTO response_events (response_id, version, action, stage, status, actor, data, location) "
    "           SELECT id, version, $6::text, stage, status, $2, data, location FROM u) "
    "SELECT " RESPONSE_COLS(MASKED_DATA("COALESCE(fv_survey_role($2, r.survey_id) = 'admin', false)"))
    " FROM u r";

static void patch_written(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_reply_error(r, 409, "conflict", "the response changed meanwhile; read it again and retry");
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fe_responses_write_at(j, res->res, 0, 0);
    fe_reply_gen_send(r, 200, j);
}

/* The answers of the body with the stored confidential answers it does not name (a caller who is
 * not a survey admin never saw them, so leaving them out keeps them). Caller frees. */
static char *merge_confidential(yajl_val data, const char *stored_json)
{
    char err[64];
    yajl_val stored = fv_json_parse(stored_json, err, sizeof err);
    fv_jgen *j = fv_jgen_new();
    char *out = NULL;
    if (j && stored && YAJL_IS_OBJECT(stored)) {
        fv_jgen_map_open(j);
        for (size_t i = 0; i < data->u.object.len; i++) {
            fv_jgen_key(j, data->u.object.keys[i]);
            fv_jgen_tree(j, data->u.object.values[i]);
        }
        for (size_t i = 0; i < stored->u.object.len; i++) {
            if (fv_json_get(data, stored->u.object.keys[i])) continue;
            fv_jgen_key(j, stored->u.object.keys[i]);
            fv_jgen_tree(j, stored->u.object.values[i]);
        }
        fv_jgen_map_close(j);
        out = strdup(fv_jgen_buf(j, NULL));
    }
    fv_jgen_free(j);
    if (stored) yajl_tree_free(stored);
    return out;
}

static void patch_loaded(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    patch *s = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    if (PQntuples(p) != 1 || !fe_access_pg_true(p, 2)) {
        fe_reply_error(r, 404, "not_found", "no such response");
        return;
    }
    bool rejected = !strcmp(PQgetvalue(p, 0, 0), "rejected");
    bool resubmit = rejected && fe_access_pg_true(p, 1) && fe_access_pg_true(p, 4);
    if (!resubmit && !fe_access_pg_true(p, 3)) {
        if (fe_access_pg_true(p, 10)) {
            fe_reply_error(r, 403, "totp_required",
                           "the organisation requires its admins to sign in with a TOTP code for this");
            return;
        }
        fe_reply_error(r, 403, "forbidden",
                       "only the deployment's managers and the survey's admins edit responses; "
                       "a submitter may resubmit their rejected response");
        return;
    }
    yajl_val data = fv_json_get(r->body, "data");
    bool admin = fe_access_pg_true(p, 8);
    s->data = admin ? NULL : merge_confidential(data, PQgetvalue(p, 0, 9));
    if (!admin && !s->data) {
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }
    /* The answers are checked against the survey's current form; the response moves to it. */
    fv_form *form = fv_form_compile_text(PQgetvalue(p, 0, 7));
    if (!form) {
        fv_error("req %s: stored form definition does not compile", r->req_id);
        fe_reply_error(r, 500, "internal", "the survey's form cannot be loaded");
        return;
    }
    char err[64];
    yajl_val merged = s->data ? fv_json_parse(s->data, err, sizeof err) : NULL;
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    size_t nerr = fv_form_validate(form, merged ? merged : data, &errs);
    fv_form_free(form);
    if (merged) yajl_tree_free(merged);
    if (nerr > 0) {
        fe_reply_form_errors(r, "the answers are invalid", &errs);
        fv_form_errors_free(&errs);
        return;
    }
    fv_form_errors_free(&errs);
    if (!s->data) {
        fv_jgen *j = fv_jgen_new();
        if (j) {
            fv_jgen_tree(j, data);
            s->data = strdup(fv_jgen_buf(j, NULL));
            fv_jgen_free(j);
        }
        if (!s->data) {
            fe_reply_error(r, 503, "overloaded", "out of memory");
            return;
        }
    }
    s->step = PATCH_WRITE;
    const char *params[] = {r->param[0], r->user->id, s->data, s->location,
                            s->set_location ? "true" : "false", resubmit ? "resubmit" : "edit",
                            PQgetvalue(p, 0, 5), PQgetvalue(p, 0, 6)};
    fe_pg_query(sql_patch_write, 8, params, patch_written, r);
}

void fe_review_patch(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such response");
        return;
    }
    yajl_val data = fv_json_get(r->body, "data"), loc = fv_json_get(r->body, "location");
    const char *bad[2], *why[2];
    size_t nbad = 0;
    char *location = NULL;
    if (!data || !YAJL_IS_OBJECT(data)) bad[nbad] = "data", why[nbad++] = "required: an object of answers";
    const char *e = loc ? location_json(loc, &location) : NULL;
    if (e) bad[nbad] = "location", why[nbad++] = e;
    if (nbad) {
        free(location);
        fe_reply_error_fields(r, 422, "validation_failed", "the edit is invalid", nbad, bad, why);
        return;
    }
    patch *s = calloc(1, sizeof *s);
    if (!s) {
        free(location);
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }
    s->step = PATCH_LOAD;
    s->set_location = loc != NULL;
    s->location = location;
    r->state = s;
    r->state_free = patch_free;
    const char *params[] = {r->param[0], r->user->id, fe_verdict_mfa(r)};
    fe_pg_query(sql_patch_load, 3, params, patch_loaded, r);
}

/* $1 response, $2 caller, $3 address, $4 mfa. Columns: visible, manager, manager without the
 * TOTP policy (see fv_is_deployment_manager). */
static const char sql_delete[] =
    "WITH c AS (SELECT x.id, s.org_id, fv_can_read_response($2, x.id) AS visible, "
    "                  fv_is_deployment_manager($2, x.deployment_id, $4::boolean) AS manager, "
    "                  fv_is_deployment_manager($2, x.deployment_id) AS manager_any "
    "           FROM responses x JOIN surveys s ON s.id = x.survey_id "
    "           WHERE x.id = $1 AND x.deleted_at IS NULL FOR UPDATE OF x), "
    "     u AS (UPDATE responses y SET deleted_at = now(), version = y.version + 1, updated_at = now() "
    "           FROM c WHERE y.id = c.id AND c.manager RETURNING y.id, y.version, y.stage, y.status), "
    "     e AS (INSERT INTO response_events (response_id, version, action, stage, status, actor) "
    "           SELECT id, version, 'delete', stage, status, $2 FROM u), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id) "
    "           SELECT $2, 'response.delete', 'response', u.id::text, NULLIF($3, '')::inet, c.org_id "
    "           FROM u, c) "
    "SELECT c.visible, c.manager, c.manager_any AND NOT c.manager FROM c LEFT JOIN u ON true";

static void deleted(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    fe_access_check c = {fe_access_pg_true(p, 0), fe_access_pg_true(p, 1), fe_access_pg_true(p, 2)};
    if (fe_access_deny(r, &c, "response", "only the deployment's managers and the survey's admins delete responses"))
        return;
    fe_reply_text(r, 204, "application/json", NULL, 0);
}

void fe_review_delete(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such response");
        return;
    }
    const char *params[] = {r->param[0], r->user->id, r->address, fe_verdict_mfa(r)};
    fe_pg_query(sql_delete, 4, params, deleted, r);
}

/* $1 response, $2 caller, $3 approve|reject, $4 message, $5 address, $6 mfa. The approver of the
 * current stage moves it on (the last stage makes it final) or rejects it; a manager or survey
 * admin who is not that stage's approver may too, recorded as an override. Columns: visible,
 * status before, stage approver, manager, approver of some stage, manager without the TOTP
 * policy (see fv_is_deployment_manager), then the response. */
static const char sql_decide[] =
    "WITH c AS (SELECT x.id, x.status, x.stage, d.approval_stages, s.org_id, "
    "                  fv_can_read_response($2, x.id) AS visible, "
    "                  x.status = 'pending' AND EXISTS ("
    "                      SELECT 1 FROM deployment_roles dr WHERE dr.deployment_id = x.deployment_id "
    "                      AND dr.role = 'approver' AND dr.stage = x.stage "
    "                      AND fv_principal_includes($2, dr.principal_type, dr.principal_id)) AS approver, "
    "                  fv_is_deployment_manager($2, x.deployment_id, $6::boolean) AS manager, "
    "                  cardinality((fv_deployment_access($2, x.deployment_id)).approver_stages) > 0 AS any_stage, "
    "                  fv_is_deployment_manager($2, x.deployment_id) AS manager_any "
    "           FROM responses x JOIN deployments d ON d.id = x.deployment_id "
    "           JOIN surveys s ON s.id = x.survey_id "
    "           WHERE x.id = $1 AND x.deleted_at IS NULL FOR UPDATE OF x), "
    "     u AS (UPDATE responses y SET "
    "             status = CASE WHEN $3::text = 'reject' THEN 'rejected' "
    "                           WHEN c.stage >= c.approval_stages THEN 'final' ELSE 'pending' END, "
    "             stage = CASE WHEN $3::text = 'reject' THEN c.stage "
    "                          WHEN c.stage >= c.approval_stages THEN 0 ELSE c.stage + 1 END, "
    "             rejection_message = CASE WHEN $3::text = 'reject' THEN $4::text END, "
    "             version = y.version + 1, updated_at = now() "
    "           FROM c WHERE y.id = c.id AND c.visible AND c.status = 'pending' AND (c.approver OR c.manager) "
    "           RETURNING y.*), "
    "     e AS (INSERT INTO response_events (response_id, version, action, stage, status, actor, override, message) "
    "           SELECT u.id, u.version, $3::text, c.stage, u.status, $2, NOT c.approver, $4::text FROM u, c), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, 'response.' || $3::text, 'response', u.id::text, NULLIF($5, '')::inet, c.org_id, "
    "                  jsonb_build_object('stage', c.stage, 'status', u.status, 'override', NOT c.approver) "
    "           FROM u, c) "
    "SELECT c.visible, c.status, c.approver, c.manager, c.any_stage, c.manager_any, "
    RESPONSE_COLS(MASKED_DATA("COALESCE(fv_survey_role($2, r.survey_id) = 'admin', false)"))
    " FROM c LEFT JOIN u r ON true";

static void decided(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    if (PQntuples(p) != 1 || !fe_access_pg_true(p, 0)) {
        fe_reply_error(r, 404, "not_found", "no such response");
        return;
    }
    bool pending = !strcmp(PQgetvalue(p, 0, 1), "pending");
    bool manager = fe_access_pg_true(p, 3), approver = fe_access_pg_true(p, 2);
    if (!pending && (manager || fe_access_pg_true(p, 4))) {
        fe_reply_error(r, 409, "not_pending", "the response is not waiting for approval");
        return;
    }
    if (!approver && !manager && fe_access_pg_true(p, 5)) {
        fe_reply_error(r, 403, "totp_required",
                       "the organisation requires its admins to sign in with a TOTP code for this");
        return;
    }
    if (!approver && !manager) {
        fe_reply_error(r, 403, "forbidden", "only the approvers of the response's current stage decide on it");
        return;
    }
    if (PQgetisnull(p, 0, 6)) { /* locked and re-read: it moved on meanwhile */
        fe_reply_error(r, 409, "not_pending", "the response is not waiting for approval");
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fe_responses_write_at(j, p, 0, 6);
    fe_reply_gen_send(r, 200, j);
}

/* approve (message optional) or reject (message required). */
static void decide(fe_req *r, const char *action, bool message_required)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such response");
        return;
    }
    yajl_val m = fv_json_get(r->body, "message");
    const char *msg = m && YAJL_IS_STRING(m) ? m->u.string : NULL;
    bool bad = message_required ? (!msg || !*msg) : (m && !YAJL_IS_NULL(m) && !msg);
    if (bad || (msg && strlen(msg) > FE_MESSAGE_MAX)) {
        const char *f[] = {"message"};
        const char *why[] = {message_required ? "required: a string of 1 to 2000 characters"
                                              : "must be a string of at most 2000 characters"};
        fe_reply_error_fields(r, 422, "validation_failed", "the decision is invalid", 1, f, why);
        return;
    }
    const char *params[] = {r->param[0], r->user->id, action, msg, r->address, fe_verdict_mfa(r)};
    fe_pg_query(sql_decide, 6, params, decided, r);
}

void fe_review_approve(fe_req *r)
{
    decide(r, "approve", false);
}

void fe_review_reject(fe_req *r)
{
    decide(r, "reject", true);
}

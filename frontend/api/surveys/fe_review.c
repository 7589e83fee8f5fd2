/* Changes to a response: edit or resubmit (PATCH), delete, approve, reject. Who may is decided in
 * SQL by verdict (fe_verdict.h) with the rule functions of migration 006
 * (fv_response_edit_verdict, fv_response_manager_verdict, fv_response_decide_verdict). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "fe_handlers.h"
#include "fe_verdict.h"
#include "fv_check.h"
#include "fv_form.h"
#include "fv_log.h"

/* ---- changes: edit or resubmit, delete, approve, reject ----
 * Written synchronously to PostgreSQL (503 + Retry-After while it is down; DESIGN section 5 says
 * edits are queued: not yet). Each change bumps responses.version and appends the
 * response_events row of that version, with the full new state (to_jsonb of the row, migration
 * 012, which refuses the statement without it), in the same statement. */

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
    bool set_location; /* the body has a "location" key */
    char *location;    /* owned; NULL: JSON null */
    char *data;        /* owned: the answers to store (after the merge), set at PATCH_WRITE */
    yajl_val loaded;   /* owned: the load step's body, set at PATCH_WRITE */
} patch;

static void patch_free(void *p)
{
    patch *s = p;
    free(s->location);
    free(s->data);
    if (s->loaded) yajl_tree_free(s->loaded);
    free(s);
}

/* $1 response, $2 caller, $3 mfa. A resubmission is a submission: refused (409) when the
 * deployment is closed or its survey archived; edits by its managers are not. The body of 'ok' is
 * what the write step needs: action (edit, or resubmit by its submitter), the version read, the survey's current version and its definition,
 * whether the caller is survey admin, and the stored confidential answers. */
static const char sql_patch_load[] =
    "SELECT CASE WHEN v.verdict = 'ok' AND fv_can_resubmit($2, r) AND s.archived_at IS NOT NULL "
    "              THEN 'survey_archived' "
    "            WHEN v.verdict = 'ok' AND fv_can_resubmit($2, r) "
    "                 AND EXISTS (SELECT 1 FROM deployments d WHERE d.id = r.deployment_id "
    "                             AND d.closed_at IS NOT NULL) THEN 'deployment_closed' "
    "            ELSE v.verdict END, "
    "       CASE WHEN v.verdict = 'ok' THEN jsonb_build_object("
    "         'action', CASE WHEN fv_can_resubmit($2, r) THEN 'resubmit' ELSE 'edit' END, "
    "         'version', r.version, 'survey_version', s.current_version, 'definition', sv.definition, "
    "         'admin', COALESCE(fv_survey_role($2, s.id) = 'admin', false), "
    /* an encrypted survey's (or response's) answers are ciphertext: never edited here */
    "         'encrypted', sv.public_key IS NOT NULL OR EXISTS (SELECT 1 FROM survey_versions o "
    "                      WHERE o.survey_id = r.survey_id AND o.version = r.survey_version "
    "                        AND o.public_key IS NOT NULL), "
    "         'confidential', (SELECT COALESCE(jsonb_object_agg(e.key, e.value), '{}'::jsonb) "
    "                          FROM jsonb_each(r.data) e "
    "                          WHERE e.key = ANY (fv_confidential_names(sv.definition))))::text END "
    "FROM responses r JOIN surveys s ON s.id = r.survey_id "
    "JOIN survey_versions sv ON sv.survey_id = s.id AND sv.version = s.current_version, "
    "LATERAL (SELECT fv_response_edit_verdict($2, r, $3::boolean) AS verdict) v "
    "WHERE r.id = $1 AND r.deleted_at IS NULL";

/* $1 response, $2 caller, $3 data, $4 location, $5 set location, $6 action (edit|resubmit),
 * $7 the version read, $8 the survey version validated against. 'conflict' when the response
 * changed since the load step. */
static const char sql_patch_write[] =
    "WITH u AS (UPDATE responses x SET data = CASE WHEN NOT m.keep THEN $3::jsonb "
    "               ELSE fv_confidential_unmask_data($3::jsonb, x.data, m.geo, x.gps_seed, m.radius) END, "
    "             location = CASE WHEN NOT $5::boolean THEN x.location "
    "                             WHEN NOT m.keep THEN $4::jsonb "
    "                             ELSE fv_gps_unmask($4::jsonb, x.location, x.gps_seed, m.radius) END, "
    "             survey_version = $8::int, version = x.version + 1, updated_at = now(), "
    "             status = CASE WHEN $6::text = 'resubmit' "
    "                           THEN CASE WHEN d.approval_stages > 0 THEN 'pending' ELSE 'final' END "
    "                           ELSE x.status END, "
    "             stage = CASE WHEN $6::text = 'resubmit' "
    "                          THEN CASE WHEN d.approval_stages > 0 THEN 1 ELSE 0 END ELSE x.stage END, "
    "             rejection_message = CASE WHEN $6::text = 'resubmit' THEN NULL ELSE x.rejection_message END "
    "           FROM deployments d, "
    /* confidential mode (migration 024), an editor who is not survey admin: the points sent back
     * as they were shown (moved) keep the true ones (m.keep; else stored as sent) */
    "                (SELECT k.conf AND NOT COALESCE(fv_survey_role($2, y.survey_id) = 'admin', false) AS keep, "
    "                        k.geo, k.radius FROM responses y, fv_response_mask(y) k WHERE y.id = $1) m "
    "           WHERE x.id = $1 AND d.id = x.deployment_id AND x.version = $7::int AND x.deleted_at IS NULL "
    "           RETURNING x), "
    "     e AS (INSERT INTO response_events (response_id, version, action, stage, status, actor, data, location, "
    "                                        state) "
    "           SELECT (u.x).id, (u.x).version, $6::text, (u.x).stage, (u.x).status, $2, (u.x).data, "
    "                  (u.x).location, to_jsonb(u.x) FROM u) "
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM u) THEN 'ok' ELSE 'conflict' END, "
    "       (SELECT fv_response_json(u.x, COALESCE(fv_survey_role($2, (u.x).survey_id) = 'admin', false))::text "
    "        FROM u)";

/* The answers of the body with the stored confidential answers it does not name (a caller who is
 * not a survey admin never saw them, so leaving them out keeps them). Caller frees. */
static char *merge_confidential(yajl_val data, yajl_val stored)
{
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
        const char *text = fv_jgen_buf(j, NULL); /* NULL: generation failed (memory) */
        out = text ? strdup(text) : NULL;
    }
    fv_jgen_free(j);
    return out;
}

static void patch_written(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    const char *body = fe_verdict_answer(r, res, "response");
    if (body) fe_verdict_reply_json(r, 200, body);
}

static void patch_loaded(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    patch *s = r->state;
    const char *body = fe_verdict_answer(r, res, "response");
    if (!body) return;
    char err[64];
    s->loaded = fv_json_parse(body, err, sizeof err);
    if (!s->loaded) {
        fe_reply_oom(r);
        return;
    }
    yajl_val loaded = s->loaded, data = fv_json_get(r->body, "data");
    yajl_val version = fv_json_get(loaded, "version"),
             survey_version = fv_json_get(loaded, "survey_version");
    const char *action = fv_json_get_str(loaded, "action");
    bool admin = YAJL_IS_TRUE(fv_json_get(loaded, "admin"));
    if (YAJL_IS_TRUE(fv_json_get(loaded, "encrypted"))) {
        fe_reply_error(r, 409, "survey_encrypted",
                       "this survey's responses are encrypted to its public key: the server cannot "
                       "read or edit them (answers in clear are refused)");
        return;
    }
    s->data = admin ? fv_json_text(data) : merge_confidential(data, fv_json_get(loaded, "confidential"));
    if (!s->data || !action || !YAJL_IS_INTEGER(version) || !YAJL_IS_INTEGER(survey_version)) {
        fe_reply_oom(r);
        return;
    }
    /* The answers are checked against the survey's current form; the response moves to it. */
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    fv_form *form = fv_form_compile_stored(fv_json_get(loaded, "definition"), &errs);
    if (!form) {
        fv_form_errors_free(&errs);
        fv_error("req %s: stored form definition does not compile", r->req_id);
        fe_reply_error(r, 500, "internal", "the survey's form cannot be loaded");
        return;
    }
    yajl_val merged = admin ? NULL : fv_json_parse(s->data, err, sizeof err);
    size_t nerr = fv_form_validate(form, merged ? merged : data, &errs);
    fv_form_free(form);
    if (merged) yajl_tree_free(merged);
    if (nerr > 0) {
        fe_reply_form_errors(r, "the answers are invalid", &errs);
        fv_form_errors_free(&errs);
        return;
    }
    fv_form_errors_free(&errs);
    s->step = PATCH_WRITE;
    char vtext[24], svtext[24];
    snprintf(vtext, sizeof vtext, "%lld", YAJL_GET_INTEGER(version));
    snprintf(svtext, sizeof svtext, "%lld", YAJL_GET_INTEGER(survey_version));
    const char *params[] = {
        r->param[0], r->user->id, s->data, s->location, s->set_location ? "true" : "false",
        action,      vtext,       svtext};
    fe_pg_query(sql_patch_write, 8, params, patch_written, r);
}

void fe_review_patch(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "response")) return;
    yajl_val data = fv_json_get(r->body, "data"), loc = fv_json_get(r->body, "location");
    const char *bad[2], *why[2];
    size_t nbad = 0;
    char *location = NULL;
    if (!data || !YAJL_IS_OBJECT(data))
        bad[nbad] = "data", why[nbad++] = "required: an object of answers";
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
        fe_reply_oom(r);
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

/* $1 response, $2 caller, $3 address, $4 mfa: the deployment's managers delete
 * (fv_response_manager_verdict). */
static const char sql_delete[] =
    "WITH c AS (SELECT x.id, s.org_id, fv_response_manager_verdict($2, x, $4::boolean) AS verdict "
    "           FROM responses x JOIN surveys s ON s.id = x.survey_id "
    "           WHERE x.id = $1 AND x.deleted_at IS NULL FOR UPDATE OF x), "
    "     u AS (UPDATE responses y SET deleted_at = now(), version = y.version + 1, updated_at = now() "
    "           FROM c WHERE y.id = c.id AND c.verdict = 'ok' "
    "           RETURNING y.id, y.version, y.stage, y.status, to_jsonb(y) AS state), "
    "     e AS (INSERT INTO response_events (response_id, version, action, stage, status, actor, state) "
    "           SELECT id, version, 'delete', stage, status, $2, state FROM u), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id) "
    "           SELECT $2, 'response.delete', 'response', u.id::text, NULLIF($3, '')::inet, c.org_id "
    "           FROM u, c) "
    "SELECT c.verdict, NULL FROM c";

void fe_review_delete(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "response")) return;
    const char *params[] = {r->param[0], r->user->id, r->address, fe_verdict_mfa(r)};
    fe_verdict_run(r, sql_delete, 4, params, 204, "response", NULL);
}

/* $1 response, $2 caller, $3 approve|reject, $4 message, $5 address, $6 mfa. The approver of the
 * current stage moves it on (the last stage makes it final) or rejects it; a manager or survey
 * admin who is not that stage's approver may too, recorded as an override
 * (fv_response_decide_verdict). The row is locked and the verdict taken on it as locked. */
static const char sql_decide[] =
    "WITH c AS (SELECT x.id, x.stage, d.approval_stages, s.org_id, "
    "                  fv_response_decide_verdict($2, x, $6::boolean) AS verdict, "
    "                  x.status = 'pending' AND fv_is_stage_approver($2, x.deployment_id, x.stage) AS approver "
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
    "           FROM c WHERE y.id = c.id AND y.status = 'pending' AND c.verdict = 'ok' "
    "           RETURNING y), "
    "     e AS (INSERT INTO response_events (response_id, version, action, stage, status, actor, override, message, "
    "                                        state) "
    "           SELECT (u.y).id, (u.y).version, $3::text, c.stage, (u.y).status, $2, NOT c.approver, $4::text, "
    "                  to_jsonb(u.y) "
    "           FROM u, c), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $2, 'response.' || $3::text, 'response', (u.y).id::text, NULLIF($5, '')::inet, c.org_id, "
    "                  jsonb_build_object('stage', c.stage, 'status', (u.y).status, 'override', NOT c.approver) "
    "           FROM u, c) "
    "SELECT CASE WHEN c.verdict = 'ok' AND NOT EXISTS (SELECT 1 FROM u) THEN 'not_pending' ELSE c.verdict END, "
    "       (SELECT fv_response_json(u.y, COALESCE(fv_survey_role($2, (u.y).survey_id) = 'admin', false))::text "
    "        FROM u) "
    "FROM c";

/* approve (message optional) or reject (message required). */
static void decide(fe_req *r, const char *action, bool message_required)
{
    if (!fe_verdict_id(r, 0, "response")) return;
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
    fe_verdict_run(r, sql_decide, 6, params, 200, "response", NULL);
}

void fe_review_approve(fe_req *r)
{
    decide(r, "approve", false);
}

void fe_review_reject(fe_req *r)
{
    decide(r, "reject", true);
}

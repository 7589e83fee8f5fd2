/* Changes to a response: edit or resubmit (PATCH), delete, approve, reject. Who may is decided in
 * SQL by verdict (fe_verdict.h) with the rule functions of migration 006
 * (fv_response_edit_verdict, fv_response_manager_verdict, fv_response_decide_verdict). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/crypto.h>

#include "fe_config.h"
#include "fe_datakeys.h"
#include "fe_handlers.h"
#include "fe_verdict.h"
#include "fe_workpool.h"
#include "fv_answers.h"
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
 *   PATCH_LOAD     reading the response as stored, the caller's rights and the current form
 *   PATCH_KEY      the org's current data key (fe_datakeys_current)
 *   PATCH_PREPARE  on a pool thread: the stored answers opened, the confidential ones the caller
 *                  never saw merged back, the answers checked against the form, the moved points
 *                  sent back kept true, everything sealed again under the current key
 *   PATCH_WRITE    the UPDATE, conditional on the version read (409 if it moved meanwhile) */
typedef enum { PATCH_LOAD, PATCH_KEY, PATCH_PREPARE, PATCH_WRITE } patch_step;

/* The PREPARE job: owned by the pool from submission (patch_job_free wipes it). */
typedef struct patch_job {
    yajl_val loaded;   /* owned: the load step's body */
    char *sent;        /* owned: the body's answers (JSON text) */
    char *location;    /* owned: the body's location (NULL: JSON null) */
    bool set_location; /* the body has a "location" key */
    char rid[FV_UUID_STRLEN + 1];
    unsigned char key[FV_DATAKEY_BYTES]; /* the org's current data key (copied) */
    int kv;
    /* results */
    int status; /* 0: data_out and loc_out are ready; else the error reply's status */
    const char *code;
    char why[512];
    bool invalid; /* the answers failed the form: errs */
    fv_form_errors errs;
    char *data_out, *loc_out; /* owned: the sealed answers and location to store */
} patch_job;

/* State of one PATCH: owned by the request. */
typedef struct patch {
    patch_step step;
    patch_job *job;  /* owned until submitted (PATCH_LOAD, PATCH_KEY) */
    fe_work *work;   /* the PREPARE job while it runs */
    patch_job *done; /* owned: the finished job (PATCH_WRITE) */
} patch;

static void patch_job_free(void *p)
{
    patch_job *j = p;
    if (!j) return;
    if (j->loaded) yajl_tree_free(j->loaded);
    fv_answers_free_text(j->sent);
    fv_answers_free_text(j->location);
    fv_form_errors_free(&j->errs);
    free(j->data_out);
    free(j->loc_out);
    OPENSSL_cleanse(j->key, sizeof j->key);
    free(j);
}

static void patch_free(void *p)
{
    patch *s = p;
    if (s->work) fe_work_detach(s->work);
    patch_job_free(s->job);
    patch_job_free(s->done);
    free(s);
}

/* $1 response, $2 caller, $3 mfa. A resubmission is a submission: refused (409) when the
 * deployment is closed or its survey archived; edits by its managers are not. The body of 'ok' is
 * what the later steps need: action (edit, or resubmit by its submitter), the version read, the
 * survey's current version and its definition, whether the caller is survey admin, the answers
 * and location as stored (sealed under data key version kv of org, wrapped key wk; in clear when
 * kv is null: migration 027), the names of the current form's confidential questions, and the
 * confidential-mode mask (keep: an editor who is not survey admin, who was shown moved points). */
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
    "         'admin', a.admin, 'org', s.org_id, 'kv', r.answers_kv, "
    "         'wk', fv_dk_wrapped(s.org_id, r.answers_kv), 'stored', r.data, "
    "         'stored_location', r.location, "
    "         'confidential', to_jsonb(fv_confidential_names(sv.definition)), "
    "         'keep', m.conf AND NOT a.admin, 'geo', to_jsonb(m.geo), 'radius', m.radius, "
    "         'seed', r.gps_seed, "
    /* an encrypted survey's (or response's) answers are ciphertext: never edited here */
    "         'encrypted', sv.public_key IS NOT NULL OR EXISTS (SELECT 1 FROM survey_versions o "
    "                      WHERE o.survey_id = r.survey_id AND o.version = r.survey_version "
    "                        AND o.public_key IS NOT NULL))::text END "
    "FROM responses r JOIN surveys s ON s.id = r.survey_id "
    "JOIN survey_versions sv ON sv.survey_id = s.id AND sv.version = s.current_version, "
    "LATERAL (SELECT fv_response_edit_verdict($2, r, $3::boolean) AS verdict) v, "
    "LATERAL (SELECT COALESCE(fv_survey_role($2, s.id) = 'admin', false) AS admin) a, "
    "LATERAL fv_response_mask(r) m "
    "WHERE r.id = $1 AND r.deleted_at IS NULL";

/* $1 response, $2 caller, $3 data, $4 location (both sealed, PATCH_PREPARE), $5 their key
 * version, $6 action (edit|resubmit), $7 the version read, $8 the survey version validated
 * against. 'conflict' when the response changed since the load step. */
static const char sql_patch_write[] =
    "WITH u AS (UPDATE responses x SET data = $3::jsonb, location = $4::jsonb, answers_kv = $5::int, "
    "             survey_version = $8::int, version = x.version + 1, updated_at = now(), "
    "             status = CASE WHEN $6::text = 'resubmit' "
    "                           THEN CASE WHEN d.approval_stages > 0 THEN 'pending' ELSE 'final' END "
    "                           ELSE x.status END, "
    "             stage = CASE WHEN $6::text = 'resubmit' "
    "                          THEN CASE WHEN d.approval_stages > 0 THEN 1 ELSE 0 END ELSE x.stage END, "
    "             rejection_message = CASE WHEN $6::text = 'resubmit' THEN NULL ELSE x.rejection_message END "
    "           FROM deployments d "
    "           WHERE x.id = $1 AND d.id = x.deployment_id AND x.version = $7::int AND x.deleted_at IS NULL "
    "           RETURNING x), "
    "     e AS (INSERT INTO response_events (response_id, version, action, stage, status, actor, data, location, "
    "                                        state) "
    "           SELECT (u.x).id, (u.x).version, $6::text, (u.x).stage, (u.x).status, $2, (u.x).data, "
    "                  (u.x).location, to_jsonb(u.x) FROM u) "
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM u) THEN 'ok' ELSE 'conflict' END, "
    "       (SELECT fv_response_json(u.x, COALESCE(fv_survey_role($2, (u.x).survey_id) = 'admin', false))::text "
    "        FROM u)";

static void prepare_fail(patch_job *j, int status, const char *code, const char *why)
{
    j->status = status;
    j->code = code;
    snprintf(j->why, sizeof j->why, "%.500s", why);
}

/* The text of g (NULL: it failed); the caller frees. */
static char *gen_text(fv_jgen *g)
{
    const char *t = g ? fv_jgen_buf(g, NULL) : NULL;
    return t ? strdup(t) : NULL;
}

static bool in_names(yajl_val list, const char *name)
{
    for (size_t i = 0; YAJL_IS_ARRAY(list) && i < list->u.array.len; i++) {
        const char *s = YAJL_GET_STRING(list->u.array.values[i]);
        if (s && !strcmp(s, name)) return true;
    }
    return false;
}

/* PATCH_PREPARE, on a pool thread (touches the job only). */
static void prepare_run(void *p)
{
    patch_job *j = p;
    yajl_val L = j->loaded;
    bool admin = YAJL_IS_TRUE(fv_json_get(L, "admin")), keep = YAJL_IS_TRUE(fv_json_get(L, "keep"));
    yajl_val kvv = fv_json_get(L, "kv"), geo = fv_json_get(L, "geo"), rad = fv_json_get(L, "radius");
    int kvs = YAJL_IS_INTEGER(kvv) ? (int)YAJL_GET_INTEGER(kvv) : 0;
    char err[512] = "";
    /* the answers as stored, opened */
    const unsigned char *skey = NULL;
    fv_dkring *ring = NULL; /* owned */
    if (kvs > 0) {
        char scope[FV_DATAKEY_SCOPE_MAX];
        snprintf(scope, sizeof scope, "org:%s",
                 fv_json_get_str(L, "org") ? fv_json_get_str(L, "org") : "");
        ring = fv_dkring_new(&fe_keys, 2);
        const char *wk = fv_json_get_str(L, "wk");
        skey = ring && wk ? fv_dkring_put(ring, scope, kvs, wk, err, sizeof err) : NULL;
        if (!skey) {
            fv_dkring_free(ring);
            prepare_fail(j, 500, "internal",
                         err[0] ? err : "the stored answers' data key is unavailable");
            return;
        }
    }
    fv_answers_opened o = {0};
    int orc = fv_answers_open(skey, kvs, j->rid, fv_json_get(L, "stored"),
                              fv_json_get(L, "stored_location"), &o, err, sizeof err);
    fv_dkring_free(ring);
    if (orc != 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "a stored response does not open: %s", err);
        prepare_fail(j, 500, "internal", msg);
        return;
    }
    yajl_val sent = fv_json_parse_n(j->sent, strlen(j->sent), NULL); /* owned */
    yajl_val sloc = j->location ? fv_json_parse_n(j->location, strlen(j->location), NULL) : NULL;
    fv_gps_offset off;
    const char *seed = fv_json_get_str(L, "seed");
    bool moved = keep && YAJL_IS_NUMBER(rad) &&
                 fv_gps_offset_of(seed, strtod(YAJL_GET_NUMBER(rad), NULL), &off);
    fv_jgen *g = fv_jgen_new(); /* owned: the answers to store, in clear */
    yajl_val merged = NULL;     /* owned: parsed from g */
    fv_form *form = NULL;
    if (!sent || !g || (j->location && !sloc)) {
        prepare_fail(j, 503, "overloaded", "out of memory");
        goto done;
    }
    fv_jgen_map_open(g);
    for (size_t i = 0; i < sent->u.object.len; i++) {
        const char *k = sent->u.object.keys[i];
        yajl_val v = sent->u.object.values[i], stored = fv_json_get(o.data, k);
        fv_jgen_key(g, k);
        /* a point sent back as the reader was shown it (moved) keeps the true one stored */
        if (moved && stored && in_names(geo, k) && fv_gps_is_moved(v, stored, &off))
            fv_jgen_tree(g, stored);
        else fv_jgen_tree(g, v);
    }
    /* the confidential answers a caller who is not survey admin never saw: kept */
    for (size_t i = 0; !admin && YAJL_IS_OBJECT(o.data) && i < o.data->u.object.len; i++) {
        const char *k = o.data->u.object.keys[i];
        if (fv_json_get(sent, k) || !in_names(fv_json_get(L, "confidential"), k)) continue;
        fv_jgen_key(g, k);
        fv_jgen_tree(g, o.data->u.object.values[i]);
    }
    fv_jgen_map_close(g);
    size_t mlen = 0;
    const char *mtext = fv_jgen_buf(g, &mlen);
    merged = mtext ? fv_json_parse_n(mtext, mlen, NULL) : NULL;
    if (mtext) OPENSSL_cleanse((void *)mtext, mlen);
    if (!merged) {
        prepare_fail(j, 503, "overloaded", "out of memory");
        goto done;
    }
    /* The answers are checked against the survey's current form; the response moves to it. */
    form = fv_form_compile_stored(fv_json_get(L, "definition"), &j->errs);
    if (!form) {
        prepare_fail(j, 500, "internal", "the survey's form cannot be loaded");
        goto done;
    }
    if (fv_form_validate(form, merged, &j->errs) > 0) {
        j->invalid = true;
        goto done;
    }
    /* the location: as sent (a moved point sent back keeps the true one), else as stored */
    yajl_val loc = o.location;
    if (j->set_location)
        loc = moved && sloc && o.location && fv_gps_is_moved(sloc, o.location, &off) ? o.location : sloc;
    fv_jgen *d = fv_jgen_new(), *l = fv_jgen_new();
    if (!d || !l || fv_answers_seal(d, j->key, j->kv, j->rid, merged, err, sizeof err) != 0 ||
        fv_answers_seal_location(l, j->key, j->kv, j->rid, loc, err, sizeof err) != 0 ||
        !(j->data_out = gen_text(d)) || !(j->loc_out = gen_text(l)))
        prepare_fail(j, 503, "overloaded", err[0] ? err : "out of memory");
    fv_jgen_free(d);
    fv_jgen_free(l);
done:
    fv_form_free(form);
    if (merged) yajl_tree_free(merged);
    if (sent) yajl_tree_free(sent);
    if (sloc) yajl_tree_free(sloc);
    fv_jgen_free(g);
    fv_answers_opened_free(&o);
    OPENSSL_cleanse(j->key, sizeof j->key);
}

static void patch_written(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    const char *body = fe_verdict_answer(r, res, "response");
    if (body) fe_verdict_reply_json(r, 200, body);
}

static void prepared(void *p, bool ran, void *owner)
{
    patch_job *j = p;
    fe_req *r = owner;
    patch *s = r->state;
    s->work = NULL;
    if (!ran) {
        fe_reply_error(r, 503, "overloaded", "shutting down; retry shortly");
        return;
    }
    if (j->invalid) {
        fe_reply_form_errors(r, "the answers are invalid", &j->errs);
        return;
    }
    if (j->status) {
        if (j->status >= 500) fv_error("req %s: %s", r->req_id, j->why);
        fe_reply_error(r, j->status, j->code, j->why);
        return;
    }
    /* the pool frees j after this returns: what the write needs moves to the state */
    patch_job *d = calloc(1, sizeof *d);
    if (!d) {
        fe_reply_oom(r);
        return;
    }
    d->data_out = j->data_out;
    d->loc_out = j->loc_out;
    j->data_out = j->loc_out = NULL;
    d->kv = j->kv;
    s->done = d;
    s->step = PATCH_WRITE;
    yajl_val L = j->loaded;
    char vtext[24], svtext[24], kvtext[16];
    snprintf(vtext, sizeof vtext, "%lld", YAJL_GET_INTEGER(fv_json_get(L, "version")));
    snprintf(svtext, sizeof svtext, "%lld", YAJL_GET_INTEGER(fv_json_get(L, "survey_version")));
    snprintf(kvtext, sizeof kvtext, "%d", d->kv);
    const char *params[] = {r->param[0], r->user->id, d->data_out,
                            d->loc_out,  kvtext,      fv_json_get_str(L, "action"),
                            vtext,       svtext};
    fe_pg_query(sql_patch_write, 8, params, patch_written, r);
}

static void patch_keyed(const unsigned char *key, int version, const char *err, void *arg)
{
    fe_req *r = arg;
    patch *s = r->state;
    if (!key) {
        fv_warn("req %s: edit: %s", r->req_id, err ? err : "no data key");
        fe_reply_error_retry(r, 503, "db_unavailable",
                             "the organisation's data key is unavailable; retry later", 30);
        return;
    }
    patch_job *j = s->job;
    memcpy(j->key, key, sizeof j->key);
    j->kv = version;
    s->step = PATCH_PREPARE;
    s->work = fe_work_submit_bulk(j, prepare_run, prepared, patch_job_free, r);
    if (!s->work) {
        fe_reply_error(r, 503, "overloaded", "too many requests being prepared; retry shortly");
        return; /* s->job still owns j: freed with the state */
    }
    s->job = NULL; /* the pool's now */
}

static void patch_loaded(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    patch *s = r->state;
    const char *body = fe_verdict_answer(r, res, "response");
    if (!body) return;
    patch_job *j = s->job;
    char err[64];
    j->loaded = fv_json_parse(body, err, sizeof err);
    if (!j->loaded) {
        fe_reply_oom(r);
        return;
    }
    yajl_val L = j->loaded;
    if (YAJL_IS_TRUE(fv_json_get(L, "encrypted"))) {
        fe_reply_error(r, 409, "survey_encrypted",
                       "this survey's responses are encrypted to its public key: the server cannot "
                       "read or edit them (answers in clear are refused)");
        return;
    }
    const char *org = fv_json_get_str(L, "org");
    if (!fv_json_get_str(L, "action") || !YAJL_IS_INTEGER(fv_json_get(L, "version")) ||
        !YAJL_IS_INTEGER(fv_json_get(L, "survey_version")) || !org) {
        fv_error("req %s: the edit's load step answered without its fields", r->req_id);
        fe_reply_error(r, 500, "internal", "internal error");
        return;
    }
    s->step = PATCH_KEY;
    fe_datakeys_current(org, patch_keyed, r);
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
    patch_job *j = s ? calloc(1, sizeof *j) : NULL;
    if (j) {
        fv_form_errors_init(&j->errs);
        j->sent = fv_json_text(data);
    }
    if (!s || !j || !j->sent) {
        free(location);
        patch_job_free(j);
        free(s);
        fe_reply_oom(r);
        return;
    }
    j->set_location = loc != NULL;
    j->location = location;
    snprintf(j->rid, sizeof j->rid, "%.36s", r->param[0]);
    s->step = PATCH_LOAD;
    s->job = j;
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

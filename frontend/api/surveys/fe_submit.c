/* POST /v1/deployments/{id}/responses: a submission checked against what the deployment cache
 * knows (fe_depcache), else Redis, else PostgreSQL, then queued to the stream (fe_queue). While
 * PostgreSQL is down a submission nobody can check is accepted unverified (DESIGN section 2).
 * This is the one handler whose permissions are not a verdict statement: they are SQL's answers,
 * cached, so a submission does not wait on PostgreSQL; its denials still answer through
 * fe_verdict_reply. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "fe_depcache.h"
#include "fe_config.h"
#include "fe_handlers.h"
#include "fe_metrics.h"
#include "fe_pg.h"
#include "fe_queue.h"
#include "fe_redis.h"
#include "fe_revoke.h"
#include "fe_subid.h"
#include "fe_submit.h"
#include "fe_unverified.h"
#include "fe_verdict.h"
#include "fv_check.h"
#include "fv_envelope.h"
#include "fv_form.h"
#include "fv_log.h"
#include "fv_odkcrypt.h"

/* State of one submission: owned by the request. */
typedef struct submit {
    fe_submit_base base; /* first: the lookup's (fe_submit.h) */
    char id[FV_UUID_STRLEN + 1];
    char *data;         /* owned: the answers as JSON, or the encrypted envelope (encrypted) */
    bool encrypted;     /* the body gave `encrypted` (an ODK envelope), not `data` */
    char *location;     /* owned: JSON or NULL */
    char *collected_at; /* owned or NULL */
} submit;

static void submit_free(void *p)
{
    submit *s = p;
    free(s->data);
    free(s->location);
    free(s->collected_at);
    fe_submit_base_clear(&s->base);
    free(s);
}

void fe_submit_base_clear(fe_submit_base *b)
{
    free(b->shared_dep);
    b->shared_dep = NULL;
}

static void queued(fe_queue_outcome outcome, void *arg)
{
    fe_req *r = arg;
    submit *s = r->state;
    if (outcome == FE_QUEUE_FAILED) {
        fv_warn("req %s: submission %s could not be queued or spooled", r->req_id, s->id);
        fe_reply_error(r, 503, "queue_unavailable", "the submission could not be queued; retry later");
        return;
    }
    if (outcome == FE_QUEUE_ID_TAKEN) {
        /* Another submitter (or another deployment) holds the id's claim: the entry queued with
         * the claim is refused by the worker (worker/wk_subid.h), nothing of it is stored. */
        fv_info("req %s: submission id %s is taken; refused with 409", r->req_id, s->id);
        fe_metrics_submission_rejected();
        fe_reply_error(
            r, 409, "id_conflict",
            "this submission id is already used by another submission; send it with a new id");
        return;
    }
    fe_metrics_submission_accepted();
    char body[96];
    int n = snprintf(body, sizeof body, "{\"id\":\"%s\",\"status\":\"queued\"}", s->id);
    fe_reply_text(r, 202, "application/json", body, (size_t)n);
}

/* Queues the submission, claiming its id in the same step (fe_subid.h). dep may be NULL only
 * when !verified (the deployment is unknown to every cache and PostgreSQL cannot be asked): then
 * the worker resolves the survey and validates. dep is borrowed: what is needed of it is copied
 * into the envelope, which fe_queue_submit copies. */
static void enqueue(fe_req *r, const fe_dep_info *dep, bool verified, long long rversion)
{
    submit *s = r->state;
    fv_envelope e = {0};
    memcpy(e.id, s->id, sizeof e.id);
    memcpy(e.survey_id, dep ? dep->survey_id : FV_ENVELOPE_UNKNOWN_SURVEY, sizeof e.survey_id);
    e.survey_version = dep ? dep->version : 0;
    memcpy(e.deployment_id, s->base.dep_id, sizeof e.deployment_id);
    memcpy(e.submitted_by, r->user->id, sizeof e.submitted_by);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    e.received_at_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    e.data = s->data;
    e.data_len = strlen(s->data);
    e.location = s->location;
    e.location_len = s->location ? strlen(s->location) : 0;
    e.collected_at = s->collected_at;
    e.collected_at_len = s->collected_at ? strlen(s->collected_at) : 0;
    e.verified = verified;
    e.rversion = verified ? rversion : -1; /* the worker re-checks it after a newer revocation */
    char key[FE_SUBID_KEY_MAX], value[FE_SUBID_VALUE_MAX];
    bool claim = fe_subid_enabled();
    if (claim) fe_subid_claim_of(s->id, r->user->id, s->base.dep_id, key, value);
    fe_queue_submit(&e, claim ? key : NULL, claim ? value : NULL, fe_cfg.submission_claim_ttl_s, queued,
                    r);
}

static void reply_payload_error(fe_req *r, const char *field, const char *why)
{
    const char *f[] = {field}, *w[] = {why};
    fe_metrics_submission_rejected();
    fe_reply_error_fields(r, 422, "validation_failed", "the submission is invalid", 1, f, w);
}

/* Validates the answers against dep's form; answers 422 and returns false when they fail. An
 * encrypted survey (dep->key_bytes > 0) takes only an envelope (`encrypted`), whose shape is
 * checked against its key (fv_odkcrypt_envelope_check: linear in the body, which max_body_bytes
 * bounds; nothing is decrypted: the server cannot), and a survey in clear only `data`. */
static bool answers_valid(fe_req *r, const fe_dep_info *dep)
{
    submit *s = r->state;
    if (dep->key_bytes > 0 && !s->encrypted) {
        reply_payload_error(r, "data",
                            "this survey is encrypted (it has a public key): send the ODK envelope as "
                            "`encrypted`; answers in clear are refused");
        return false;
    }
    if (dep->key_bytes == 0 && s->encrypted) {
        reply_payload_error(r, "encrypted", "this survey has no public key: send the answers as `data`");
        return false;
    }
    if (s->encrypted) {
        const char *field,
            *why = fv_odkcrypt_envelope_check(fv_json_get(r->body, "encrypted"), dep->key_bytes, &field);
        if (why) {
            reply_payload_error(r, field, why);
            return false;
        }
        return true;
    }
    yajl_val data = fv_json_get(r->body, "data");
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    if (fv_form_validate(dep->form, data, &errs) > 0) {
        fe_metrics_submission_rejected();
        fe_reply_form_errors(r, "the answers are invalid", &errs);
        fv_form_errors_free(&errs);
        return false;
    }
    fv_form_errors_free(&errs);
    return true;
}

/* A closed deployment, or one of an archived survey, refuses submissions (409; checked after the
 * permission, so only its enumerators learn it): answers r and returns true then. */
static bool refused_closed(fe_req *r, const fe_dep_info *dep)
{
    if (!dep->closed && !dep->archived) return false;
    fe_metrics_submission_rejected();
    fe_verdict_reply(r, dep->archived ? "survey_archived" : "deployment_closed", "deployment");
    return true;
}

/* Checks permission and answers against what is known of the deployment, then queues. rversion:
 * the revocation version the permission answer is good at (fv_envelope.h, rversion): the one
 * taken before PostgreSQL was asked for a fresh answer; the current one for a cached or shared
 * answer, which is used only while no revocation of the user newer than its own is known. */
static void submit_checked(fe_req *r, const fe_dep_info *dep, char perm, long long rversion)
{
    if (dep->missing || perm == FE_PERM_HIDDEN) {
        fe_verdict_reply(r, "hidden", "deployment");
        return;
    }
    if (perm != FE_PERM_ENUMERATOR) {
        fe_verdict_reply(r, "forbidden", "deployment");
        return;
    }
    if (refused_closed(r, dep)) return;
    ((fe_submit_base *)r->state)->permitted(r, dep, true, rversion);
}

/* The JSON submission's next step: its answers checked against the form when it is known,
 * then queued. */
static void json_permitted(fe_req *r, const fe_dep_info *dep, bool verified, long long rversion)
{
    if (dep && !answers_valid(r, dep)) return;
    enqueue(r, dep, verified, rversion);
}

/* PostgreSQL cannot be asked and no cache knows whether the caller may submit here (DESIGN
 * section 2): accept the submission marked unverified, within the caller's caps (fe_unverified).
 * The worker checks permission (and, when the form was unknown here too, the answers) before
 * writing, and quarantines what it refuses. */
static void unverified_admitted(int retry_after_s, void *arg)
{
    fe_req *r = arg;
    fe_submit_base *s = r->state;
    if (retry_after_s > 0) {
        fe_reply_error_retry(r, 429, "unverified_limit",
                             "the database is unavailable and this user's submissions that cannot be "
                             "checked now reached their limit; retry later",
                             retry_after_s);
        return;
    }
    fe_dep_info *dep = fe_depcache_dep(s->dep_id, NULL);
    if (dep && dep->missing) {
        fe_verdict_reply(r, "hidden", "deployment");
        return;
    }
    /* known closed (not a permission: the worker decides that; a closed deployment refuses all) */
    if (dep && refused_closed(r, dep)) return;
    fv_info("req %s: database unavailable; accepting a submission to %s unverified", r->req_id,
            s->dep_id);
    s->permitted(r, dep, false, -1);
}

static void submit_unverified(fe_req *r)
{
    fe_submit_base *s = r->state;
    fe_unverified_admit(r->user->id, s->unverified_bytes, unverified_admitted, r);
}

static const char sql_dep_lookup[] =
    "SELECT d.survey_id, s.current_version, sv.definition::text, "
    "       fv_may_submit($2, d.id), fv_sees_for_submit($2, d.id), "
    "       d.closed_at IS NOT NULL, s.archived_at IS NOT NULL, sv.public_key_bytes "
    "FROM deployments d JOIN surveys s ON s.id = d.survey_id "
    "JOIN survey_versions sv ON sv.survey_id = s.id AND sv.version = s.current_version "
    "WHERE d.id = $1";

/* Decides from what this child's caches hold. Stale entries count only when allow_stale
 * (PostgreSQL cannot be asked). Returns true when r was taken care of. */
static bool try_cached(fe_req *r, bool allow_stale)
{
    fe_submit_base *s = r->state;
    bool dfresh = false, pfresh = false;
    fe_dep_info *dep = fe_depcache_dep(s->dep_id, &dfresh);
    if (!dep) return false;
    if (dep->missing) {
        if (!dfresh && !allow_stale) return false;
        submit_checked(r, dep, FE_PERM_HIDDEN, -1); /* dep->missing: 404 */
        return true;
    }
    char perm;
    if (!fe_depcache_perm(s->perm_key, dep, &perm, &pfresh) || (!(dfresh && pfresh) && !allow_stale))
        return false;
    submit_checked(r, dep, perm, fe_revoke_version()); /* dep is borrowed from the cache: used at once */
    return true;
}


static void dep_looked_up(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    fe_submit_base *s = r->state;
    if (res->status != FE_PG_OK) {
        /* PostgreSQL down or hung: what we knew recently still serves, else the submission is
         * accepted unverified (DESIGN section 2). */
        if (res->status != FE_PG_SQL) {
            if (!try_cached(r, true)) submit_unverified(r);
            return;
        }
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_dep_info *missing = fe_depcache_remember_missing(s->dep_id);
        if (!missing) {
            fe_reply_oom(r);
            return;
        }
        submit_checked(r, missing, FE_PERM_HIDDEN, -1); /* missing: 404 */
        return;
    }
    fe_dep_info *dep = fe_dep_info_from_definition(
        PQgetvalue(res->res, 0, 0), atoi(PQgetvalue(res->res, 0, 1)), PQgetvalue(res->res, 0, 2),
        PQgetvalue(res->res, 0, 5)[0] == 't', PQgetvalue(res->res, 0, 6)[0] == 't', s->rversion,
        PQgetisnull(res->res, 0, 7) ? 0 : atoi(PQgetvalue(res->res, 0, 7)));
    if (!dep) {
        fv_error("req %s: deployment %s: stored form definition does not compile (or out of memory)",
                 r->req_id, s->dep_id);
        fe_reply_error(r, 500, "internal", "the survey's form cannot be loaded");
        return;
    }
    char perm = PQgetvalue(res->res, 0, 3)[0] == 't'   ? FE_PERM_ENUMERATOR
                : PQgetvalue(res->res, 0, 4)[0] == 't' ? FE_PERM_VISIBLE
                                                       : FE_PERM_HIDDEN;
    fe_depcache_share(s->dep_id, r->user->id, dep, PQgetvalue(res->res, 0, 2),
                      (size_t)PQgetlength(res->res, 0, 2), perm);
    fe_depcache_remember(s->dep_id, dep, s->perm_key, perm, s->rversion);
    submit_checked(r, dep, perm, s->rversion); /* dep is borrowed from the cache: used synchronously */
}

static void ask_pg(fe_req *r)
{
    fe_submit_base *s = r->state;
    const char *params[] = {s->dep_id, r->user->id};
    s->rversion = fe_revoke_version(); /* before asking: see fe_revoke.h */
    fe_pg_query(sql_dep_lookup, 2, params, dep_looked_up, r);
}


static void redis_looked_up(redisReply *reply, const char *error, void *arg);

/* The reply to GET of the deployment: kept until the HGET of the permission (pipelined right
 * behind it on the same connection, so always answered next). */
static void redis_dep_got(redisReply *reply, const char *error, void *arg)
{
    fe_req *r = arg;
    fe_submit_base *s = r->state;
    free(s->shared_dep);
    s->shared_dep = reply && reply->type == REDIS_REPLY_STRING ? strndup(reply->str, reply->len) : NULL;
    if (s->ask_pg_after_get) redis_looked_up(NULL, "HGET not sent", r);
}

static void redis_looked_up(redisReply *reply, const char *error, void *arg)
{
    fe_req *r = arg;
    fe_submit_base *s = r->state;
    if (s->shared_dep) {
        fe_dep_info *dep = fe_dep_info_from_shared(s->dep_id, s->shared_dep, strlen(s->shared_dep));
        if (dep && !fe_depcache_dep_current(s->dep_id, dep->survey_id, dep->rversion)) {
            fe_dep_info_free(dep); /* shared before the deployment or its survey changed */
            dep = NULL;
        }
        char perm;
        long long version;
        if (dep && reply && reply->type == REDIS_REPLY_STRING &&
            fe_depcache_shared_perm(s->dep_id, r->user->id, dep->survey_id, reply->str, reply->len,
                                    &perm, &version)) {
            fe_depcache_remember(s->dep_id, dep, s->perm_key, perm, version);
            submit_checked(r, dep, perm,
                           fe_revoke_version()); /* borrowed from the cache: used at once */
            return;
        }
        if (dep) {
            /* The form is known, the caller's permission is not: keep the form (it lets an
             * unverified submission still be validated here) and ask PostgreSQL. */
            fe_depcache_remember(s->dep_id, dep, NULL, 0, -1);
        }
    }
    ask_pg(r);
}

void fe_submit_response(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "deployment")) return;
    const char *bad[5], *why[5];
    size_t nbad = 0;
    yajl_val id = fv_json_get(r->body, "id"), data = fv_json_get(r->body, "data");
    yajl_val enc = fv_json_get(r->body, "encrypted");
    if (enc && YAJL_IS_NULL(enc)) enc = NULL;
    yajl_val loc = fv_json_get(r->body, "location"), coll = fv_json_get(r->body, "collected_at");
    if (id && !YAJL_IS_NULL(id) && !(YAJL_IS_STRING(id) && fv_id_valid(id->u.string)))
        bad[nbad] = "id", why[nbad++] = "must be a UUID";
    if (enc && data) {
        bad[nbad] = "encrypted",
        why[nbad++] = "give either data (answers) or encrypted (an envelope), not both";
    } else if (enc) {
        /* the shape now; the key length once the survey's key is known (answers_valid) */
        const char *field, *ewhy = fv_odkcrypt_envelope_check(enc, 0, &field);
        if (ewhy) bad[nbad] = field, why[nbad++] = ewhy;
        if (loc && !YAJL_IS_NULL(loc))
            bad[nbad] = "location",
            why[nbad++] =
                "an encrypted submission carries its location inside the envelope, never in clear";
    } else if (!data || !YAJL_IS_OBJECT(data)) {
        bad[nbad] = "data", why[nbad++] = "required: an object of answers (or encrypted: an envelope)";
    }
    fv_geopoint geo;
    const char *geo_why = loc && !YAJL_IS_NULL(loc) && !enc ? fv_check_geopoint(loc, &geo) : NULL;
    if (geo_why) bad[nbad] = "location", why[nbad++] = geo_why;
    if (coll && !YAJL_IS_NULL(coll) && !(YAJL_IS_STRING(coll) && fv_check_datetime(coll->u.string)))
        bad[nbad] = "collected_at", why[nbad++] = "must be an RFC 3339 date-time";
    if (nbad) {
        fe_metrics_submission_rejected();
        fe_reply_error_fields(r, 422, "validation_failed", "the submission is invalid", nbad, bad, why);
        return;
    }

    submit *s = calloc(1, sizeof *s);
    if (!s) {
        fe_reply_oom(r);
        return;
    }
    r->state = s;
    r->state_free = submit_free;
    if (id && YAJL_IS_STRING(id)) {
        for (int i = 0; i < FV_UUID_STRLEN; i++)
            s->id[i] = (char)tolower((unsigned char)id->u.string[i]);
    } else {
        fv_id_new(s->id);
    }

    fv_jgen *j = fv_jgen_new();
    if (j) {
        s->encrypted = enc != NULL;
        fv_jgen_tree(j, enc ? enc : data);       /* the envelope is stored as received (ciphertext) */
        const char *text = fv_jgen_buf(j, NULL); /* NULL only when out of memory: data is shallow */
        s->data = text ? strdup(text) : NULL;
        if (!enc && loc && YAJL_IS_OBJECT(loc)) s->location = fv_geopoint_json(&geo);
        fv_jgen_free(j);
    }
    if (coll && YAJL_IS_STRING(coll)) s->collected_at = strdup(coll->u.string);
    if (!s->data || (!enc && loc && YAJL_IS_OBJECT(loc) && !s->location)) {
        fe_reply_oom(r);
        return;
    }
    s->base.unverified_bytes = strlen(s->data) + (s->location ? strlen(s->location) : 0);
    fe_submit_lookup(r, &s->base, json_permitted);
}

void fe_submit_lookup(fe_req *r, fe_submit_base *s, fe_submit_permitted_fn permitted)
{
    s->permitted = permitted;
    for (int i = 0; i < FV_UUID_STRLEN; i++) s->dep_id[i] = (char)tolower((unsigned char)r->param[0][i]);
    s->dep_id[FV_UUID_STRLEN] = '\0';
    fe_depcache_perm_key(r->user->id, s->dep_id, s->perm_key);

    /* 1. this child's caches: fresh, or stale while PostgreSQL is down (no waiting on it) */
    if (try_cached(r, !fe_pg_up())) return;
    /* 2. the lookups shared through Redis, when this child knows nothing of the deployment or
     *    PostgreSQL cannot be asked; 3. PostgreSQL */
    bool known = fe_depcache_dep(s->dep_id, NULL) != NULL;
    if ((!known || !fe_pg_up()) && fe_redis_ready()) {
        char dep_key[FE_DEPCACHE_KEY_MAX], perm_key[FE_DEPCACHE_KEY_MAX];
        fe_depcache_redis_keys(s->dep_id, r->user->id, dep_key, perm_key);
        const char *get[] = {"GET", dep_key};
        size_t glens[] = {3, strlen(dep_key)};
        const char *hget[] = {"HGET", perm_key, s->dep_id};
        size_t hlens[] = {4, strlen(perm_key), strlen(s->dep_id)};
        if (fe_redis_command(2, get, glens, redis_dep_got, r) == 0) {
            /* Either both callbacks run or, when the HGET cannot be sent, the GET's reply is
             * still delivered first and PostgreSQL is asked right after it. */
            if (fe_redis_command(3, hget, hlens, redis_looked_up, r) == 0) return;
            s->ask_pg_after_get = true;
            return;
        }
    }
    ask_pg(r);
}

/* Responses: submit (validated, queued to Redis, 202), read one, list a survey's responses (both
 * filtered by the reading rule of migration 004), edit or resubmit, delete, approve, reject. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "fe_access.h"
#include "fe_verdict.h"
#include "fe_cache.h"
#include "fe_config.h"
#include "fe_handlers.h"
#include "fe_metrics.h"
#include "fe_queue.h"
#include "fe_redis.h"
#include "fe_revoke.h"
#include "fv_envelope.h"
#include "fv_form.h"
#include "fv_log.h"
#include "fv_settings.h"

#define FE_NEGATIVE_TTL_S 5

/* ---- the deployment cache: what a submission needs, kept out of PostgreSQL's way ---- */

/* A deployment's survey and compiled form; `missing` marks a deployment that does not exist.
 * Owned by dep_cache. */
typedef struct dep_info {
    bool missing;
    char survey_id[FV_UUID_STRLEN + 1];
    int version;
    fv_form *form;
} dep_info;

/* A user's permission to submit to a deployment, as one character (also the value shared in
 * Redis): FE_PERM_ENUMERATOR, FE_PERM_VISIBLE (sees the deployment, may not submit: 403) or
 * FE_PERM_HIDDEN (may not see it at all: 404, as if it did not exist). */
#define FE_PERM_ENUMERATOR '1'
#define FE_PERM_VISIBLE '0'
#define FE_PERM_HIDDEN 'h'

/* Owned by perm_cache. */
typedef struct perm_info {
    char perm; /* FE_PERM_* */
} perm_info;

static fe_cache *dep_cache, *perm_cache;

static void dep_info_free(void *p)
{
    dep_info *d = p;
    fv_form_free(d->form);
    free(d);
}

/* A user's memberships or roles changed: forget their cached permissions in this child (keys
 * are "<user id>:<deployment id>"; the writer deleted the Redis-shared ones). */
static void permissions_changed(const char *user_id)
{
    char prefix[FV_UUID_STRLEN + 2];
    snprintf(prefix, sizeof prefix, "%s:", user_id);
    fe_cache_del_prefix(perm_cache, prefix);
}

int fe_responses_init(void)
{
    dep_cache = fe_cache_new(10000, dep_info_free);
    perm_cache = fe_cache_new(200000, free);
    if (!dep_cache || !perm_cache) return -1;
    fe_revoke_on(FE_REVOKE_PERMISSIONS, permissions_changed);
    return 0;
}

void fe_responses_shutdown(void)
{
    fe_cache_free(dep_cache);
    fe_cache_free(perm_cache);
    dep_cache = perm_cache = NULL;
}


/* ---- submission ---- */

/* State of one submission: owned by the request. */
typedef struct submit {
    char id[FV_UUID_STRLEN + 1];
    char dep_id[FV_UUID_STRLEN + 1];
    char perm_key[2 * FV_UUID_STRLEN + 2];
    char *data;     /* owned: the answers as JSON */
    char *location; /* owned: JSON or NULL */
    char *collected_at; /* owned or NULL */
    char *shared_dep;   /* owned or NULL: the deployment as shared in Redis, between two replies */
    bool ask_pg_after_get; /* the HGET could not be sent: ask PostgreSQL once the GET returns */
} submit;

static void submit_free(void *p)
{
    submit *s = p;
    free(s->data);
    free(s->location);
    free(s->collected_at);
    free(s->shared_dep);
    free(s);
}

/* RFC 3339 date-time: 2024-05-01T10:20:30(.fraction)(Z|+hh:mm|-hh:mm), a real calendar date and
 * an offset PostgreSQL accepts (what passes here must never be refused by the worker's INSERT). */
static bool rfc3339_ok(const char *s)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, n = 0;
    if (strlen(s) > 40) return false;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return false;
    for (int i = 0; i < 19; i++)
        if ((i == 4 || i == 7) ? s[i] != '-' : i == 10 ? s[i] != 'T' : (i == 13 || i == 16) ? s[i] != ':'
                                                                     : !isdigit((unsigned char)s[i]))
            return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 ||
        sec > 59 || y < 1900)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return false;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p == 'Z' || *p == 'z') return p[1] == '\0';
    if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
        p[3] == ':' && isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5]) && p[6] == '\0')
        return (p[1] - '0') * 10 + (p[2] - '0') <= 14 && (p[4] - '0') * 10 + (p[5] - '0') <= 59;
    return false;
}

static bool number_in(yajl_val v, double lo, double hi, double *out)
{
    if (!v || !YAJL_IS_NUMBER(v) || !YAJL_IS_DOUBLE(v)) return false;
    double d = YAJL_GET_DOUBLE(v);
    if (!(d >= lo && d <= hi)) return false;
    *out = d;
    return true;
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
    fe_metrics_submission_accepted();
    char body[96];
    int n = snprintf(body, sizeof body, "{\"id\":\"%s\",\"status\":\"queued\"}", s->id);
    fe_reply_text(r, 202, "application/json", body, (size_t)n);
}

/* Validates the answers against the deployment's form and queues the submission. */
/* Queues the submission. dep may be NULL only when !verified (the deployment is unknown to every
 * cache and PostgreSQL cannot be asked): then the worker resolves the survey and validates. */
static void enqueue(fe_req *r, const dep_info *dep, bool verified)
{
    submit *s = r->state;
    fv_envelope e = {0};
    memcpy(e.id, s->id, sizeof e.id);
    if (dep) {
        memcpy(e.survey_id, dep->survey_id, sizeof e.survey_id);
        e.survey_version = dep->version;
    } else {
        memcpy(e.survey_id, FV_ENVELOPE_UNKNOWN_SURVEY, sizeof e.survey_id);
        e.survey_version = 0;
    }
    memcpy(e.deployment_id, s->dep_id, sizeof e.deployment_id);
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
    fe_queue_submit(&e, queued, r);
}

/* Validates the answers against dep's form; answers 422 and returns false when they fail. */
static bool answers_valid(fe_req *r, const dep_info *dep)
{
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

/* Checks permission and answers against what is known of the deployment, then queues. */
static void submit_checked(fe_req *r, const dep_info *dep, char perm)
{
    if (dep->missing || perm == FE_PERM_HIDDEN) {
        fe_reply_error(r, 404, "not_found", "no such deployment");
        return;
    }
    if (perm != FE_PERM_ENUMERATOR) {
        fe_reply_error(r, 403, "forbidden", "you are not an enumerator of this deployment");
        return;
    }
    if (answers_valid(r, dep)) enqueue(r, dep, true);
}

/* PostgreSQL cannot be asked and no cache knows whether the caller may submit here (DESIGN
 * section 2): accept the submission marked unverified. The worker checks permission (and, when
 * the form was unknown here too, the answers) before writing, and quarantines what it refuses. */
static void submit_unverified(fe_req *r)
{
    submit *s = r->state;
    dep_info *dep = fe_cache_get(dep_cache, s->dep_id, fe_cache_now(), NULL);
    if (dep && dep->missing) {
        fe_reply_error(r, 404, "not_found", "no such deployment");
        return;
    }
    if (dep && !answers_valid(r, dep)) return;
    fv_info("req %s: database unavailable; accepting submission %s unverified", r->req_id, s->id);
    enqueue(r, dep, false);
}

static const char sql_dep_lookup[] =
    "SELECT d.survey_id, s.current_version, sv.definition::text, "
    "       fv_has_deployment_role($2, d.id, 'enumerator'), fv_can_see_deployment($2, d.id) "
    "FROM deployments d JOIN surveys s ON s.id = d.survey_id "
    "JOIN survey_versions sv ON sv.survey_id = s.id AND sv.version = s.current_version "
    "WHERE d.id = $1";

/* Decides from what this child's caches hold. Stale entries count only when allow_stale
 * (PostgreSQL cannot be asked). Returns true when r was taken care of. */
static bool try_cached(fe_req *r, bool allow_stale)
{
    submit *s = r->state;
    time_t now = fe_cache_now();
    bool dfresh = false, pfresh = false;
    dep_info *dep = fe_cache_get(dep_cache, s->dep_id, now, &dfresh);
    if (!dep) return false;
    if (dep->missing) {
        if (!dfresh && !allow_stale) return false;
        submit_checked(r, dep, FE_PERM_HIDDEN); /* dep->missing: 404 */
        return true;
    }
    perm_info *perm = fe_cache_get(perm_cache, s->perm_key, now, &pfresh);
    if (!perm || (!(dfresh && pfresh) && !allow_stale)) return false;
    submit_checked(r, dep, perm->perm); /* dep is borrowed from the cache: used at once */
    return true;
}

/* Compiles a stored definition; NULL when it does not (it was checked when stored). */
static fv_form *compile_definition(const char *text)
{
    char err[128];
    yajl_val def = fv_json_parse(text, err, sizeof err);
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    fv_form *form = def ? fv_form_compile(def, &errs) : NULL;
    fv_form_errors_free(&errs);
    if (def) yajl_tree_free(def);
    return form;
}

/* Caches a deployment (takes dep) and the caller's permission on it in this child. */
static void remember(const submit *s, dep_info *dep, char perm_c)
{
    time_t now = fe_cache_now();
    perm_info *perm = calloc(1, sizeof *perm);
    if (perm) {
        perm->perm = perm_c;
        fe_cache_put(perm_cache, s->perm_key, perm, now, fe_cfg.deployment_cache_ttl_s, fe_cfg.cache_stale_s);
    }
    fe_cache_put(dep_cache, s->dep_id, dep, now, fe_cfg.deployment_cache_ttl_s, fe_cfg.cache_stale_s);
}

/* Redis keys of the shared lookups: the deployment's form, and one hash per user mapping
 * deployment id -> FE_PERM_* ("1", "0" or "h"), so a membership change deletes one key
 * (fe_responses_forget_user_shared). */
static void redis_keys(const submit *s, const char *user_id, char *dep_key, size_t dlen,
                       char *perm_key, size_t plen)
{
    snprintf(dep_key, dlen, "fv:cache:deployment:%s", s->dep_id);
    snprintf(perm_key, plen, "fv:cache:enumerator:%s", user_id);
}

void fe_responses_forget_user_shared(const char *user_id)
{
    char key[96];
    snprintf(key, sizeof key, "fv:cache:enumerator:%s", user_id);
    const char *argv[] = {"DEL", key};
    size_t lens[] = {3, strlen(key)};
    fe_redis_fire(2, argv, lens);
}

/* Shares a PostgreSQL lookup with the other children and front ends through Redis. */
static void share(const submit *s, const char *user_id, const char *survey_id, int version,
                  const char *definition, size_t deflen, char perm)
{
    char dep_key[96], perm_key[128];
    redis_keys(s, user_id, dep_key, sizeof dep_key, perm_key, sizeof perm_key);
    fv_jgen *j = fv_jgen_new();
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "survey_id");
    fv_jgen_str(j, survey_id);
    fv_jgen_key(j, "version");
    fv_jgen_int(j, version);
    fv_jgen_key(j, "definition");
    fv_jgen_raw(j, definition, deflen);
    fv_jgen_map_close(j);
    size_t len;
    const char *json = fv_jgen_buf(j, &len);
    fe_redis_set_ex(dep_key, json, len, fe_cfg.redis_cache_ttl_s);
    fv_jgen_free(j);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", fe_cfg.redis_cache_ttl_s);
    const char value[2] = {perm, '\0'};
    const char *hset[] = {"HSET", perm_key, s->dep_id, value};
    size_t hlens[] = {4, strlen(perm_key), strlen(s->dep_id), 1};
    fe_redis_fire(4, hset, hlens);
    const char *expire[] = {"EXPIRE", perm_key, ttl};
    size_t elens[] = {6, strlen(perm_key), strlen(ttl)};
    fe_redis_fire(3, expire, elens);
}

static void dep_looked_up(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    submit *s = r->state;
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
    dep_info *dep = calloc(1, sizeof *dep);
    if (!dep) {
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }
    if (PQntuples(res->res) != 1) {
        dep->missing = true;
        fe_cache_put(dep_cache, s->dep_id, dep, fe_cache_now(), FE_NEGATIVE_TTL_S, FE_NEGATIVE_TTL_S);
        submit_checked(r, dep, FE_PERM_HIDDEN); /* dep->missing: 404 */
        return;
    }
    snprintf(dep->survey_id, sizeof dep->survey_id, "%s", PQgetvalue(res->res, 0, 0));
    dep->version = atoi(PQgetvalue(res->res, 0, 1));
    dep->form = compile_definition(PQgetvalue(res->res, 0, 2));
    if (!dep->form) {
        fv_error("deployment %s: stored form definition does not compile", s->dep_id);
        dep_info_free(dep);
        fe_reply_error(r, 500, "internal", "the survey's form cannot be loaded");
        return;
    }
    char perm = PQgetvalue(res->res, 0, 3)[0] == 't'   ? FE_PERM_ENUMERATOR
                : PQgetvalue(res->res, 0, 4)[0] == 't' ? FE_PERM_VISIBLE
                                                       : FE_PERM_HIDDEN;
    share(s, r->user->id, dep->survey_id, dep->version, PQgetvalue(res->res, 0, 2),
          (size_t)PQgetlength(res->res, 0, 2), perm);
    remember(s, dep, perm);
    submit_checked(r, dep, perm); /* dep is borrowed from the cache: used synchronously */
}

static void ask_pg(fe_req *r)
{
    submit *s = r->state;
    const char *params[] = {s->dep_id, r->user->id};
    fe_pg_query(sql_dep_lookup, 2, params, dep_looked_up, r);
}

/* Builds a deployment from its shared JSON; NULL when malformed. Caller owns the result. */
static dep_info *dep_from_json(const char *json)
{
    char err[64];
    yajl_val v = fv_json_parse(json, err, sizeof err);
    const char *survey_id = fv_json_get_str(v, "survey_id");
    yajl_val version = fv_json_get(v, "version"), def = fv_json_get(v, "definition");
    dep_info *dep = calloc(1, sizeof *dep);
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    if (dep && survey_id && fv_id_valid(survey_id) && version && YAJL_IS_INTEGER(version) &&
        YAJL_GET_INTEGER(version) >= 1 && def && (dep->form = fv_form_compile(def, &errs))) {
        snprintf(dep->survey_id, sizeof dep->survey_id, "%s", survey_id);
        dep->version = (int)YAJL_GET_INTEGER(version);
    } else {
        free(dep);
        dep = NULL;
    }
    fv_form_errors_free(&errs);
    if (v) yajl_tree_free(v);
    return dep;
}

static void redis_looked_up(redisReply *reply, const char *error, void *arg);

/* The reply to GET of the deployment: kept until the HGET of the permission (pipelined right
 * behind it on the same connection, so always answered next). */
static void redis_dep_got(redisReply *reply, const char *error, void *arg)
{
    fe_req *r = arg;
    submit *s = r->state;
    free(s->shared_dep);
    s->shared_dep = reply && reply->type == REDIS_REPLY_STRING ? strdup(reply->str) : NULL;
    if (s->ask_pg_after_get) redis_looked_up(NULL, "HGET not sent", r);
}

static void redis_looked_up(redisReply *reply, const char *error, void *arg)
{
    fe_req *r = arg;
    submit *s = r->state;
    if (s->shared_dep) {
        dep_info *dep = dep_from_json(s->shared_dep);
        if (dep && reply && reply->type == REDIS_REPLY_STRING && reply->len == 1 &&
            (reply->str[0] == FE_PERM_ENUMERATOR || reply->str[0] == FE_PERM_VISIBLE ||
             reply->str[0] == FE_PERM_HIDDEN)) {
            char perm = reply->str[0];
            remember(s, dep, perm);
            submit_checked(r, dep, perm); /* borrowed from the cache: used at once */
            return;
        }
        if (dep) {
            /* The form is known, the caller's permission is not: keep the form (it lets an
             * unverified submission still be validated here) and ask PostgreSQL. */
            fe_cache_put(dep_cache, s->dep_id, dep, fe_cache_now(), fe_cfg.deployment_cache_ttl_s,
                         fe_cfg.cache_stale_s);
        }
    }
    ask_pg(r);
}

void fe_responses_submit(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such deployment");
        return;
    }
    const char *bad[4], *why[4];
    size_t nbad = 0;
    yajl_val id = fv_json_get(r->body, "id"), data = fv_json_get(r->body, "data");
    yajl_val loc = fv_json_get(r->body, "location"), coll = fv_json_get(r->body, "collected_at");
    if (id && !YAJL_IS_NULL(id) && !(YAJL_IS_STRING(id) && fv_id_valid(id->u.string)))
        bad[nbad] = "id", why[nbad++] = "must be a UUID";
    if (!data || !YAJL_IS_OBJECT(data)) bad[nbad] = "data", why[nbad++] = "required: an object of answers";
    double lat = 0, lon = 0, acc = 0;
    yajl_val accv = loc ? fv_json_get(loc, "accuracy") : NULL;
    if (loc && !YAJL_IS_NULL(loc) &&
        (!YAJL_IS_OBJECT(loc) || !number_in(fv_json_get(loc, "lat"), -90, 90, &lat) ||
         !number_in(fv_json_get(loc, "lon"), -180, 180, &lon) ||
         (accv && !YAJL_IS_NULL(accv) && !number_in(accv, 0, 1e7, &acc))))
        bad[nbad] = "location", why[nbad++] = "must be {lat: -90..90, lon: -180..180, accuracy?: >= 0}";
    if (coll && !YAJL_IS_NULL(coll) && !(YAJL_IS_STRING(coll) && rfc3339_ok(coll->u.string)))
        bad[nbad] = "collected_at", why[nbad++] = "must be an RFC 3339 date-time";
    if (nbad) {
        fe_metrics_submission_rejected();
        fe_reply_error_fields(r, 422, "validation_failed", "the submission is invalid", nbad, bad, why);
        return;
    }

    submit *s = calloc(1, sizeof *s);
    if (!s) {
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }
    r->state = s;
    r->state_free = submit_free;
    if (id && YAJL_IS_STRING(id)) {
        for (int i = 0; i < FV_UUID_STRLEN; i++) s->id[i] = (char)tolower((unsigned char)id->u.string[i]);
    } else {
        fv_id_new(s->id);
    }
    for (int i = 0; i < FV_UUID_STRLEN; i++) s->dep_id[i] = (char)tolower((unsigned char)r->param[0][i]);
    snprintf(s->perm_key, sizeof s->perm_key, "%s:%s", r->user->id, s->dep_id);

    fv_jgen *j = fv_jgen_new();
    if (j) {
        fv_jgen_tree(j, data);
        s->data = strdup(fv_jgen_buf(j, NULL));
        if (loc && YAJL_IS_OBJECT(loc)) {
            fv_jgen_free(j);
            j = fv_jgen_new();
            if (j) {
                fv_jgen_map_open(j);
                fv_jgen_key(j, "lat");
                fv_jgen_double(j, lat);
                fv_jgen_key(j, "lon");
                fv_jgen_double(j, lon);
                if (accv && !YAJL_IS_NULL(accv)) {
                    fv_jgen_key(j, "accuracy");
                    fv_jgen_double(j, acc);
                }
                fv_jgen_map_close(j);
                s->location = strdup(fv_jgen_buf(j, NULL));
            }
        }
        fv_jgen_free(j);
    }
    if (coll && YAJL_IS_STRING(coll)) s->collected_at = strdup(coll->u.string);
    if (!s->data) {
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }

    /* 1. this child's caches: fresh, or stale while PostgreSQL is down (no waiting on it) */
    if (try_cached(r, !fe_pg_up())) return;
    /* 2. the lookups shared through Redis, when this child knows nothing of the deployment or
     *    PostgreSQL cannot be asked; 3. PostgreSQL */
    bool known = fe_cache_get(dep_cache, s->dep_id, fe_cache_now(), NULL) != NULL;
    if ((!known || !fe_pg_up()) && fe_redis_ready()) {
        char dep_key[96], perm_key[128];
        redis_keys(s, r->user->id, dep_key, sizeof dep_key, perm_key, sizeof perm_key);
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

/* ---- reading ---- */

/* Columns of a response as read, in order (write_response). DATA is the answers as the caller
 * may see them: whole for survey admins, without the confidential questions for everybody else
 * (fv_confidential_names of the version answered). */
#define RESPONSE_COLS(DATA)                                                                    \
    "r.id, r.survey_id, r.deployment_id, r.status, (" DATA ")::text, r.location::text, "      \
    "r.submitted_by, fv_ts(r.created_at), fv_ts(r.updated_at), r.version, fv_ts(r.collected_at), " \
    "r.survey_version, r.stage, r.rejection_message"
/* The answers for a caller who is survey admin when ADMIN is true. */
#define MASKED_DATA(ADMIN)                                                                     \
    "CASE WHEN " ADMIN " THEN r.data ELSE r.data - (SELECT fv_confidential_names(v.definition) " \
    "FROM survey_versions v WHERE v.survey_id = r.survey_id AND v.version = r.survey_version) END"

/* Writes the response whose RESPONSE_COLS start at column base of row. */
static void write_response_at(fv_jgen *j, PGresult *p, int row, int base)
{
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, PQgetvalue(p, row, base + 0));
    fv_jgen_key(j, "survey_id");
    fv_jgen_str(j, PQgetvalue(p, row, base + 1));
    fv_jgen_key(j, "survey_version");
    fv_jgen_int(j, atoll(PQgetvalue(p, row, base + 11)));
    fv_jgen_key(j, "deployment_id");
    fv_jgen_str(j, PQgetvalue(p, row, base + 2));
    fv_jgen_key(j, "status");
    fv_jgen_str(j, PQgetvalue(p, row, base + 3));
    fv_jgen_key(j, "stage");
    fv_jgen_int(j, atoll(PQgetvalue(p, row, base + 12)));
    if (!strcmp(PQgetvalue(p, row, base + 3), "rejected")) {
        fv_jgen_key(j, "rejection_message");
        fv_jgen_str(j, PQgetisnull(p, row, base + 13) ? NULL : PQgetvalue(p, row, base + 13));
    }
    fv_jgen_key(j, "data");
    fv_jgen_raw(j, PQgetvalue(p, row, base + 4), (size_t)PQgetlength(p, row, base + 4));
    fv_jgen_key(j, "location");
    if (PQgetisnull(p, row, base + 5))
        fv_jgen_null(j);
    else
        fv_jgen_raw(j, PQgetvalue(p, row, base + 5), (size_t)PQgetlength(p, row, base + 5));
    fv_jgen_key(j, "submitted_by");
    fv_jgen_str(j, PQgetvalue(p, row, base + 6));
    fv_jgen_key(j, "collected_at");
    fv_jgen_str(j, PQgetisnull(p, row, base + 10) ? NULL : PQgetvalue(p, row, base + 10));
    fv_jgen_key(j, "created_at");
    fv_jgen_str(j, PQgetvalue(p, row, base + 7));
    fv_jgen_key(j, "updated_at");
    fv_jgen_str(j, PQgetvalue(p, row, base + 8));
    fv_jgen_key(j, "version");
    fv_jgen_int(j, atoll(PQgetvalue(p, row, base + 9)));
    fv_jgen_map_close(j);
}

static void write_response(fv_jgen *j, PGresult *p, int row)
{
    write_response_at(j, p, row, 0);
}

/* The reading rule (fv_can_read_response): survey admins and managers any status, approvers of
 * stage k pending at k and final, viewers final, enumerators their own; deleted ones nobody. */
static const char sql_response_get[] =
    "SELECT " RESPONSE_COLS(MASKED_DATA("COALESCE(fv_survey_role($2, r.survey_id) = 'admin', false)"))
    " FROM responses r WHERE r.id = $1 AND fv_can_read_response($2, r.id)";

static void response_got(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_reply_error(r, 404, "not_found", "no such response");
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    write_response(j, res->res, 0);
    fe_reply_gen_send(r, 200, j);
}

void fe_responses_get(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such response");
        return;
    }
    const char *params[] = {r->param[0], r->user->id};
    fe_pg_query(sql_response_get, 2, params, response_got, r);
}

/* State of one listing: owned by the request. */
typedef struct list_state {
    int limit;
} list_state;

/* The caller's access to each deployment of the survey is computed once (fv_deployment_access)
 * and every row is filtered by the reading rule (fv_response_visible), in SQL. */
static const char sql_response_list[] =
    "WITH a AS MATERIALIZED (SELECT d.id, fv_deployment_access($2, d.id) AS acc "
    "                        FROM deployments d WHERE d.survey_id = $1), "
    "     adm AS MATERIALIZED (SELECT COALESCE(fv_survey_role($2, $1) = 'admin', false) AS yes) "
    "SELECT " RESPONSE_COLS(MASKED_DATA("adm.yes")) " FROM a JOIN responses r ON r.deployment_id = a.id, adm "
    "WHERE r.survey_id = $1 "
    "  AND fv_response_visible(a.acc, $2, r.submitted_by, r.status, r.stage, r.deleted_at) "
    "  AND ($3::uuid IS NULL OR r.deployment_id = $3::uuid) "
    "  AND ($4::text IS NULL OR r.status = $4) "
    "  AND ($5::timestamptz IS NULL OR (r.created_at, r.id) > ($5::timestamptz, $6::uuid)) "
    "ORDER BY r.created_at, r.id LIMIT $7";

/* An empty page: the survey exists and the caller may see it (else 404). */
static const char sql_survey_exists[] = "SELECT 1 FROM surveys WHERE id = $1 AND fv_can_see_survey($2, id)";

static void survey_checked(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) == 0) {
        fe_reply_error(r, 404, "not_found", "no such survey");
        return;
    }
    static const char empty[] = "{\"items\":[],\"next\":null}";
    fe_reply_text(r, 200, "application/json", empty, sizeof empty - 1);
}

/* The cursor is opaque to clients: hex of "<created_at>|<id>" of the last row returned. */
static void cursor_encode(const char *ts, const char *id, char *out, size_t outlen)
{
    char raw[128];
    snprintf(raw, sizeof raw, "%s|%s", ts, id);
    size_t o = 0;
    for (const char *p = raw; *p && o + 2 < outlen; p++) o += (size_t)snprintf(out + o, outlen - o, "%02x", (unsigned char)*p);
    out[o] = '\0';
}

static bool cursor_decode(const char *c, char *ts, size_t tslen, char *id)
{
    char raw[128];
    size_t n = strlen(c);
    if (n == 0 || n % 2 || n / 2 >= sizeof raw) return false;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)c[2 * i]) || !isxdigit((unsigned char)c[2 * i + 1]) ||
            sscanf(c + 2 * i, "%2x", &v) != 1)
            return false;
        raw[i] = (char)v;
    }
    raw[n / 2] = '\0';
    char *bar = strchr(raw, '|');
    if (!bar || !fv_id_valid(bar + 1)) return false;
    *bar = '\0';
    if (!rfc3339_ok(raw) || strlen(raw) >= tslen) return false;
    snprintf(ts, tslen, "%s", raw);
    memcpy(id, bar + 1, FV_UUID_STRLEN + 1);
    return true;
}

static void responses_listed(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    list_state *ls = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    int n = PQntuples(p);
    if (n == 0) {
        const char *params[] = {r->param[0], r->user->id};
        fe_pg_query(sql_survey_exists, 2, params, survey_checked, r);
        return;
    }
    bool more = n > ls->limit;
    if (more) n = ls->limit;
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "items");
    fv_jgen_array_open(j);
    for (int i = 0; i < n; i++) write_response(j, p, i);
    fv_jgen_array_close(j);
    fv_jgen_key(j, "next");
    if (more) {
        char cur[300];
        cursor_encode(PQgetvalue(p, n - 1, 7), PQgetvalue(p, n - 1, 0), cur, sizeof cur);
        fv_jgen_str(j, cur);
    } else {
        fv_jgen_null(j);
    }
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}

void fe_responses_list(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such survey");
        return;
    }
    char *dep = fe_query_param(r, "deployment"), *status = fe_query_param(r, "status");
    char *after = fe_query_param(r, "after"), *limit_s = fe_query_param(r, "limit");
    const char *bad[4], *why[4];
    size_t nbad = 0;
    int limit = fe_list_limit(limit_s);
    char ts[64] = "", cid[FV_UUID_STRLEN + 1] = "";
    if (dep && !fv_id_valid(dep)) bad[nbad] = "deployment", why[nbad++] = "must be a UUID";
    if (status && strcmp(status, "pending") && strcmp(status, "final") && strcmp(status, "rejected"))
        bad[nbad] = "status", why[nbad++] = "must be pending, final or rejected";
    if (after && !cursor_decode(after, ts, sizeof ts, cid))
        bad[nbad] = "after", why[nbad++] = "not a cursor this server returned";
    if (limit < 0) bad[nbad] = "limit", why[nbad++] = FE_LIST_LIMIT_REASON;
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", nbad, bad, why);
    } else {
        list_state *ls = calloc(1, sizeof *ls);
        if (!ls) {
            fe_reply_error(r, 503, "overloaded", "out of memory");
        } else {
            ls->limit = limit;
            r->state = ls;
            r->state_free = free;
            char lim[16];
            snprintf(lim, sizeof lim, "%d", limit + 1);
            const char *params[] = {r->param[0], r->user->id, dep, status, after ? ts : NULL,
                                    after ? cid : NULL, lim};
            fe_pg_query(sql_response_list, 7, params, responses_listed, r);
        }
    }
    free(dep);
    free(status);
    free(after);
    free(limit_s);
}

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
    double lat, lon, acc = 0;
    yajl_val accv = fv_json_get(loc, "accuracy");
    if (!YAJL_IS_OBJECT(loc) || !number_in(fv_json_get(loc, "lat"), -90, 90, &lat) ||
        !number_in(fv_json_get(loc, "lon"), -180, 180, &lon) ||
        (accv && !YAJL_IS_NULL(accv) && !number_in(accv, 0, 1e7, &acc)))
        return "must be {lat: -90..90, lon: -180..180, accuracy?: >= 0} or null";
    fv_jgen *j = fv_jgen_new();
    if (!j) return "out of memory";
    fv_jgen_map_open(j);
    fv_jgen_key(j, "lat");
    fv_jgen_double(j, lat);
    fv_jgen_key(j, "lon");
    fv_jgen_double(j, lon);
    if (accv && !YAJL_IS_NULL(accv)) {
        fv_jgen_key(j, "accuracy");
        fv_jgen_double(j, acc);
    }
    fv_jgen_map_close(j);
    *out = strdup(fv_jgen_buf(j, NULL));
    fv_jgen_free(j);
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
    write_response(j, res->res, 0);
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
    fv_form *form = compile_definition(PQgetvalue(p, 0, 7));
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

void fe_responses_patch(fe_req *r)
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

void fe_responses_delete(fe_req *r)
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
    write_response_at(j, p, 0, 6);
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

void fe_responses_approve(fe_req *r)
{
    decide(r, "approve", false);
}

void fe_responses_reject(fe_req *r)
{
    decide(r, "reject", true);
}

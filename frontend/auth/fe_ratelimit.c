/* Per-API-key and per-user (session) rate limits, strikes and automatic suspension (see
 * fe_ratelimit.h). */
#include "fe_ratelimit.h"

#include <event2/http.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fe_cache.h"
#include "fe_config.h"
#include "fe_redis.h"
#include "fe_revoke.h"
#include "fe_ratewindow.h"
#include "fv_crypto.h"
#include "fv_id.h"
#include "fv_log.h"

#define STRIKES_TTL_S "3600"
#define COUNTER_SLACK_S 5 /* the counter outlives its window a little (clock skew between hosts) */

/* This child's view of one key's counter in one window (owned by the views cache): the highest
 * count Redis answered, and the counts sent without waiting whose answers are still due. */
typedef struct rl_view {
    long long seen;
    int unanswered;
} rl_view;

static fe_cache *views;

/* State of one count in flight: owned by the request (r->state) until the INCR answers. */
typedef struct rl_check {
    fe_handler next;
    int64_t now; /* Unix seconds when counted: the window the answer refers to */
    char view_key[96];
    bool session; /* counted per user (session tokens): no strikes */
} rl_check;

/* State of one count sent without waiting: owned by its INCR callback. */
typedef struct rl_ahead {
    char view_key[96];
    char key_id[FV_UUID_STRLEN + 1];
    char address[64];
    char kind[16]; /* the object the request named (rl_object), "" for none */
    char object[FV_UUID_STRLEN + 1];
    bool session;
} rl_ahead;

/* The limit and the window of a caller's credential. */
static int limit_of(bool session)
{
    return session ? fe_cfg.session_rate_limit : fe_cfg.api_key_rate_limit;
}

static int window_of(bool session)
{
    int len = session ? fe_cfg.session_rate_window_s : fe_cfg.api_key_rate_window_s;
    return len < 1 ? 1 : len;
}

/* Records a count Redis answered in the view of view_key (gone views are not made again). */
static void view_update(const char *view_key, long long count, bool was_ahead)
{
    rl_view *v = views ? fe_cache_get(views, view_key, fe_cache_now(), NULL) : NULL;
    if (!v) return;
    if (count > v->seen) v->seen = count;
    if (was_ahead && v->unanswered > 0) v->unanswered--;
}

/* State of one strike (and perhaps a suspension) in flight: owned by the callbacks, the
 * request having been answered already. */
typedef struct rl_strike {
    char key_id[FV_UUID_STRLEN + 1];
    char address[64];
    char kind[16];
    char object[FV_UUID_STRLEN + 1];
    long long strikes;
} rl_strike;

/* The object of an organisation that r's path names, for the suspension record (migration 011's
 * fv_request_org): kind ("org", "survey", "deployment", "response", "site") and id, both "" when
 * the path names none (e.g. /v1/me) or its id is not a UUID. */
static void rl_object(const fe_req *r, char kind[16], char id[FV_UUID_STRLEN + 1])
{
    static const struct {
        const char *prefix, *kind;
    } objects[] = {{"/v1/orgs/:", "org"},
                   {"/v1/surveys/:", "survey"},
                   {"/v1/deployments/:", "deployment"},
                   {"/v1/responses/:", "response"},
                   {"/v1/sites/:", "site"}};
    kind[0] = id[0] = '\0';
    if (r->route < 0 || r->route >= fe_nroutes || !fv_id_valid(r->param[0])) return;
    const char *pattern = fe_routes[r->route].pattern;
    for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++) {
        if (strncmp(pattern, objects[i].prefix, strlen(objects[i].prefix))) continue;
        snprintf(kind, 16, "%s", objects[i].kind);
        memcpy(id, r->param[0], FV_UUID_STRLEN); /* fv_id_valid: exactly that long */
        id[FV_UUID_STRLEN] = '\0';
        return;
    }
}

void fe_ratelimit_shutdown(void)
{
    fe_cache_free(views);
    views = NULL;
}

void fe_ratelimit_strikes_key(const char *key_id, char *out, size_t outlen)
{
    snprintf(out, outlen, "fv:rl:strikes:%s", key_id);
}

/* One statement: the key suspended (unless it is already, or revoked), a revocations row so
 * every child drops its cached entry, and an audit row in every organisation of the owner (one
 * account-level row when they have none). Organisations are the owner's only by their consent
 * (invitations, migration 011), so no other org reads this entry's address. suspended_org_id:
 * the org whose object the striking request named ($5 kind, $6 id), when the owner is a member of
 * it (fv_suspension_org): its admins may reinstate the key. Returns the key's hash for the Redis
 * cache entry. */
static const char sql_suspend[] =
    "WITH u AS (UPDATE api_keys SET suspended_at = now(), suspended_reason = 'rate limit', "
    "                  suspended_org_id = fv_suspension_org(user_id, NULLIF($5, ''), NULLIF($6, '')::uuid) "
    "           WHERE id = $1 AND suspended_at IS NULL AND revoked_at IS NULL "
    "           RETURNING id, user_id, key_hash, suspended_org_id), "
    "     rv AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'api_key', key_hash, now() + make_interval(secs => $3::int) FROM u), "
    "     o AS (SELECT DISTINCT m.org_id FROM u JOIN memberships m ON m.user_id = u.user_id), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT NULL, 'apikey.suspend', 'api_key', u.id::text, NULLIF($2, '')::inet, x.org_id, "
    "                  jsonb_build_object('reason', 'rate limit', 'strikes', $4::int, "
    "                                     'owner', u.user_id, 'triggered_by_org', u.suspended_org_id) "
    "           FROM u, (SELECT org_id FROM o UNION ALL "
    "                    SELECT NULL::uuid WHERE NOT EXISTS (SELECT 1 FROM o)) x) "
    "SELECT key_hash FROM u";

static void suspended(const fe_pg_result *res, void *arg)
{
    rl_strike *s = arg;
    if (res->status != FE_PG_OK) {
        fv_warn("api key %s: suspension after %lld strikes not written (%s); retried at the next strike",
                s->key_id, s->strikes,
                res->status == FE_PG_SQL ? res->sqlstate : "database unavailable");
    } else if (PQntuples(res->res) == 1) {
        char cache_key[FV_SHA256_HEXLEN + 32];
        snprintf(cache_key, sizeof cache_key, "fv:cache:apikey:%s", PQgetvalue(res->res, 0, 0));
        const char *argv[] = {"DEL", cache_key};
        size_t lens[] = {3, strlen(cache_key)};
        fe_redis_fire(2, argv, lens);
        fe_revoke_poll_now();
        fv_warn("api key %s suspended: rate limit exceeded in %lld windows", s->key_id, s->strikes);
    }
    free(s);
}

static void struck(redisReply *reply, const char *error, void *arg)
{
    rl_strike *s = arg;
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        free(s);
        return;
    }
    s->strikes = reply->integer;
    if (!fe_rw_suspends(s->strikes, fe_cfg.api_key_suspend_after)) {
        free(s);
        return;
    }
    char ttl[24], strikes[24];
    snprintf(ttl, sizeof ttl, "%d", fe_cfg.cache_stale_s + fe_cfg.redis_cache_ttl_s);
    snprintf(strikes, sizeof strikes, "%lld", s->strikes);
    const char *params[] = {s->key_id, s->address, ttl, strikes, s->kind, s->object};
    fe_pg_query(sql_suspend, 6, params, suspended, s);
}

/* Counts a strike against the caller's key (best effort: nothing depends on it but the
 * suspension); kind and object name what the striking request named (rl_object). */
static void strike(const char *key_id, const char *address, const char *kind, const char *object)
{
    rl_strike *s = calloc(1, sizeof *s);
    if (!s) return;
    snprintf(s->key_id, sizeof s->key_id, "%s", key_id);
    snprintf(s->address, sizeof s->address, "%s", address);
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    snprintf(s->object, sizeof s->object, "%s", object);
    char key[64];
    fe_ratelimit_strikes_key(s->key_id, key, sizeof key);
    const char *incr[] = {"INCR", key};
    size_t incr_lens[] = {4, strlen(key)};
    if (fe_redis_command(2, incr, incr_lens, struck, s) != 0) {
        free(s);
        return;
    }
    /* Pipelined behind the INCR: the hour runs from the first strike (NX: Redis 7). */
    const char *exp[] = {"EXPIRE", key, STRIKES_TTL_S, "NX"};
    size_t exp_lens[] = {6, strlen(key), strlen(STRIKES_TTL_S), 2};
    fe_redis_fire(4, exp, exp_lens);
}

/* Hands r on to its handler, the count's state freed. */
static void pass(fe_req *r, fe_handler next)
{
    free(r->state);
    r->state = NULL;
    r->state_free = NULL;
    r->phase = FE_REQ_HANDLER;
    next(r);
}

/* Answers 429 with Retry-After: retry_after. */
static void refuse(fe_req *r, int retry_after, bool session)
{
    fe_reply_error_retry(r, 429, "rate_limited",
                         session ? "this user made too many requests; retry after the seconds in "
                                   "Retry-After"
                                 : "this API key made too many requests; retry after the seconds in "
                                   "Retry-After",
                         retry_after);
}

/* Whether the last count failed: a refusal by Redis (an ACL without INCR, say) is logged when
 * it starts and when it ends, not per request. A lost connection is fe_redis's to log. */
static bool count_refused;

static void counted(redisReply *reply, const char *error, void *arg)
{
    fe_req *r = arg;
    rl_check *c = r->state;
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        /* Redis could not count (disconnected, timed out, refused): fail open. */
        if (reply && reply->type == REDIS_REPLY_ERROR && !count_refused) {
            fv_error("api key rate limit: redis refused INCR (%s); keys are not limited until it works",
                     reply->str ? reply->str : "?");
            count_refused = true;
        }
        pass(r, c->next);
        return;
    }
    if (count_refused) {
        fv_info("api key rate limit: redis counts again");
        count_refused = false;
    }
    view_update(c->view_key, reply->integer, false);
    fe_rw_verdict v = fe_rw_verdict_for(reply->integer, limit_of(c->session));
    if (v == FE_RW_ALLOW) {
        pass(r, c->next);
        return;
    }
    if (v == FE_RW_REFUSE_STRIKE && !c->session) {
        char kind[16], object[FV_UUID_STRLEN + 1];
        rl_object(r, kind, object);
        strike(r->user->cred_id, r->address, kind, object);
    }
    refuse(r, fe_rw_retry_after(c->now, window_of(c->session)), c->session);
}

/* The answer to a count sent without waiting: the view learns it; a count past the limit (other
 * children's requests arrived meanwhile) is a strike like a refusal would be. */
static void counted_ahead(redisReply *reply, const char *error, void *arg)
{
    rl_ahead *a = arg;
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        view_update(a->view_key, reply->integer, true);
        if (!a->session &&
            fe_rw_verdict_for(reply->integer, fe_cfg.api_key_rate_limit) == FE_RW_REFUSE_STRIKE)
            strike(a->key_id, a->address, a->kind, a->object);
    } else {
        view_update(a->view_key, 0, true);
    }
    free(a);
}

/* Well under the limit by what this child last heard from Redis (at most half of it, counting
 * its own counts still unanswered), a request does not wait for its count: the INCR goes out and
 * the handler runs at once. Near the limit every request waits for Redis, so the refusals start
 * at the limit itself (other children's counts reach this view with each answer). Returns true
 * when r was passed on. */
static bool count_ahead(fe_req *r, fe_handler next, const char *key, const char *ttl,
                        const char *view_key, rl_view *v, bool session)
{
    if (!v || (v->seen + v->unanswered + 1) * 2 > limit_of(session)) return false;
    rl_ahead *a = calloc(1, sizeof *a);
    if (!a) return false;
    a->session = session;
    snprintf(a->view_key, sizeof a->view_key, "%s", view_key);
    snprintf(a->key_id, sizeof a->key_id, "%s", r->user->cred_id);
    snprintf(a->address, sizeof a->address, "%s", r->address);
    rl_object(r, a->kind, a->object);
    const char *incr[] = {"INCR", key};
    size_t incr_lens[] = {4, strlen(key)};
    if (fe_redis_command(2, incr, incr_lens, counted_ahead, a) != 0) {
        free(a);
        return false;
    }
    v->unanswered++;
    const char *exp[] = {"EXPIRE", key, ttl};
    size_t exp_lens[] = {6, strlen(key), strlen(ttl)};
    fe_redis_fire(3, exp, exp_lens);
    r->phase = FE_REQ_HANDLER;
    next(r);
    return true;
}

void fe_ratelimit_check(fe_req *r, fe_handler next)
{
    /* sessions, and the OpenRosa routes' Basic credentials and app users: per user */
    bool session = r->user && (r->user->cred == FE_CRED_SESSION || r->user->cred == FE_CRED_BASIC ||
                               r->user->cred == FE_CRED_APP_USER);
    bool apikey = r->user && r->user->cred == FE_CRED_API_KEY && r->user->cred_id[0];
    if (!(session || apikey) || limit_of(session) <= 0 || !fe_redis_ready()) {
        r->phase = FE_REQ_HANDLER;
        next(r);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    int len = window_of(session);
    char key[96], ttl[24], view_key[96];
    /* API keys: per key; sessions: per user (all of a user's sessions together) */
    if (session) snprintf(key, sizeof key, "fv:rl:user:%s:%" PRId64, r->user->id, fe_rw_index(now, len));
    else snprintf(key, sizeof key, "fv:rl:%s:%" PRId64, r->user->cred_id, fe_rw_index(now, len));
    snprintf(ttl, sizeof ttl, "%d", len + COUNTER_SLACK_S);
    snprintf(view_key, sizeof view_key, "%s", key + 6); /* "[user:]<id>:<window>" */
    if (!views) views = fe_cache_new(100000, free);
    rl_view *v = views ? fe_cache_get(views, view_key, fe_cache_now(), NULL) : NULL;
    if (views && !v && (v = calloc(1, sizeof *v)) != NULL)
        fe_cache_put(views, view_key, v, fe_cache_now(), len + COUNTER_SLACK_S, len + COUNTER_SLACK_S);
    if (count_ahead(r, next, key, ttl, view_key, v, session)) return; /* r was handed on */
    rl_check *c = calloc(1, sizeof *c);
    if (!c) {
        r->phase = FE_REQ_HANDLER;
        next(r);
        return;
    }
    c->next = next;
    c->now = now;
    c->session = session;
    snprintf(c->view_key, sizeof c->view_key, "%s", view_key);
    r->state = c;
    r->state_free = free;
    const char *incr[] = {"INCR", key};
    size_t incr_lens[] = {4, strlen(key)};
    if (fe_redis_command(2, incr, incr_lens, counted, r) != 0) {
        pass(r, next); /* not sent (overloaded, just disconnected): fail open */
        return;
    }
    const char *exp[] = {"EXPIRE", key, ttl};
    size_t exp_lens[] = {6, strlen(key), strlen(ttl)};
    fe_redis_fire(3, exp, exp_lens);
}

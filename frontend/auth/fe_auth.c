/* Authentication of a request's bearer API key (then its rate limit, fe_ratelimit). A key is
 * found by its SHA-256 in three places, in order: this child's cache, the cache shared through
 * Redis (fv:cache:apikey:<hash>), PostgreSQL. Entries remember whether the key is suspended
 * (403 key_suspended); revoked keys are not found (401). A revocation or suspension writes a
 * revocations row: every child then drops its entry and deletes the shared one (key_revoked).
 * The shared entry is MACed and versioned (fe_sharedcache.h): it counts only while no revocation
 * of the key newer than the lookup that made it is known, so a DEL lost while Redis was down, or
 * overtaken by a lookup that read PostgreSQL before the revocation committed, revives nothing,
 * and an entry written into Redis by anyone without the key file authenticates nobody. */
#include "fe_auth.h"
#include "fe_session_auth.h"

#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "fe_cache.h"
#include "fe_config.h"
#include "fe_ratelimit.h"
#include "fe_redis.h"
#include "fe_revoke.h"
#include "fe_sharedcache.h"
#include "fv_crypto.h"
#include "fv_log.h"
#include "fv_mem.h"

#define FE_AUTH_NEGATIVE_TTL_S 5

/* A cached lookup: user NULL means "no such key" (negative entry). Owned by the cache. */
typedef struct auth_entry {
    fe_user *user;
    bool suspended; /* the key exists but is suspended: 403 key_suspended */
} auth_entry;

static fe_cache *auth_cache;


void fe_auth_user_free(fe_user *u)
{
    if (!u) return;
    free(u->email);
    free(u->name);
    free(u);
}

/* A copy of u the caller owns, or NULL when out of memory. */
static fe_user *user_dup(const fe_user *u)
{
    fe_user *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    *c = *u; /* then the owned strings are copied */
    c->email = strdup(u->email);
    c->name = strdup(u->name);
    if (!c->email || !c->name) {
        fe_auth_user_free(c);
        return NULL;
    }
    return c;
}

static void entry_free(void *p)
{
    auth_entry *e = p;
    fe_auth_user_free(e->user);
    free(e);
}

/* A revoked, suspended or reinstated key: forget it here, and delete the Redis-shared entry
 * again (the writer deleted it, but a lookup that read PostgreSQL before the change committed
 * may have shared its outdated answer since). */
static void key_revoked(const char *hash)
{
    fe_cache_del(auth_cache, hash);
    char redis_key[FV_SHA256_HEXLEN + 32];
    snprintf(redis_key, sizeof redis_key, "fv:cache:apikey:%s", hash);
    const char *argv[] = {"DEL", redis_key};
    size_t lens[] = {3, strlen(redis_key)};
    fe_redis_fire(2, argv, lens);
}

int fe_auth_init(void)
{
    auth_cache = fe_cache_new(100000, entry_free);
    if (!auth_cache) return -1;
    fe_revoke_on(FE_REVOKE_API_KEY, key_revoked);
    return 0;
}

void fe_auth_shutdown(void)
{
    fe_cache_free(auth_cache);
    auth_cache = NULL;
    fe_sharedcache_shutdown();
}

void fe_auth_unauthorized(fe_req *r, const char *code, const char *message)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "WWW-Authenticate",
                      "Bearer realm=\"fieldvault\"");
    fe_reply_error(r, 401, code, message);
}

/* State of one lookup in flight: owned by the request (r->state). */
typedef struct auth_lookup {
    char hash[FV_SHA256_HEXLEN + 1];
    char redis_key[FV_SHA256_HEXLEN + 32];
    fe_handler next;
    long long version; /* fe_revoke_version() when PostgreSQL was asked */
} auth_lookup;

static const char sql_key_lookup[] =
    "SELECT u.id, '', '', u.is_admin, k.id, k.suspended_at IS NOT NULL "
    "FROM api_keys k JOIN users u ON u.id = k.user_id "
    "WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND u.disabled_at IS NULL";

/* Hands the request on to its handler as user u (copied), through the rate limit; answers 401
 * when u is NULL, 403 when the key is suspended. */
static void proceed(fe_req *r, const fe_user *u, bool suspended)
{
    auth_lookup *l = r->state;
    fe_handler next = l->next;
    free(r->state);
    r->state = NULL;
    r->state_free = NULL;
    if (!u) {
        fe_auth_unauthorized(r, "invalid_token", "the API key is not valid");
        return;
    }
    if (suspended) {
        fe_reply_error(r, 403, "key_suspended",
                       "this API key is suspended (it kept exceeding its rate limit); an admin of your "
                       "organisation can reinstate it");
        return;
    }
    r->user = user_dup(u);
    if (!r->user) {
        fe_reply_oom(r);
        return;
    }
    fe_ratelimit_check(r, next);
}

/* Caches a lookup's outcome in this child (u NULL: no such key, briefly), unless the answer
 * (taken at revocation version `version`) predates a revocation of the key known here. */
static void remember(const char *hash, const fe_user *u, bool suspended, long long version)
{
    if (u && !fe_revoke_unchanged_since(FE_REVOKE_API_KEY, hash, version)) return;
    auth_entry *e = calloc(1, sizeof *e);
    if (!e) return;
    e->suspended = suspended;
    if (u && !(e->user = user_dup(u))) {
        free(e);
        return;
    }
    if (u)
        fe_cache_put(auth_cache, hash, e, fe_cache_now(), fe_cfg.auth_cache_ttl_s, fe_cfg.cache_stale_s);
    else
        fe_cache_put(auth_cache, hash, e, fe_cache_now(), FE_AUTH_NEGATIVE_TTL_S,
                     FE_AUTH_NEGATIVE_TTL_S);
}

/* Shares a positive lookup (asked at revocation version `version`) with the other children and
 * front ends through Redis, MACed; not when already known stale here. */
static void share(const char *hash, const char *redis_key, const fe_user *u, bool suspended,
                  long long version)
{
    if (!fe_revoke_unchanged_since(FE_REVOKE_API_KEY, hash, version)) return;
    fv_jgen *j = fv_jgen_new();
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, u->id);
    fv_jgen_key(j, "email");
    fv_jgen_str(j, u->email);
    fv_jgen_key(j, "name");
    fv_jgen_str(j, u->name);
    fv_jgen_key(j, "is_admin");
    fv_jgen_bool(j, u->is_admin);
    fv_jgen_key(j, "key_id");
    fv_jgen_str(j, u->cred_id);
    fv_jgen_key(j, "suspended");
    fv_jgen_bool(j, suspended);
    fv_jgen_map_close(j);
    size_t len;
    const char *json = fv_jgen_buf(j, &len);
    if (json) fe_shared_set(redis_key, version, json, len, fe_cfg.redis_cache_ttl_s);
    else fv_error("auth cache entry not shared: %s", fv_jgen_error(j));
    fv_jgen_free(j);
}

static void pg_looked_up(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    auth_lookup *l = r->state;
    if (res->status != FE_PG_OK) {
        /* PostgreSQL unreachable: a key we knew recently still works (DESIGN section 2). */
        auth_entry *stale = res->status == FE_PG_SQL
                                ? NULL
                                : fe_cache_get(auth_cache, l->hash, fe_cache_now(), NULL);
        if (stale && stale->user) {
            proceed(r, stale->user, stale->suspended);
            return;
        }
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        remember(l->hash, NULL, false, l->version);
        proceed(r, NULL, false);
        return;
    }
    fe_user u = {0};
    snprintf(u.id, sizeof u.id, "%s", PQgetvalue(res->res, 0, 0));
    u.email = PQgetvalue(res->res, 0, 1);
    u.name = PQgetvalue(res->res, 0, 2);
    u.is_admin = PQgetvalue(res->res, 0, 3)[0] == 't';
    u.cred = FE_CRED_API_KEY;
    snprintf(u.cred_id, sizeof u.cred_id, "%s", PQgetvalue(res->res, 0, 4));
    bool suspended = PQgetvalue(res->res, 0, 5)[0] == 't';
    remember(l->hash, &u, suspended, l->version);
    share(l->hash, l->redis_key, &u, suspended, l->version);
    proceed(r, &u, suspended);
}

static void ask_pg(fe_req *r)
{
    auth_lookup *l = r->state;
    const char *params[] = {l->hash};
    l->version = fe_revoke_version(); /* before asking: see fe_revoke.h */
    fe_pg_query(sql_key_lookup, 1, params, pg_looked_up, r);
}

static void redis_looked_up(redisReply *reply, const char *error, void *arg)
{
    fe_req *r = arg;
    auth_lookup *l = r->state;
    long long version = -1;
    size_t plen = 0;
    const char *payload = reply && reply->type == REDIS_REPLY_STRING
                              ? fe_shared_open(l->redis_key, NULL, reply->str, reply->len, &version,
                                               &plen)
                              : NULL;
    char *json = payload && fe_revoke_unchanged_since(FE_REVOKE_API_KEY, l->hash, version)
                     ? fv_memdup0(payload, plen)
                     : NULL; /* owned here */
    if (json) {
        char err[64];
        yajl_val v = fv_json_parse(json, err, sizeof err);
        free(json);
        const char *id = fv_json_get_str(v, "id"), *email = fv_json_get_str(v, "email");
        const char *name = fv_json_get_str(v, "name"), *key_id = fv_json_get_str(v, "key_id");
        yajl_val adm = fv_json_get(v, "is_admin"), susp = fv_json_get(v, "suspended");
        if (id && fv_id_valid(id) && email && name && key_id && fv_id_valid(key_id)) {
            fe_user u = {0};
            snprintf(u.id, sizeof u.id, "%s", id);
            u.cred = FE_CRED_API_KEY;
            snprintf(u.cred_id, sizeof u.cred_id, "%s", key_id);
            u.email = (char *)email;
            u.name = (char *)name;
            u.is_admin = adm && YAJL_IS_TRUE(adm);
            bool suspended = susp && YAJL_IS_TRUE(susp);
            remember(l->hash, &u, suspended, version);
            proceed(r, &u, suspended); /* copies u, which borrows from v: free v only afterwards */
            yajl_tree_free(v);
            return;
        }
        if (v) yajl_tree_free(v);
    }
    ask_pg(r);
}

void fe_auth_authenticate(fe_req *r, fe_handler next)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Authorization");
    if (!h) {
        fe_auth_unauthorized(r, "unauthenticated", "send Authorization: Bearer <API key>");
        return;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        fe_auth_unauthorized(r, "invalid_token", "the Authorization header must be 'Bearer <API key>'");
        return;
    }
    const char *key = h + 7;
    while (*key == ' ') key++;
    if (strncmp(key, FE_SESSION_TOKEN_PREFIX, strlen(FE_SESSION_TOKEN_PREFIX)) == 0) {
        fe_session_authenticate(r, key, next);
        return;
    }
    if (!fv_api_key_well_formed(key)) {
        fe_auth_unauthorized(r, "invalid_token", "the API key is not valid");
        return;
    }
    auth_lookup *l = calloc(1, sizeof *l);
    if (!l) {
        fe_reply_oom(r);
        return;
    }
    l->next = next;
    r->state = l;
    r->state_free = free;
    /* Only the digest is kept, compared and logged; the key itself goes nowhere. */
    fv_sha256_hex(key, strlen(key), l->hash);
    snprintf(l->redis_key, sizeof l->redis_key, "fv:cache:apikey:%s", l->hash);

    /* 1. this child's cache: fresh, or stale while PostgreSQL is down (no waiting on it) */
    bool fresh = false;
    auth_entry *e = fe_cache_get(auth_cache, l->hash, fe_cache_now(), &fresh);
    if (e && (fresh || !fe_pg_up())) {
        proceed(r, e->user, e->suspended);
        return;
    }
    /* 2. the cache shared through Redis (a new child, another front end), unless we only need
     *    to refresh a stale entry; 3. PostgreSQL. */
    if (!e && fe_redis_ready()) {
        const char *argv[] = {"GET", l->redis_key};
        size_t lens[] = {3, strlen(l->redis_key)};
        if (fe_redis_command(2, argv, lens, redis_looked_up, r) == 0) return;
    }
    ask_pg(r);
}

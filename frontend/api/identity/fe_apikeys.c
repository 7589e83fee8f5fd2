/* API keys of the caller: POST/GET /v1/me/api-keys, DELETE /v1/me/api-keys/{id}; and the
 * reinstatement of a suspended key by an org admin: POST /v1/api-keys/{id}/reinstate.
 * Keys are stored as SHA-256 only; the key itself appears once, in the creation's reply. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_access.h"
#include "fe_config.h"
#include "fe_handlers.h"
#include "fe_ratelimit.h"
#include "fe_redis.h"
#include "fe_revoke.h"
#include "fv_crypto.h"

#define NAME_MAX_CHARS 100
#define MAX_ACTIVE_KEYS 100 /* unrevoked keys one user may hold: a cap against floods */

/* The columns every key reply is written from, in this order (write_key). */
#define KEY_COLS "k.id, k.name, fv_ts(k.created_at), fv_ts(k.revoked_at), fv_ts(k.suspended_at), " \
                 "k.suspended_reason"

/* Seconds a revocations row about a key stays in force: the longest any cache may hold it. */
static void revocation_ttl(char *out, size_t outlen)
{
    snprintf(out, outlen, "%d", fe_cfg.cache_stale_s + fe_cfg.redis_cache_ttl_s);
}

/* Deletes the Redis-shared cache entry of the key with this hash (best effort; every child's
 * revocation handler deletes it again). */
static void forget_shared(const char *hash)
{
    char key[FV_SHA256_HEXLEN + 32];
    snprintf(key, sizeof key, "fv:cache:apikey:%s", hash);
    const char *argv[] = {"DEL", key};
    size_t lens[] = {3, strlen(key)};
    fe_redis_fire(2, argv, lens);
}

/* Writes the key of row i (KEY_COLS from column 0) as the fields of an open map; with
 * unsuspended, the suspension fields as null (the row was read before a reinstatement). */
static void write_key_fields(fv_jgen *j, PGresult *p, int i, bool unsuspended)
{
    static const char *const names[] = {"id", "name", "created_at", "revoked_at", "suspended_at",
                                        "suspended_reason"};
    for (int c = 0; c < 6; c++) {
        fv_jgen_key(j, names[c]);
        bool null = PQgetisnull(p, i, c) || (unsuspended && c >= 4);
        fv_jgen_str(j, null ? NULL : PQgetvalue(p, i, c));
    }
}

/* The reason name (borrowed JSON string, may be NULL) is not a key name, or NULL when it is:
 * 1 to 100 characters (code points; the JSON parser checked the UTF-8), not all blank, no
 * control characters. */
static const char *name_problem(const char *name)
{
    if (!name) return "required: a string of 1 to 100 characters";
    size_t chars = 0;
    bool visible = false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if ((*p & 0xC0) != 0x80) chars++;
        if (*p < 0x20 || *p == 0x7F) return "must not contain control characters";
        if (*p != ' ') visible = true;
    }
    if (chars == 0 || !visible) return "must not be empty or blank";
    if (chars > NAME_MAX_CHARS) return "must be at most 100 characters";
    return NULL;
}

/* ------------------------------------------------------------------ POST /v1/me/api-keys */

/* State of one creation: owned by the request. The key is wiped when freed. */
typedef struct key_create {
    char id[FV_UUID_STRLEN + 1];
    char key[FV_API_KEY_LEN + 1];
    char hash[FV_SHA256_HEXLEN + 1];
    char *name; /* owned */
} key_create;

static void key_create_free(void *p)
{
    key_create *s = p;
    OPENSSL_cleanse(s->key, sizeof s->key);
    free(s->name);
    free(s);
}

/* One statement: the key (unless the user holds MAX_ACTIVE_KEYS live ones) and its audit row. */
static const char sql_key_create[] =
    "WITH n AS (SELECT count(*) AS c FROM api_keys WHERE user_id = $2::uuid AND revoked_at IS NULL), "
    "     k AS (INSERT INTO api_keys (id, user_id, key_hash, name) "
    "           SELECT $1::uuid, $2::uuid, $3::text, $4::text FROM n WHERE n.c < $6::int "
    "           RETURNING id, created_at), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, detail) "
    "           SELECT $2::uuid, 'apikey.create', 'api_key', k.id::text, NULLIF($5, '')::inet, "
    "                  jsonb_build_object('name', $4::text) FROM k) "
    "SELECT fv_ts(created_at) FROM k";

static void key_created(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    key_create *s = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_reply_error(r, 409, "too_many_keys",
                       "you hold 100 API keys that are not revoked; revoke one before creating another");
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, s->id);
    fv_jgen_key(j, "name");
    fv_jgen_str(j, s->name);
    fv_jgen_key(j, "key");
    fv_jgen_str(j, s->key);
    fv_jgen_key(j, "created_at");
    fv_jgen_str(j, PQgetvalue(res->res, 0, 0));
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 201, j);
}

void fe_apikeys_create(fe_req *r)
{
    if (r->user->cred != FE_CRED_SESSION && !fe_cfg.api_key_create_with_key) {
        fe_reply_error(r, 403, "session_required",
                       "API keys can be created only with a session (log in); an API key cannot create keys");
        return;
    }
    const char *name = fv_json_get_str(r->body, "name");
    const char *why = name_problem(name);
    if (why) {
        const char *f[] = {"name"};
        fe_reply_error_fields(r, 422, "validation_failed", "the API key is invalid", 1, f, &why);
        return;
    }
    key_create *s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name))) {
        free(s);
        fe_reply_error(r, 503, "overloaded", "out of memory; retry later");
        return;
    }
    r->state = s;
    r->state_free = key_create_free;
    if (!fv_api_key_new(s->key)) {
        fe_reply_error(r, 503, "unavailable", "no random numbers available; retry later");
        return;
    }
    fv_sha256_hex(s->key, strlen(s->key), s->hash);
    fv_id_new(s->id);
    char cap[16];
    snprintf(cap, sizeof cap, "%d", MAX_ACTIVE_KEYS);
    const char *params[] = {s->id, r->user->id, s->hash, s->name, r->address, cap};
    fe_pg_query(sql_key_create, 6, params, key_created, r);
}

/* ------------------------------------------------------------------ GET /v1/me/api-keys */

/* State of one listing: owned by the request. */
typedef struct key_list {
    int limit;
} key_list;

/* The caller's own keys, revoked ones included, in id order (UUIDv7: creation order). The
 * cursor is the last id returned. */
static const char sql_key_list[] =
    "SELECT " KEY_COLS " FROM api_keys k "
    "WHERE k.user_id = $1::uuid AND ($2::uuid IS NULL OR k.id > $2::uuid) "
    "ORDER BY k.id LIMIT $3::int";

static void keys_listed(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    key_list *ls = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    int n = PQntuples(p);
    bool more = n > ls->limit;
    if (more) n = ls->limit;
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "items");
    fv_jgen_array_open(j);
    for (int i = 0; i < n; i++) {
        fv_jgen_map_open(j);
        write_key_fields(j, p, i, false);
        fv_jgen_key(j, "current"); /* the key this request was made with */
        fv_jgen_bool(j, r->user->cred == FE_CRED_API_KEY &&
                            strcmp(r->user->cred_id, PQgetvalue(p, i, 0)) == 0);
        fv_jgen_map_close(j);
    }
    fv_jgen_array_close(j);
    fv_jgen_key(j, "next");
    fv_jgen_str(j, more ? PQgetvalue(p, n - 1, 0) : NULL);
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}

void fe_apikeys_list(fe_req *r)
{
    int limit;
    char after[FV_UUID_STRLEN + 1];
    if (!fe_access_list_params(r, &limit, after)) return;
    key_list *ls = calloc(1, sizeof *ls);
    if (!ls) {
        fe_reply_error(r, 503, "overloaded", "out of memory; retry later");
        return;
    }
    ls->limit = limit;
    r->state = ls;
    r->state_free = free;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {r->user->id, after[0] ? after : NULL, lim};
    fe_pg_query(sql_key_list, 3, params, keys_listed, r);
}

/* ------------------------------------------------------------------ DELETE /v1/me/api-keys/{id} */

/* One statement: the caller's key revoked (if it is not already), a revocations row so every
 * child drops it, an audit row. Returns no row when the caller has no such key; otherwise the
 * hash and whether this call revoked it. */
static const char sql_key_revoke[] =
    "WITH own AS (SELECT id, key_hash, revoked_at FROM api_keys WHERE id = $1::uuid AND user_id = $2::uuid), "
    "     k AS (UPDATE api_keys a SET revoked_at = now() FROM own "
    "           WHERE a.id = own.id AND own.revoked_at IS NULL AND a.revoked_at IS NULL "
    "           RETURNING a.id, a.key_hash), "
    "     rv AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'api_key', key_hash, now() + make_interval(secs => $4::int) FROM k), "
    "     au AS (INSERT INTO audit (actor, action, target_type, target_id, address) "
    "            SELECT $2::uuid, 'apikey.revoke', 'api_key', k.id::text, NULLIF($3, '')::inet FROM k) "
    "SELECT own.key_hash, k.id IS NOT NULL FROM own LEFT JOIN k ON true";

static void key_revoked_reply(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_reply_error(r, 404, "not_found", "no such API key");
        return;
    }
    if (PQgetvalue(res->res, 0, 1)[0] == 't') {
        forget_shared(PQgetvalue(res->res, 0, 0));
        fe_revoke_poll_now();
    }
    fe_reply_text(r, 204, "application/json", NULL, 0);
}

void fe_apikeys_revoke(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such API key");
        return;
    }
    char ttl[24];
    revocation_ttl(ttl, sizeof ttl);
    const char *params[] = {r->param[0], r->user->id, r->address, ttl};
    fe_pg_query(sql_key_revoke, 4, params, key_revoked_reply, r);
}

/* ------------------------------------------------------------------ POST /v1/api-keys/{id}/reinstate */

/* One statement. o: the organisations of the key's owner that the caller administers, where the
 * owner was a member before the suspension (an org made, or a membership granted, afterwards does
 * not count), the caller never being the owner (a user who makes an org of their own would
 * otherwise lift their own key's suspension); ok: those
 * where the caller's credential satisfies the org's TOTP policy. When ok is not empty and the
 * key is suspended and not revoked, it is reinstated, a revocations row makes every cache forget
 * the suspension, and an audit row is written in each organisation of ok. Returns the key (no
 * row: no such key) with the facts the handler decides on. */
static const char sql_key_reinstate[] =
    "WITH k AS (SELECT * FROM api_keys WHERE id = $1::uuid), "
    "     o AS (SELECT DISTINCT m.org_id, g.require_admin_totp FROM k "
    "           JOIN memberships m ON m.user_id = k.user_id JOIN orgs g ON g.id = m.org_id "
    "           WHERE fv_is_org_admin($2::uuid, m.org_id) AND k.user_id <> $2::uuid "
    "             AND (k.suspended_at IS NULL OR m.created_at < k.suspended_at)), "
    "     ok AS (SELECT org_id FROM o WHERE NOT require_admin_totp OR $3::boolean), "
    "     u AS (UPDATE api_keys a SET suspended_at = NULL, suspended_reason = NULL FROM k "
    "           WHERE a.id = k.id AND k.revoked_at IS NULL AND a.revoked_at IS NULL "
    "             AND a.suspended_at IS NOT NULL AND EXISTS (SELECT 1 FROM ok) "
    "           RETURNING a.id, a.key_hash, a.user_id), "
    "     rv AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'api_key', key_hash, now() + make_interval(secs => $5::int) FROM u), "
    "     au AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "            SELECT $2::uuid, 'apikey.reinstate', 'api_key', u.id::text, NULLIF($4, '')::inet, "
    "                   ok.org_id, jsonb_build_object('owner', u.user_id) FROM u, ok) "
    "SELECT " KEY_COLS ", k.user_id, k.key_hash, k.user_id = $2::uuid, EXISTS (SELECT 1 FROM o), "
    "       EXISTS (SELECT 1 FROM ok), k.revoked_at IS NOT NULL, EXISTS (SELECT 1 FROM u) "
    "FROM k";

enum { RI_USER = 6, RI_HASH, RI_OWN, RI_ADMIN, RI_ALLOWED, RI_REVOKED, RI_CHANGED };

static void key_reinstated(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    if (PQntuples(p) != 1) {
        fe_reply_error(r, 404, "not_found", "no such API key");
        return;
    }
    bool own = PQgetvalue(p, 0, RI_OWN)[0] == 't', admin = PQgetvalue(p, 0, RI_ADMIN)[0] == 't';
    bool allowed = PQgetvalue(p, 0, RI_ALLOWED)[0] == 't', revoked = PQgetvalue(p, 0, RI_REVOKED)[0] == 't';
    bool changed = PQgetvalue(p, 0, RI_CHANGED)[0] == 't';
    if (!admin) {
        /* Only its owner may know the key exists. */
        if (own)
            fe_reply_error(r, 403, "forbidden",
                           "only an admin of your organisation can reinstate your API key");
        else
            fe_reply_error(r, 404, "not_found", "no such API key");
        return;
    }
    if (!allowed) {
        fe_reply_error(r, 403, "totp_required",
                       "this organisation requires its admins to sign in with a TOTP code for this action");
        return;
    }
    if (revoked) {
        fe_reply_error(r, 409, "key_revoked", "the API key is revoked; it cannot be reinstated");
        return;
    }
    /* The strike counter starts again; the shared cache entry goes (every child's too, through
     * the revocations row). */
    char strikes[64];
    fe_ratelimit_strikes_key(PQgetvalue(p, 0, 0), strikes, sizeof strikes);
    const char *argv[] = {"DEL", strikes};
    size_t lens[] = {3, strlen(strikes)};
    fe_redis_fire(2, argv, lens);
    if (changed) {
        forget_shared(PQgetvalue(p, 0, RI_HASH));
        fe_revoke_poll_now();
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    write_key_fields(j, p, 0, changed);
    fv_jgen_key(j, "user_id");
    fv_jgen_str(j, PQgetvalue(p, 0, RI_USER));
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}

void fe_apikeys_reinstate(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such API key");
        return;
    }
    char ttl[24];
    revocation_ttl(ttl, sizeof ttl);
    const char *params[] = {r->param[0], r->user->id, r->user->mfa ? "t" : "f", r->address, ttl};
    fe_pg_query(sql_key_reinstate, 5, params, key_reinstated, r);
}

/* API keys of the caller: POST/GET /v1/me/api-keys, DELETE /v1/me/api-keys/{id}; and the
 * reinstatement of a suspended key by an org admin: POST /v1/api-keys/{id}/reinstate.
 * Keys are stored as SHA-256 only; the key itself appears once, in the creation's reply. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_config.h"
#include "fe_handlers.h"
#include "fe_identity.h"
#include "fe_ratelimit.h"
#include "fe_redis.h"
#include "fe_revoke.h"
#include "fe_verdict.h"
#include "fv_crypto.h"
#include "fe_reauth.h"

#define NAME_MAX_CHARS 100
#define MAX_ACTIVE_KEYS 100 /* unrevoked keys one user may hold: a cap against floods */

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

/* One statement: the key (unless the user holds MAX_ACTIVE_KEYS live ones: 'too_many_keys') and
 * its audit row. The reply holds the key, so the statement gives no body: after the verdict, the
 * creation time. */
static const char sql_key_create[] =
    "WITH n AS (SELECT count(*) AS c FROM api_keys WHERE user_id = $2::uuid AND revoked_at IS NULL), "
    "     k AS (INSERT INTO api_keys (id, user_id, key_hash, name) "
    "           SELECT $1::uuid, $2::uuid, $3::text, $4::text FROM n WHERE n.c < $6::int "
    "           RETURNING id, created_at), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, detail) "
    "           SELECT $2::uuid, 'apikey.create', 'api_key', k.id::text, NULLIF($5, '')::inet, "
    "                  jsonb_build_object('name', $4::text) FROM k) "
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM k) THEN 'ok' ELSE 'too_many_keys' END, NULL, "
    "       (SELECT fv_ts(created_at) FROM k)";

static void key_created(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    key_create *s = r->state;
    if (!fe_verdict_answer(r, res, "API key")) return;
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
    fv_jgen_str(j, PQgetvalue(res->res, 0, 2));
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 201, j);
}

/* The key made, once the caller proved who they are (a session) or straight away (a key). */
static void key_create_go(fe_req *r)
{
    const char *name = fv_json_get_str(r->body, "name"); /* checked by fe_apikeys_create */
    key_create *s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name))) {
        free(s);
        fe_reply_oom(r);
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

void fe_apikeys_create(fe_req *r)
{
    if (r->user->cred != FE_CRED_SESSION && !fe_cfg.api_key_create_with_key) {
        fe_reply_error(
            r, 403, "session_required",
            "API keys can be created only with a session (log in); an API key cannot create keys");
        return;
    }
    const char *name = fv_json_get_str(r->body, "name");
    const char *why = fe_check_label(name, NAME_MAX_CHARS, "required: a string of 1 to 100 characters",
                                     "must be at most 100 characters");
    if (why) {
        const char *f[] = {"name"};
        fe_reply_error_fields(r, 422, "validation_failed", "the API key is invalid", 1, f, &why);
        return;
    }
    /* A session (which may be stolen) mints a key only with the password again, and the TOTP
     * code when TOTP is on: a key outlives the session and, until issue 9, the password. */
    if (r->user->cred == FE_CRED_SESSION) fe_reauth(r, true, key_create_go);
    else key_create_go(r);
}

/* ------------------------------------------------------------------ GET /v1/me/api-keys */

/* The caller's own keys, revoked ones included, in id order (UUIDv7: creation order); current:
 * the key this request was made with ($2, NULL for a session). */
static const char sql_key_list[] = FE_VERDICT_PAGE_SQL(
    "'ok'",
    "SELECT k.id, fv_api_key_json(k) || jsonb_build_object('current', COALESCE(k.id = $2::uuid, false)) AS j "
    "FROM api_keys k WHERE k.user_id = $1::uuid AND ($3::uuid IS NULL OR k.id > $3::uuid)",
    "id", "page.id::text", "page.j", "$4");

void fe_apikeys_list(fe_req *r)
{
    const char *current = r->user->cred == FE_CRED_API_KEY ? r->user->cred_id : NULL;
    const char *params[] = {r->user->id, current};
    fe_verdict_page_list(r, FE_PAGE_UUID, sql_key_list, 2, params, "API key");
}

/* ------------------------------------------------------------------ DELETE /v1/me/api-keys/{id} */

/* One statement: the caller's key revoked (if it is not already), a revocations row so every
 * child drops it, an audit row. 'hidden' when the caller has no such key; after the verdict and
 * its (empty) body, the hash and whether this call revoked it. */
static const char sql_key_revoke[] =
    "WITH own AS (SELECT id, key_hash, revoked_at FROM api_keys WHERE id = $1::uuid AND user_id = $2::uuid), "
    "     k AS (UPDATE api_keys a SET revoked_at = now() FROM own "
    "           WHERE a.id = own.id AND own.revoked_at IS NULL AND a.revoked_at IS NULL "
    "           RETURNING a.id, a.key_hash), "
    "     rv AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'api_key', key_hash, now() + make_interval(secs => $4::int) FROM k), "
    "     au AS (INSERT INTO audit (actor, action, target_type, target_id, address) "
    "            SELECT $2::uuid, 'apikey.revoke', 'api_key', k.id::text, NULLIF($3, '')::inet FROM k) "
    "SELECT 'ok', NULL, own.key_hash, k.id IS NOT NULL FROM own LEFT JOIN k ON true";

static void key_revoked_reply(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (!fe_verdict_answer(r, res, "API key")) return;
    if (PQgetvalue(res->res, 0, 3)[0] == 't') {
        forget_shared(PQgetvalue(res->res, 0, 2));
        fe_revoke_poll_now();
    }
    fe_reply_text(r, 204, "application/json", NULL, 0);
}

void fe_apikeys_revoke(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "API key")) return;
    char ttl[24];
    revocation_ttl(ttl, sizeof ttl);
    const char *params[] = {r->param[0], r->user->id, r->address, ttl};
    fe_pg_query(sql_key_revoke, 4, params, key_revoked_reply, r);
}

/* ------------------------------------------------------------------ POST /v1/api-keys/{id}/reinstate */

/* One statement: when the verdict (fv_key_reinstate_verdict) is 'ok' and the key is suspended,
 * it is reinstated, a revocations row makes every cache forget the suspension, and an audit row is
 * written in each organisation that allows it (fv_key_reinstate_orgs). After the verdict and the
 * key (its suspension cleared when this call lifted it), the key's id and hash and whether this
 * call changed it. */
static const char sql_key_reinstate[] =
    "WITH k AS (SELECT a AS rec, a.id, a.key_hash, a.user_id, "
    "                  fv_key_reinstate_verdict($2::uuid, a.id, $3::boolean) AS verdict "
    "           FROM api_keys a WHERE a.id = $1::uuid), "
    "     ok AS (SELECT o.org_id FROM fv_key_reinstate_orgs($2::uuid, $1::uuid, $3::boolean) o WHERE o.allowed), "
    "     u AS (UPDATE api_keys a SET suspended_at = NULL, suspended_reason = NULL, "
    "                  suspended_org_id = NULL FROM k "
    "           WHERE a.id = k.id AND k.verdict = 'ok' AND a.revoked_at IS NULL AND a.suspended_at IS NOT NULL "
    "           RETURNING a.id, a.key_hash, a.user_id), "
    "     rv AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'api_key', key_hash, now() + make_interval(secs => $5::int) FROM u), "
    "     au AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "            SELECT $2::uuid, 'apikey.reinstate', 'api_key', u.id::text, NULLIF($4, '')::inet, "
    "                   ok.org_id, jsonb_build_object('owner', u.user_id) FROM u, ok) "
    "SELECT k.verdict, (fv_api_key_json(k.rec) "
    "                   || CASE WHEN EXISTS (SELECT 1 FROM u) "
    "                           THEN '{\"suspended_at\": null, \"suspended_reason\": null}'::jsonb "
    "                           ELSE '{}'::jsonb END "
    "                   || jsonb_build_object('user_id', k.user_id))::text, "
    "       k.id, k.key_hash, EXISTS (SELECT 1 FROM u) "
    "FROM k";

static void key_reinstated(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    const char *body = fe_verdict_answer(r, res, "API key");
    if (!body) return;
    PGresult *p = res->res;
    /* The strike counter starts again; the shared cache entry goes (every child's too, through
     * the revocations row). */
    char strikes[64];
    fe_ratelimit_strikes_key(PQgetvalue(p, 0, 2), strikes, sizeof strikes);
    const char *argv[] = {"DEL", strikes};
    size_t lens[] = {3, strlen(strikes)};
    fe_redis_fire(2, argv, lens);
    if (PQgetvalue(p, 0, 4)[0] == 't') {
        forget_shared(PQgetvalue(p, 0, 3));
        fe_revoke_poll_now();
    }
    fe_reply_text(r, 200, "application/json", body, strlen(body));
}

void fe_apikeys_reinstate(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "API key")) return;
    char ttl[24];
    revocation_ttl(ttl, sizeof ttl);
    const char *params[] = {r->param[0], r->user->id, fe_verdict_mfa(r), r->address, ttl};
    fe_pg_query(sql_key_reinstate, 5, params, key_reinstated, r);
}

/* App users of a deployment (issue 13): POST/GET /v1/deployments/{id}/app-users and DELETE
 * /v1/deployments/{id}/app-users/{app_user}, for the deployment's managers (its named managers,
 * the survey's admins, implicit managers: fv_deployment_manage_verdict, the TOTP policy as for
 * PATCH). An app user's token (fva_...) is made here, stored as its SHA-256 only and shown once, in
 * the creation's reply, with the OpenRosa URL that carries it and the QR payload of ODK Collect's
 * settings. Revoking writes a revocations row ('api_key', the token's hash): every front end drops
 * it (frontend/auth/fe_openrosa_auth.c). Migration 020. */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fe_config.h"
#include "fe_handlers.h"
#include "fe_identity.h"
#include "fe_openrosa_auth.h"
#include "fe_revoke.h"
#include "fe_verdict.h"
#include "fv_crypto.h"
#include "fv_log.h"

#define NAME_MAX_CHARS 200
#define MAX_LIVE_APP_USERS 1000 /* unrevoked app users of one deployment: a cap against floods */

/* ODK Collect's settings QR payload for server_url (borrowed): the JSON
 * {"general":{"server_url":...},"admin":{}} compressed with zlib (RFC 1950, as Collect inflates
 * it) and then base64 (standard alphabet, padded). Caller frees; NULL when out of memory. */
static char *collect_settings_payload(const char *server_url)
{
    fv_jgen *j = fv_jgen_new();
    if (!j) return NULL;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "general");
    fv_jgen_map_open(j);
    fv_jgen_key(j, "server_url");
    fv_jgen_str(j, server_url);
    fv_jgen_map_close(j);
    fv_jgen_key(j, "admin");
    fv_jgen_map_open(j);
    fv_jgen_map_close(j);
    fv_jgen_map_close(j);
    size_t len = 0;
    const char *json = fv_jgen_buf(j, &len);
    char *out = NULL;
    uLongf zlen = compressBound((uLong)len);
    unsigned char *z = json ? malloc(zlen) : NULL;
    if (z && compress2(z, &zlen, (const Bytef *)json, (uLong)len, Z_BEST_COMPRESSION) == Z_OK &&
        (out = malloc(4 * ((zlen + 2) / 3) + 1)))
        fv_b64_encode(z, zlen, out);
    free(z);
    fv_jgen_free(j);
    return out;
}

/* ------------------------------------------------ POST /v1/deployments/{id}/app-users */

/* State of one creation: owned by the request; the token is wiped when freed. */
typedef struct app_create {
    char id[FV_UUID_STRLEN + 1];
    char token[FE_APP_TOKEN_LEN + 1];
    char hash[FV_SHA256_HEXLEN + 1];
} app_create;

static void app_create_free(void *p)
{
    app_create *s = p;
    OPENSSL_cleanse(s->token, sizeof s->token);
    free(s);
}

/* $1 deployment, $2 caller, $3 mfa, $4 name, $5 new id, $6 token hash, $7 address, $8 cap.
 * The users row can never sign in: no password, an address in the reserved .invalid domain. */
static const char sql_create[] =
    "WITH v AS (SELECT CASE WHEN x.verdict <> 'ok' THEN x.verdict "
    "                       WHEN (SELECT count(*) FROM app_users a WHERE a.deployment_id = $1::uuid "
    "                             AND a.revoked_at IS NULL) >= $8::int "
    "                       THEN 'invalid:name:a deployment has at most "
    "1000"
    " live app users' "
    "                       ELSE 'ok' END AS verdict "
    "           FROM (SELECT fv_deployment_manage_verdict($2::uuid, $1::uuid, $3::boolean) AS verdict) x), "
    "     u AS (INSERT INTO users (id, email, name) "
    "           SELECT $5::uuid, $5::uuid::text || '@app-users.invalid', $4 FROM v WHERE v.verdict = 'ok' RETURNING id), "
    "     a AS (INSERT INTO app_users (id, deployment_id, name, token_hash, created_by) "
    "           SELECT u.id, $1::uuid, $4, $6, $2::uuid FROM u RETURNING id, name, created_by, created_at), "
    "     au AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "            SELECT $2::uuid, 'app_user.create', 'deployment', $1, NULLIF($7, '')::inet, s.org_id, "
    "                   jsonb_build_object('app_user_id', a.id, 'name', a.name) "
    "            FROM a, deployments d JOIN surveys s ON s.id = d.survey_id WHERE d.id = $1::uuid) "
    "SELECT v.verdict, (SELECT '{}' FROM a), (SELECT name FROM a), (SELECT created_by FROM a), "
    "       (SELECT fv_ts(created_at) FROM a) FROM v";

_Static_assert(MAX_LIVE_APP_USERS == 1000, "keep the cap in sql_create's message");

static void created(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    app_create *s = r->state;
    if (!fe_verdict_answer(r, res, "deployment")) return;
    char url[512];
    snprintf(url, sizeof url, "%s/v1/key/%s/openrosa/deployments/%.*s", fe_openrosa_base(), s->token,
             FV_UUID_STRLEN, r->param[0]); /* a UUID: checked */
    char *qr = collect_settings_payload(url);
    if (!qr) {
        OPENSSL_cleanse(url, sizeof url);
        fe_reply_oom(r);
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) {
        OPENSSL_cleanse(url, sizeof url);
        free(qr);
        return;
    }
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, s->id);
    fv_jgen_key(j, "deployment_id");
    fv_jgen_str(j, r->param[0]);
    fv_jgen_key(j, "name");
    fv_jgen_str(j, PQgetvalue(res->res, 0, 2));
    fv_jgen_key(j, "created_by");
    fv_jgen_str(j, PQgetvalue(res->res, 0, 3));
    fv_jgen_key(j, "created_at");
    fv_jgen_str(j, PQgetvalue(res->res, 0, 4));
    fv_jgen_key(j, "revoked");
    fv_jgen_bool(j, false);
    fv_jgen_key(j, "token");
    fv_jgen_str(j, s->token);
    fv_jgen_key(j, "openrosa_url");
    fv_jgen_str(j, url);
    fv_jgen_key(j, "collect_settings");
    fv_jgen_str(j, qr);
    fv_jgen_map_close(j);
    OPENSSL_cleanse(url, sizeof url);
    OPENSSL_cleanse(qr, strlen(qr));
    free(qr);
    fe_reply_gen_send(r, 201, j);
}

void fe_app_users_create(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "deployment")) return;
    const char *name = fv_json_get_str(r->body, "name");
    const char *why = fe_check_label(name, NAME_MAX_CHARS, "required: a string of 1 to 200 characters",
                                     "must be at most 200 characters");
    if (why) {
        const char *f[] = {"name"};
        fe_reply_error_fields(r, 422, "validation_failed", "the app user is invalid", 1, f, &why);
        return;
    }
    app_create *s = calloc(1, sizeof *s);
    if (!s) {
        fe_reply_oom(r);
        return;
    }
    r->state = s;
    r->state_free = app_create_free;
    if (!fe_app_token_new(s->token)) {
        fe_reply_error(r, 503, "unavailable", "no random numbers available; retry later");
        return;
    }
    fv_sha256_hex(s->token, strlen(s->token), s->hash);
    fv_id_new(s->id);
    char cap[16];
    snprintf(cap, sizeof cap, "%d", MAX_LIVE_APP_USERS);
    const char *params[] = {r->param[0], r->user->id, fe_verdict_mfa(r), name,
                            s->id,       s->hash,     r->address,        cap};
    fe_pg_query(sql_create, 8, params, created, r);
}

/* ------------------------------------------------ GET /v1/deployments/{id}/app-users */

/* Revoked ones included, in creation order (UUIDv7 ids); never a token or its hash. */
static const char sql_list[] = FE_VERDICT_PAGE_SQL(
    "SELECT fv_deployment_manage_verdict($2::uuid, $1::uuid, $3::boolean)",
    "SELECT a.id, fv_app_user_json(a) AS j FROM app_users a "
    "WHERE a.deployment_id = $1::uuid AND ($4::uuid IS NULL OR a.id > $4::uuid)",
    "id", "page.id::text", "page.j", "$5");

void fe_app_users_list(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "deployment")) return;
    const char *params[] = {r->param[0], r->user->id, fe_verdict_mfa(r)};
    fe_verdict_page_list(r, FE_PAGE_UUID, sql_list, 3, params, "deployment");
}

/* ---------------------------------- DELETE /v1/deployments/{id}/app-users/{app_user} */

/* $1 deployment, $2 caller, $3 mfa, $4 app user, $5 address, $6 revocation ttl (s). The
 * revocations row (kind api_key, subject the token's hash) commits with the change. Revoking a
 * revoked app user is a no-op (204). */
static const char sql_revoke[] =
    "WITH v AS (SELECT CASE WHEN x.verdict <> 'ok' THEN x.verdict "
    "                       WHEN NOT EXISTS (SELECT 1 FROM app_users a WHERE a.id = $4::uuid "
    "                                        AND a.deployment_id = $1::uuid) THEN 'no_such_app_user' "
    "                       ELSE 'ok' END AS verdict "
    "           FROM (SELECT fv_deployment_manage_verdict($2::uuid, $1::uuid, $3::boolean) AS verdict) x), "
    "     a AS (UPDATE app_users SET revoked_at = now(), revoked_by = $2::uuid "
    "           WHERE id = $4::uuid AND deployment_id = $1::uuid AND revoked_at IS NULL "
    "             AND (SELECT verdict FROM v) = 'ok' RETURNING id, token_hash, name), "
    "     rv AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'api_key', a.token_hash, now() + make_interval(secs => $6::int) FROM a), "
    "     au AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "            SELECT $2::uuid, 'app_user.revoke', 'deployment', $1, NULLIF($5, '')::inet, s.org_id, "
    "                   jsonb_build_object('app_user_id', a.id, 'name', a.name) "
    "            FROM a, deployments d JOIN surveys s ON s.id = d.survey_id WHERE d.id = $1::uuid) "
    "SELECT CASE WHEN v.verdict = 'no_such_app_user' THEN 'hidden' ELSE v.verdict END, NULL FROM v";

void fe_app_users_revoke(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "deployment")) return;
    if (!fv_id_valid(r->param[1])) {
        fe_reply_error(r, 404, "not_found", "no such app user");
        return;
    }
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", fe_cfg.cache_stale_s + fe_cfg.redis_cache_ttl_s + 60);
    const char *params[] = {r->param[0], r->user->id, fe_verdict_mfa(r), r->param[1], r->address, ttl};
    /* a revocation row was written: this child polls at once (the other children and front ends
     * within revocation_poll_ms) */
    fe_verdict_run_revoking(r, sql_revoke, 6, params, 204, "app user", NULL);
}

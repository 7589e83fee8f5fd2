/* The caller's own account: GET /v1/me (read from PostgreSQL: a session token carries no email
 * or name) and PUT /v1/me/password. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_config.h"
#include "fe_handlers.h"
#include "fe_identity.h"
#include "fe_pii.h"
#include "fe_revoke.h"
#include "fe_throttle.h"
#include "fv_log.h"
#include "fv_token.h"

static const char sql_me[] =
    "SELECT id, fv_pii_cell(email, email_sealed), fv_pii_cell(name, name_sealed), is_admin, "
    "       totp_confirmed_at IS NOT NULL, fv_ts(created_at) "
    "FROM users WHERE id = $1 AND disabled_at IS NULL";

static void me_read(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (!fe_identity_account_row(r, res)) return;
    const PGresult *p = res->res;
    const char *id = PQgetvalue(p, 0, 0);
    char *email = NULL, *name = NULL; /* owned here */
    if (!fe_pii_read(r, p, 0, 1, "users", id, "email", &email) ||
        !fe_pii_read(r, p, 0, 2, "users", id, "name", &name)) {
        free(email);
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (j) {
        fe_user_json(j, id, email, name, PQgetvalue(p, 0, 3)[0] == 't', PQgetvalue(p, 0, 4)[0] == 't',
                     PQgetvalue(p, 0, 5));
        fe_reply_gen_send(r, 200, j);
    }
    free(email);
    free(name);
}

void fe_me_get(fe_req *r)
{
    const char *params[] = {r->user->id};
    fe_pg_query(sql_me, 1, params, me_read, r);
}

/* ---- PUT /v1/me/password ---- */

/* State of one change: owned by the request. */
typedef struct pw_change {
    fe_work *work;        /* the password job while it runs (owned by the pool) */
    char *current, *next; /* owned, wiped; copied into the job, then wiped */
    char *stored;         /* the hash the change replaces (owned) */
    char hash[FV_PASSWORD_HASH_MAX + 1];
    fv_strength strength; /* static texts only */
    char session_id[FV_UUID_STRLEN + 1];
    bool mfa;
    fe_throttle_open attempt; /* the throttle's count of this attempt, until it is ended */
} pw_change;

static void pw_change_free(void *p)
{
    pw_change *s = p;
    if (s->work) fe_work_detach(s->work);
    fe_throttle_close(&s->attempt, FE_THROTTLE_ABANDON); /* answered otherwise: not a failure */
    fe_identity_wipe(s->current);
    fe_identity_wipe(s->next);
    free(s->stored);
    OPENSSL_cleanse(s->hash, sizeof s->hash);
    free(s);
}

/* One statement: the new hash (only if the old one is still in place), every open session of the
 * user ended and revoked one by one, a "void before now" row for the user, every API key of the
 * user revoked (a key minted with a stolen session, or one the owner gave away, must not outlive
 * the password: a password change is how an owner takes their account back), with a revocations
 * row per key and an audit entry each, a new session for the caller, the audit entry. */
static const char sql_change[] =
    "WITH u AS (UPDATE users SET password_hash = $2, password_changed_at = now(), sessions_valid_after = now() "
    "           WHERE id = $1 AND password_hash = $3 AND disabled_at IS NULL RETURNING id), "
    "     old AS (UPDATE sessions SET revoked_at = now() "
    "             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() AND EXISTS (SELECT 1 FROM u) "
    "             RETURNING id, expires_at), "
    "     vs AS (INSERT INTO revocations (kind, subject, expires_at) SELECT 'session', id::text, expires_at FROM old), "
    "     vu AS (INSERT INTO revocations (kind, subject, not_before, expires_at) "
    "            SELECT 'user_sessions', $1, now(), now() + make_interval(secs => $4::int) FROM u), "
    "     ks AS (UPDATE api_keys SET revoked_at = now() "
    "            WHERE user_id = $1 AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM u) RETURNING id, key_hash), "
    "     vk AS (INSERT INTO revocations (kind, subject, expires_at) "
    "            SELECT 'api_key', key_hash, now() + make_interval(secs => $8::int) FROM ks), "
    "     ak AS (INSERT INTO audit (actor, action, target_type, target_id, address, detail) "
    "            SELECT $1, 'apikey.revoke', 'api_key', id::text, NULLIF($7, '')::inet, "
    "                   jsonb_build_object('reason', 'password_change') FROM ks), "
    "     n AS (INSERT INTO sessions (id, user_id, mfa, address, expires_at) "
    "           SELECT $5, id, $6::boolean, NULLIF($7, '')::inet, now() + make_interval(secs => $4::int) FROM u "
    "           RETURNING created_at, expires_at), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address) "
    "           SELECT id, 'user.password_change', 'user', id::text, NULLIF($7, '')::inet FROM u) "
    "SELECT floor(extract(epoch FROM created_at))::bigint, floor(extract(epoch FROM expires_at))::bigint, "
    "       fv_ts(expires_at), (SELECT count(*) FROM ks) FROM n";

static void changed(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    pw_change *s = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_reply_error(r, 409, "conflict", "the password was changed meanwhile; retry");
        return;
    }
    fe_revoke_poll_now();
    fe_throttle_close(&s->attempt, FE_THROTTLE_SUCCESS);
    fv_token t;
    memset(&t, 0, sizeof t);
    memcpy(t.session_id, s->session_id, sizeof t.session_id);
    memcpy(t.user_id, r->user->id, sizeof t.user_id);
    t.issued_at = strtoll(PQgetvalue(res->res, 0, 0), NULL, 10);
    t.expires_at = strtoll(PQgetvalue(res->res, 0, 1), NULL, 10);
    t.mfa = s->mfa;
    char token[FV_TOKEN_MAX + 1];
    if (fv_token_sign(&fe_keys, &t, token) != 0) {
        fv_error("req %s: signing a session token failed", r->req_id);
        fe_reply_error(r, 500, "internal", "internal error");
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "token");
    fv_jgen_str(j, token);
    OPENSSL_cleanse(token, sizeof token);
    fv_jgen_key(j, "expires_at");
    fv_jgen_str(j, PQgetvalue(res->res, 0, 2));
    fv_jgen_key(j, "api_keys_revoked");
    fv_jgen_int(j, atoi(PQgetvalue(res->res, 0, 3)));
    fv_jgen_key(j, "password_strength");
    fe_strength_json(j, &s->strength);
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}

static void change_checked(void *job, bool ran, void *owner)
{
    fe_req *r = owner;
    pw_change *s = r->state;
    fe_pw_job *pj = job;
    s->work = NULL;
    if (ran && pj->verify && !pj->verified) fe_throttle_close(&s->attempt, FE_THROTTLE_FAILURE);
    if (!fe_pw_job_done(r, pj, ran, "new_password", &s->strength)) return;
    memcpy(s->hash, pj->new_hash, sizeof s->hash);
    char ttl[16], key_ttl[16];
    snprintf(ttl, sizeof ttl, "%d", fe_cfg.session_ttl_s);
    /* a key's revocation row lives as long as any cache may hold the key (as fe_apikeys.c's) */
    snprintf(key_ttl, sizeof key_ttl, "%d", fe_cfg.cache_stale_s + fe_cfg.redis_cache_ttl_s);
    fv_id_new(s->session_id);
    /* the new session keeps the caller's second factor: it was proven for this session */
    s->mfa = r->user->cred == FE_CRED_SESSION && r->user->mfa;
    const char *params[] = {r->user->id, s->hash,       s->stored,
                            ttl,         s->session_id, s->mfa ? "true" : "false",
                            r->address,  key_ttl};
    fe_pg_query(sql_change, 8, params, changed, r);
}

static const char sql_pw_of[] =
    "SELECT password_hash, fv_pii_cell(email, email_sealed), fv_pii_cell(name, name_sealed) "
    "FROM users WHERE id = $1 AND disabled_at IS NULL";

static void stored_read(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    pw_change *s = r->state;
    if (!fe_identity_account_row(r, res)) return;
    const PGresult *p = res->res;
    bool has = !PQgetisnull(p, 0, 0) && fv_password_iterations(PQgetvalue(p, 0, 0)) > 0;
    /* An account without a password (API keys only) cannot prove the current one: the dummy
     * hash never verifies, so it answers 403 like a wrong password. */
    char *email = NULL, *name = NULL; /* owned here (the job copies them) */
    if (!fe_pii_read(r, p, 0, 1, "users", r->user->id, "email", &email) ||
        !fe_pii_read(r, p, 0, 2, "users", r->user->id, "name", &name)) {
        free(email);
        return;
    }
    s->stored = strdup(has ? PQgetvalue(p, 0, 0) : "");
    fe_pw_job *pj = fe_pw_job_new(s->current, s->next,
                                  has ? PQgetvalue(p, 0, 0) : fe_identity_dummy_hash(), email, name);
    free(email);
    free(name);
    fe_identity_wipe(s->current);
    fe_identity_wipe(s->next);
    s->current = s->next = NULL;
    if (!pj || !s->stored) {
        fe_pw_job_free(pj);
        fe_reply_oom(r);
        return;
    }
    pj->verify = pj->estimate = pj->hash = true;
    s->work = fe_work_submit(pj, fe_pw_job_run, change_checked, fe_pw_job_free, r);
    if (!s->work) {
        fe_pw_job_free(pj);
        fe_reply_pool_full(r);
    }
}

/* Guessing the current password with a stolen token is throttled like logins are (counted under
 * the user id, and under the address with the logins). */
static void change_throttled(int retry_after_s, void *arg)
{
    fe_req *r = arg;
    if (retry_after_s > 0) {
        fe_reply_throttled(r, retry_after_s);
        return;
    }
    pw_change *s = r->state;
    fe_throttle_opened(&s->attempt, r->user->id, r->address);
    const char *params[] = {r->user->id};
    fe_pg_query(sql_pw_of, 1, params, stored_read, r);
}

void fe_me_password(fe_req *r)
{
    const char *cur = fv_json_get_str(r->body, "current_password");
    const char *next = fv_json_get_str(r->body, "new_password");
    const char *names[2], *why[2];
    size_t n = 0;
    const char *e;
    if (!cur || !*cur || strlen(cur) > FE_PASSWORD_MAX)
        names[n] = "current_password", why[n++] = "required: a string of 1 to 1024 bytes";
    if ((e = fe_check_new_password(next))) names[n] = "new_password", why[n++] = e;
    if (n) {
        fe_reply_error_fields(r, 422, "validation_failed", "the password change is invalid", n, names,
                              why);
        return;
    }
    pw_change *s = calloc(1, sizeof *s);
    if (!s || !(s->current = strdup(cur)) || !(s->next = strdup(next))) {
        if (s) pw_change_free(s);
        fe_reply_oom(r);
        return;
    }
    r->state = s;
    r->state_free = pw_change_free;
    fe_throttle_begin(r->user->id, r->address, change_throttled, r);
}

/* Sessions: POST /v1/auth/login opens one (a signed token, common/fv_token.h), POST
 * /v1/auth/logout ends the caller's.
 *
 * Login, step by step (each step answers on failure):
 *   1. shapes of email, password, totp
 *   2. throttle (fe_throttle): 429 before any password work when this address failed too often
 *      (for this account, or for any), the same for known and unknown emails; an account that
 *      many addresses fail for is delayed here, never refused
 *   3. the account by email (PostgreSQL)
 *   4. PBKDF2 on the work pool, against the stored hash or a dummy one of equal work (unknown
 *      email, no password, disabled account); a good password with fewer iterations than
 *      configured is rehashed
 *   5. TOTP when enrolment is confirmed: 401 totp_required without a code; a wrong or reused code
 *      is a failure
 *   6. one statement: the TOTP step (only if later than the last used one, so a code works once
 *      even across front ends), the rehash, the session row and the audit entry; the token is
 *      signed with PostgreSQL's clock as issued-at (so it is never older than a "void before"
 *      written by the same clock) */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fe_config.h"
#include "fe_handlers.h"
#include "fe_identity.h"
#include "fe_pii.h"
#include "fe_revoke.h"
#include "fe_throttle.h"
#include "fv_crypto.h"
#include "fv_log.h"
#include "fv_seal.h"
#include "fv_token.h"
#include "fv_totp.h"

/* State of one login: owned by the request. */
typedef struct login {
    fe_work *work;  /* the password job while it runs (owned by the pool) */
    char *email;    /* as typed (owned) */
    char *password; /* owned; wiped; handed to the job (copied) then wiped at once */
    char *totp;     /* owned, may be NULL */
    bool found, disabled, has_password, totp_on;
    char user_id[FV_UUID_STRLEN + 1];
    char *user_email, *user_name; /* owned */
    bool is_admin;
    char *stored; /* the stored hash (owned) */
    char *sealed; /* the sealed TOTP secret (owned) */
    long long last_step;
    char rehash[FV_PASSWORD_HASH_MAX + 1]; /* "" unless rehashed */
    long long step;                        /* accepted TOTP step, 0 when none */
    char session_id[FV_UUID_STRLEN + 1];
    fe_throttle_open attempt; /* the throttle's count of this attempt, until it is ended */
} login;

static void login_free(void *p)
{
    login *s = p;
    if (s->work) fe_work_detach(s->work);
    /* answered without success or failure (PostgreSQL down, pool full, out of memory) */
    fe_throttle_close(&s->attempt, FE_THROTTLE_ABANDON);
    free(s->email);
    fe_identity_wipe(s->password);
    fe_identity_wipe(s->totp);
    free(s->user_email);
    free(s->user_name);
    free(s->stored);
    free(s->sealed);
    OPENSSL_cleanse(s->rehash, sizeof s->rehash);
    free(s);
}

static const char sql_audit_failed[] =
    "INSERT INTO audit (actor, action, target_type, target_id, address, detail) "
    "VALUES (NULLIF($1, '')::uuid, $2, 'user', NULLIF($1, ''), NULLIF($3, '')::inet, "
    "        jsonb_build_object('reason', $4::text, 'email_hmac', $5::text))";

/* arg: the request id (caller frees: here), as the request itself may be answered already. */
static void audit_done(const fe_pg_result *res, void *arg)
{
    char *req_id = arg;
    if (res->status != FE_PG_OK)
        fv_warn("req %s: audit entry of a failed login not written (%s)", req_id ? req_id : "?",
                res->status == FE_PG_SQL ? res->sqlstate : "database unavailable");
    free(req_id);
}

/* Writes an audit entry (action auth.login_failed or auth.throttled), best effort: the reply does
 * not wait for it. The email itself is not logged, its HMAC under the current master key is (hex,
 * as users.email_hmac: it correlates attempts, and a copy of the database cannot test a guessed
 * email against it without the key file). */
static void audit_failure(fe_req *r, const char *action, const char *user_id, const char *reason)
{
    login *s = r->state;
    char h[FV_PII_HMAC_HEXLEN + 1], key_id[FV_KEY_IDLEN + 1];
    const char *hex = fe_pii_hmac_current(s->email, h, key_id) ? h + 2 : ""; /* without "\\x" */
    const char *params[] = {user_id ? user_id : "", action, r->address, reason, hex};
    fe_pg_query(sql_audit_failed, 5, params, audit_done, strdup(r->req_id));
}

/* A failed login: counted by the throttle, audited, 401 invalid_credentials (the same answer for
 * every cause). */
static void fail(fe_req *r, const char *reason)
{
    login *s = r->state;
    fe_throttle_close(&s->attempt, FE_THROTTLE_FAILURE);
    audit_failure(r, "auth.login_failed", s->found ? s->user_id : NULL, reason);
    fe_reply_error(r, 401, "invalid_credentials", "the email, password or code is wrong");
}

static const char sql_open_session[] =
    "WITH u AS (UPDATE users SET "
    "             totp_last_step = CASE WHEN $2::bigint > 0 THEN $2::bigint ELSE totp_last_step END, "
    "             password_hash = CASE WHEN $3 <> '' AND password_hash = $4 THEN $3 ELSE password_hash END "
    "           WHERE id = $1 AND disabled_at IS NULL AND ($2::bigint = 0 OR totp_last_step < $2::bigint) "
    "           RETURNING id), "
    "     s AS (INSERT INTO sessions (id, user_id, mfa, address, expires_at) "
    "           SELECT $5, id, $2::bigint > 0, NULLIF($6, '')::inet, now() + make_interval(secs => $7::int) FROM u "
    "           RETURNING created_at, expires_at), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, detail) "
    "           SELECT id, 'auth.login', 'session', $5, NULLIF($6, '')::inet, "
    "                  jsonb_build_object('mfa', $2::bigint > 0, 'rehashed', $3 <> '') FROM u) "
    "SELECT floor(extract(epoch FROM created_at))::bigint, floor(extract(epoch FROM expires_at))::bigint, "
    "       fv_ts(expires_at) FROM s";

static void session_opened(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    login *s = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        /* the code was used meanwhile (another front end), or the account was just disabled */
        fail(r, s->step ? "totp_replay" : "disabled");
        return;
    }
    fv_token t;
    memset(&t, 0, sizeof t);
    memcpy(t.session_id, s->session_id, sizeof t.session_id);
    memcpy(t.user_id, s->user_id, sizeof t.user_id);
    t.issued_at = strtoll(PQgetvalue(res->res, 0, 0), NULL, 10);
    t.expires_at = strtoll(PQgetvalue(res->res, 0, 1), NULL, 10);
    t.mfa = s->step > 0;
    char token[FV_TOKEN_MAX + 1];
    if (fv_token_sign(&fe_keys, &t, token) != 0) {
        fv_error("req %s: signing a session token failed", r->req_id);
        fe_reply_error(r, 500, "internal", "internal error");
        return;
    }
    fe_throttle_close(&s->attempt, FE_THROTTLE_SUCCESS);
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "token");
    fv_jgen_str(j, token);
    OPENSSL_cleanse(token, sizeof token);
    fv_jgen_key(j, "expires_at");
    fv_jgen_str(j, PQgetvalue(res->res, 0, 2));
    fv_jgen_key(j, "mfa");
    fv_jgen_bool(j, t.mfa);
    fv_jgen_key(j, "user");
    fe_user_json(j, s->user_id, s->user_email, s->user_name, s->is_admin, s->totp_on, NULL);
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}

/* Step 5: the TOTP code, when the account has it on. Returns false when it answered. */
static bool check_totp(fe_req *r)
{
    login *s = r->state;
    if (!s->totp_on) return true;
    if (!s->totp) {
        fe_throttle_close(&s->attempt, FE_THROTTLE_FAILURE);
        audit_failure(r, "auth.login_failed", s->user_id, "totp_missing");
        fe_reply_error(r, 401, "totp_required", "this account needs a TOTP code: send it as totp");
        return false;
    }
    char aad[8 + FV_UUID_STRLEN + 1];
    snprintf(aad, sizeof aad, "totp:%s", s->user_id);
    size_t len = 0;
    unsigned char *secret = s->sealed ? fv_unseal(&fe_keys, "fv-seal-totp", aad, s->sealed, &len) : NULL;
    if (!secret) {
        fv_error("req %s: the TOTP secret of user %s does not open (key file?)", r->req_id, s->user_id);
        fe_reply_error(r, 500, "internal", "internal error");
        return false;
    }
    int64_t step = 0;
    fv_totp_result v = fv_totp_check(secret, len, s->totp, time(NULL), s->last_step, &step);
    OPENSSL_cleanse(secret, len);
    free(secret);
    if (v != FV_TOTP_OK) {
        fail(r, v == FV_TOTP_REPLAY ? "totp_replay" : "totp_wrong");
        return false;
    }
    s->step = step;
    return true;
}

static void password_checked(void *job, bool ran, void *owner)
{
    fe_req *r = owner;
    login *s = r->state;
    fe_pw_job *pj = job;
    s->work = NULL;
    if (!ran) {
        fe_reply_error(r, 503, "overloaded", "the server is shutting down; retry later");
        return;
    }
    if (!s->found || !s->has_password || s->disabled || !pj->verified) {
        fail(r, !s->found          ? "unknown_email"
                : !s->has_password ? "no_password"
                : s->disabled      ? "disabled"
                                   : "bad_password");
        return;
    }
    if (pj->hashed) memcpy(s->rehash, pj->new_hash, sizeof s->rehash);
    if (!check_totp(r)) return;
    char step[24], ttl[16];
    snprintf(step, sizeof step, "%lld", s->step);
    snprintf(ttl, sizeof ttl, "%d", fe_cfg.session_ttl_s);
    fv_id_new(s->session_id);
    const char *params[] = {s->user_id, step, s->rehash, s->stored, s->session_id, r->address, ttl};
    fe_pg_query(sql_open_session, 7, params, session_opened, r);
}

static const char sql_find_user[] =
    "SELECT id, fv_pii_cell(email, email_sealed), fv_pii_cell(name, name_sealed), is_admin, "
    "       password_hash, totp_secret, totp_confirmed_at IS NOT NULL, totp_last_step, "
    "       disabled_at IS NOT NULL "
    "FROM users WHERE email_hmac = ANY ($1::bytea[]) OR (email IS NOT NULL AND lower(email) = lower($2)) "
    "LIMIT 1";

static char *dup_col(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? NULL : strdup(PQgetvalue(res, 0, col));
}

static void user_found(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    login *s = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    const char *stored = fe_identity_dummy_hash();
    if (PQntuples(res->res) == 1) {
        const PGresult *p = res->res;
        s->found = true;
        snprintf(s->user_id, sizeof s->user_id, "%s", PQgetvalue(p, 0, 0));
        if (!fe_pii_read(r, p, 0, 1, "users", s->user_id, "email", &s->user_email) ||
            !fe_pii_read(r, p, 0, 2, "users", s->user_id, "name", &s->user_name))
            return;
        s->is_admin = PQgetvalue(p, 0, 3)[0] == 't';
        s->stored = dup_col(p, 4);
        s->sealed = dup_col(p, 5);
        s->totp_on = PQgetvalue(p, 0, 6)[0] == 't';
        s->last_step = strtoll(PQgetvalue(p, 0, 7), NULL, 10);
        s->disabled = PQgetvalue(p, 0, 8)[0] == 't';
        s->has_password = s->stored && fv_password_iterations(s->stored) > 0;
        if (!s->user_email || !s->user_name || (!PQgetisnull(p, 0, 4) && !s->stored) ||
            (!PQgetisnull(p, 0, 5) && !s->sealed)) {
            fe_reply_oom(r);
            return;
        }
        if (s->has_password && !s->disabled) stored = s->stored;
    }
    if (!s->stored && !(s->stored = strdup(""))) { /* the rehash guard compares with it */
        fe_reply_oom(r);
        return;
    }
    s->work = fe_pw_verify_start(r, &s->password, stored, password_checked);
}

static void throttle_checked(int retry_after_s, void *arg)
{
    fe_req *r = arg;
    login *s = r->state;
    if (retry_after_s > 0) {
        audit_failure(r, "auth.throttled", NULL, "too_many_failures");
        fe_reply_throttled(r, retry_after_s);
        return;
    }
    fe_throttle_opened(&s->attempt, s->email, r->address);
    char *hmacs = fe_pii_hmacs(s->email); /* owned here; fe_pg_query copies it */
    if (!hmacs) {
        fe_reply_oom(r);
        return;
    }
    const char *params[] = {hmacs, s->email};
    fe_pg_query(sql_find_user, 2, params, user_found, r);
    free(hmacs);
}

void fe_sessions_login(fe_req *r)
{
    const char *email = fv_json_get_str(r->body, "email");
    const char *pw = fv_json_get_str(r->body, "password");
    yajl_val totp_v = fv_json_get(r->body, "totp");
    const char *totp = fv_json_get_str(r->body, "totp");
    const char *names[3], *why[3];
    size_t n = 0;
    if (!email || !*email || strlen(email) > FE_EMAIL_MAX)
        names[n] = "email", why[n++] = "required: a string of 1 to 254 characters";
    if (!pw || !*pw || strlen(pw) > FE_PASSWORD_MAX)
        names[n] = "password", why[n++] = "required: a string of 1 to 1024 bytes";
    if (totp_v && !YAJL_IS_NULL(totp_v) && (!totp || strlen(totp) > 16))
        names[n] = "totp", why[n++] = "a string: the 6-digit code of the authenticator app";
    if (n) {
        fe_reply_error_fields(r, 422, "validation_failed", "the sign-in request is invalid", n, names,
                              why);
        return;
    }
    login *s = calloc(1, sizeof *s);
    if (!s || !(s->email = strdup(email)) || !(s->password = strdup(pw)) ||
        (totp && !(s->totp = strdup(totp)))) {
        if (s) login_free(s);
        fe_reply_oom(r);
        return;
    }
    r->state = s;
    r->state_free = login_free;
    fe_throttle_begin(s->email, r->address, throttle_checked, r);
}

/* ---- POST /v1/auth/logout ---- */

static const char sql_logout[] =
    "WITH s AS (UPDATE sessions SET revoked_at = now() "
    "           WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING expires_at), "
    "     v AS (INSERT INTO revocations (kind, subject, expires_at) "
    "           SELECT 'session', $1, COALESCE(max(expires_at), now() + make_interval(secs => $3::int)) FROM s), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address) "
    "           VALUES ($2, 'auth.logout', 'session', $1, NULLIF($4, '')::inet)) "
    "SELECT 1";

static void logged_out(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    fe_revoke_poll_now();
    fe_reply_text(r, 204, "application/json", NULL, 0);
}

void fe_sessions_logout(fe_req *r)
{
    if (r->user->cred != FE_CRED_SESSION) {
        fe_reply_error(r, 403, "not_a_session",
                       "only a session token can be logged out; revoke API keys instead");
        return;
    }
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", fe_cfg.session_ttl_s);
    const char *params[] = {r->user->cred_id, r->user->id, ttl, r->address};
    fe_pg_query(sql_logout, 4, params, logged_out, r);
}

/* TOTP second factor of the caller's account (RFC 6238 through common/fv_totp.h):
 *   POST   /v1/me/totp          enrol: a new secret, sealed at rest (fv_seal, label "fv-seal-totp",
 *                               associated data "totp:<user id>"); answers the base32 secret and
 *                               the otpauth:// URI once. Enrolling again before confirming
 *                               replaces the secret; 409 once confirmed.
 *   POST   /v1/me/totp/confirm  {code}: turns it on; from then on login asks for a code
 *   DELETE /v1/me/totp          {code}: turns it off (a current code proves the factor)
 * A code is accepted once: its time step is stored with UPDATE ... WHERE totp_last_step < step,
 * so a second use fails even on another front end. */
#include <event2/http.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fe_config.h"
#include "fe_handlers.h"
#include "fe_identity.h"
#include "fe_pii.h"
#include "fe_reauth.h"
#include "fe_throttle.h"
#include "fv_log.h"
#include "fv_seal.h"
#include "fv_totp.h"

#define SEAL_LABEL "fv-seal-totp"

/* The second factor is changed only from a session (a password was given): an API key, which
 * may sit in a script or be stolen, must not enrol a factor that then locks its owner out of
 * their own login, nor switch it off. Answers 403 and returns false otherwise. */
static bool session_only(fe_req *r)
{
    if (r->user->cred == FE_CRED_SESSION) return true;
    fe_reply_error(r, 403, "session_required",
                   "sign in with your password (POST /v1/auth/login) to change your second factor");
    return false;
}

static void aad_of(const char *user_id, char out[8 + FV_UUID_STRLEN + 1])
{
    snprintf(out, 8 + FV_UUID_STRLEN + 1, "totp:%s", user_id);
}

/* ---- enrol ---- */

/* State of one enrolment: owned by the request. */
typedef struct enrol {
    char b32[FV_TOTP_B32_MAX + 1]; /* the secret in base32 (wiped) */
    char *sealed;                  /* owned */
} enrol;

static void enrol_free(void *p)
{
    enrol *s = p;
    OPENSSL_cleanse(s->b32, sizeof s->b32);
    free(s->sealed);
    free(s);
}

static const char sql_enrol[] =
    "WITH cur AS (SELECT id, fv_pii_cell(email, email_sealed) AS email, "
    "                    totp_confirmed_at IS NOT NULL AS confirmed FROM users "
    "             WHERE id = $1 AND disabled_at IS NULL), "
    "     u AS (UPDATE users SET totp_secret = $2, totp_confirmed_at = NULL "
    "           FROM cur WHERE users.id = cur.id AND NOT cur.confirmed AND users.totp_confirmed_at IS NULL "
    "           RETURNING users.id) "
    "SELECT email, confirmed, (SELECT count(*) FROM u) FROM cur";

static void enrolled(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    enrol *s = r->state;
    if (!fe_identity_account_row(r, res)) return;
    if (strcmp(PQgetvalue(res->res, 0, 2), "1") != 0) {
        fe_reply_error(r, 409, "totp_already_enabled",
                       "TOTP is already on; turn it off first to enrol again");
        return;
    }
    char *email = NULL; /* owned here */
    if (!fe_pii_read(r, res->res, 0, 0, "users", r->user->id, "email", &email)) return;
    char *label = email ? evhttp_uriencode(email, -1, 0) : NULL;
    free(email);
    if (!label) {
        fe_reply_oom(r);
        return;
    }
    char uri[1024];
    snprintf(
        uri, sizeof uri,
        "otpauth://totp/Fieldvault:%s?secret=%s&issuer=Fieldvault&algorithm=SHA1&digits=6&period=30",
        label, s->b32);
    free(label);
    fv_jgen *j = fe_reply_gen(r);
    if (!j) {
        OPENSSL_cleanse(uri, sizeof uri);
        return;
    }
    fv_jgen_map_open(j);
    fv_jgen_key(j, "secret");
    fv_jgen_str(j, s->b32);
    fv_jgen_key(j, "otpauth_uri");
    fv_jgen_str(j, uri);
    fv_jgen_key(j, "confirmed");
    fv_jgen_bool(j, false);
    fv_jgen_map_close(j);
    OPENSSL_cleanse(uri, sizeof uri);
    fe_reply_gen_send(r, 200, j);
}

static void enrol_go(fe_req *r)
{
    enrol *s = calloc(1, sizeof *s);
    if (!s) {
        fe_reply_oom(r);
        return;
    }
    r->state = s;
    r->state_free = enrol_free;
    unsigned char secret[FV_TOTP_SECRET_BYTES];
    char aad[8 + FV_UUID_STRLEN + 1];
    aad_of(r->user->id, aad);
    if (fv_totp_new_secret(secret) != 0 || fv_totp_base32(secret, sizeof secret, s->b32) != 0 ||
        !(s->sealed = fv_seal(&fe_keys, SEAL_LABEL, aad, secret, sizeof secret))) {
        OPENSSL_cleanse(secret, sizeof secret);
        fv_error("req %s: making a TOTP secret failed", r->req_id);
        fe_reply_error(r, 500, "internal", "internal error");
        return;
    }
    OPENSSL_cleanse(secret, sizeof secret);
    const char *params[] = {r->user->id, s->sealed};
    fe_pg_query(sql_enrol, 2, params, enrolled, r);
}

/* Enrolling asks for the current password again: a stolen session must not be able to put a
 * factor of the thief's on the account (and lock its owner out). */
void fe_totp_enrol(fe_req *r)
{
    if (session_only(r)) fe_reauth(r, false, enrol_go);
}

/* ---- confirm and disable: both check a code against the stored secret ---- */

typedef struct code_op {
    char code[FV_TOTP_DIGITS + 1];
    bool disable; /* DELETE /v1/me/totp, else confirm */
    char *sealed; /* owned: the secret the code was checked against */
    char step[24];
    fe_throttle_open attempt; /* the throttle's count of this attempt, until it is ended */
} code_op;

static void code_op_free(void *p)
{
    code_op *s = p;
    fe_throttle_close(&s->attempt, FE_THROTTLE_ABANDON); /* answered otherwise: not a failure */
    OPENSSL_cleanse(s->code, sizeof s->code);
    free(s->sealed);
    free(s);
}

/* Confirm: the secret must be the one checked (not replaced by a new enrolment meanwhile). */
static const char sql_confirm[] =
    "WITH u AS (UPDATE users SET totp_confirmed_at = now(), totp_last_step = $2::bigint "
    "           WHERE id = $1 AND totp_secret = $3 AND totp_confirmed_at IS NULL AND totp_last_step < $2::bigint "
    "           RETURNING id), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address) "
    "           SELECT id, 'totp.enable', 'user', id::text, NULLIF($4, '')::inet FROM u) "
    "SELECT count(*) FROM u";

static const char sql_disable[] =
    "WITH u AS (UPDATE users SET totp_secret = NULL, totp_confirmed_at = NULL, totp_last_step = $2::bigint "
    "           WHERE id = $1 AND totp_secret = $3 AND totp_confirmed_at IS NOT NULL AND totp_last_step < $2::bigint "
    "           RETURNING id), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address) "
    "           SELECT id, 'totp.disable', 'user', id::text, NULLIF($4, '')::inet FROM u) "
    "SELECT count(*) FROM u";

/* A wrong or reused code: a failure for the throttle. */
static void bad_code(fe_req *r, const char *why)
{
    code_op *s = r->state;
    fe_throttle_close(&s->attempt, FE_THROTTLE_FAILURE);
    const char *f[] = {"code"}, *w[] = {why};
    fe_reply_error_fields(r, 422, "invalid_code", "the TOTP code is not valid", 1, f, w);
}

static void stored_step(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    code_op *s = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (strcmp(PQgetvalue(res->res, 0, 0), "1") != 0) {
        bad_code(r, "already used, or the enrolment changed meanwhile");
        return;
    }
    fe_throttle_close(&s->attempt, FE_THROTTLE_SUCCESS);
    if (s->disable) {
        fe_reply_text(r, 204, "application/json", NULL, 0);
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "totp_enabled");
    fv_jgen_bool(j, true);
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}

static void secret_read(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    code_op *s = r->state;
    if (!fe_identity_account_row(r, res)) return;
    const PGresult *p = res->res;
    bool confirmed = PQgetvalue(p, 0, 1)[0] == 't';
    if (PQgetisnull(p, 0, 0)) {
        fe_reply_error(r, 409, s->disable ? "totp_not_enabled" : "totp_not_enrolled",
                       s->disable ? "TOTP is not on" : "enrol first: POST /v1/me/totp");
        return;
    }
    if (s->disable && !confirmed) {
        fe_reply_error(r, 409, "totp_not_enabled", "TOTP is not on");
        return;
    }
    if (!s->disable && confirmed) {
        fe_reply_error(r, 409, "totp_already_enabled", "TOTP is already on");
        return;
    }
    if (!(s->sealed = strdup(PQgetvalue(p, 0, 0)))) {
        fe_reply_oom(r);
        return;
    }
    char aad[8 + FV_UUID_STRLEN + 1];
    aad_of(r->user->id, aad);
    size_t len = 0;
    unsigned char *secret = fv_unseal(&fe_keys, SEAL_LABEL, aad, s->sealed, &len);
    if (!secret) {
        fv_error("req %s: the TOTP secret of user %s does not open (key file?)", r->req_id, r->user->id);
        fe_reply_error(r, 500, "internal", "internal error");
        return;
    }
    int64_t step = 0;
    fv_totp_result v = fv_totp_check(secret, len, s->code, time(NULL),
                                     strtoll(PQgetvalue(p, 0, 2), NULL, 10), &step);
    OPENSSL_cleanse(secret, len);
    free(secret);
    if (v != FV_TOTP_OK) {
        bad_code(r, v == FV_TOTP_REPLAY ? "already used" : "wrong or expired");
        return;
    }
    snprintf(s->step, sizeof s->step, "%lld", (long long)step);
    const char *params[] = {r->user->id, s->step, s->sealed, r->address};
    fe_pg_query(s->disable ? sql_disable : sql_confirm, 4, params, stored_step, r);
}

static const char sql_secret[] =
    "SELECT totp_secret, totp_confirmed_at IS NOT NULL, totp_last_step FROM users "
    "WHERE id = $1 AND disabled_at IS NULL";

/* Guessing codes is throttled like logins (counted under the user id and the address). */
static void code_throttled(int retry_after_s, void *arg)
{
    fe_req *r = arg;
    if (retry_after_s > 0) {
        fe_reply_throttled(r, retry_after_s);
        return;
    }
    code_op *s = r->state;
    fe_throttle_opened(&s->attempt, r->user->id, r->address);
    const char *params[] = {r->user->id};
    fe_pg_query(sql_secret, 1, params, secret_read, r);
}

/* The code of the body (checked by code_shape_ok) against the stored secret. */
static void code_op_begin(fe_req *r, bool disable)
{
    const char *code = fv_json_get_str(r->body, "code");
    code_op *s = calloc(1, sizeof *s);
    if (!s) {
        fe_reply_oom(r);
        return;
    }
    memcpy(s->code, code, FV_TOTP_DIGITS + 1);
    s->disable = disable;
    r->state = s;
    r->state_free = code_op_free;
    fe_throttle_begin(r->user->id, r->address, code_throttled, r);
}

/* True when the body's code is 6 digits; else answers 422. */
static bool code_shape_ok(fe_req *r)
{
    const char *code = fv_json_get_str(r->body, "code");
    bool ok = code && strlen(code) == FV_TOTP_DIGITS;
    for (size_t i = 0; ok && i < FV_TOTP_DIGITS; i++) ok = code[i] >= '0' && code[i] <= '9';
    if (!ok) {
        const char *f[] = {"code"}, *why[] = {"required: a string of 6 digits"};
        fe_reply_error_fields(r, 422, "validation_failed", "the TOTP code is missing or malformed", 1, f,
                              why);
    }
    return ok;
}

static void disable_go(fe_req *r)
{
    code_op_begin(r, true);
}

void fe_totp_confirm(fe_req *r)
{
    if (session_only(r) && code_shape_ok(r)) code_op_begin(r, false);
}

/* Switching the factor off needs the password again, then the current code: neither a stolen
 * session nor a stolen phone alone is enough. */
void fe_totp_disable(fe_req *r)
{
    if (session_only(r) && code_shape_ok(r)) fe_reauth(r, false, disable_go);
}

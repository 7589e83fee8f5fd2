/* What the identity handlers share (fe_identity.h): the password job, input checks, the JSON
 * shapes of a user and of a password-strength estimate. */
#include "fe_identity.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_config.h"
#include "fv_log.h"

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s) return NULL;
    char *c = strdup(s);
    if (!c) *oom = true;
    return c;
}

fe_pw_job *fe_pw_job_new(const char *password, const char *new_password, const char *stored,
                         const char *email, const char *name)
{
    fe_pw_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    bool oom = false;
    j->password = dup_or_null(password, &oom);
    j->len = password ? strlen(password) : 0;
    j->new_password = dup_or_null(new_password, &oom);
    j->new_len = new_password ? strlen(new_password) : 0;
    j->stored = dup_or_null(stored, &oom);
    j->email = dup_or_null(email, &oom);
    j->name = dup_or_null(name, &oom);
    j->iterations = fe_cfg.password_iterations;
    j->min_score = fe_cfg.min_password_score;
    if (oom) {
        fe_pw_job_free(j);
        return NULL;
    }
    return j;
}

static void wipe_free(char *s, size_t len)
{
    if (!s) return;
    OPENSSL_cleanse(s, len);
    free(s);
}

void fe_pw_job_free(void *p)
{
    fe_pw_job *j = p;
    if (!j) return;
    wipe_free(j->password, j->len);
    wipe_free(j->new_password, j->new_len);
    free(j->stored);
    free(j->email);
    free(j->name);
    OPENSSL_cleanse(j->new_hash, sizeof j->new_hash);
    free(j);
}

void fe_pw_job_run(void *p)
{
    fe_pw_job *j = p;
    bool rehash = false;
    if (j->verify) {
        j->verified = fv_password_verify(j->password, j->len, j->stored, j->iterations, &rehash);
        if (!j->verified) return;
    }
    const char *target = j->new_password ? j->new_password : j->password;
    size_t tlen = j->new_password ? j->new_len : j->len;
    if (j->estimate) {
        j->estimated = fv_strength_estimate(target, tlen, j->email, j->name, &j->strength) == 0;
        j->strong = j->estimated && j->strength.score >= j->min_score;
        if (!j->strong) return;
    }
    if (j->hash || rehash) j->hashed = fv_password_hash(target, tlen, j->iterations, j->new_hash) == 0;
}

void fe_identity_wipe(char *s)
{
    if (s) OPENSSL_cleanse(s, strlen(s));
    free(s);
}

const char *fe_identity_dummy_hash(void)
{
    /* Parses like any hash (32-byte key, this many iterations) and matches nothing anybody types:
     * the key is all zero bytes. */
    static char buf[FV_PASSWORD_HASH_MAX + 1];
    snprintf(buf, sizeof buf,
             "pbkdf2_sha256$%d$fvdummysaltfvdummy$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
             fe_cfg.password_iterations);
    return buf;
}

/* ---- input checks ---- */

const char *fe_check_email(const char *email)
{
    if (!email) return "required: a string";
    size_t n = strlen(email);
    if (n < 3 || n > FE_EMAIL_MAX) return "must be 3 to 254 characters";
    const char *at = strchr(email, '@');
    if (!at || at == email || !at[1] || strchr(at + 1, '@')) return "must be an email address";
    for (const unsigned char *p = (const unsigned char *)email; *p; p++)
        if (*p <= 0x20 || *p == 0x7f) return "must not contain spaces or control characters";
    return NULL;
}

const char *fe_check_name(const char *name)
{
    if (!name) return "required: a string";
    size_t n = strlen(name);
    if (n < 1 || n > FE_USER_NAME_MAX) return "must be 1 to 200 characters";
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return "must not contain control characters";
    return NULL;
}

const char *fe_check_label(const char *name, size_t max_chars, const char *required,
                           const char *too_long)
{
    if (!name) return required;
    size_t chars = 0;
    bool visible = false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if ((*p & 0xC0) != 0x80) chars++;
        if (*p < 0x20 || *p == 0x7F) return "must not contain control characters";
        if (*p != ' ') visible = true;
    }
    if (chars == 0 || !visible) return "must not be empty or blank";
    if (chars > max_chars) return too_long;
    return NULL;
}

const char *fe_check_new_password(const char *pw)
{
    if (!pw) return "required: a string";
    size_t chars = 0, counted = 0; /* every code point; code points with space runs as one */
    for (const unsigned char *p = (const unsigned char *)pw; *p; p++) {
        if ((*p & 0xC0) == 0x80) continue; /* a continuation byte (the body is valid UTF-8) */
        chars++;
        if (!(*p == ' ' && p > (const unsigned char *)pw && p[-1] == ' ')) counted++;
    }
    if (counted < FE_PASSWORD_MIN_CHARS || chars > FE_PASSWORD_MAX_CHARS)
        return "must be 12 to 128 characters";
    return NULL;
}

/* ---- JSON shapes and replies ---- */

void fe_strength_json(fv_jgen *j, const fv_strength *s)
{
    fv_jgen_map_open(j);
    fv_jgen_key(j, "score");
    fv_jgen_int(j, s->score);
    fv_jgen_key(j, "guesses_log10");
    fv_jgen_double(j, s->guesses_log10);
    fv_jgen_key(j, "feedback");
    fv_jgen_map_open(j);
    fv_jgen_key(j, "warning");
    fv_jgen_str(j, s->warning);
    fv_jgen_key(j, "suggestions");
    fv_jgen_array_open(j);
    for (int i = 0; i < s->nsuggestions; i++) fv_jgen_str(j, s->suggestions[i]);
    fv_jgen_array_close(j);
    fv_jgen_map_close(j);
    fv_jgen_map_close(j);
}

void fe_reply_weak_password(fe_req *r, const char *field, const fv_strength *s)
{
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    char why[96];
    snprintf(why, sizeof why, "too weak: score %d, at least %d needed", s->score,
             fe_cfg.min_password_score);
    fv_jgen_map_open(j);
    fv_jgen_key(j, "error");
    fv_jgen_map_open(j);
    fv_jgen_key(j, "code");
    fv_jgen_str(j, "weak_password");
    fv_jgen_key(j, "message");
    fv_jgen_str(j, "the password is too easy to guess");
    fe_reply_request_id(r, j);
    fv_jgen_key(j, "fields");
    fv_jgen_map_open(j);
    fv_jgen_key(j, field);
    fv_jgen_str(j, why);
    fv_jgen_map_close(j);
    fv_jgen_key(j, "password_strength");
    fe_strength_json(j, s);
    fv_jgen_map_close(j);
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 422, j);
}

fe_work *fe_pw_verify_start(fe_req *r, char **password, const char *stored, fe_work_done_fn done)
{
    fe_pw_job *pj = fe_pw_job_new(*password, NULL, stored, NULL, NULL);
    fe_identity_wipe(*password);
    *password = NULL;
    if (!pj) {
        fe_reply_oom(r);
        return NULL;
    }
    pj->verify = true;
    fe_work *w = fe_work_submit(pj, fe_pw_job_run, done, fe_pw_job_free, r);
    if (!w) {
        fe_pw_job_free(pj);
        fe_reply_pool_full(r);
    }
    return w;
}

bool fe_pw_job_done(fe_req *r, const fe_pw_job *pj, bool ran, const char *field, fv_strength *strength)
{
    if (!ran) {
        fe_reply_error(r, 503, "overloaded", "the server is shutting down; retry later");
        return false;
    }
    if (pj->verify && !pj->verified) {
        const char *f[] = {"current_password"}, *why[] = {"wrong"};
        fe_reply_error_fields(r, 403, "wrong_password", "the current password is wrong", 1, f, why);
        return false;
    }
    if (pj->estimate) {
        if (!pj->estimated) {
            fe_reply_oom(r);
            return false;
        }
        *strength = pj->strength;
        if (!pj->strong) {
            fe_reply_weak_password(r, field, strength);
            return false;
        }
    }
    if (pj->hash && !pj->hashed) {
        fv_error("req %s: password hashing failed", r->req_id);
        fe_reply_error(r, 500, "internal", "internal error");
        return false;
    }
    return true;
}

bool fe_identity_account_row(fe_req *r, const fe_pg_result *res)
{
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return false;
    }
    if (PQntuples(res->res) != 1) {
        fe_reply_error(r, 404, "not_found", "this account no longer exists");
        return false;
    }
    return true;
}

void fe_reply_throttled(fe_req *r, int secs)
{
    fe_reply_error_retry(r, 429, "too_many_attempts", "too many failed sign-in attempts; retry later",
                         secs);
}

void fe_reply_pool_full(fe_req *r)
{
    fe_reply_error(r, 503, "overloaded", "too many password checks in progress; retry later");
}

void fe_user_json(fv_jgen *j, const char *id, const char *email, const char *name, bool is_admin,
                  bool totp_enabled, const char *created_at)
{
    fv_jgen_map_open(j);
    fe_user_fields(j, id, email, name, is_admin, totp_enabled, created_at);
    fv_jgen_map_close(j);
}

void fe_user_fields(fv_jgen *j, const char *id, const char *email, const char *name, bool is_admin,
                    bool totp_enabled, const char *created_at)
{
    fv_jgen_key(j, "id");
    fv_jgen_str(j, id);
    fv_jgen_key(j, "email");
    fv_jgen_str(j, email);
    fv_jgen_key(j, "name");
    fv_jgen_str(j, name);
    fv_jgen_key(j, "is_admin");
    fv_jgen_bool(j, is_admin);
    fv_jgen_key(j, "totp_enabled");
    fv_jgen_bool(j, totp_enabled);
    if (created_at) {
        fv_jgen_key(j, "created_at");
        fv_jgen_str(j, created_at);
    }
}

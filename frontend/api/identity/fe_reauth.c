/* Re-authentication for sensitive changes (see fe_reauth.h). */
#include "fe_reauth.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fe_config.h"
#include "fe_identity.h"
#include "fe_pg.h"
#include "fe_throttle.h"
#include "fv_log.h"
#include "fv_seal.h"
#include "fv_totp.h"

/* State of one re-authentication: owned by the request until next is called. */
typedef struct reauth {
    fe_reauth_fn next;
    bool with_totp, totp_on;
    char *password; /* owned, wiped once copied into the job */
    char totp[FV_TOTP_DIGITS + 1];
    char *sealed; /* owned: the stored TOTP secret */
    long long last_step;
    char step[24];
    fe_work *work;            /* the password job while it runs (owned by the pool) */
    fe_throttle_open attempt; /* the throttle's count of this attempt, until it is ended */
} reauth;

static void reauth_free(void *p)
{
    reauth *s = p;
    if (s->work) fe_work_detach(s->work);
    fe_throttle_close(&s->attempt, FE_THROTTLE_ABANDON); /* answered otherwise: not a failure */
    fe_identity_wipe(s->password);
    OPENSSL_cleanse(s->totp, sizeof s->totp);
    free(s->sealed);
    free(s);
}

static void bad_totp(fe_req *r, const char *why)
{
    reauth *s = r->state;
    fe_throttle_close(&s->attempt, FE_THROTTLE_FAILURE);
    const char *f[] = {"totp"}, *w[] = {why};
    fe_reply_error_fields(r, 422, "invalid_code", "the TOTP code is not valid", 1, f, w);
}

/* Everything passed: the throttle's count starts again and the operation goes on. */
static void passed(fe_req *r)
{
    reauth *s = r->state;
    fe_reauth_fn next = s->next;
    fe_throttle_close(&s->attempt, FE_THROTTLE_SUCCESS);
    reauth_free(s);
    r->state = NULL;
    r->state_free = NULL;
    next(r);
}

static const char sql_step[] =
    "UPDATE users SET totp_last_step = $2::bigint "
    "WHERE id = $1 AND disabled_at IS NULL AND totp_last_step < $2::bigint RETURNING id";

static void step_stored(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        bad_totp(r, "already used");
        return;
    }
    passed(r);
}

static void password_checked(void *job, bool ran, void *owner)
{
    fe_req *r = owner;
    reauth *s = r->state;
    s->work = NULL;
    const fe_pw_job *pj = job;
    if (ran && pj->verify && !pj->verified) fe_throttle_close(&s->attempt, FE_THROTTLE_FAILURE);
    if (!fe_pw_job_done(r, job, ran, "current_password", NULL)) return;
    if (!s->totp_on) {
        passed(r);
        return;
    }
    char aad[8 + FV_UUID_STRLEN + 1];
    snprintf(aad, sizeof aad, "totp:%s", r->user->id);
    size_t len = 0;
    unsigned char *secret = fv_unseal(&fe_keys, "fv-seal-totp", aad, s->sealed, &len);
    if (!secret) {
        fv_error("req %s: the TOTP secret of user %s does not open (key file?)", r->req_id, r->user->id);
        fe_reply_error(r, 500, "internal", "internal error");
        return;
    }
    int64_t step = 0;
    fv_totp_result v = fv_totp_check(secret, len, s->totp, time(NULL), s->last_step, &step);
    OPENSSL_cleanse(secret, len);
    free(secret);
    if (v != FV_TOTP_OK) {
        bad_totp(r, v == FV_TOTP_REPLAY ? "already used" : "wrong or expired");
        return;
    }
    snprintf(s->step, sizeof s->step, "%lld", (long long)step);
    const char *params[] = {r->user->id, s->step};
    fe_pg_query(sql_step, 2, params, step_stored, r);
}

static const char sql_account[] =
    "SELECT password_hash, NULL, NULL, totp_secret, totp_confirmed_at IS NOT NULL, totp_last_step "
    "FROM users WHERE id = $1 AND disabled_at IS NULL";

static void account_read(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    reauth *s = r->state;
    if (!fe_identity_account_row(r, res)) return;
    const PGresult *p = res->res;
    s->totp_on = s->with_totp && PQgetvalue(p, 0, 4)[0] == 't' && !PQgetisnull(p, 0, 3);
    if (s->totp_on && !s->totp[0]) {
        const char *f[] = {"totp"},
                   *why[] = {"required: the 6-digit code of your authenticator app (TOTP is on)"};
        fe_reply_error_fields(r, 422, "validation_failed",
                              "this account has TOTP on: send the code as totp", 1, f, why);
        return;
    }
    if (s->totp_on && !(s->sealed = strdup(PQgetvalue(p, 0, 3)))) {
        fe_reply_oom(r);
        return;
    }
    s->last_step = strtoll(PQgetvalue(p, 0, 5), NULL, 10);
    /* An account without a password cannot prove one: the dummy hash never verifies (403). */
    bool has = !PQgetisnull(p, 0, 0) && fv_password_iterations(PQgetvalue(p, 0, 0)) > 0;
    s->work = fe_pw_verify_start(r, &s->password, has ? PQgetvalue(p, 0, 0) : fe_identity_dummy_hash(),
                                 password_checked);
}

static void throttled(int retry_after_s, void *arg)
{
    fe_req *r = arg;
    if (retry_after_s > 0) {
        fe_reply_throttled(r, retry_after_s);
        return;
    }
    reauth *s = r->state;
    fe_throttle_opened(&s->attempt, r->user->id, r->address);
    const char *params[] = {r->user->id};
    fe_pg_query(sql_account, 1, params, account_read, r);
}

void fe_reauth(fe_req *r, bool with_totp, fe_reauth_fn next)
{
    const char *pw = fv_json_get_str(r->body, "current_password");
    yajl_val tv = fv_json_get(r->body, "totp");
    const char *totp = fv_json_get_str(r->body, "totp");
    const char *names[2], *why[2];
    size_t n = 0;
    if (!pw || !*pw || strlen(pw) > FE_PASSWORD_MAX)
        names[n] = "current_password", why[n++] = "required: your current password (1 to 1024 bytes)";
    bool totp_ok = totp && strlen(totp) == FV_TOTP_DIGITS;
    for (size_t i = 0; totp_ok && i < FV_TOTP_DIGITS; i++) totp_ok = totp[i] >= '0' && totp[i] <= '9';
    if (tv && !YAJL_IS_NULL(tv) && !totp_ok) names[n] = "totp", why[n++] = "a string of 6 digits";
    if (n) {
        fe_reply_error_fields(r, 422, "validation_failed",
                              "confirm this change with your current password", n, names, why);
        return;
    }
    reauth *s = calloc(1, sizeof *s);
    if (!s || !(s->password = strdup(pw))) {
        free(s);
        fe_reply_oom(r);
        return;
    }
    s->next = next;
    s->with_totp = with_totp;
    if (totp_ok) memcpy(s->totp, totp, sizeof s->totp);
    r->state = s;
    r->state_free = reauth_free;
    fe_throttle_begin(r->user->id, r->address, throttled, r);
}

/* Accounts: sign-up (POST /v1/users).
 *
 * The answer never tells whether the email already has an account: for a new and for a taken
 * email alike the password is estimated and hashed (the same work), one statement runs (an insert
 * that does nothing on a taken email, and an audit entry either way), and the reply is 202 with
 * the same shape: {email, name, password_strength}. The existing account is left untouched; its
 * owner finds the attempt in the audit log (user.signup_existing). The new account's id is not in
 * the answer (a made-up one would be told apart by later calls): signing in gives it.
 * Throttled before any password work (fe_throttle_signup, per address and per child), and hashed
 * on the work pool's bulk class, which logins never wait behind. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_config.h"
#include "fe_datakeys.h"
#include "fe_handlers.h"
#include "fe_identity.h"
#include "fe_pii.h"
#include "fe_throttle.h"
#include "fv_log.h"

/* State of one sign-up: owned by the request. */
typedef struct signup {
    fe_work *work; /* the password job while it runs (owned by the pool) */
    char id[FV_UUID_STRLEN + 1];
    char *email, *name; /* owned */
    char hash[FV_PASSWORD_HASH_MAX + 1];
    fv_strength strength; /* static texts only */
} signup;

static void signup_free(void *p)
{
    signup *s = p;
    if (s->work) fe_work_detach(s->work);
    free(s->email);
    free(s->name);
    OPENSSL_cleanse(s->hash, sizeof s->hash);
    free(s);
}

/* One statement: the user and its audit entry. The email is taken when a user has it: by its HMAC
 * under any key of the key file ($6), or in clear for a row the sweep has not sealed yet ($2, not
 * stored); the unique index on email_hmac decides between two sign-ups at once (ON CONFLICT).
 * When taken, an audit entry on the existing account instead (no actor: nobody proved who they
 * are), so both cases write one row of each kind of work. The row holds the email and name sealed
 * ($3, $9 under the global data key version $10) and the HMAC under the current key ($7, $8). */
static const char sql_signup[] =
    "WITH e AS (SELECT x.id FROM users x WHERE x.email_hmac = ANY ($6::bytea[]) "
    "           OR (x.email IS NOT NULL AND lower(x.email) = lower($2)) LIMIT 1), "
    "     u AS (INSERT INTO users (id, email_sealed, name_sealed, pii_version, email_hmac, email_hmac_key, "
    "                              password_hash, password_changed_at) "
    "           SELECT $1, $3::bytea, $9::bytea, $10::int, $7::bytea, $8, $4, now() "
    "           WHERE NOT EXISTS (SELECT 1 FROM e) ON CONFLICT DO NOTHING RETURNING id), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address) "
    "           SELECT id, 'user.create', 'user', id::text, NULLIF($5, '')::inet FROM u), "
    "     x AS (INSERT INTO audit (actor, action, target_type, target_id, address) "
    "           SELECT NULL, 'user.signup_existing', 'user', e.id::text, NULLIF($5, '')::inet "
    "           FROM e WHERE NOT EXISTS (SELECT 1 FROM u)) "
    "SELECT count(*) FROM u";

static void signup_stored(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    signup *s = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    /* the same answer whether the account was made or the email was taken */
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "email");
    fv_jgen_str(j, s->email);
    fv_jgen_key(j, "name");
    fv_jgen_str(j, s->name);
    fv_jgen_key(j, "password_strength");
    fe_strength_json(j, &s->strength);
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 202, j);
}

/* The global data key (fe_datakeys_current's callback): seals the email and name to their
 * places in the new row, then the statement. */
static void signup_keyed(const unsigned char *key, int version, const char *err, void *arg)
{
    fe_req *r = arg;
    signup *s = r->state;
    if (!key) {
        fv_warn("req %s: sign-up: %s", r->req_id, err ? err : "no data key");
        fe_reply_error_retry(r, 503, "db_unavailable", "the data key is unavailable; retry later", 30);
        return;
    }
    char aad_e[FV_DK_AAD_MAX], aad_n[FV_DK_AAD_MAX], hmac[FV_PII_HMAC_HEXLEN + 1],
        key_id[FV_KEY_IDLEN + 1];
    char v[16];
    fv_pii_aad("users", s->id, "email", aad_e);
    fv_pii_aad("users", s->id, "name", aad_n);
    snprintf(v, sizeof v, "%d", version);
    /* all owned here; fe_pg_query copies them */
    char *email = fv_pii_seal_hex(key, version, aad_e, s->email);
    char *name = fv_pii_seal_hex(key, version, aad_n, s->name);
    char *hmacs = fe_pii_hmacs(s->email);
    if (email && name && hmacs && fe_pii_hmac_current(s->email, hmac, key_id)) {
        const char *params[] = {s->id, s->email, email,  s->hash, r->address,
                                hmacs, hmac,     key_id, name,    v};
        fe_pg_query(sql_signup, 10, params, signup_stored, r);
    } else {
        fe_reply_oom(r);
    }
    free(email);
    free(name);
    free(hmacs);
}

static void signup_hashed(void *job, bool ran, void *owner)
{
    fe_req *r = owner;
    signup *s = r->state;
    fe_pw_job *pj = job;
    s->work = NULL;
    if (!fe_pw_job_done(r, pj, ran, "password", &s->strength)) return;
    memcpy(s->hash, pj->new_hash, sizeof s->hash);
    fe_datakeys_current(FE_DATAKEYS_GLOBAL, signup_keyed, r); /* then seals the email and name */
}

void fe_accounts_signup(fe_req *r)
{
    if (!fe_cfg.signup_open) {
        fe_reply_error(r, 403, "signup_closed",
                       "sign-up is closed on this server; ask an administrator");
        return;
    }
    const char *email = fv_json_get_str(r->body, "email");
    const char *name = fv_json_get_str(r->body, "name");
    const char *pw = fv_json_get_str(r->body, "password");
    const char *names[3], *why[3];
    size_t n = 0;
    const char *e;
    if ((e = fe_check_email(email))) names[n] = "email", why[n++] = e;
    if ((e = fe_check_name(name))) names[n] = "name", why[n++] = e;
    if ((e = fe_check_new_password(pw))) names[n] = "password", why[n++] = e;
    if (n) {
        fe_reply_error_fields(r, 422, "validation_failed", "the account is invalid", n, names, why);
        return;
    }
    int retry = fe_throttle_signup(r->address);
    if (retry > 0) {
        fe_reply_error_retry(r, 429, "too_many_signups",
                             "too many sign-ups from this address or to this server; retry later",
                             retry);
        return;
    }
    signup *s = calloc(1, sizeof *s);
    if (!s || !(s->email = strdup(email)) || !(s->name = strdup(name))) {
        if (s) free(s->email);
        free(s);
        fe_reply_oom(r);
        return;
    }
    r->state = s;
    r->state_free = signup_free;
    fv_id_new(s->id);
    fe_pw_job *pj = fe_pw_job_new(pw, NULL, NULL, email, name);
    if (!pj) {
        fe_reply_oom(r);
        return;
    }
    pj->estimate = pj->hash = true;
    s->work = fe_work_submit_bulk(pj, fe_pw_job_run, signup_hashed, fe_pw_job_free, r);
    if (!s->work) {
        fe_pw_job_free(pj);
        fe_reply_pool_full(r);
    }
}

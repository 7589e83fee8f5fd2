/* What the identity handlers share (fe_identity.c; used by fe_accounts.c, fe_me.c, fe_sessions.c, fe_totp.c): the
 * password job run on the work pool, input checks, and the JSON shapes of a user and of a
 * password-strength estimate. Internal to the identity area. */
#ifndef FE_IDENTITY_H
#define FE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include "fe_reply.h"
#include "fe_workpool.h"
#include "fv_password.h"
#include "fv_strength.h"

#define FE_EMAIL_MAX 254
#define FE_USER_NAME_MAX 200
/* A new password (sign-up, change) is 12 to 128 characters (Unicode code points; for the
 * minimum a run of spaces counts once), OWASP ASVS 2.1.1-2.1.2; any character may be used and
 * nothing is cut or changed. A password given to log in or to confirm an action may be up to
 * FE_PASSWORD_MAX bytes (older accounts may have set a longer one). */
#define FE_PASSWORD_MIN_CHARS 12
#define FE_PASSWORD_MAX_CHARS 128
#define FE_PASSWORD_MAX 1024

/* Password work done on a pool thread. Every string is owned by the job and freed (passwords
 * wiped with OPENSSL_cleanse) by fe_pw_job_free. Steps, in order, each only if the previous passed:
 *   verify:   password against stored (constant time); on a good one with fewer iterations than
 *             configured, a fresh hash of password is made (rehash at login)
 *   estimate: zxcvbn on new_password (or password when new_password is NULL), email and name as
 *             user dictionary; passes when score >= min_score
 *   hash:     a fresh hash of new_password (or password) into new_hash */
typedef struct fe_pw_job {
    char *password;
    size_t len;
    char *new_password; /* may be NULL */
    size_t new_len;
    char *stored;       /* verify: the stored hash, or a dummy one of equal work */
    char *email, *name; /* estimate: user dictionary */
    int iterations, min_score;
    bool verify, estimate, hash;
    /* results */
    bool verified, estimated, strong, hashed;
    fv_strength strength;
    char new_hash[FV_PASSWORD_HASH_MAX + 1];
} fe_pw_job;

/* A job with copies of the given strings (any may be NULL), or NULL when out of memory. */
fe_pw_job *fe_pw_job_new(const char *password, const char *new_password, const char *stored,
                         const char *email, const char *name);
void fe_pw_job_free(void *job);
void fe_pw_job_run(void *job);

/* Checks *password against stored (any hash, or the dummy one) on the work pool; done gets the
 * job (a fe_pw_job with verify set). Takes the password: it is wiped and freed, *password NULL.
 * Returns the work (the pool owns it until done), or NULL after answering r (503: out of memory
 * or the pool full). */
fe_work *fe_pw_verify_start(fe_req *r, char **password, const char *stored, fe_work_done_fn done);

/* The end of password job pj (borrowed) for r: true when every step asked for passed (pj->new_hash
 * holds the new hash; *strength the estimate, when one was asked for); else answers r and returns
 * false: 503 when the pool did not run it (ran false) or memory ran out, 403 wrong_password
 * (field current_password) when the password did not verify, 422 weak_password (field) when the
 * new one is too weak, 500 when hashing failed. */
bool fe_pw_job_done(fe_req *r, const fe_pw_job *pj, bool ran, const char *field, fv_strength *strength);

/* True when res is the row of the caller's account; else answers r (the database's failure, or
 * 404: the account was deleted or disabled meanwhile) and returns false (r is then gone). */
bool fe_identity_account_row(fe_req *r, const fe_pg_result *res);

/* Wipes the NUL-terminated secret s (OPENSSL_cleanse) and frees it; NULL is fine. */
void fe_identity_wipe(char *s);

/* A stored text that never verifies yet costs the configured PBKDF2 work (a login for an email
 * with no usable password spends the same time as one for a real account). Static buffer. */
const char *fe_identity_dummy_hash(void);

/* Input checks: NULL when good, else the reason for the 422's `fields`. */
const char *fe_check_email(const char *email);
const char *fe_check_name(const char *name);
const char *fe_check_new_password(const char *pw);
/* A label (an API key's or an app user's name; borrowed, may be NULL): 1 to max_chars code points
 * (the JSON parser checked the UTF-8), not all blank, no control characters. NULL when good, else
 * the reason: `required` when absent, `too_long` past max_chars (both static, the caller's). */
const char *fe_check_label(const char *name, size_t max_chars, const char *required,
                           const char *too_long);

/* {score, guesses_log10, feedback: {warning, suggestions: [...]}} */
void fe_strength_json(fv_jgen *j, const fv_strength *s);
/* 422 weak_password with the estimate (answers and frees r). */
void fe_reply_weak_password(fe_req *r, const char *field, const fv_strength *s);
/* 429 too_many_attempts with Retry-After: secs. */
void fe_reply_throttled(fe_req *r, int secs);
/* 503 overloaded with Retry-After: the work pool is full. */
void fe_reply_pool_full(fe_req *r);
/* The user object: id, email, name, is_admin, totp_enabled, created_at (NULL: omitted). */
void fe_user_json(fv_jgen *j, const char *id, const char *email, const char *name, bool is_admin,
                  bool totp_enabled, const char *created_at);
/* The same fields inside a map the caller opened (to add more, e.g. password_strength). */
void fe_user_fields(fv_jgen *j, const char *id, const char *email, const char *name, bool is_admin,
                    bool totp_enabled, const char *created_at);

#endif

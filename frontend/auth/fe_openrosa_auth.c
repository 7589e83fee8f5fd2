/* Authentication of the OpenRosa routes: app-user tokens, HTTP Basic through a cache, Bearer
 * (see fe_openrosa_auth.h). */
#include "fe_openrosa_auth.h"

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fe_auth.h"
#include "fe_cache.h"
#include "fe_config.h"
#include "fe_identity.h"
#include "fe_pii.h"
#include "fe_metrics.h"
#include "fe_ratelimit.h"
#include "fe_revoke.h"
#include "fe_throttle.h"
#include "fv_crypto.h"
#include "fv_log.h"
#include "fv_mem.h"

#define XML_TYPE "text/xml; charset=utf-8"
#define REALM "Basic realm=\"fieldvault\", charset=\"UTF-8\""
#define BASIC_CACHE_MAX 10000
#define TOKEN_CACHE_MAX 100000
#define TOKEN_NEGATIVE_TTL_S 5
/* Requests that may wait for one Basic check of the same credentials (more: 503). Connections
 * are capped below this anyway; this bounds the list if they ever are not. */
#define BASIC_WAITERS_MAX 4096
#define FLIGHT_BUCKETS 256
/* base64 of "<email>:<password>" at their longest */
#define BASIC_B64_MAX (4 * ((FE_EMAIL_MAX + 1 + FE_PASSWORD_MAX + 2) / 3))

/* A cached lookup (owned by its cache): user NULL in the token cache means "no such token". */
typedef struct or_entry {
    fe_user *user;
    long long version;                   /* fe_revoke_version() before PostgreSQL was asked */
    char deployment[FV_UUID_STRLEN + 1]; /* app users: their deployment */
    char survey[FV_UUID_STRLEN + 1];     /* app users: its survey */
} or_entry;

struct basic_flight;

static struct {
    struct event_base *base; /* borrowed: runs the restarts of waiting Basic requests */
    struct basic_flight *flights[FLIGHT_BUCKETS]; /* the Basic checks in flight, by cache key */
    fe_cache *basic;                              /* HMAC hex of the credentials -> or_entry */
    fe_cache *tokens;                             /* SHA-256 hex of the token -> or_entry */
    unsigned char hmac_key[32]; /* this child's, random: the cache keys mean nothing elsewhere */
} oa;

static void entry_free(void *p)
{
    or_entry *e = p;
    if (!e) return;
    fe_auth_user_free(e->user);
    free(e);
}

/* A copy of u the caller owns, or NULL when out of memory. */
static fe_user *user_dup(const fe_user *u)
{
    fe_user *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    *c = *u;
    c->email = strdup(u->email ? u->email : "");
    c->name = strdup(u->name ? u->name : "");
    if (!c->email || !c->name) {
        fe_auth_user_free(c);
        return NULL;
    }
    return c;
}

/* A revoked app-user token (its hash): forgotten at once. */
static void token_revoked(const char *hash)
{
    fe_cache_del(oa.tokens, hash);
}

int fe_openrosa_auth_init(struct event_base *base)
{
    oa.base = base;
    oa.basic = fe_cache_new(BASIC_CACHE_MAX, entry_free);
    oa.tokens = fe_cache_new(TOKEN_CACHE_MAX, entry_free);
    if (!oa.basic || !oa.tokens || RAND_bytes(oa.hmac_key, sizeof oa.hmac_key) != 1) return -1;
    fe_revoke_on(FE_REVOKE_API_KEY, token_revoked);
    return 0;
}

void fe_openrosa_auth_shutdown(void)
{
    fe_cache_free(oa.basic);
    fe_cache_free(oa.tokens);
    OPENSSL_cleanse(oa.hmac_key, sizeof oa.hmac_key);
    memset(&oa, 0, sizeof oa);
}

bool fe_app_token_new(char out[FE_APP_TOKEN_LEN + 1])
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) return false;
    memcpy(out, FE_APP_TOKEN_PREFIX, 4);
    size_t n = fv_b64url_encode(raw, sizeof raw, out + 4); /* 43 characters */
    out[4 + n] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return 4 + n == FE_APP_TOKEN_LEN;
}

static bool token_well_formed(const char *s)
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (strlen(s) != FE_APP_TOKEN_LEN || strncmp(s, FE_APP_TOKEN_PREFIX, 4) != 0) return false;
    for (const char *p = s + 4; *p; p++)
        if (!strchr(b64url, *p)) return false;
    return true;
}

/* ---- replies ---- */

void fe_openrosa_reply_error(fe_req *r, int status, const char *message)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    evhttp_remove_header(h, "X-OpenRosa-Version");
    evhttp_add_header(h, "X-OpenRosa-Version", "1.0");
    char *esc = evhttp_htmlescape(message);
    char body[1024];
    int n = snprintf(body, sizeof body,
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<OpenRosaResponse xmlns=\"http://openrosa.org/http/response\">"
                     "<message nature=\"error\">%s</message></OpenRosaResponse>",
                     esc ? esc : "error");
    free(esc);
    if (n < 0 || (size_t)n >= sizeof body) n = (int)strlen(body);
    fe_reply_text(r, status, XML_TYPE, body, (size_t)n);
}

/* 401 with the Basic challenge (never Digest). */
static void unauthorized(fe_req *r, const char *message)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "WWW-Authenticate", REALM);
    fe_openrosa_reply_error(r, 401, message);
}

static void retry_later(fe_req *r, int status, const char *message, int secs)
{
    char v[16];
    snprintf(v, sizeof v, "%d", secs > 0 ? secs : 1);
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Retry-After", v);
    fe_openrosa_reply_error(r, status, message);
}

static void pg_failed(fe_req *r, const fe_pg_result *res)
{
    if (res->status == FE_PG_SQL)
        fv_error("req %s: OpenRosa authentication query refused (SQLSTATE %s)", r->req_id,
                 res->sqlstate);
    retry_later(r, 503, "the database is unavailable; retry later", 5);
}

/* Hands r to its handler as u (copied), through the per-user rate limit (as sessions:
 * fe_ratelimit.h). r->state must be NULL. */
static void proceed(fe_req *r, const fe_user *u, fe_handler next)
{
    r->user = user_dup(u);
    if (!r->user) {
        fe_reply_oom(r);
        return;
    }
    fe_ratelimit_check(r, next);
}

/* ---- app-user tokens ---- */

typedef struct token_lookup {
    char hash[FV_SHA256_HEXLEN + 1];
    fe_handler next;
    long long version;
} token_lookup;

/* The entry still speaks for its token: no revocation of the token, its deployment or survey
 * newer than its lookup is known. */
static bool token_entry_good(const char *hash, const or_entry *e)
{
    return !e->user || (fe_revoke_unchanged_since(FE_REVOKE_API_KEY, hash, e->version) &&
                        fe_revoke_unchanged_since(FE_REVOKE_DEPLOYMENT, e->deployment, e->version) &&
                        fe_revoke_unchanged_since(FE_REVOKE_SURVEY, e->survey, e->version));
}

/* The token's app user for this route: its deployment must be the route's (path parameter 0). */
static void token_proceed(fe_req *r, const or_entry *e, fe_handler next)
{
    if (!e || !e->user) {
        unauthorized(r, "the app user's token is not valid (revoked, or its deployment is closed)");
        return;
    }
    if (strcmp(r->param[0], e->deployment) != 0) {
        fe_openrosa_reply_error(r, 404, "no such deployment");
        return;
    }
    proceed(r, e->user, next);
}

static const char sql_token[] =
    "SELECT a.id, '', a.name, a.deployment_id, d.survey_id, a.token_hash "
    "FROM app_users a JOIN users u ON u.id = a.id JOIN deployments d ON d.id = a.deployment_id "
    "JOIN surveys s ON s.id = d.survey_id "
    "WHERE a.token_hash = $1 AND a.revoked_at IS NULL AND d.closed_at IS NULL AND s.archived_at IS NULL";

static void token_looked_up(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    token_lookup *l = r->state;
    fe_handler next = l->next;
    char hash[FV_SHA256_HEXLEN + 1];
    memcpy(hash, l->hash, sizeof hash);
    long long version = l->version;
    free(r->state);
    r->state = NULL;
    r->state_free = NULL;
    if (res->status != FE_PG_OK) {
        or_entry *stale = res->status == FE_PG_SQL ? NULL
                                                   : fe_cache_get(oa.tokens, hash, fe_cache_now(), NULL);
        if (stale && stale->user && token_entry_good(hash, stale)) {
            token_proceed(r, stale, next);
            return;
        }
        pg_failed(r, res);
        return;
    }
    or_entry *e = calloc(1, sizeof *e);
    if (!e) {
        fe_reply_oom(r);
        return;
    }
    e->version = version;
    if (PQntuples(res->res) == 1 && fv_ct_equal(PQgetvalue(res->res, 0, 5), hash, FV_SHA256_HEXLEN)) {
        fe_user u = {0};
        snprintf(u.id, sizeof u.id, "%s", PQgetvalue(res->res, 0, 0));
        u.email = PQgetvalue(res->res, 0, 1);
        u.name = PQgetvalue(res->res, 0, 2);
        u.cred = FE_CRED_APP_USER;
        snprintf(u.cred_id, sizeof u.cred_id, "%s", PQgetvalue(res->res, 0, 3));
        snprintf(e->deployment, sizeof e->deployment, "%s", PQgetvalue(res->res, 0, 3));
        snprintf(e->survey, sizeof e->survey, "%s", PQgetvalue(res->res, 0, 4));
        if (!(e->user = user_dup(&u))) {
            free(e);
            fe_reply_oom(r);
            return;
        }
    }
    /* Answer from the entry, then cache it (when not known stale already): the cache may evict. */
    token_proceed(r, e, next);
    if (e->user && token_entry_good(hash, e))
        fe_cache_put(oa.tokens, hash, e, fe_cache_now(), fe_cfg.auth_cache_ttl_s,
                     fe_cfg.auth_cache_ttl_s + fe_cfg.cache_stale_s);
    else if (!e->user)
        fe_cache_put(oa.tokens, hash, e, fe_cache_now(), TOKEN_NEGATIVE_TTL_S, TOKEN_NEGATIVE_TTL_S);
    else entry_free(e);
}

static void token_authenticate(fe_req *r, fe_handler next)
{
    if (!token_well_formed(r->app_token)) {
        unauthorized(r, "the app user's token is not valid");
        return;
    }
    char hash[FV_SHA256_HEXLEN + 1];
    fv_sha256_hex(r->app_token, strlen(r->app_token), hash); /* only the digest goes on */
    bool fresh = false;
    or_entry *e = fe_cache_get(oa.tokens, hash, fe_cache_now(), &fresh);
    if (e && !token_entry_good(hash, e)) {
        fe_cache_del(oa.tokens, hash);
        e = NULL;
    }
    if (e && (fresh || (!fe_pg_up() && e->user))) {
        token_proceed(r, e, next);
        return;
    }
    token_lookup *l = calloc(1, sizeof *l);
    if (!l) {
        fe_reply_oom(r);
        return;
    }
    memcpy(l->hash, hash, sizeof l->hash);
    l->next = next;
    l->version = fe_revoke_version(); /* before asking: see fe_revoke.h */
    r->state = l;
    r->state_free = free;
    const char *params[] = {l->hash};
    fe_pg_query(sql_token, 1, params, token_looked_up, r);
}

/* ---- HTTP Basic ---- */

/* State of one Basic check in flight: owned by the request (r->state). */
typedef struct basic_check {
    fe_handler next;
    char key[2 * 32 + 1];     /* the cache key: HMAC hex of the credentials */
    char *email;              /* owned */
    char *password;           /* owned; wiped */
    fe_work *work;            /* the PBKDF2 job while it runs (owned by the pool) */
    fe_throttle_open attempt; /* the throttle's count, until it is ended */
    long long version;
    bool found, usable;                /* an account with a password, not disabled, without TOTP */
    fe_user user;                      /* when found: email and name owned here */
    fe_req *r;                         /* the request whose state this is */
    struct basic_flight *flight;       /* as a leader: its flight (owned by the table) */
    struct basic_flight *waiting;      /* as a waiter: the flight (or batch) it is listed in */
    struct basic_check *wprev, *wnext; /* in that list */
} basic_check;

/* One Basic check in flight in this child (its leader's attempt: throttle, account, PBKDF2), by
 * cache key. Requests with the same credentials that miss the cache meanwhile wait on it (they
 * are coalesced) instead of each starting an attempt of its own: 32 phones sharing an account
 * cost one PBKDF2 and count one pending attempt per child, not 32 (which the throttle's pending
 * counts refused as a burst). When the leader succeeds every waiter is answered from its
 * verdict; when it ends any other way (wrong password, 429, 503) the waiters start again one by
 * one, from the next turn of the loop, each through the throttle as if it had just arrived, so
 * a wrong password is throttled exactly as without coalescing. In the table (oa.flights) while
 * its leader runs, then a batch of waiters to restart, freed by flight_restart. */
typedef struct basic_flight {
    char key[2 * 32 + 1];
    struct basic_flight *next; /* in its bucket, while in the table */
    basic_check *first, *last; /* the waiters (borrowed: owned by their requests) */
    size_t n;
} basic_flight;

static unsigned flight_bucket(const char *key)
{
    return (unsigned)strtoul((char[3]){key[0], key[1], 0}, NULL, 16) % FLIGHT_BUCKETS;
}

static basic_flight *flight_find(const char *key)
{
    for (basic_flight *f = oa.flights[flight_bucket(key)]; f; f = f->next)
        if (strcmp(f->key, key) == 0) return f;
    return NULL;
}

/* A new flight for key in the table (NULL when out of memory: the check runs uncoalesced). */
static basic_flight *flight_new(const char *key)
{
    basic_flight *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    memcpy(f->key, key, sizeof f->key);
    unsigned b = flight_bucket(key);
    f->next = oa.flights[b];
    oa.flights[b] = f;
    return f;
}

static void flight_unlink(basic_flight *f)
{
    for (basic_flight **p = &oa.flights[flight_bucket(f->key)]; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    f->next = NULL;
}

static void waiter_add(basic_flight *f, basic_check *s)
{
    s->waiting = f;
    s->wnext = NULL;
    s->wprev = f->last;
    if (f->last) f->last->wnext = s;
    else f->first = s;
    f->last = s;
    f->n++;
}

static void waiter_remove(basic_check *s)
{
    basic_flight *f = s->waiting;
    if (!f) return;
    if (s->wprev) s->wprev->wnext = s->wnext;
    else f->first = s->wnext;
    if (s->wnext) s->wnext->wprev = s->wprev;
    else f->last = s->wprev;
    f->n--;
    s->waiting = NULL;
    s->wprev = s->wnext = NULL;
}

static void flight_end(basic_flight *f, const or_entry *verdict);

static void basic_free(void *p)
{
    basic_check *s = p;
    waiter_remove(s);
    if (s->flight) {
        basic_flight *f = s->flight;
        s->flight = NULL;
        flight_end(f, NULL); /* ended without a verdict: its waiters start again */
    }
    if (s->work) fe_work_detach(s->work);
    fe_throttle_close(&s->attempt, FE_THROTTLE_ABANDON);
    free(s->email);
    fe_identity_wipe(s->password);
    free(s->user.email);
    free(s->user.name);
    free(s);
}

/* The entry still speaks for its user: no user_sessions (password change, erasure) or permissions (membership) revocation of the user newer than its lookup is known. */
static bool basic_entry_good(const or_entry *e)
{
    return fe_revoke_unchanged_since(FE_REVOKE_USER_SESSIONS, e->user->id, e->version) &&
           fe_revoke_unchanged_since(FE_REVOKE_PERMISSIONS, e->user->id, e->version);
}

static void basic_failed(fe_req *r)
{
    basic_check *s = r->state;
    fe_throttle_close(&s->attempt, FE_THROTTLE_FAILURE);
    unauthorized(r, "the email or password is wrong (accounts with TOTP use an app user's token)");
}

static void basic_checked(void *job, bool ran, void *owner)
{
    fe_req *r = owner;
    basic_check *s = r->state;
    fe_pw_job *pj = job;
    s->work = NULL;
    fe_metrics_basic_auth(false);
    if (!ran) {
        retry_later(r, 503, "the server is shutting down; retry later", 5);
        return;
    }
    if (!s->found || !s->usable || !pj->verified) {
        basic_failed(r);
        return;
    }
    fe_throttle_close(&s->attempt, FE_THROTTLE_SUCCESS);
    if (s->flight) { /* the requests waiting for this check: answered from its verdict */
        basic_flight *f = s->flight;
        s->flight = NULL;
        or_entry v = {.user = &s->user, .version = s->version};
        flight_end(f, basic_entry_good(&v) ? &v : NULL);
    }
    if (fe_cfg.openrosa_basic_cache_ttl_s > 0) {
        or_entry *e = calloc(1, sizeof *e);
        if (e && (e->user = user_dup(&s->user))) {
            e->version = s->version;
            if (basic_entry_good(e))
                fe_cache_put(oa.basic, s->key, e, fe_cache_now(), fe_cfg.openrosa_basic_cache_ttl_s,
                             fe_cfg.openrosa_basic_cache_ttl_s + fe_cfg.cache_stale_s);
            else entry_free(e);
        } else {
            free(e);
        }
    }
    fe_handler next = s->next;
    fe_user u = s->user; /* borrows s's strings: proceed copies before s is freed */
    r->state = NULL;
    r->state_free = NULL;
    proceed(r, &u, next);
    basic_free(s);
}

static const char sql_basic_user[] =
    "SELECT id, '', '', is_admin, password_hash, totp_confirmed_at IS NOT NULL, disabled_at IS NOT NULL "
    "FROM users WHERE email_hmac = ANY ($1::bytea[]) OR (email IS NOT NULL AND lower(email) = lower($2)) "
    "LIMIT 1";

static void basic_user_found(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    basic_check *s = r->state;
    if (res->status != FE_PG_OK) {
        pg_failed(r, res);
        return;
    }
    const char *stored = fe_identity_dummy_hash();
    if (PQntuples(res->res) == 1) {
        const PGresult *p = res->res;
        s->found = true;
        snprintf(s->user.id, sizeof s->user.id, "%s", PQgetvalue(p, 0, 0));
        s->user.email = strdup(PQgetvalue(p, 0, 1));
        s->user.name = strdup(PQgetvalue(p, 0, 2));
        s->user.is_admin = PQgetvalue(p, 0, 3)[0] == 't';
        s->user.cred = FE_CRED_BASIC;
        if (!s->user.email || !s->user.name) {
            fe_reply_oom(r);
            return;
        }
        bool has_pw = !PQgetisnull(p, 0, 4) && fv_password_iterations(PQgetvalue(p, 0, 4)) > 0;
        s->usable = has_pw && PQgetvalue(p, 0, 5)[0] != 't' && PQgetvalue(p, 0, 6)[0] != 't';
        if (has_pw) stored = PQgetvalue(p, 0, 4); /* the same work for every refusal */
    }
    fe_pw_job *pj = fe_pw_job_new(s->password, NULL, stored, NULL, NULL);
    fe_identity_wipe(s->password);
    s->password = NULL;
    if (!pj) {
        fe_reply_oom(r);
        return;
    }
    pj->verify = true;
    s->work = fe_work_submit(pj, fe_pw_job_run, basic_checked, fe_pw_job_free, r);
    if (!s->work) {
        fe_pw_job_free(pj);
        retry_later(r, 503, "too many password checks in progress; retry later", 1);
    }
}

static void basic_throttled(int retry_after_s, void *arg)
{
    fe_req *r = arg;
    basic_check *s = r->state;
    if (retry_after_s > 0) {
        retry_later(r, 429, "too many failed sign-in attempts; retry later", retry_after_s);
        return;
    }
    fe_throttle_opened(&s->attempt, s->email, r->address);
    s->version = fe_revoke_version();     /* before asking: see fe_revoke.h */
    char *hmacs = fe_pii_hmacs(s->email); /* owned here; fe_pg_query copies it */
    if (!hmacs) {
        fe_reply_oom(r);
        return;
    }
    const char *params[] = {hmacs, s->email};
    fe_pg_query(sql_basic_user, 2, params, basic_user_found, r);
    free(hmacs);
}

/* HMAC-SHA256(this child's key, lower(email) NUL password) as hex into out[65]. */
static bool basic_cache_key(const char *email, const char *password, char out[65])
{
    size_t el = strlen(email), pl = strlen(password);
    unsigned char *buf = malloc(el + 1 + pl);
    if (!buf) return false;
    for (size_t i = 0; i < el; i++)
        buf[i] = (unsigned char)((email[i] >= 'A' && email[i] <= 'Z') ? email[i] + 32 : email[i]);
    buf[el] = 0;
    memcpy(buf + el + 1, password, pl);
    unsigned char mac[32];
    unsigned int mlen = 0;
    bool ok = HMAC(EVP_sha256(), oa.hmac_key, sizeof oa.hmac_key, buf, el + 1 + pl, mac, &mlen) !=
                  NULL &&
              mlen == 32;
    OPENSSL_cleanse(buf, el + 1 + pl);
    free(buf);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[64] = '\0';
    OPENSSL_cleanse(mac, sizeof mac);
    return ok;
}

static void basic_start(fe_req *r);

static void basic_authenticate(fe_req *r, const char *b64, fe_handler next)
{
    while (*b64 == ' ') b64++;
    size_t blen = strlen(b64);
    while (blen && b64[blen - 1] == ' ') blen--;
    unsigned char *dec = blen && blen <= BASIC_B64_MAX ? malloc(blen) : NULL;
    long n = dec ? fv_b64_decode(b64, blen, dec) : -1;
    const unsigned char *colon = n > 0 ? memchr(dec, ':', (size_t)n) : NULL;
    if (!colon || memchr(dec, 0, (size_t)n)) {
        if (dec) OPENSSL_cleanse(dec, blen);
        free(dec);
        unauthorized(r, "send HTTP Basic credentials: base64 of email:password");
        return;
    }
    size_t el = (size_t)(colon - dec), pl = (size_t)n - el - 1;
    basic_check *s = el >= 1 && el <= FE_EMAIL_MAX && pl >= 1 && pl <= FE_PASSWORD_MAX
                         ? calloc(1, sizeof *s)
                         : NULL;
    if (s) {
        s->email = fv_memdup0((const char *)dec, el);
        s->password = fv_memdup0((const char *)colon + 1, pl);
    }
    OPENSSL_cleanse(dec, blen);
    free(dec);
    if (!s) {
        unauthorized(r, "the email or password is wrong (accounts with TOTP use an app user's token)");
        return;
    }
    s->next = next;
    s->r = r;
    r->state = s;
    r->state_free = basic_free;
    if (!s->email || !s->password || !basic_cache_key(s->email, s->password, s->key)) {
        fe_reply_oom(r);
        return;
    }
    basic_start(r);
}

/* The check of r's credentials (r->state, a basic_check not yet started), on arrival or again
 * after the check it waited for ended without a verdict. */
static void basic_start(fe_req *r)
{
    basic_check *s = r->state;
    fe_handler next = s->next;
    /* 1. a recent check of the same credentials in this child (stale ones while PostgreSQL is
     *    down): no PBKDF2, no throttle (the credentials are proven good) */
    bool fresh = false;
    or_entry *e = fe_cache_get(oa.basic, s->key, fe_cache_now(), &fresh);
    if (e && !basic_entry_good(e)) {
        fe_cache_del(oa.basic, s->key);
        e = NULL;
    }
    if (e && (fresh || !fe_pg_up())) {
        fe_metrics_basic_auth(true);
        r->state = NULL;
        r->state_free = NULL;
        basic_free(s);
        proceed(r, e->user, next);
        return;
    }
    /* 2. a check of the same credentials running in this child: wait for its verdict */
    basic_flight *f = flight_find(s->key);
    if (f) {
        if (f->n >= BASIC_WAITERS_MAX) {
            retry_later(r, 503, "too many password checks in progress; retry later", 1);
            return;
        }
        waiter_add(f, s);
        return;
    }
    /* 3. this one leads: the throttle, then the account, then PBKDF2 on the work pool */
    s->flight = flight_new(s->key);
    fe_throttle_begin(s->email, r->address, basic_throttled, r);
}

/* Restarts the waiters of a flight that ended without a verdict (arg: the batch, freed here). */
static void flight_restart(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    basic_flight *f = arg;
    while (f->first) {
        basic_check *w = f->first;
        waiter_remove(w);
        basic_start(w->r); /* the first leads a new flight, the others wait on it again */
    }
    free(f);
}

/* f's leader ended (f is no longer in the table's hands after this): with a verdict (a user
 * whose password was just verified, borrowed) every waiter goes on as that user, as a cache hit
 * would; without, the waiters start again from the next turn of the loop (not from inside the
 * leader's reply). */
static void flight_end(basic_flight *f, const or_entry *verdict)
{
    flight_unlink(f);
    if (verdict) {
        while (f->first) {
            basic_check *w = f->first;
            waiter_remove(w);
            fe_req *wr = w->r;
            fe_handler next = w->next;
            wr->state = NULL;
            wr->state_free = NULL;
            basic_free(w);
            fe_metrics_basic_auth(true);
            proceed(wr, verdict->user, next);
        }
    }
    if (!f->first) {
        free(f);
        return;
    }
    static const struct timeval now = {0, 0};
    if (!oa.base || event_base_once(oa.base, -1, EV_TIMEOUT, flight_restart, f, &now) != 0)
        flight_restart(-1, 0, f); /* no event: at once rather than never */
}

/* ---- the step ---- */

void fe_openrosa_authenticate(fe_req *r, fe_handler next)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "X-OpenRosa-Version", "1.0");
    if (r->app_token[0]) {
        token_authenticate(r, next);
        return;
    }
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Authorization");
    if (h && strncasecmp(h, "Basic ", 6) == 0) {
        basic_authenticate(r, h + 6, next);
        return;
    }
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        fe_auth_authenticate(r, next);
        return;
    }
    unauthorized(r, h ? "send HTTP Basic credentials (email and password)" : "authentication required");
}

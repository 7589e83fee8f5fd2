/* Login throttling over Redis with per-child counters in memory (see fe_throttle.h). */
#include "fe_throttle.h"

#include <ctype.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_cache.h"
#include "fe_config.h"
#include "fe_redis.h"
#include "fe_throttle_rules.h"
#include "fv_crypto.h"
#include "fv_log.h"

#define KEY_MAX 240
#define PENDING_TTL_S 30 /* an attempt that never ends (its request failed otherwise) lapses */
#define PENDING_TTL_STR "30"

/* In-memory count of one key in this child: owned by the cache. */
typedef struct counter {
    long long count;
    time_t window_end; /* fe_cache_now() seconds */
} counter;

static fe_cache *mem;
static struct event_base *loop;

int fe_throttle_init(struct event_base *base)
{
    loop = base;
    mem = fe_cache_new(100000, free);
    return mem ? 0 : -1;
}

void fe_throttle_shutdown(void)
{
    fe_cache_free(mem);
    mem = NULL;
}

/* The keys of one attempt. */
typedef struct keys {
    char fail_pair[KEY_MAX], fail_addr[KEY_MAX], fail_acct[KEY_MAX];
    char pend_pair[KEY_MAX], pend_addr[KEY_MAX];
} keys;

static void make_keys(const char *subject, const char *address, keys *k)
{
    char lower[1024];
    size_t n = strnlen(subject, sizeof lower - 1);
    for (size_t i = 0; i < n; i++) lower[i] = (char)tolower((unsigned char)subject[i]);
    lower[n] = '\0';
    char hex[FV_SHA256_HEXLEN + 1];
    fv_sha256_hex(lower, n, hex);
    const char *a = address && *address ? address : "unknown";
    snprintf(k->fail_pair, KEY_MAX, "fv:throttle:fail:pair:%s:%s", hex, a);
    snprintf(k->fail_addr, KEY_MAX, "fv:throttle:fail:addr:%s", a);
    snprintf(k->fail_acct, KEY_MAX, "fv:throttle:fail:acct:%s", hex);
    snprintf(k->pend_pair, KEY_MAX, "fv:throttle:pend:pair:%s:%s", hex, a);
    snprintf(k->pend_addr, KEY_MAX, "fv:throttle:pend:addr:%s", a);
}

/* ---- this child's memory ---- */

/* The live counter of key (NULL when none). */
static counter *mem_get(const char *key)
{
    time_t now = fe_cache_now();
    counter *c = mem ? fe_cache_get(mem, key, now, NULL) : NULL;
    return c && c->window_end > now ? c : NULL;
}

static long long mem_value(const char *key)
{
    counter *c = mem_get(key);
    return c ? c->count : 0;
}

/* Adds delta to key's count. A new counter lives window_s; with renew every add starts its life
 * again (the pending counts: they lapse PENDING_TTL_S after the last attempt began). */
static void mem_add(const char *key, int delta, int window_s, bool renew)
{
    if (!mem) return;
    time_t now = fe_cache_now();
    counter *old = mem_get(key);
    if (!old && delta <= 0) return;
    if (old && !renew) {
        old->count += delta;
        if (old->count < 0) old->count = 0;
        return;
    }
    counter *c = malloc(sizeof *c);
    if (!c) return;
    c->count = (old ? old->count : 0) + delta;
    if (c->count < 0) c->count = 0;
    c->window_end = now + window_s;
    fe_cache_put(mem, key, c, now, window_s, window_s); /* frees old */
}

/* Seconds left in key's window (-2: no counter), like Redis's TTL. */
static long long mem_ttl(const char *key)
{
    counter *c = mem_get(key);
    return c ? (long long)(c->window_end - fe_cache_now()) : -2;
}

/* ---- Redis ---- */

static void fire2(const char *cmd, const char *key)
{
    const char *argv[] = {cmd, key};
    size_t lens[] = {strlen(cmd), strlen(key)};
    fe_redis_fire(2, argv, lens);
}

static void fire_expire(const char *key, const char *secs, bool nx)
{
    const char *argv[] = {"EXPIRE", key, secs, "NX"};
    size_t lens[] = {6, strlen(key), strlen(secs), 2};
    fe_redis_fire(nx ? 4 : 3, argv, lens);
}

/* ---- one attempt ---- */

enum { R_PEND_PAIR, R_PEND_ADDR, R_FAIL_PAIR, R_FAIL_ADDR, R_FAIL_ACCT, R_TTL_PAIR, R_TTL_ADDR, R_N };

/* One attempt being checked: owned here until cb is called. */
typedef struct attempt {
    keys k;
    long long v[R_N]; /* what Redis answered */
    /* this child's pending counts as this attempt began (itself included): read later, they
     * would count attempts that began after it */
    long long mem_pend_pair, mem_pend_addr;
    int due;       /* replies still due */
    bool redis_ok; /* every command was sent and answered with an integer */
    fe_throttle_cb cb;
    void *arg;
    struct event *timer; /* the account's delay, while it runs */
} attempt;

static void finish(attempt *a, int retry)
{
    fe_throttle_cb cb = a->cb;
    void *arg = a->arg;
    if (a->timer) event_free(a->timer);
    free(a);
    cb(retry, arg);
}

static void delay_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg, 0);
}

/* The attempt ends without password work: it is no longer pending. */
static void take_back_pending(const keys *k)
{
    mem_add(k->pend_pair, -1, PENDING_TTL_S, false);
    mem_add(k->pend_addr, -1, PENDING_TTL_S, false);
    fire2("DECR", k->pend_pair);
    fire2("DECR", k->pend_addr);
    fire_expire(k->pend_pair, PENDING_TTL_STR, false);
    fire_expire(k->pend_addr, PENDING_TTL_STR, false);
}

static long long max_ll(long long a, long long b)
{
    return a > b ? a : b;
}

/* Every count is known (Redis's when it answered, this child's memory always): the verdict. */
static void decide(attempt *a)
{
    const keys *k = &a->k;
    bool r = a->redis_ok;
    long long fail_pair = max_ll(mem_value(k->fail_pair), r ? a->v[R_FAIL_PAIR] : 0);
    long long fail_addr = max_ll(mem_value(k->fail_addr), r ? a->v[R_FAIL_ADDR] : 0);
    long long fail_acct = max_ll(mem_value(k->fail_acct), r ? a->v[R_FAIL_ACCT] : 0);
    long long pend_pair = max_ll(a->mem_pend_pair, r ? a->v[R_PEND_PAIR] : 0);
    long long pend_addr = max_ll(a->mem_pend_addr, r ? a->v[R_PEND_ADDR] : 0);
    int w = fe_cfg.login_window_s;
    int limit_pair = fe_cfg.login_max_failures_account, limit_addr = fe_cfg.login_max_failures_address;
    int retry = 0;
    if (fe_tr_refused(fail_pair, pend_pair, limit_pair)) {
        long long ttl = r && a->v[R_TTL_PAIR] > 0 ? a->v[R_TTL_PAIR] : mem_ttl(k->fail_pair);
        retry = fe_tr_retry_after(fail_pair, limit_pair, ttl, w);
    }
    if (fe_tr_refused(fail_addr, pend_addr, limit_addr)) {
        long long ttl = r && a->v[R_TTL_ADDR] > 0 ? a->v[R_TTL_ADDR] : mem_ttl(k->fail_addr);
        int ra = fe_tr_retry_after(fail_addr, limit_addr, ttl, w);
        if (ra > retry) retry = ra;
    }
    if (retry > 0) {
        take_back_pending(k);
        finish(a, retry);
        return;
    }
    int delay = fe_tr_delay_ms(fail_acct, fe_cfg.login_account_delay_after,
                               fe_cfg.login_account_delay_ms, fe_cfg.login_account_delay_max_ms);
    if (delay > 0 && loop) {
        struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
        a->timer = evtimer_new(loop, delay_over, a);
        if (a->timer && evtimer_add(a->timer, &tv) == 0) return;
        /* no timer: go ahead undelayed rather than refuse the owner */
    }
    finish(a, 0);
}

static void answered(attempt *a, int slot, redisReply *reply)
{
    if (reply && reply->type == REDIS_REPLY_INTEGER) a->v[slot] = reply->integer;
    else if (reply && reply->type == REDIS_REPLY_NIL) a->v[slot] = 0;
    else a->redis_ok = false;
    if (--a->due == 0) decide(a);
}

/* The reply slot each callback fills: one callback per slot (the arg is the attempt). INCR and
 * TTL answer integers, GET a string (or nil). */
#define SLOT_CB(name, slot)                                           \
    static void name(redisReply *reply, const char *error, void *arg) \
    {                                                                 \
        (void)error;                                                  \
        answered(arg, slot, reply);                                   \
    }
SLOT_CB(got_pend_pair, R_PEND_PAIR)
SLOT_CB(got_pend_addr, R_PEND_ADDR)
SLOT_CB(got_ttl_pair, R_TTL_PAIR)
SLOT_CB(got_ttl_addr, R_TTL_ADDR)

/* GET answers a string: its number. */
static void answered_get(attempt *a, int slot, redisReply *reply)
{
    if (reply && reply->type == REDIS_REPLY_STRING) {
        a->v[slot] = strtoll(reply->str, NULL, 10);
        if (--a->due == 0) decide(a);
        return;
    }
    answered(a, slot, reply);
}
#define GET_CB(name, slot)                                            \
    static void name(redisReply *reply, const char *error, void *arg) \
    {                                                                 \
        (void)error;                                                  \
        answered_get(arg, slot, reply);                               \
    }
GET_CB(got_fail_pair_s, R_FAIL_PAIR)
GET_CB(got_fail_addr_s, R_FAIL_ADDR)
GET_CB(got_fail_acct_s, R_FAIL_ACCT)

void fe_throttle_begin(const char *subject, const char *address, fe_throttle_cb cb, void *arg)
{
    attempt *a = calloc(1, sizeof *a);
    if (!a) {
        cb(fe_cfg.login_window_s, arg); /* out of memory: refuse rather than skip the limit */
        return;
    }
    make_keys(subject, address, &a->k);
    a->cb = cb;
    a->arg = arg;
    mem_add(a->k.pend_pair, 1, PENDING_TTL_S, true);
    mem_add(a->k.pend_addr, 1, PENDING_TTL_S, true);
    a->mem_pend_pair = mem_value(a->k.pend_pair);
    a->mem_pend_addr = mem_value(a->k.pend_addr);
    if (!fe_redis_ready()) {
        decide(a); /* memory alone */
        return;
    }
    a->redis_ok = true;
    a->due = 1; /* held until every command is sent, so no reply decides early */
    struct {
        const char *cmd, *key;
        fe_redis_cb cb;
    } cmds[] = {
        {"INCR", a->k.pend_pair, got_pend_pair},  {"INCR", a->k.pend_addr, got_pend_addr},
        {"GET", a->k.fail_pair, got_fail_pair_s}, {"GET", a->k.fail_addr, got_fail_addr_s},
        {"GET", a->k.fail_acct, got_fail_acct_s}, {"TTL", a->k.fail_pair, got_ttl_pair},
        {"TTL", a->k.fail_addr, got_ttl_addr},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *argv[] = {cmds[i].cmd, cmds[i].key};
        size_t lens[] = {strlen(cmds[i].cmd), strlen(cmds[i].key)};
        if (fe_redis_command(2, argv, lens, cmds[i].cb, a) != 0) {
            a->redis_ok = false; /* not sent: memory's answer (the ones sent still reply) */
            break;
        }
        a->due++;
        if (i == 1) {
            fire_expire(a->k.pend_pair, PENDING_TTL_STR, false);
            fire_expire(a->k.pend_addr, PENDING_TTL_STR, false);
        }
    }
    if (--a->due == 0) decide(a);
}

void fe_throttle_success(const char *subject, const char *address)
{
    keys k;
    make_keys(subject, address, &k);
    take_back_pending(&k);
    if (mem) {
        fe_cache_del(mem, k.fail_pair);
        fe_cache_del(mem, k.fail_acct);
    }
    fire2("DEL", k.fail_pair);
    fire2("DEL", k.fail_acct);
    /* k.fail_addr is never lowered: others' failures from this address stay counted */
}

void fe_throttle_abandon(const char *subject, const char *address)
{
    keys k;
    make_keys(subject, address, &k);
    take_back_pending(&k);
}

void fe_throttle_failure(const char *subject, const char *address)
{
    keys k;
    make_keys(subject, address, &k);
    take_back_pending(&k);
    int w = fe_cfg.login_window_s;
    char window[16];
    snprintf(window, sizeof window, "%d", w);
    const char *fails[] = {k.fail_pair, k.fail_addr, k.fail_acct};
    for (size_t i = 0; i < 3; i++) {
        mem_add(fails[i], 1, w, false);
        fire2("INCR", fails[i]);
        fire_expire(fails[i], window, true);
    }
}

void fe_throttle_opened(fe_throttle_open *o, const char *subject, const char *address)
{
    o->open = true;
    snprintf(o->subject, sizeof o->subject, "%s", subject);
    snprintf(o->address, sizeof o->address, "%s", address ? address : "");
}

void fe_throttle_close(fe_throttle_open *o, fe_throttle_outcome outcome)
{
    if (!o->open) return;
    o->open = false;
    if (outcome == FE_THROTTLE_SUCCESS) fe_throttle_success(o->subject, o->address);
    else if (outcome == FE_THROTTLE_FAILURE) fe_throttle_failure(o->subject, o->address);
    else fe_throttle_abandon(o->subject, o->address);
}

int fe_throttle_signup(const char *address)
{
    int w = fe_cfg.signup_window_s;
    char key[KEY_MAX];
    snprintf(key, sizeof key, "signup:addr:%s", address && *address ? address : "unknown");
    int limits[] = {fe_cfg.signup_max_per_address, fe_cfg.signup_max_per_child};
    const char *names[] = {key, "signup:child"};
    int retry = 0;
    for (int i = 0; i < 2; i++) {
        if (limits[i] <= 0) continue;
        if (mem_value(names[i]) >= limits[i]) {
            long long ttl = mem_ttl(names[i]);
            if (ttl < 1) ttl = 1;
            if (ttl > retry) retry = (int)ttl;
        }
    }
    if (retry) return retry;
    for (int i = 0; i < 2; i++)
        if (limits[i] > 0) mem_add(names[i], 1, w, false);
    return 0;
}

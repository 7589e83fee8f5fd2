/* Login throttling over Redis with per-child counters in memory (see fe_throttle.h). */
#include "fe_throttle.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_cache.h"
#include "fe_config.h"
#include "fe_redis.h"
#include "fv_crypto.h"

#define KEY_MAX 160

/* In-memory count of one key in this child: owned by the cache. */
typedef struct counter {
    int count;
    time_t window_end; /* fe_cache_now() seconds */
} counter;

static fe_cache *mem;

int fe_throttle_init(void)
{
    mem = fe_cache_new(50000, free);
    return mem ? 0 : -1;
}

void fe_throttle_shutdown(void)
{
    fe_cache_free(mem);
    mem = NULL;
}

static void acct_key(const char *subject, char out[KEY_MAX])
{
    char lower[1024];
    size_t n = strnlen(subject, sizeof lower - 1);
    for (size_t i = 0; i < n; i++) lower[i] = (char)tolower((unsigned char)subject[i]);
    lower[n] = '\0';
    char hex[FV_SHA256_HEXLEN + 1];
    fv_sha256_hex(lower, n, hex);
    snprintf(out, KEY_MAX, "fv:throttle:acct:%s", hex);
}

static void addr_key(const char *address, char out[KEY_MAX])
{
    snprintf(out, KEY_MAX, "fv:throttle:addr:%s", address && *address ? address : "unknown");
}

/* Counts one attempt for key in memory; returns the seconds left in its window when the count
 * (this attempt included) is past max, else 0. */
static int mem_count(const char *key, int max)
{
    time_t now = fe_cache_now();
    counter *c = fe_cache_get(mem, key, now, NULL);
    if (!c || c->window_end <= now) {
        c = malloc(sizeof *c);
        if (!c) return 0;
        c->count = 0;
        c->window_end = now + fe_cfg.login_window_s;
        fe_cache_put(mem, key, c, now, fe_cfg.login_window_s, fe_cfg.login_window_s);
    }
    c->count++;
    return c->count > max ? (int)(c->window_end - now > 0 ? c->window_end - now : 1) : 0;
}

static void mem_take_back(const char *key)
{
    counter *c = fe_cache_get(mem, key, fe_cache_now(), NULL);
    if (c && c->count > 0) c->count--;
}

/* One attempt being counted: owned here until cb is called. */
typedef struct attempt {
    char acct[KEY_MAX], addr[KEY_MAX];
    int mem_retry; /* what memory alone says */
    long long acct_count;
    fe_throttle_cb cb;
    void *arg;
} attempt;

static void finish(attempt *a, int retry)
{
    fe_throttle_cb cb = a->cb;
    void *arg = a->arg;
    if (retry < a->mem_retry) retry = a->mem_retry;
    free(a);
    cb(retry, arg);
}

static void ttl_answered(redisReply *reply, const char *error, void *arg)
{
    attempt *a = arg;
    long long ttl = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    /* no expiry (a lost EXPIRE) or no answer: a full window is the safe answer */
    finish(a, ttl > 0 ? (int)ttl : fe_cfg.login_window_s);
}

static void set_window(const char *key)
{
    char window[16];
    snprintf(window, sizeof window, "%d", fe_cfg.login_window_s);
    const char *argv[] = {"EXPIRE", key, window, "NX"};
    size_t lens[] = {6, strlen(key), strlen(window), 2};
    fe_redis_fire(4, argv, lens);
}

static void addr_counted(redisReply *reply, const char *error, void *arg)
{
    attempt *a = arg;
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        finish(a, 0); /* Redis unavailable: memory's answer */
        return;
    }
    set_window(a->acct);
    set_window(a->addr);
    /* login_max_failures_address 0: no limit per address (behind a proxy that hides them) */
    const char *over = a->acct_count > fe_cfg.login_max_failures_account ? a->acct
                       : fe_cfg.login_max_failures_address > 0 &&
                               reply->integer > fe_cfg.login_max_failures_address
                           ? a->addr
                           : NULL;
    if (!over) {
        finish(a, 0);
        return;
    }
    const char *argv[] = {"TTL", over};
    size_t lens[] = {3, strlen(over)};
    if (fe_redis_command(2, argv, lens, ttl_answered, a) != 0) finish(a, fe_cfg.login_window_s);
}

static void acct_counted(redisReply *reply, const char *error, void *arg)
{
    attempt *a = arg;
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        finish(a, 0);
        return;
    }
    a->acct_count = reply->integer;
    const char *argv[] = {"INCR", a->addr};
    size_t lens[] = {4, strlen(a->addr)};
    if (fe_redis_command(2, argv, lens, addr_counted, a) != 0) finish(a, 0);
}

void fe_throttle_begin(const char *subject, const char *address, fe_throttle_cb cb, void *arg)
{
    attempt *a = calloc(1, sizeof *a);
    if (!a) {
        cb(fe_cfg.login_window_s, arg); /* out of memory: refuse rather than skip the limit */
        return;
    }
    acct_key(subject, a->acct);
    addr_key(address, a->addr);
    a->cb = cb;
    a->arg = arg;
    int x = mem_count(a->acct, fe_cfg.login_max_failures_account);
    int y = fe_cfg.login_max_failures_address > 0 ? mem_count(a->addr, fe_cfg.login_max_failures_address)
                                                  : 0;
    a->mem_retry = x > y ? x : y;
    const char *argv[] = {"INCR", a->acct};
    size_t lens[] = {4, strlen(a->acct)};
    if (fe_redis_command(2, argv, lens, acct_counted, a) != 0) finish(a, 0);
}

void fe_throttle_success(const char *subject, const char *address)
{
    char a[KEY_MAX], b[KEY_MAX];
    acct_key(subject, a);
    addr_key(address, b);
    fe_cache_del(mem, a);
    mem_take_back(b);
    const char *del[] = {"DEL", a};
    size_t dlens[] = {3, strlen(a)};
    fe_redis_fire(2, del, dlens);
    /* If the window ended meanwhile, DECR makes a new key of -1: give it a window too. */
    const char *argv[] = {"DECR", b};
    size_t lens[] = {4, strlen(b)};
    fe_redis_fire(2, argv, lens);
    set_window(b);
}

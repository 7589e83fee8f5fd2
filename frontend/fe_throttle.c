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

static void acct_key(const char *email, char out[KEY_MAX])
{
    char lower[1024];
    size_t n = strnlen(email, sizeof lower - 1);
    for (size_t i = 0; i < n; i++) lower[i] = (char)tolower((unsigned char)email[i]);
    lower[n] = '\0';
    char hex[FV_SHA256_HEXLEN + 1];
    fv_sha256_hex(lower, n, hex);
    snprintf(out, KEY_MAX, "fv:throttle:acct:%s", hex);
}

static void addr_key(const char *address, char out[KEY_MAX])
{
    snprintf(out, KEY_MAX, "fv:throttle:addr:%s", address && *address ? address : "unknown");
}

/* Seconds left for key in memory when it is over max, else 0. */
static int mem_over(const char *key, int max)
{
    time_t now = fe_cache_now();
    counter *c = fe_cache_get(mem, key, now, NULL);
    if (!c || c->window_end <= now || c->count < max) return 0;
    return (int)(c->window_end - now);
}

static void mem_count(const char *key)
{
    time_t now = fe_cache_now();
    counter *c = fe_cache_get(mem, key, now, NULL);
    if (c && c->window_end > now) {
        c->count++;
        return;
    }
    c = malloc(sizeof *c);
    if (!c) return;
    c->count = 1;
    c->window_end = now + fe_cfg.login_window_s;
    fe_cache_put(mem, key, c, now, fe_cfg.login_window_s, fe_cfg.login_window_s);
}

/* One check in flight: owned here until cb is called. */
typedef struct check {
    char acct[KEY_MAX], addr[KEY_MAX];
    int mem_retry; /* what memory alone says */
    fe_throttle_cb cb;
    void *arg;
} check;

static void finish(check *c, int retry)
{
    fe_throttle_cb cb = c->cb;
    void *arg = c->arg;
    if (retry < c->mem_retry) retry = c->mem_retry;
    free(c);
    cb(retry, arg);
}

static void ttl_answered(redisReply *reply, const char *error, void *arg)
{
    check *c = arg;
    long long ttl = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    /* -1 (no expiry: a lost EXPIRE) or -2 (gone): a full window is the safe answer */
    if (ttl == -2) {
        finish(c, 0);
        return;
    }
    finish(c, ttl > 0 ? (int)ttl : fe_cfg.login_window_s);
}

static long long reply_count(const redisReply *e)
{
    if (!e || e->type != REDIS_REPLY_STRING) return 0;
    return strtoll(e->str, NULL, 10);
}

static void counts_answered(redisReply *reply, const char *error, void *arg)
{
    check *c = arg;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        finish(c, 0); /* Redis unavailable: memory's answer */
        return;
    }
    const char *over = NULL;
    if (reply_count(reply->element[0]) >= fe_cfg.login_max_failures_account) over = c->acct;
    else if (reply_count(reply->element[1]) >= fe_cfg.login_max_failures_address) over = c->addr;
    if (!over) {
        finish(c, 0);
        return;
    }
    const char *argv[] = {"TTL", over};
    size_t lens[] = {3, strlen(over)};
    if (fe_redis_command(2, argv, lens, ttl_answered, c) != 0) finish(c, fe_cfg.login_window_s);
}

void fe_throttle_check(const char *email, const char *address, fe_throttle_cb cb, void *arg)
{
    check *c = calloc(1, sizeof *c);
    if (!c) {
        cb(fe_cfg.login_window_s, arg); /* out of memory: refuse rather than skip the limit */
        return;
    }
    acct_key(email, c->acct);
    addr_key(address, c->addr);
    c->cb = cb;
    c->arg = arg;
    int a = mem_over(c->acct, fe_cfg.login_max_failures_account);
    int b = mem_over(c->addr, fe_cfg.login_max_failures_address);
    c->mem_retry = a > b ? a : b;
    const char *argv[] = {"MGET", c->acct, c->addr};
    size_t lens[] = {4, strlen(c->acct), strlen(c->addr)};
    if (fe_redis_command(3, argv, lens, counts_answered, c) != 0) finish(c, 0);
}

static void count_in_redis(const char *key)
{
    char window[16];
    snprintf(window, sizeof window, "%d", fe_cfg.login_window_s);
    const char *incr[] = {"INCR", key};
    size_t ilens[] = {4, strlen(key)};
    fe_redis_fire(2, incr, ilens);
    const char *exp[] = {"EXPIRE", key, window, "NX"};
    size_t elens[] = {6, strlen(key), strlen(window), 2};
    fe_redis_fire(4, exp, elens);
}

void fe_throttle_failure(const char *email, const char *address)
{
    char a[KEY_MAX], b[KEY_MAX];
    acct_key(email, a);
    addr_key(address, b);
    mem_count(a);
    mem_count(b);
    count_in_redis(a);
    count_in_redis(b);
}

void fe_throttle_success(const char *email)
{
    char a[KEY_MAX];
    acct_key(email, a);
    fe_cache_del(mem, a);
    const char *argv[] = {"DEL", a};
    size_t lens[] = {3, strlen(a)};
    fe_redis_fire(2, argv, lens);
}

/* Per-user caps on unverified submissions (see fe_unverified.h). */
#include "fe_unverified.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fe_cache.h"
#include "fe_config.h"
#include "fe_ratewindow.h"
#include "fe_redis.h"
#include "fv_log.h"

/* This child's counts of one user in one window: owned by the cache. */
typedef struct counts {
    long long n, bytes;
} counts;

static fe_cache *mem;

void fe_unverified_shutdown(void)
{
    fe_cache_free(mem);
    mem = NULL;
}

/* One admission waiting for Redis: owned here until cb is called. */
typedef struct admission {
    long long n, bytes; /* Redis's answers; -1 until answered */
    int due;
    bool failed; /* Redis did not count: this child's counts decide (they passed) */
    int retry;   /* seconds to the window's end */
    fe_unverified_cb cb;
    void *arg;
} admission;

static bool over(long long n, long long bytes)
{
    return n > fe_cfg.unverified_max_per_user || bytes > fe_cfg.unverified_max_bytes_per_user;
}

static void done(admission *a)
{
    int retry = !a->failed && over(a->n, a->bytes) ? a->retry : 0;
    fe_unverified_cb cb = a->cb;
    void *arg = a->arg;
    free(a);
    cb(retry, arg);
}

static void counted(redisReply *reply, const char *error, void *arg, bool is_bytes)
{
    (void)error;
    admission *a = arg;
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        if (is_bytes) a->bytes = reply->integer;
        else a->n = reply->integer;
    } else {
        a->failed = true;
    }
    if (--a->due == 0) done(a);
}

static void counted_n(redisReply *reply, const char *error, void *arg)
{
    counted(reply, error, arg, false);
}

static void counted_b(redisReply *reply, const char *error, void *arg)
{
    counted(reply, error, arg, true);
}

void fe_unverified_admit(const char *user_id, size_t bytes, fe_unverified_cb cb, void *arg)
{
    int len = fe_cfg.unverified_window_s < 1 ? 1 : fe_cfg.unverified_window_s;
    int64_t now = (int64_t)time(NULL);
    int64_t idx = fe_rw_index(now, len);
    int retry = fe_rw_retry_after(now, len);
    /* 1. this child's counts (they hold when Redis cannot count) */
    char view[96];
    snprintf(view, sizeof view, "%s:%" PRId64, user_id, idx);
    if (!mem) mem = fe_cache_new(100000, free);
    time_t t = fe_cache_now();
    counts *c = mem ? fe_cache_get(mem, view, t, NULL) : NULL;
    if (mem && !c && (c = calloc(1, sizeof *c)) != NULL) fe_cache_put(mem, view, c, t, retry, retry);
    if (!c) {
        cb(retry, arg); /* out of memory: refuse rather than skip the cap */
        return;
    }
    if (over(c->n + 1, c->bytes + (long long)bytes)) {
        cb(retry, arg);
        return;
    }
    c->n++;
    c->bytes += (long long)bytes;
    /* 2. every front end's, in Redis */
    admission *a = calloc(1, sizeof *a);
    if (!a || !fe_redis_ready()) {
        free(a);
        cb(0, arg);
        return;
    }
    *a = (admission){.n = -1, .bytes = -1, .retry = retry, .cb = cb, .arg = arg};
    char kn[128], kb[128], nbytes[24], ttl[24];
    snprintf(kn, sizeof kn, "fv:unverified:%s:%" PRId64 ":n", user_id, idx);
    snprintf(kb, sizeof kb, "fv:unverified:%s:%" PRId64 ":b", user_id, idx);
    snprintf(nbytes, sizeof nbytes, "%zu", bytes);
    snprintf(ttl, sizeof ttl, "%d", len + 5);
    const char *incr[] = {"INCR", kn};
    size_t incr_lens[] = {4, strlen(kn)};
    const char *incrby[] = {"INCRBY", kb, nbytes};
    size_t incrby_lens[] = {6, strlen(kb), strlen(nbytes)};
    a->due = 1; /* held while sending */
    if (fe_redis_command(2, incr, incr_lens, counted_n, a) == 0) a->due++;
    else a->failed = true;
    if (!a->failed && fe_redis_command(3, incrby, incrby_lens, counted_b, a) == 0) a->due++;
    else a->failed = true;
    const char *e1[] = {"EXPIRE", kn, ttl}, *e2[] = {"EXPIRE", kb, ttl};
    size_t l1[] = {6, strlen(kn), strlen(ttl)}, l2[] = {6, strlen(kb), strlen(ttl)};
    fe_redis_fire(3, e1, l1);
    fe_redis_fire(3, e2, l2);
    if (--a->due == 0) done(a);
}

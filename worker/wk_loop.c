/* The worker's consumer loop: the batch state machine, backoff and the dead-letter decisions. */
#include "wk_loop.h"
#include "wk_job_kinds.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fv_log.h"
#include "fv_settings.h"
#include "wk_config.h"
#include "wk_seal.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms, returning early when stop is set (signals interrupt nanosleep). */
static void sleep_ms(const wk_loop *L, int ms)
{
    long long until = now_ms() + ms;
    while (!*L->stop) {
        long long left = until - now_ms();
        if (left <= 0) break;
        struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
        if (nanosleep(&ts, NULL) == -1 && errno != EINTR) break;
    }
}

static int next_backoff(int cur)
{
    int next = cur ? cur * 2 : 100;
    return next > wk_cfg.pg_retry_max_ms ? wk_cfg.pg_retry_max_ms : next;
}

/* Called while a PostgreSQL statement of the batch is outstanding: refresh the claim on the
 * batch's entries (XCLAIM JUSTID, which leaves delivery counts alone) so that no other worker
 * takes them over while this one waits. A Redis failure here is not fatal: the write goes on. */
static void keep_claim(void *arg)
{
    wk_loop *L = arg;
    char err[256];
    if (L->stream.c && wk_stream_touch(&L->stream, &L->batch, err, sizeof err) != 0)
        fv_debug("refreshing the claim while waiting on postgresql failed: %s", err);
}

void wk_loop_init(wk_loop *L, const char *consumer, const volatile sig_atomic_t *stop)
{
    memset(L, 0, sizeof *L);
    L->stream.host = fv_common.redis_host;
    L->stream.port = fv_common.redis_port;
    L->stream.user = fv_common.redis_user;
    L->stream.password = fv_common.redis_password;
    L->stream.stream = fv_common.stream;
    L->stream.dead = fv_common.dead_stream;
    L->stream.group = fv_common.group;
    L->stream.consumer = consumer;
    L->stream.connect_timeout_ms = wk_cfg.io_timeout_ms;
    L->stream.command_timeout_ms = wk_cfg.block_ms + wk_cfg.io_timeout_ms;
    L->store.dsn = fv_common.pg_dsn;
    L->store.connect_timeout_ms = wk_cfg.io_timeout_ms;
    L->store.statement_timeout_ms = wk_cfg.pg_statement_timeout_ms;
    L->store.on_wait = keep_claim;
    L->store.wait_arg = L;
    L->store.wait_tick_ms = wk_cfg.claim_idle_ms / 3 > 100 ? wk_cfg.claim_idle_ms / 3 : 100;
    wk_batch_init(&L->batch);
    wk_jobs_init(&L->jobs, &L->store, consumer);
    L->stop = stop;
    L->own_pending = true; /* a restart under the same name finds its unacked entries first */
    snprintf(L->own_cursor, sizeof L->own_cursor, "0");
}

void wk_loop_free(wk_loop *L)
{
    wk_batch_reset(&L->batch);
    wk_jobs_free(&L->jobs);
    wk_stream_close(&L->stream);
    wk_store_close(&L->store);
}

/* Connects to Redis if needed, with backoff; false only when asked to stop meanwhile. */
static bool ensure_redis(wk_loop *L)
{
    int backoff = 0;
    char err[512];
    while (L->stream.c == NULL) {
        if (*L->stop) return false;
        if (wk_stream_connect(&L->stream, err, sizeof err) == 0) {
            if (backoff) fv_info("redis reconnected");
            break;
        }
        /* The first failure warns; the retries that follow are debug lines until it is back. */
        if (backoff == 0)
            fv_warn("redis unavailable, retrying with backoff up to %d ms: %s", wk_cfg.pg_retry_max_ms,
                    err);
        else fv_debug("redis still unavailable: %s", err);
        backoff = next_backoff(backoff);
        sleep_ms(L, backoff);
    }
    return true;
}

/* EMPTY -> READ: this consumer's own pending entries first (after a restart), then entries idle
 * too long anywhere (XAUTOCLAIM, at most once a second unless a scan is unfinished), then new
 * ones (XREADGROUP >, blocking up to block_ms; 1 ms while a job is held, so job steps and batches
 * take turns). Returns -1 on a Redis failure. */
static int step_read(wk_loop *L, bool job_held)
{
    char err[512];
    wk_batch *b = &L->batch;
    if (L->own_pending) {
        if (wk_stream_read(&L->stream, L->own_cursor, wk_cfg.batch_size, 0, b, err, sizeof err) != 0)
            goto failed;
        if (b->n > 0) {
            snprintf(L->own_cursor, sizeof L->own_cursor, "%s", b->entries[b->n - 1].stream_id);
            fv_info("re-reading %zu entries of our own pending list", b->n);
            return 0;
        }
        L->own_pending = false;
    }
    long long now = now_ms();
    int claim_every = wk_cfg.claim_idle_ms < 1000 ? wk_cfg.claim_idle_ms : 1000;
    if (L->claim_more || now - L->last_claim_ms >= claim_every) {
        L->last_claim_ms = now;
        if (wk_stream_claim(&L->stream, wk_cfg.claim_idle_ms, wk_cfg.batch_size, b, &L->claim_more, err,
                            sizeof err) != 0)
            goto failed;
        if (b->n > 0) {
            fv_info("claimed %zu entries idle for over %d ms", b->n, wk_cfg.claim_idle_ms);
            return 0;
        }
    }
    if (wk_stream_read(&L->stream, ">", wk_cfg.batch_size, job_held ? 1 : wk_cfg.block_ms, b, err,
                       sizeof err) != 0)
        goto failed;
    return 0;
failed:
    fv_warn("redis read failed: %s", err);
    return -1;
}

/* Dead-letters e with reason; counts it. Returns -1 on a Redis failure. */
static int dead_letter(wk_loop *L, wk_entry *e, const char *reason)
{
    char err[512];
    if (wk_stream_dead_letter(&L->stream, e, reason, err, sizeof err) != 0) {
        fv_warn("dead-letter of %s failed: %s", e->stream_id, err);
        return -1;
    }
    L->dead++;
    fv_warn("entry %s moved to %s after %lld deliveries: %s", e->stream_id, fv_common.dead_stream,
            e->deliveries, reason);
    return 0;
}

/* READ -> WRITE: poison entries and entries delivered more than max_deliveries times without
 * an ack (a worker died on them) leave for the dead-letter stream; the others' id claims are
 * read (wk_stream_id_holders). -1 on a Redis failure. */
static int step_sort(wk_loop *L)
{
    char err[512], reason[320];
    wk_batch *b = &L->batch;
    if (b->redelivered && wk_stream_deliveries(&L->stream, b, WK_ENTRY_NEW, err, sizeof err) != 0) {
        fv_warn("redis XPENDING failed: %s", err);
        return -1;
    }
    for (size_t i = 0; i < b->n; i++) {
        wk_entry *e = &b->entries[i];
        if (e->state == WK_ENTRY_POISON) {
            snprintf(reason, sizeof reason, "malformed entry: %s", e->error);
            if (dead_letter(L, e, reason) != 0) return -1;
        } else if (e->state == WK_ENTRY_NEW && b->redelivered && e->deliveries > wk_cfg.max_deliveries) {
            snprintf(reason, sizeof reason, "delivered %lld times without being acknowledged",
                     e->deliveries);
            if (dead_letter(L, e, reason) != 0) return -1;
        }
    }
    if (wk_stream_id_holders(&L->stream, b, err, sizeof err) != 0) {
        fv_warn("redis MGET of the submission id claims failed: %s", err);
        return -1;
    }
    return 0;
}

/* WRITE -> COMMITTED: the whole batch in one transaction; when PostgreSQL refuses the data,
 * entry by entry so the good ones commit and the bad ones are marked FAILED. Returns 0 when
 * every NEW entry is settled, -1 when PostgreSQL is unavailable (retry the same batch). */
static int step_write(wk_loop *L)
{
    char err[512];
    wk_batch *b = &L->batch;
    size_t n = wk_batch_count(b, WK_ENTRY_NEW);
    if (n == 0) return 0;
    if (L->store.conn == NULL) {
        if (wk_store_connect(&L->store, err, sizeof err) != 0) goto unavailable;
        if (L->pg_failures)
            fv_info("postgresql connected again after %u failed attempts", L->pg_failures);
        else fv_info("postgresql connected");
    }
    wk_store_rc rc = wk_store_write(&L->store, b, -1, err, sizeof err);
    if (rc == WK_STORE_RETRY) goto unavailable;
    if (rc == WK_STORE_OK) {
        L->pg_failures = 0;
        for (size_t i = 0; i < b->n; i++)
            if (b->entries[i].state == WK_ENTRY_NEW) b->entries[i].state = WK_ENTRY_WRITTEN;
        L->written += n;
        return 0;
    }
    fv_info("batch of %zu refused (%s); writing its entries one by one", n, err);
    for (size_t i = 0; i < b->n; i++) {
        wk_entry *e = &b->entries[i];
        if (e->state != WK_ENTRY_NEW) continue;
        rc = wk_store_write(&L->store, b, (long)i, e->error, sizeof e->error);
        if (rc == WK_STORE_RETRY) {
            snprintf(err, sizeof err, "%s", e->error);
            goto unavailable;
        }
        if (rc == WK_STORE_OK) {
            L->pg_failures = 0;
            e->state = WK_ENTRY_WRITTEN;
            L->written++;
        } else {
            e->state = WK_ENTRY_FAILED;
        }
    }
    return 0;
unavailable:
    if (L->pg_failures++ == 0)
        fv_warn(
            "postgresql unavailable, batch of %zu kept unacked, retrying with backoff up to %d ms: %s",
            n, wk_cfg.pg_retry_max_ms, err);
    else fv_debug("postgresql still unavailable (attempt %u): %s", L->pg_failures, err);
    return -1;
}

/* COMMITTED -> ACKED: XACK + XDEL what was written; a FAILED entry dead-letters once it has had
 * max_deliveries deliveries, otherwise it stays pending and XAUTOCLAIM hands it out again after
 * claim_idle_ms. Returns -1 on a Redis failure (the step is repeated: acks are idempotent). */
static int step_ack(wk_loop *L)
{
    char err[512];
    wk_batch *b = &L->batch;
    size_t acked = wk_batch_count(b, WK_ENTRY_WRITTEN) + wk_batch_count(b, WK_ENTRY_GONE);
    if (wk_stream_ack(&L->stream, b, err, sizeof err) != 0) {
        fv_warn("redis XACK failed, will retry: %s", err);
        return -1;
    }
    size_t failed = wk_batch_count(b, WK_ENTRY_FAILED);
    if (failed > 0 && wk_stream_deliveries(&L->stream, b, WK_ENTRY_FAILED, err, sizeof err) != 0) {
        fv_warn("redis XPENDING failed: %s", err);
        return -1;
    }
    for (size_t i = 0; i < b->n; i++) {
        wk_entry *e = &b->entries[i];
        if (e->state != WK_ENTRY_FAILED) continue;
        if (e->deliveries >= wk_cfg.max_deliveries) {
            if (dead_letter(L, e, e->error) != 0) return -1;
        } else {
            fv_warn("entry %s refused (delivery %lld of %d), left pending: %s", e->stream_id,
                    e->deliveries, wk_cfg.max_deliveries, e->error);
            e->state = WK_ENTRY_DONE;
        }
    }
    fv_info("batch done: %zu entries acked, %zu refused, %llu dead-lettered (totals: %llu written, "
            "%llu dead-lettered)",
            acked, failed, L->dead - L->dead_at_read, L->written, L->dead);
    return 0;
}

int wk_loop_run(wk_loop *L)
{
    wk_batch *b = &L->batch;
    int pg_backoff = 0, redis_backoff = 0;
    char err[512];
    fv_info("worker started: consumer %s, group %s, stream %s", L->stream.consumer, fv_common.group,
            fv_common.stream);
    for (;;) {
        /* Redis is needed in every state; the batch waits (unacked) while it is away. */
        if (!ensure_redis(L)) break;
        switch (b->state) {
        case WK_BATCH_EMPTY:
            if (*L->stop) goto stopped;
            /* Between two batches: one bounded step of a job (wk_jobs.h), so neither the stream
             * nor the jobs wait for the other for more than one step or one batch. */
            wk_job_export_sweep(&L->store); /* expired exports lose their bytes */
            /* values in clear or under a rotated data key: sealed under the current one */
            wk_seal_sweep(&L->store, wk_cfg.reseal_sweep_ms, wk_cfg.reseal_sweep_rows);
            if (step_read(L, wk_jobs_tick(&L->jobs)) == 0 && b->n > 0) {
                L->dead_at_read = L->dead;
                b->state = WK_BATCH_READ;
            }
            break;
        case WK_BATCH_READ:
            if (step_sort(L) == 0) b->state = WK_BATCH_WRITE;
            break;
        case WK_BATCH_WRITE:
            if (step_write(L) == 0) {
                pg_backoff = 0;
                b->state = WK_BATCH_COMMITTED;
                break;
            }
            if (*L->stop) goto stopped;
            pg_backoff = next_backoff(pg_backoff);
            sleep_ms(L, pg_backoff);
            /* Keep our claim fresh so no other worker starts the same batch meanwhile. */
            if (L->stream.c && wk_stream_touch(&L->stream, b, err, sizeof err) != 0)
                fv_warn("redis XCLAIM failed: %s", err);
            break;
        case WK_BATCH_COMMITTED:
            if (step_ack(L) == 0) {
                redis_backoff = 0;
                b->state = WK_BATCH_ACKED;
            } else {
                redis_backoff = next_backoff(redis_backoff);
                sleep_ms(L, redis_backoff);
            }
            break;
        case WK_BATCH_ACKED: wk_batch_reset(b); break;
        }
    }
stopped:
    wk_jobs_release(&L->jobs);
    if (b->state != WK_BATCH_EMPTY) {
        fv_warn("stopping with %zu entries unacked; another worker will claim them", b->n);
    } else if (L->stream.c) {
        bool removed = false;
        if (wk_stream_leave(&L->stream, &removed, err, sizeof err) != 0)
            fv_warn("could not leave the consumer group: %s", err);
        else if (!removed)
            fv_info("consumer %s keeps its pending entries in the group", L->stream.consumer);
    }
    fv_info("worker stopped: %llu written, %llu dead-lettered", L->written, L->dead);
    return 0;
}

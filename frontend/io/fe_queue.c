/* Where an accepted submission goes: Redis, or the local spool while Redis is away. */
#include "fe_queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fe_config.h"
#include "fe_metrics.h"
#include "fe_redis.h"
#include "fv_log.h"
#include "fv_qseal.h"
#include "fv_settings.h"
#include "fv_spool.h"

#define REPLAY_BATCH 500
#define REPLAY_TICK_MS 250

/* The replay of the spool into Redis, one batch at a time. */
typedef enum {
    RP_IDLE,       /* nothing to do, or waiting for Redis and for in-flight appends */
    RP_READING,    /* a batch is being read from the file on the spool's thread */
    RP_SENDING,    /* the batch's XADDs are in flight; `outstanding` replies to come */
    RP_TRUNCATING, /* everything read was taken by Redis: emptying the file */
} rp_state;

static struct {
    struct event_base *base; /* borrowed */
    fv_qseal *seal;          /* owned: seals every entry's payload (fv_qseal.h) */
    fv_spool *spool;         /* owned; NULL when spool_dir is empty */
    struct event *notify;    /* owned: the spool's completion eventfd */
    struct event *tick;      /* owned: replay timer */
    int appends_in_flight;
    uint64_t appends_total; /* appends ever issued, to notice appends during a replay */
    rp_state rp;
    uint64_t rp_offset;
    uint64_t rp_appends_at_start;
    fv_spool_batch *rp_batch; /* owned while RP_SENDING */
    int rp_outstanding;
    bool rp_failed;
    bool spool_failing; /* the last append failed (disk full, spool_max_mb reached, I/O error) */
} q;

/* Where a submission's id claim stands while its SET and XADD are in flight (send_to_redis). */
typedef enum claim_state {
    CLAIM_NONE,    /* no claim: a plain XADD */
    CLAIM_SENT,    /* the SET is sent, its reply not in yet */
    CLAIM_OURS,    /* the id was free or already this submitter's (or Redis refused the SET: then
                      the worker decides by the stored response) */
    CLAIM_TAKEN,   /* held by another submitter or for another deployment: 409 */
    CLAIM_UNKNOWN, /* no reply (connection lost, deadline): the entry goes to the spool */
} claim_state;

/* One submission on its way: owned from fe_queue_submit until its callback has run and no Redis
 * reply is due any more (sub_release). */
typedef struct qsub {
    fe_queue_cb cb;
    void *arg;
    int argc;
    const char *argv[3 + 2 * FV_ENVELOPE_MAX_FIELDS];
    size_t lens[3 + 2 * FV_ENVELOPE_MAX_FIELDS];
    char *copy;    /* owned: the argument bytes argv points into */
    bool claiming; /* send with the id's claim (claim_key, claim_value, claim_ttl) */
    claim_state claim;
    char claim_key[64], claim_value[96], claim_ttl[16];
    int replies_due;  /* Redis callbacks still to run for it */
    bool done;        /* cb has run */
    bool xadd_unsent; /* the SET went out, the XADD could not: the SET's reply finishes it */
} qsub;

static void publish_gauges(void)
{
    fe_metrics_spool_pending(q.spool ? fv_spool_pending(q.spool) : 0);
}

const char *fe_queue_state(void)
{
    if (fe_redis_ready()) return "up";
    return q.spool && !q.spool_failing ? "spool" : "down";
}

uint64_t fe_queue_spool_pending(void)
{
    return q.spool ? fv_spool_pending(q.spool) : 0;
}

/* Frees s once its callback has run and no Redis reply is due. */
static void sub_release(qsub *s)
{
    if (!s->done || s->replies_due > 0) return;
    free(s->copy);
    free(s);
}

static void sub_done(qsub *s, fe_queue_outcome o)
{
    s->done = true;
    s->cb(o, s->arg);
    sub_release(s);
}

static void spool_appended(int err, void *arg)
{
    qsub *s = arg;
    q.appends_in_flight--;
    publish_gauges();
    if (err) {
        if (!q.spool_failing) fv_error("spooling submissions fails: %s", strerror(err));
        q.spool_failing = true;
        sub_done(s, FE_QUEUE_FAILED);
        return;
    }
    if (q.spool_failing) fv_info("spooling submissions works again");
    q.spool_failing = false;
    fe_metrics_submission_spooled();
    sub_done(s, FE_QUEUED_SPOOL);
}

static void to_spool(qsub *s)
{
    /* A full spool cannot take more until the replay empties it; an I/O error may pass: try
     * again when the file has room. */
    if (q.spool && q.spool_failing &&
        fv_spool_bytes(q.spool) + 65536 > (uint64_t)fe_cfg.spool_max_mb * 1024 * 1024) {
        sub_done(s, FE_QUEUE_FAILED);
        return;
    }
    /* The spool keeps the entry's fields only (argv[3..]): the stream is named at replay. */
    if (!q.spool || fv_spool_append(q.spool, s->argv + 3, s->lens + 3, (size_t)(s->argc - 3),
                                    spool_appended, s) != 0) {
        sub_done(s, FE_QUEUE_FAILED);
        return;
    }
    q.appends_in_flight++;
    q.appends_total++;
}

static int send_to_redis(qsub *s);

/* An error reply to the SET (an ACL without it, out of memory) is logged once per child. */
static void claim_unavailable(const redisReply *reply)
{
    static bool warned;
    if (!warned)
        fv_warn("submission id claims unavailable, queueing unclaimed (the worker still refuses "
                "conflicts): %.200s",
                reply->str ? reply->str : "");
    warned = true;
}

/* The SET's reply: nil when the claim is new, the old value when one was there. It always comes
 * before the XADD's (one connection, replies in order), which then decides the outcome. */
static void set_replied(redisReply *reply, const char *error, void *arg)
{
    qsub *s = arg;
    s->replies_due--;
    if (reply && reply->type == REDIS_REPLY_STRING)
        s->claim = reply->len == strlen(s->claim_value) &&
                           memcmp(reply->str, s->claim_value, reply->len) == 0
                       ? CLAIM_OURS
                       : CLAIM_TAKEN;
    else if (reply && reply->type == REDIS_REPLY_NIL) s->claim = CLAIM_OURS;
    else if (reply && reply->type == REDIS_REPLY_ERROR) {
        claim_unavailable(reply);
        s->claim = CLAIM_OURS;
    } else s->claim = CLAIM_UNKNOWN;
    if (s->xadd_unsent) {
        if (s->claim == CLAIM_TAKEN) sub_done(s, FE_QUEUE_ID_TAKEN);
        else to_spool(s);
        return;
    }
    sub_release(s); /* the XADD's callback came first only when it failed without a reply */
}

static void xadd_replied(redisReply *reply, const char *error, void *arg)
{
    qsub *s = arg;
    s->replies_due--;
    if (s->claim == CLAIM_TAKEN) {
        /* 409; the entry, in the stream or not, is refused by the worker by the claim's holder
         * (worker/wk_stream.c wk_stream_id_holders). */
        sub_done(s, FE_QUEUE_ID_TAKEN);
        return;
    }
    if (reply && reply->type == REDIS_REPLY_STRING) {
        sub_done(s, FE_QUEUED_REDIS);
        return;
    }
    /* Lost connection, timeout, or an error reply (e.g. out of memory): the entry may or may
     * not be in the stream; spooling it too is safe, as the id makes the replay idempotent. */
    fv_warn("XADD failed (%s); spooling the submission", reply && reply->type == REDIS_REPLY_ERROR
                                                             ? reply->str
                                                         : error ? error
                                                                 : "unexpected reply");
    to_spool(s);
}

/* Sends s to Redis: with a claim, SET claim value NX GET EX ttl and the XADD back to back on the
 * one connection (one round trip, one fsync; no MULTI and no script, which cost Redis more CPU
 * than the two commands: docs/performance.md), else the XADD alone. 0 when sent: then a
 * callback finishes s. */
static int send_to_redis(qsub *s)
{
    if (s->claiming) {
        const char *set[] = {"SET", s->claim_key, s->claim_value, "NX", "GET", "EX", s->claim_ttl};
        const size_t set_lens[] = {3, strlen(s->claim_key), strlen(s->claim_value), 2, 3,
                                   2, strlen(s->claim_ttl)};
        if (fe_redis_command(7, set, set_lens, set_replied, s) != 0) return -1; /* to the spool */
        s->claim = CLAIM_SENT;
        s->replies_due++;
        if (fe_redis_command(s->argc, s->argv, s->lens, xadd_replied, s) != 0) {
            s->xadd_unsent = true;
            return 0;
        }
        s->replies_due++;
        return 0;
    }
    if (fe_redis_command(s->argc, s->argv, s->lens, xadd_replied, s) != 0) return -1;
    s->replies_due++;
    return 0;
}

void fe_queue_submit(const fv_envelope *e, const char *claim_key, const char *claim_value,
                     int claim_ttl_s, fe_queue_cb cb, void *arg)
{
    qsub *s = calloc(1, sizeof *s);
    char scratch[64];
    if (!s) {
        cb(FE_QUEUE_FAILED, arg);
        return;
    }
    s->cb = cb;
    s->arg = arg;
    /* The payload goes sealed (fv_qseal.h): the argv gets a placeholder of the sealed text's
     * length, which the copy below fills by sealing straight from the request's bytes. */
    static const char sealed_here[1];
    fv_envelope se = *e;
    se.sealed = sealed_here;
    se.sealed_len = fv_qseal_text_len(e);
    size_t scratch_len = fv_qseal_scratch_len(e);
    s->argc = fv_envelope_xadd_argv(&se, fv_common.stream, scratch, sizeof scratch, s->argv, s->lens);
    /* Copy the arguments: the envelope borrows from the request, which may go first. One
     * allocation holds them and, after them, the sealing's scratch (ciphertext only). */
    size_t total = 0;
    for (int i = 0; i < s->argc; i++) total += s->lens[i] + 1;
    s->copy = malloc(total + scratch_len);
    if (!s->copy) {
        free(s);
        cb(FE_QUEUE_FAILED, arg);
        return;
    }
    char *p = s->copy;
    for (int i = 0; i < s->argc; i++) {
        if (s->argv[i] == sealed_here) {
            if (fv_qseal_seal(q.seal, e, (unsigned char *)s->copy + total, p) != 0) {
                fv_error("sealing a submission for the queue failed");
                free(s->copy);
                free(s);
                cb(FE_QUEUE_FAILED, arg);
                return;
            }
        } else {
            memcpy(p, s->argv[i], s->lens[i]);
        }
        p[s->lens[i]] = '\0';
        s->argv[i] = p;
        p += s->lens[i] + 1;
    }
    if (claim_key && claim_value && claim_ttl_s > 0) {
        s->claiming = true;
        snprintf(s->claim_key, sizeof s->claim_key, "%s", claim_key);
        snprintf(s->claim_value, sizeof s->claim_value, "%s", claim_value);
        snprintf(s->claim_ttl, sizeof s->claim_ttl, "%d", claim_ttl_s);
    }
    if (fe_redis_ready() && send_to_redis(s) == 0) return;
    to_spool(s);
}

/* ---- replay ---- */

static void replay_read_next(void);

static void replay_stop(const char *why)
{
    if (why) fv_warn("spool replay paused: %s", why);
    fv_spool_batch_free(q.rp_batch);
    q.rp_batch = NULL;
    q.rp = RP_IDLE;
}

static void truncated(int err, void *arg)
{
    if (err) {
        replay_stop(strerror(err));
        return;
    }
    fv_info("spool replayed into redis and emptied");
    q.rp = RP_IDLE;
    q.spool_failing = false;
    publish_gauges();
}

/* Every XADD of the batch has been answered (or the batch was empty). */
static void replay_batch_done(void)
{
    bool eof = q.rp_batch->eof;
    q.rp_offset = q.rp_batch->next_offset;
    fv_spool_batch_free(q.rp_batch);
    q.rp_batch = NULL;
    if (q.rp_failed) {
        replay_stop("redis refused an entry; retrying from the start later");
        return;
    }
    if (!eof) {
        replay_read_next();
        return;
    }
    if (q.appends_total != q.rp_appends_at_start || q.appends_in_flight) {
        /* Submissions were spooled meanwhile (Redis flapped): replay again rather than cut
         * records Redis has not taken. The repeats are harmless: ids are primary keys. */
        q.rp = RP_IDLE;
        return;
    }
    q.rp = RP_TRUNCATING;
    if (fv_spool_truncate(q.spool, truncated, NULL) != 0) replay_stop("cannot truncate");
}

static void replay_xadd_replied(redisReply *reply, const char *error, void *arg)
{
    if (!reply || reply->type != REDIS_REPLY_STRING) q.rp_failed = true;
    if (--q.rp_outstanding == 0) replay_batch_done();
}

static void replay_batch_read(int err, fv_spool_batch *b, void *arg)
{
    if (err || !b) {
        replay_stop(err ? strerror(err) : "read failed");
        return;
    }
    q.rp_batch = b;
    q.rp_failed = false;
    if (b->n == 0) {
        replay_batch_done();
        return;
    }
    q.rp = RP_SENDING;
    q.rp_outstanding = 0;
    for (size_t i = 0; i < b->n; i++) {
        const char *argv[3 + FV_SPOOL_MAX_ITEMS];
        size_t lens[3 + FV_SPOOL_MAX_ITEMS];
        int argc = fv_spool_record_xadd_argv(&b->records[i], fv_common.stream, argv, lens);
        if (fe_redis_command(argc, argv, lens, replay_xadd_replied, NULL) != 0) {
            q.rp_failed = true;
            break;
        }
        q.rp_outstanding++;
    }
    if (q.rp_outstanding == 0) replay_stop("redis is not accepting commands");
    /* else replay_batch_done runs when the last reply arrives */
}

static void replay_read_next(void)
{
    q.rp = RP_READING;
    if (fv_spool_read(q.spool, q.rp_offset, REPLAY_BATCH, replay_batch_read, NULL) != 0)
        replay_stop("cannot read the spool");
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    publish_gauges();
    if (q.rp != RP_IDLE || !fe_redis_ready() || q.appends_in_flight || fv_spool_pending(q.spool) == 0)
        return;
    fv_info("redis is available: replaying %llu spooled submissions",
            (unsigned long long)fv_spool_pending(q.spool));
    q.rp_offset = 0;
    q.rp_appends_at_start = q.appends_total;
    replay_read_next();
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
    fv_spool_run_completions(q.spool);
}

int fe_queue_init(struct event_base *base, int child_index, char *err, size_t errlen)
{
    memset(&q, 0, sizeof q);
    q.base = base;
    /* One per child: the queue subkeys are derived here, once, not per entry. */
    q.seal = fv_qseal_new(&fe_keys);
    if (!q.seal) {
        snprintf(err, errlen, "cannot derive the queue sealing key from key_file");
        return -1;
    }
    if (!fe_cfg.spool_dir || !*fe_cfg.spool_dir) return 0;
    if (mkdir(fe_cfg.spool_dir, 0700) == -1 && errno != EEXIST) {
        snprintf(err, errlen, "spool_dir %s: %s", fe_cfg.spool_dir, strerror(errno));
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/spool-%d-%d.log", fe_cfg.spool_dir, fe_cfg.listen_port, child_index);
    q.spool = fv_spool_open(path, (uint64_t)fe_cfg.spool_max_mb * 1024 * 1024, err, errlen);
    if (!q.spool) return -1;
    q.notify = event_new(base, fv_spool_notify_fd(q.spool), EV_READ | EV_PERSIST, notify_cb, NULL);
    q.tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    if (!q.notify || !q.tick) {
        snprintf(err, errlen, "event_new failed");
        return -1;
    }
    struct timeval tv = {0, REPLAY_TICK_MS * 1000};
    event_add(q.notify, NULL);
    event_add(q.tick, &tv);
    if (fv_spool_pending(q.spool))
        fv_warn("spool %s holds %llu submissions from before; they will be replayed", path,
                (unsigned long long)fv_spool_pending(q.spool));
    publish_gauges();
    return 0;
}

void fe_queue_shutdown(void)
{
    if (q.tick) event_free(q.tick);
    if (q.notify) event_free(q.notify);
    q.tick = q.notify = NULL;
    fv_spool_batch_free(q.rp_batch);
    q.rp_batch = NULL;
    /* Appends already queued complete (with ECANCELED if not started) before this returns. */
    fv_spool_close(q.spool);
    q.spool = NULL;
    fv_qseal_free(q.seal);
    q.seal = NULL;
}

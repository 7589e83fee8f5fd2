/* Non-blocking Redis for a front-end child: hiredis' libevent adapter plus deadlines. */
#include "fe_redis.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_log.h"

#define FE_REDIS_MAX_INFLIGHT 20000
#define FE_REDIS_BACKOFF_MIN_MS 100
#define FE_REDIS_BACKOFF_MAX_MS 5000

typedef enum {
    RS_DOWN,       /* no connection; the retry timer fires the next attempt */
    RS_CONNECTING, /* redisAsyncConnect issued, waiting for the connect callback */
    RS_READY,      /* connected; commands are sent */
} rs_state;

/* One command in flight: owned by hiredis' callback list; freed in cmd_reply_cb. */
typedef struct fe_rcmd {
    fe_redis_cb cb;
    void *arg;
    struct event *timer; /* owned */
    bool answered;       /* cb already called (the deadline passed first) */
} fe_rcmd;

static struct {
    struct event_base *base;    /* borrowed */
    char *ip, *user, *password; /* owned */
    int port, timeout_ms, backoff_ms, inflight;
    redisAsyncContext *ac; /* owned by hiredis once connected; NULL when down */
    rs_state state;
    struct event *retry; /* owned */
    bool shutting_down;
} rd;

static void schedule_retry(void)
{
    if (rd.shutting_down) return;
    struct timeval tv = {rd.backoff_ms / 1000, (rd.backoff_ms % 1000) * 1000};
    evtimer_add(rd.retry, &tv);
    rd.backoff_ms = rd.backoff_ms * 2 > FE_REDIS_BACKOFF_MAX_MS ? FE_REDIS_BACKOFF_MAX_MS
                                                                : rd.backoff_ms * 2;
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        if (rd.backoff_ms == FE_REDIS_BACKOFF_MIN_MS)
            fv_warn("redis connect to %s:%d failed: %s", rd.ip, rd.port, ac->errstr);
        rd.ac = NULL; /* hiredis frees the context after this callback */
        rd.state = RS_DOWN;
        schedule_retry();
        return;
    }
    rd.state = RS_READY;
    rd.backoff_ms = FE_REDIS_BACKOFF_MIN_MS;
    fv_info("redis connected to %s:%d", rd.ip, rd.port);
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    if (ac != rd.ac) return; /* a context we dropped ourselves (drop_connection) */
    if (rd.state == RS_READY && !rd.shutting_down)
        fv_warn("redis connection lost: %s", status == REDIS_OK ? "closed" : ac->errstr);
    rd.ac = NULL;
    rd.state = RS_DOWN;
    schedule_retry();
}

/* Forgets the current context and frees it: pending callbacks get NULL replies. */
static void drop_connection(void)
{
    redisAsyncContext *ac = rd.ac;
    rd.ac = NULL;
    rd.state = RS_DOWN;
    if (ac) redisAsyncFree(ac);
    schedule_retry();
}

static void auth_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR) fv_error("redis AUTH refused");
}

static void start_connect(void)
{
    rd.ac = redisAsyncConnect(rd.ip, rd.port);
    if (!rd.ac || rd.ac->err) {
        fv_warn("redis connect: %s", rd.ac ? rd.ac->errstr : "out of memory");
        if (rd.ac) redisAsyncFree(rd.ac);
        rd.ac = NULL;
        rd.state = RS_DOWN;
        schedule_retry();
        return;
    }
    rd.state = RS_CONNECTING;
    redisLibeventAttach(rd.ac, rd.base);
    redisAsyncSetConnectCallback(rd.ac, connect_cb);
    redisAsyncSetDisconnectCallback(rd.ac, disconnect_cb);
    if (rd.password && *rd.password) {
        /* Queued before any other command, so everything after it is authenticated. */
        bool named = rd.user && *rd.user;
        const char *argv[] = {"AUTH", named ? rd.user : rd.password, rd.password};
        size_t lens[] = {4, strlen(argv[1]), strlen(rd.password)};
        redisAsyncCommandArgv(rd.ac, auth_cb, NULL, named ? 3 : 2, argv, lens);
    }
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    start_connect();
}

static void cmd_reply_cb(redisAsyncContext *ac, void *r, void *priv)
{
    fe_rcmd *cmd = priv;
    rd.inflight--;
    if (!cmd->answered) {
        cmd->answered = true;
        evtimer_del(cmd->timer);
        cmd->cb(r, r ? NULL : "redis connection lost", cmd->arg);
    }
    event_free(cmd->timer);
    free(cmd);
}

static void cmd_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    fe_rcmd *cmd = arg;
    cmd->answered = true;
    cmd->cb(NULL, "redis timed out", cmd->arg);
    /* A command this late means a hung server: drop the connection so later commands fail
     * fast and a new connection is tried. redisAsyncFree calls every pending callback (this
     * one included, which frees cmd), so cmd is not touched after it. */
    if (rd.ac && rd.state == RS_READY) {
        fv_warn("redis unresponsive for %d ms; reconnecting", rd.timeout_ms);
        drop_connection();
    }
}

int fe_redis_command(int argc, const char **argv, const size_t *lens, fe_redis_cb cb, void *arg)
{
    if (rd.state != RS_READY || !rd.ac || rd.inflight >= FE_REDIS_MAX_INFLIGHT) return -1;
    fe_rcmd *cmd = calloc(1, sizeof *cmd);
    if (!cmd) return -1;
    cmd->cb = cb;
    cmd->arg = arg;
    cmd->timer = evtimer_new(rd.base, cmd_timeout_cb, cmd);
    if (!cmd->timer) {
        free(cmd);
        return -1;
    }
    if (redisAsyncCommandArgv(rd.ac, cmd_reply_cb, cmd, argc, argv, lens) != REDIS_OK) {
        event_free(cmd->timer);
        free(cmd);
        return -1;
    }
    rd.inflight++;
    struct timeval tv = {rd.timeout_ms / 1000, (rd.timeout_ms % 1000) * 1000};
    evtimer_add(cmd->timer, &tv);
    return 0;
}

int fe_redis_transaction(int n, const int *argcs, const char *const *const *argvs,
                         const size_t *const *lenss, fe_redis_cb cb, void *arg)
{
    if (rd.state != RS_READY || !rd.ac || rd.inflight + n + 2 > FE_REDIS_MAX_INFLIGHT) return -1;
    /* MULTI's and the queued commands' replies (+OK, +QUEUED) are dropped by hiredis (no
     * callback); EXEC's carries the outcome and the deadline. */
    const char *multi[] = {"MULTI"};
    const size_t multi_len[] = {5};
    if (redisAsyncCommandArgv(rd.ac, NULL, NULL, 1, multi, multi_len) != REDIS_OK) return -1;
    for (int i = 0; i < n; i++) {
        if (redisAsyncCommandArgv(rd.ac, NULL, NULL, argcs[i], (const char **)argvs[i], lenss[i]) !=
            REDIS_OK) {
            /* Out of memory halfway: a transaction left open would swallow the next commands;
             * dropping the connection makes Redis discard it. */
            drop_connection();
            return -1;
        }
    }
    const char *exec[] = {"EXEC"};
    const size_t exec_len[] = {4};
    if (fe_redis_command(1, exec, exec_len, cb, arg) != 0) {
        if (rd.ac) drop_connection();
        return -1;
    }
    return 0;
}

bool fe_redis_ready(void)
{
    return rd.state == RS_READY;
}

static void ignore_reply(redisReply *reply, const char *error, void *arg)
{
}

void fe_redis_set_ex(const char *key, const char *value, size_t len, int ttl_s)
{
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *argv[] = {"SET", key, value, "EX", ttl};
    size_t lens[] = {3, strlen(key), len, 2, strlen(ttl)};
    fe_redis_command(5, argv, lens, ignore_reply, NULL);
}

void fe_redis_fire(int argc, const char **argv, const size_t *lens)
{
    fe_redis_command(argc, argv, lens, ignore_reply, NULL);
}

int fe_redis_init(struct event_base *base, const char *ip, int port, const char *user,
                  const char *password, int timeout_ms)
{
    memset(&rd, 0, sizeof rd);
    rd.base = base;
    rd.ip = strdup(ip);
    rd.user = strdup(user ? user : "");
    rd.password = strdup(password ? password : "");
    rd.port = port;
    rd.timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    rd.backoff_ms = FE_REDIS_BACKOFF_MIN_MS;
    rd.retry = evtimer_new(base, retry_cb, NULL);
    if (!rd.ip || !rd.user || !rd.password || !rd.retry) return -1;
    start_connect();
    return 0;
}

void fe_redis_shutdown(void)
{
    rd.shutting_down = true;
    if (rd.ac) {
        redisAsyncContext *ac = rd.ac;
        rd.ac = NULL;
        redisAsyncFree(ac); /* pending callbacks get NULL replies */
    }
    if (rd.retry) event_free(rd.retry);
    rd.retry = NULL;
    free(rd.ip);
    free(rd.user);
    free(rd.password);
    rd.ip = rd.user = rd.password = NULL;
}

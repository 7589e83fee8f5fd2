/* Non-blocking PostgreSQL pool for a front-end child. */
#include "fe_pg.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "fv_log.h"

#define FE_PG_MAX_POOL 64
#define FE_PG_MAX_QUEUE 4096
#define FE_PG_BACKOFF_MIN_MS 100
#define FE_PG_BACKOFF_MAX_MS 5000
/* At most this many cancel requests in flight per child (each a short-lived thread: PQcancel
 * blocks). Past it a timed-out query's connection is only closed, which ends its statement when
 * the server next notices the closed socket. */
#define FE_PG_MAX_CANCELS 8

typedef struct fe_pgq {
    TAILQ_ENTRY(fe_pgq) link;
    const char *sql; /* borrowed */
    int nparams;
    char **values; /* owned copies */
    fe_pg_cb cb;
    void *arg;
} fe_pgq;

TAILQ_HEAD(fe_pgq_list, fe_pgq);

typedef enum {
    PGC_DOWN,       /* no connection; the timer fires the next attempt */
    PGC_CONNECTING, /* PQconnectPoll in progress; the timer is the connect deadline */
    PGC_IDLE,       /* established, nothing in flight; reads watched to notice a close */
    PGC_BUSY,       /* one query in flight (q); the timer is its deadline */
} pgc_state;

typedef struct fe_pgconn {
    int index;
    PGconn *conn; /* owned; NULL when DOWN */
    pgc_state state;
    struct event *io; /* owned; watches PQsocket(conn) for io_what */
    int io_fd;
    short io_what;
    struct event *timer; /* owned */
    fe_pgq *q;           /* owned while BUSY */
    PGresult *res;       /* owned: the result being collected */
    int backoff_ms;
    /* Being replaced after one of its queries timed out: the server answered until then, so the
     * pool still counts as up while this connection reconnects; a failed reconnect is evidence
     * the server is unreachable and takes the whole pool down. */
    bool replacing;
} fe_pgconn;

static struct {
    struct event_base *base; /* borrowed */
    char *dsn;               /* owned */
    int timeout_ms;
    int size;
    fe_pgconn conns[FE_PG_MAX_POOL];
    struct fe_pgq_list queue;
    int queued;
    bool shutting_down;
    struct event *dispatch_ev; /* owned: runs deferred callbacks for immediate failures */
    struct fe_pgq_list failed; /* queries to fail from dispatch_ev (cb never runs re-entrantly) */
    struct event *ping_ev;     /* owned: the liveness ping timer */
    bool ping_in_flight;
    int timeouts_in_row; /* queries timed out since the server last answered one */
} pg;

static void conn_start(fe_pgconn *c);
static void conn_down(fe_pgconn *c, const char *why);
static void dispatch(void);

static void q_free(fe_pgq *q)
{
    for (int i = 0; i < q->nparams; i++) free(q->values[i]);
    free(q->values);
    free(q);
}

static void q_finish(fe_pgq *q, fe_pg_status st, PGresult *res, const char *sqlstate)
{
    fe_pg_result r = {.status = st, .res = res};
    if (sqlstate) snprintf(r.sqlstate, sizeof r.sqlstate, "%s", sqlstate);
    q->cb(&r, q->arg);
    q_free(q);
}

static void timeval_ms(struct timeval *tv, int ms)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}

static void io_cb(evutil_socket_t fd, short what, void *arg);

static void watch(fe_pgconn *c, short what)
{
    int fd = c->conn ? PQsocket(c->conn) : -1;
    if (c->io && c->io_fd == fd && c->io_what == what) return;
    if (c->io) {
        event_free(c->io);
        c->io = NULL;
    }
    if (fd < 0 || what == 0) return;
    c->io = event_new(pg.base, fd, what | EV_PERSIST, io_cb, c);
    c->io_fd = fd;
    c->io_what = what;
    event_add(c->io, NULL);
}

static void arm_timer(fe_pgconn *c, int ms)
{
    struct timeval tv;
    timeval_ms(&tv, ms);
    evtimer_add(c->timer, &tv);
}

/* Up: a connection is established, or one is being replaced after a slow query (one slow
 * statement is no evidence that the server is down: it must not switch the child to degraded
 * mode). */
static bool any_up(void)
{
    for (int i = 0; i < pg.size; i++)
        if (pg.conns[i].state == PGC_IDLE || pg.conns[i].state == PGC_BUSY || pg.conns[i].replacing)
            return true;
    return false;
}

static atomic_int cancels_in_flight;

/* Owns pc (freed here). Signals stay with the event loop's thread (blocked in this one). */
static void *cancel_main(void *arg)
{
    PGcancel *pc = arg;
    char err[256];
    if (!PQcancel(pc, err, sizeof err)) fv_info("postgresql: cancel request not delivered: %s", err);
    PQfreeCancel(pc);
    atomic_fetch_sub(&cancels_in_flight, 1);
    return NULL;
}

/* Asks the server to cancel c's running statement without waiting for it (PQcancel opens a
 * connection of its own and blocks: it runs in a detached thread, at most FE_PG_MAX_CANCELS). */
static void cancel_async(fe_pgconn *c)
{
    if (atomic_fetch_add(&cancels_in_flight, 1) >= FE_PG_MAX_CANCELS) {
        atomic_fetch_sub(&cancels_in_flight, 1);
        return;
    }
    PGcancel *pc = PQgetCancel(c->conn); /* owned: handed to the thread */
    pthread_attr_t attr;
    sigset_t all, old;
    sigfillset(&all);
    bool started = false;
    if (pc && pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        pthread_t t;
        started = pthread_create(&t, &attr, cancel_main, pc) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        if (pc) PQfreeCancel(pc);
        atomic_fetch_sub(&cancels_in_flight, 1);
    }
}

bool fe_pg_up(void)
{
    return any_up();
}

/* True when a query could be served soon: a connection is up or being established (or about to
 * be, replacing one whose query timed out). */
static bool any_usable(void)
{
    for (int i = 0; i < pg.size; i++)
        if (pg.conns[i].state != PGC_DOWN || pg.conns[i].replacing) return true;
    return false;
}

/* Fails every queued query when no connection can serve them. */
static void fail_queue_if_down(void)
{
    if (any_usable()) return;
    fe_pgq *q;
    while ((q = TAILQ_FIRST(&pg.queue))) {
        TAILQ_REMOVE(&pg.queue, q, link);
        pg.queued--;
        q_finish(q, FE_PG_UNAVAILABLE, NULL, NULL);
    }
}

static void conn_down(fe_pgconn *c, const char *why)
{
    /* Log transitions only: a lost connection, or the first failed attempt of a series. */
    if (c->state == PGC_IDLE || c->state == PGC_BUSY ||
        (c->state == PGC_CONNECTING && c->backoff_ms == FE_PG_BACKOFF_MIN_MS && !pg.shutting_down))
        fv_warn("postgresql connection %d down: %s", c->index, why);
    watch(c, 0);
    evtimer_del(c->timer);
    if (c->res) {
        PQclear(c->res);
        c->res = NULL;
    }
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    /* A replacement that cannot connect: the server does not answer new connections either,
     * so the pool is down (every connection, not just this one). */
    bool unreachable = c->replacing && c->state == PGC_CONNECTING;
    if (c->state != PGC_BUSY) c->replacing = false; /* BUSY: timer_cb starts a replacement */
    c->state = PGC_DOWN;
    if (c->q) {
        fe_pgq *q = c->q;
        c->q = NULL;
        q_finish(q, FE_PG_UNAVAILABLE, NULL, NULL);
    }
    if (unreachable)
        for (int i = 0; i < pg.size; i++)
            if (pg.conns[i].state != PGC_DOWN || pg.conns[i].replacing) {
                pg.conns[i].replacing = false;
                conn_down(&pg.conns[i], "the server does not answer new connections");
            }
    fail_queue_if_down();
    if (pg.shutting_down) return;
    arm_timer(c, c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > FE_PG_BACKOFF_MAX_MS ? FE_PG_BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void conn_poll(fe_pgconn *c)
{
    switch (PQconnectPoll(c->conn)) {
    case PGRES_POLLING_READING: watch(c, EV_READ); return;
    case PGRES_POLLING_WRITING: watch(c, EV_WRITE); return;
    case PGRES_POLLING_OK:
        evtimer_del(c->timer);
        c->state = PGC_IDLE;
        c->replacing = false;
        c->backoff_ms = FE_PG_BACKOFF_MIN_MS;
        watch(c, EV_READ);
        fv_info("postgresql connection %d ready", c->index);
        dispatch();
        return;
    default: {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c->conn));
        char *nl = strchr(msg, '\n');
        if (nl) *nl = '\0';
        conn_down(c, msg);
        return;
    }
    }
}

static void conn_start(fe_pgconn *c)
{
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *vals[] = {pg.dsn, "fv-frontend", NULL};
    c->conn = PQconnectStartParams(keys, vals, 1);
    if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
        c->state = PGC_CONNECTING; /* so conn_down logs the failure once */
        conn_down(c, c->conn ? PQerrorMessage(c->conn) : "out of memory");
        return;
    }
    PQsetnonblocking(c->conn, 1);
    c->state = PGC_CONNECTING;
    arm_timer(c, pg.timeout_ms);
    conn_poll(c);
}

static void conn_read_results(fe_pgconn *c)
{
    if (!PQconsumeInput(c->conn)) {
        conn_down(c, PQerrorMessage(c->conn));
        return;
    }
    if (c->state != PGC_BUSY) {
        /* An idle connection has nothing to read but notices or a close. */
        if (PQstatus(c->conn) == CONNECTION_BAD) conn_down(c, "closed by the server");
        return;
    }
    while (!PQisBusy(c->conn)) {
        PGresult *res = PQgetResult(c->conn);
        if (res == NULL) {
            /* The query is complete: hand the result over. */
            fe_pgq *q = c->q;
            PGresult *final = c->res;
            c->q = NULL;
            c->res = NULL;
            c->state = PGC_IDLE;
            evtimer_del(c->timer);
            watch(c, EV_READ);
            ExecStatusType st = final ? PQresultStatus(final) : PGRES_FATAL_ERROR;
            pg.timeouts_in_row = 0; /* the server answers */
            if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
                q_finish(q, FE_PG_OK, final, NULL);
            } else {
                const char *sqlstate = final ? PQresultErrorField(final, PG_DIAG_SQLSTATE) : NULL;
                const char *msg = final ? PQresultErrorField(final, PG_DIAG_MESSAGE_PRIMARY) : NULL;
                fv_warn("postgresql refused a statement: %s (%s)", msg ? msg : "no result",
                        sqlstate ? sqlstate : "-");
                q_finish(q, FE_PG_SQL, NULL, sqlstate ? sqlstate : "XX000");
            }
            if (final) PQclear(final);
            dispatch();
            return;
        }
        /* Keep the first error, else the last result. */
        if (c->res && PQresultStatus(c->res) == PGRES_FATAL_ERROR) {
            PQclear(res);
        } else {
            if (c->res) PQclear(c->res);
            c->res = res;
        }
    }
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    fe_pgconn *c = arg;
    switch (c->state) {
    case PGC_CONNECTING: conn_poll(c); break;
    case PGC_BUSY:
        if (what & EV_WRITE) {
            int f = PQflush(c->conn);
            if (f == -1) {
                conn_down(c, PQerrorMessage(c->conn));
                return;
            }
            if (f == 0) watch(c, EV_READ);
        }
        if (what & EV_READ) conn_read_results(c);
        break;
    case PGC_IDLE: conn_read_results(c); break;
    case PGC_DOWN: break;
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    fe_pgconn *c = arg;
    switch (c->state) {
    case PGC_DOWN: conn_start(c); break;
    case PGC_CONNECTING: conn_down(c, "connect timed out"); break;
    case PGC_BUSY: {
        /* A slow statement (a lock wait, a big scan) or a hung server: fail the request now,
         * ask the server to cancel the statement (off the loop) and replace this connection
         * only. The other connections go on serving; whether the server is hung is told by the
         * replacement's connect (conn_down: a failed one takes the pool down) and by their own
         * queries and pings. */
        fe_pgq *q = c->q;
        c->q = NULL;
        q_finish(q, FE_PG_TIMEOUT, NULL, NULL);
        if (c->state != PGC_BUSY || c->q) break; /* the callback's own query took c meanwhile */
        cancel_async(c);
        if (++pg.timeouts_in_row >= (pg.size < 2 ? 2 : pg.size)) {
            /* As many queries in a row timed out as there are connections (two at least), none
             * answered in between: every connection is failing, the server is as good as down. */
            for (int i = 0; i < pg.size; i++) {
                pg.conns[i].replacing = false;
                if (pg.conns[i].state != PGC_DOWN)
                    conn_down(&pg.conns[i], "every connection's queries time out");
            }
            break;
        }
        c->replacing = true;
        conn_down(c, "query timed out; replacing this connection");
        break;
    }
    case PGC_IDLE: break;
    }
}

static void conn_send(fe_pgconn *c, fe_pgq *q)
{
    if (!PQsendQueryParams(c->conn, q->sql, q->nparams, NULL, (const char *const *)q->values, NULL, NULL,
                           0)) {
        /* Put it back at the head; the connection is broken. */
        TAILQ_INSERT_HEAD(&pg.queue, q, link);
        pg.queued++;
        conn_down(c, PQerrorMessage(c->conn));
        return;
    }
    c->q = q;
    c->state = PGC_BUSY;
    arm_timer(c, pg.timeout_ms);
    int f = PQflush(c->conn);
    if (f == -1) {
        conn_down(c, PQerrorMessage(c->conn));
        return;
    }
    watch(c, f == 1 ? (EV_READ | EV_WRITE) : EV_READ);
}

static void dispatch(void)
{
    for (int i = 0; i < pg.size && !TAILQ_EMPTY(&pg.queue); i++) {
        fe_pgconn *c = &pg.conns[i];
        if (c->state != PGC_IDLE) continue;
        fe_pgq *q = TAILQ_FIRST(&pg.queue);
        TAILQ_REMOVE(&pg.queue, q, link);
        pg.queued--;
        conn_send(c, q);
    }
}

static void ping_done(const fe_pg_result *r, void *arg)
{
    pg.ping_in_flight = false;
}

/* Every second, an idle pool asks the server something trivial: a hung server is noticed
 * (pg_timeout_ms later) even when no request is asking it anything. */
static void ping_cb(evutil_socket_t fd, short what, void *arg)
{
    if (pg.ping_in_flight || !any_up() || !TAILQ_EMPTY(&pg.queue)) return;
    pg.ping_in_flight = true;
    fe_pg_query("SELECT 1", 0, NULL, ping_done, NULL);
}

static void deferred_fail_cb(evutil_socket_t fd, short what, void *arg)
{
    fe_pgq *q;
    while ((q = TAILQ_FIRST(&pg.failed))) {
        TAILQ_REMOVE(&pg.failed, q, link);
        q_finish(q, FE_PG_UNAVAILABLE, NULL, NULL);
    }
}

void fe_pg_query(const char *sql, int nparams, const char *const *values, fe_pg_cb cb, void *arg)
{
    fe_pgq *q = calloc(1, sizeof *q);
    if (q) {
        q->sql = sql;
        q->nparams = nparams;
        q->cb = cb;
        q->arg = arg;
        q->values = calloc((size_t)(nparams ? nparams : 1), sizeof(char *));
        if (!q->values) {
            free(q);
            q = NULL;
        }
    }
    if (!q) {
        fe_pg_result r = {.status = FE_PG_UNAVAILABLE};
        cb(&r, arg); /* out of memory: nothing else we can do */
        return;
    }
    for (int i = 0; i < nparams; i++)
        if (values[i]) q->values[i] = strdup(values[i]);
    if (pg.shutting_down || !any_usable() || pg.queued >= FE_PG_MAX_QUEUE) {
        /* Answer at once (on the next loop turn) rather than queue behind a dead server; a
         * connection being established is worth waiting for (its deadline bounds the wait). */
        TAILQ_INSERT_TAIL(&pg.failed, q, link);
        event_active(pg.dispatch_ev, EV_TIMEOUT, 0);
        return;
    }
    TAILQ_INSERT_TAIL(&pg.queue, q, link);
    pg.queued++;
    dispatch();
}

int fe_pg_check_dsn(const char *dsn, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
    if (!opts) {
        snprintf(err, errlen, "pg_dsn: %s", perr ? perr : "cannot parse");
        PQfreemem(perr);
        return -1;
    }
    const char *host = NULL, *hostaddr = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!strcmp(o->keyword, "host")) host = o->val;
        if (!strcmp(o->keyword, "hostaddr")) hostaddr = o->val;
    }
    int rc = 0;
    if (host && *host && !(hostaddr && *hostaddr)) {
        char *hosts = strdup(host), *save = NULL;
        for (char *h = strtok_r(hosts, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
            unsigned char buf[16];
            if (h[0] == '/' || h[0] == '@' || inet_pton(AF_INET, h, buf) == 1 ||
                inet_pton(AF_INET6, h, buf) == 1)
                continue;
            snprintf(err, errlen,
                     "pg_dsn: host '%s' needs a DNS lookup; give an IP address, a socket "
                     "directory or hostaddr= (the front end never resolves names on its event loop)",
                     h);
            rc = -1;
            break;
        }
        free(hosts);
    }
    PQconninfoFree(opts);
    return rc;
}

int fe_pg_init(struct event_base *base, const char *dsn, int pool_size, int timeout_ms)
{
    memset(&pg, 0, sizeof pg);
    pg.base = base;
    pg.dsn = strdup(dsn);
    pg.timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    pg.size = pool_size < 1 ? 1 : pool_size > FE_PG_MAX_POOL ? FE_PG_MAX_POOL : pool_size;
    TAILQ_INIT(&pg.queue);
    TAILQ_INIT(&pg.failed);
    pg.dispatch_ev = event_new(base, -1, 0, deferred_fail_cb, NULL);
    if (!pg.dsn || !pg.dispatch_ev) return -1;
    pg.ping_ev = event_new(base, -1, EV_PERSIST, ping_cb, NULL);
    struct timeval second = {1, 0};
    if (!pg.ping_ev || event_add(pg.ping_ev, &second) != 0) return -1;
    for (int i = 0; i < pg.size; i++) {
        fe_pgconn *c = &pg.conns[i];
        c->index = i;
        c->io_fd = -1;
        c->backoff_ms = FE_PG_BACKOFF_MIN_MS;
        c->timer = evtimer_new(base, timer_cb, c);
        if (!c->timer) return -1;
        conn_start(c);
    }
    return 0;
}

void fe_pg_shutdown(void)
{
    pg.shutting_down = true;
    if (pg.ping_ev) event_free(pg.ping_ev);
    pg.ping_ev = NULL;
    for (int i = 0; i < pg.size; i++) {
        fe_pgconn *c = &pg.conns[i];
        conn_down(c, "shutting down");
        if (c->timer) event_free(c->timer);
        c->timer = NULL;
    }
    fe_pgq *q;
    while ((q = TAILQ_FIRST(&pg.queue))) {
        TAILQ_REMOVE(&pg.queue, q, link);
        q_finish(q, FE_PG_UNAVAILABLE, NULL, NULL);
    }
    deferred_fail_cb(-1, 0, NULL);
    if (pg.dispatch_ev) event_free(pg.dispatch_ev);
    pg.dispatch_ev = NULL;
    free(pg.dsn);
    pg.dsn = NULL;
}

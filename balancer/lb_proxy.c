/* Proxy connections: one lb_conn owns a client and a backend bufferevent (le-proxy's data path):
 * bytes read on one side are moved to the other side's output; above high_water_bytes reading
 * pauses until the other side has written half of it (backpressure); an EOF is passed on as a
 * shutdown(SHUT_WR) once what preceded it is written (half-close); both sides are freed together. */
#include "lb_proxy.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "fv_log.h"
#include "lb_config.h"

#define LB_MAX_TRIES 8         /* backends tried for one client before giving up */
#define LB_HALF_OPEN_IDLE_S 60 /* a half-closed connection idle this long is closed */
#define LB_WRITE_STALL_S 60    /* a side that accepts none of our bytes this long is dropped */
#define LB_ACCEPT_PAUSE_MS 200 /* accept paused this long when out of descriptors */

/* A proxied connection's lifecycle. Every lb_conn is on s->conns except in LB_CONN_FREED. */
typedef enum lb_conn_state {
    LB_CONN_CONNECTING, /* client accepted (reading off); connecting to `backend`; a failure or
                           connect_timeout_ms moves on to another backend (up to LB_MAX_TRIES) */
    LB_CONN_OPEN,       /* both sides connected, bytes flow both ways */
    LB_CONN_HALF_OPEN,  /* one side sent EOF: what it sent is flushed to the other, whose write
                           side is then shut down; the other direction still flows */
    LB_CONN_CLOSING,    /* one side failed (reset, stall) or both sent EOF: what is left is
                           flushed to the surviving side, then both are freed */
    LB_CONN_FREED,      /* bufferevents freed; on s->closed until the reaper frees the struct */
} lb_conn_state;

/* One proxied connection. Owned by the server's list; owns both bufferevents (which own their
 * sockets: BEV_OPT_CLOSE_ON_FREE) and the connect timer. */
typedef struct lb_conn {
    lb_server *srv;
    lb_conn_state state;
    struct bufferevent *client, *server; /* NULL once freed */
    lb_backend *backend;                 /* borrowed; counted in backend->active while set */
    struct event *connect_timer;
    uint64_t tried[LB_MAX_TRIES];
    size_t ntried;
    bool eof[2];  /* [0] client sent EOF, [1] server sent EOF */
    bool shut[2]; /* [0] we shut the client's write side, [1] the server's */
    struct lb_conn *prev, *next;
} lb_conn;

static void conn_close(lb_conn *c);
static void try_connect(lb_conn *c);

static int side_of(lb_conn *c, struct bufferevent *bev)
{
    return bev == c->client ? 0 : 1;
}
static struct bufferevent *bev_of(lb_conn *c, int side)
{
    return side == 0 ? c->client : c->server;
}

static void set_nodelay(struct bufferevent *bev)
{
    int one = 1;
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd != -1) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void release_backend(lb_conn *c)
{
    lb_backend *b = c->backend;
    if (!b) return;
    c->backend = NULL;
    b->active--;
    lb_server_backend_released(c->srv, b);
}

static void reaper_cb(evutil_socket_t fd, short what, void *arg)
{
    lb_server *s = arg;
    while (s->closed) {
        lb_conn *c = s->closed;
        s->closed = c->next;
        free(c);
    }
}

/* Frees both sides now and defers the struct to the reaper (Redis' freeClientAsync). */
static void conn_close(lb_conn *c)
{
    lb_server *s = c->srv;
    if (c->state == LB_CONN_FREED) return;
    if (c->client) bufferevent_free(c->client);
    if (c->server) bufferevent_free(c->server);
    c->client = c->server = NULL;
    if (c->connect_timer) event_free(c->connect_timer);
    c->connect_timer = NULL;
    release_backend(c);
    c->state = LB_CONN_FREED;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = NULL;
    c->next = s->closed;
    s->closed = c;
    s->nconns--;
    event_active(s->reaper, EV_TIMEOUT, 1);
    if (s->stopping && s->nconns == 0) event_base_loopexit(s->base, NULL);
}

/* Both directions finished (or one side gone and the other flushed): free. */
static void maybe_finish(lb_conn *c)
{
    if (c->state == LB_CONN_FREED) return;
    for (int side = 0; side < 2; side++) {
        struct bufferevent *bev = bev_of(c, side);
        if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > 0) return;
    }
    if (c->state == LB_CONN_CLOSING || (c->eof[0] && c->eof[1])) conn_close(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    lb_conn *c = arg;
    int side = side_of(c, bev);
    struct bufferevent *other = bev_of(c, !side);
    struct evbuffer *in = bufferevent_get_input(bev);
    if (!other) { /* CLOSING: nobody to send to */
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    struct evbuffer *out = bufferevent_get_output(other);
    evbuffer_add_buffer(out, in);
    size_t hw = (size_t)lb_cfg.high_water_bytes;
    if (evbuffer_get_length(out) >= hw) {
        /* Backpressure: stop reading here until the other side has written half of it. */
        bufferevent_disable(bev, EV_READ);
        bufferevent_setwatermark(other, EV_WRITE, hw / 2, hw);
    }
}

/* bev's output fell to its low watermark. */
static void on_write(struct bufferevent *bev, void *arg)
{
    lb_conn *c = arg;
    int side = side_of(c, bev);
    struct bufferevent *feeder = bev_of(c, !side);
    if (feeder && !c->eof[!side] && c->state != LB_CONN_CLOSING &&
        !(bufferevent_get_enabled(feeder) & EV_READ)) {
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        bufferevent_enable(feeder, EV_READ);
    }
    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) return;
    if (c->eof[!side] && !c->shut[side]) {
        /* Everything the other side sent before its EOF is written: pass the EOF on. */
        shutdown(bufferevent_getfd(bev), SHUT_WR);
        c->shut[side] = true;
    }
    maybe_finish(c);
}

static void on_data_event(struct bufferevent *bev, short what, void *arg)
{
    lb_conn *c = arg;
    int side = side_of(c, bev);
    struct bufferevent *other = bev_of(c, !side);
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && c->state != LB_CONN_CLOSING) {
        /* A clean half-close: nothing more will come from this side. */
        on_read(bev, c); /* anything read together with the EOF */
        c->eof[side] = true;
        bufferevent_disable(bev, EV_READ);
        c->state = c->eof[!side] ? LB_CONN_CLOSING : LB_CONN_HALF_OPEN;
        if (other) {
            bufferevent_setwatermark(other, EV_WRITE, 0, 0);
            if (c->state == LB_CONN_HALF_OPEN) {
                struct timeval idle = {LB_HALF_OPEN_IDLE_S, 0}, stall = {LB_WRITE_STALL_S, 0};
                bufferevent_set_timeouts(other, &idle, &stall);
            }
            if (evbuffer_get_length(bufferevent_get_output(other)) == 0) on_write(other, c);
            else bufferevent_enable(other, EV_WRITE);
        } else {
            maybe_finish(c);
        }
        return;
    }
    /* An error, a timeout (idle half-open, stalled writes) or an EOF while closing: this side
     * is finished. Flush what is left to the other side, then free both. */
    if (what & BEV_EVENT_ERROR) {
        int err = EVUTIL_SOCKET_ERROR();
        fv_debug("connection %s side: %s", side == 0 ? "client" : "backend",
                 err ? strerror(err) : "error");
    }
    bufferevent_free(bev);
    if (side == 0) c->client = NULL;
    else c->server = NULL;
    c->state = LB_CONN_CLOSING;
    if (other && evbuffer_get_length(bufferevent_get_output(other)) > 0) {
        struct timeval stall = {LB_WRITE_STALL_S, 0};
        bufferevent_disable(other, EV_READ);
        bufferevent_setwatermark(other, EV_WRITE, 0, 0);
        bufferevent_set_timeouts(other, NULL, &stall);
        return; /* on_write frees when flushed; an error or the stall timeout frees too */
    }
    conn_close(c);
}

static void connected(lb_conn *c)
{
    event_del(c->connect_timer);
    c->state = LB_CONN_OPEN;
    c->backend->total++;
    set_nodelay(c->server);
    struct timeval stall = {LB_WRITE_STALL_S, 0};
    bufferevent_set_timeouts(c->client, NULL, &stall);
    bufferevent_set_timeouts(c->server, NULL, &stall);
    bufferevent_setcb(c->client, on_read, on_write, on_data_event, c);
    bufferevent_setcb(c->server, on_read, on_write, on_data_event, c);
    bufferevent_enable(c->client, EV_READ | EV_WRITE);
    bufferevent_enable(c->server, EV_READ | EV_WRITE);
}

/* The connect to c->backend failed (why): try the next backend, or give up on the client. */
static void connect_failed(lb_conn *c, const char *why)
{
    fv_warn("connect to backend %s failed: %s%s", c->backend->addr.text, why,
            c->ntried < LB_MAX_TRIES ? "; trying another backend" : "");
    bufferevent_free(c->server);
    c->server = NULL;
    event_del(c->connect_timer);
    release_backend(c);
    try_connect(c);
}

static void on_connect_event(struct bufferevent *bev, short what, void *arg)
{
    lb_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        connected(c);
        return;
    }
    int err = EVUTIL_SOCKET_ERROR();
    connect_failed(c, err ? strerror(err) : "connection error");
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    connect_failed(arg, "connect_timeout_ms passed");
}

static void try_connect(lb_conn *c)
{
    lb_server *s = c->srv;
    for (;;) {
        lb_backend *b = c->ntried < LB_MAX_TRIES ? lb_pool_pick(&s->pool, c->tried, c->ntried) : NULL;
        if (!b) {
            s->connect_failures++;
            fv_warn("no backend could take a client after %zu attempt(s): closing it", c->ntried);
            conn_close(c);
            return;
        }
        if (c->ntried > 0) s->connect_retries++;
        c->tried[c->ntried++] = b->id;
        c->backend = b;
        b->active++;
        int fd = socket(b->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        c->server = fd == -1 ? NULL : bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!c->server) {
            fv_error("cannot open a socket to backend %s: %s", b->addr.text, strerror(errno));
            if (fd != -1) close(fd);
            release_backend(c);
            s->connect_failures++;
            conn_close(c);
            return;
        }
        bufferevent_setcb(c->server, NULL, NULL, on_connect_event, c);
        if (bufferevent_socket_connect(c->server, (struct sockaddr *)&b->addr.ss, (int)b->addr.len) ==
            -1) {
            /* refused at once (e.g. no route): the event callback may not run, try the next */
            fv_warn("connect to backend %s failed at once; trying another backend", b->addr.text);
            bufferevent_free(c->server);
            c->server = NULL;
            release_backend(c);
            continue;
        }
        struct timeval tv = {lb_cfg.connect_timeout_ms / 1000,
                             (lb_cfg.connect_timeout_ms % 1000) * 1000};
        evtimer_add(c->connect_timer, &tv);
        return;
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    lb_server *s = arg;
    if (s->stopping) {
        close(fd);
        return;
    }
    lb_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->srv = s;
    c->state = LB_CONN_CONNECTING;
    c->client = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->connect_timer = evtimer_new(s->base, on_connect_timeout, c);
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    s->conns_total++;
    if (!c->client || !c->connect_timer) {
        if (!c->client) close(fd);
        fv_error("out of memory accepting a connection");
        conn_close(c);
        return;
    }
    set_nodelay(c->client);
    /* The client is not read until a backend is connected: its first bytes (the TLS ClientHello)
     * wait in the kernel, so a retry on another backend is invisible to it. */
    bufferevent_setcb(c->client, NULL, NULL, on_data_event, c);
    try_connect(c);
}

static void on_listen_retry(evutil_socket_t fd, short what, void *arg)
{
    lb_server *s = arg;
    if (s->listener && !s->stopping) evconnlistener_enable(s->listener);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    lb_server *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    fv_error("accept: %s; pausing accepts for %d ms", strerror(err), LB_ACCEPT_PAUSE_MS);
    evconnlistener_disable(l);
    struct timeval tv = {0, LB_ACCEPT_PAUSE_MS * 1000};
    evtimer_add(s->listen_retry, &tv);
}

bool lb_proxy_listen(lb_server *s)
{
    const char *errpos = "lb_addr_from_ip";
    if (!lb_addr_from_ip(lb_cfg.proxy_addr, lb_cfg.proxy_port, &s->listen)) {
        errno = EINVAL;
        goto failed;
    }
    int fd = lb_addr_listen(&s->listen, 4096, &errpos);
    if (fd == -1) goto failed;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* inherited by accepted sockets */
    errpos = "evconnlistener_new";
    s->listener = evconnlistener_new(s->base, on_accept, s,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (!s->listener) {
        close(fd);
        goto failed;
    }
    evconnlistener_set_error_cb(s->listener, on_accept_error);
    s->listen_retry = evtimer_new(s->base, on_listen_retry, s);
    s->reaper = event_new(s->base, -1, 0, reaper_cb, s);
    if (!s->listen_retry || !s->reaper) goto failed;
    return true;
failed:
    fv_error("cannot listen on %s:%d: %s: %s", lb_cfg.proxy_addr, lb_cfg.proxy_port, errpos,
             strerror(errno));
    return false;
}

void lb_proxy_stop_accepting(lb_server *s)
{
    if (s->listener) evconnlistener_free(s->listener);
    s->listener = NULL;
}

void lb_proxy_close_all(lb_server *s)
{
    while (s->conns) conn_close(s->conns);
}

void lb_proxy_free(lb_server *s)
{
    lb_proxy_stop_accepting(s);
    lb_proxy_close_all(s);
    if (s->reaper) {
        reaper_cb(-1, 0, s);
        event_free(s->reaper);
    }
    if (s->listen_retry) event_free(s->listen_retry);
    s->reaper = s->listen_retry = NULL;
}

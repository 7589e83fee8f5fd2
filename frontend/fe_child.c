/* A front-end child: TLS, HTTP, PostgreSQL and Redis on one libevent loop; drains on SIGTERM. */
#include "fe_child.h"

#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "fe_auth.h"
#include "fe_openrosa_auth.h"
#include "fe_revoke.h"
#include "fe_config.h"
#include "fe_conn.h"
#include "fe_depcache.h"
#include "fe_handlers.h"
#include "fe_http.h"
#include "fe_metrics.h"
#include "fe_metrics_http.h"
#include "fe_pg.h"
#include "fe_queue.h"
#include "fe_ratelimit.h"
#include "fe_redis.h"
#include "fe_reply.h"
#include "fe_throttle.h"
#include "fe_unverified.h"
#include "fe_tls.h"
#include "fe_workpool.h"
#include "fv_log.h"
#include "fv_settings.h"

static struct {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound; /* NULL once draining */
    SSL_CTX *ssl_ctx;                  /* new connections use this; SSL objects hold a ref */
    struct event *sig_term, *sig_int, *sig_hup, *drain_tick, *drain_deadline;
    int flush_ticks; /* drain ticks spent waiting for replies to be written out */
} ch;

/* Descriptors a child needs besides client connections and its PostgreSQL pool: stdio, the
 * listener, epoll, signals, Redis, the spool, the work pool's pipes, with room to spare. */
#define FE_CHILD_FD_RESERVE 64

#define FE_FLUSH_GRACE_TICKS 50 /* 1 s of 20 ms ticks for answered replies to reach their sockets */

/* Leaves the loop once every request was answered and every reply written out: a reply still in
 * its TLS buffer when the process exits would be lost (the client sees the connection close). */
static void drain_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    if (fe_http_inflight > 0) return;
    if (fe_http_unflushed <= 0 || ++ch.flush_ticks > FE_FLUSH_GRACE_TICKS)
        event_base_loopexit(ch.base, NULL);
}

static void drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    fv_warn("drain deadline reached with %d requests in flight", fe_http_inflight);
    event_base_loopexit(ch.base, NULL);
}

/* SIGTERM: stop accepting, let in-flight requests finish, then leave the loop. */
static void term_cb(evutil_socket_t sig, short what, void *arg)
{
    if (!ch.bound) return;
    fv_info("draining: %d requests in flight", fe_http_inflight);
    fe_conn_set_listener(NULL); /* freed with the bound socket */
    evhttp_del_accept_socket(ch.http, ch.bound);
    ch.bound = NULL;
    fe_http_draining = true;
    struct timeval tick = {0, 20000}, deadline = {fe_cfg.shutdown_timeout_s, 0};
    ch.drain_tick = event_new(ch.base, -1, EV_PERSIST, drain_tick_cb, NULL);
    ch.drain_deadline = evtimer_new(ch.base, drain_deadline_cb, NULL);
    event_add(ch.drain_tick, &tick);
    event_add(ch.drain_deadline, &deadline);
}

/* SIGHUP: reload the certificate and key; a bad pair keeps the old one. */
static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
    char err[512];
    SSL_CTX *ctx = fe_tls_server_ctx(fe_cfg.tls_cert, fe_cfg.tls_key, fe_cfg.tls_ocsp_response, err,
                                     sizeof err);
    if (!ctx) {
        fv_error("certificate reload failed, keeping the old one: %s", err);
        return;
    }
    SSL_CTX_free(ch.ssl_ctx);
    ch.ssl_ctx = ctx;
    fv_info("certificate reloaded");
}

int fe_child_run(int index, int listen_fd)
{
    int rc = 1;
    const char *errpos = "";
    char err[512] = "";
    /* Die with the master: a child never outlives its supervisor. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    fe_metrics_set_slot(index);
    errpos = "request id prefix";
    if (!fe_reqid_seed()) goto failed;

    errpos = "event_base_new";
    ch.base = event_base_new();
    if (!ch.base) goto failed;
    errpos = "tls";
    ch.ssl_ctx = fe_tls_server_ctx(fe_cfg.tls_cert, fe_cfg.tls_key, fe_cfg.tls_ocsp_response, err,
                                   sizeof err);
    if (!ch.ssl_ctx) goto failed;
    errpos = "evhttp_new";
    ch.http = evhttp_new(ch.base);
    if (!ch.http) goto failed;
    /* Every connection: TLS under fe_conn's framing filter, which enforces the deadlines, caps
     * and framing rules and owns every error answer (fe_conn.c). */
    errpos = "connection limits";
    if (fe_conn_init(ch.base, fe_cfg.pg_pool_size + FE_CHILD_FD_RESERVE) != 0) goto failed;
    evhttp_set_bevcb(ch.http, fe_conn_make_bev, &ch.ssl_ctx);
    evhttp_set_gencb(ch.http, fe_http_dispatch, NULL);
    /* Backstops above fe_conn's own limits, which refuse first with JSON answers. */
    evhttp_set_max_body_size(ch.http, (ev_ssize_t)(fe_cfg.max_body_bytes > fe_cfg.openrosa_max_body_bytes
                                                       ? fe_cfg.max_body_bytes
                                                       : fe_cfg.openrosa_max_body_bytes) +
                                          1);
    evhttp_set_flags(ch.http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_max_headers_size(ch.http, (ev_ssize_t)fe_cfg.max_header_bytes + 1024);
    evhttp_set_timeout(ch.http, fe_cfg.keepalive_timeout_s);
    evhttp_set_allowed_methods(ch.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS);
    errpos = "evhttp_accept_socket_with_handle";
    ch.bound = evhttp_accept_socket_with_handle(ch.http, listen_fd);
    if (!ch.bound) goto failed;
    fe_conn_set_listener(evhttp_bound_socket_get_listener(ch.bound));
    errpos = "metrics_listen";
    if (!fe_metrics_http_start(ch.base)) goto failed;
    errpos = "postgresql pool";
    if (fe_pg_init(ch.base, fv_common.pg_dsn, fe_cfg.pg_pool_size, fe_cfg.pg_timeout_ms) != 0)
        goto failed;
    errpos = "redis";
    if (fe_redis_init(ch.base, fv_common.redis_host, fv_common.redis_port, fv_common.redis_user,
                      fv_common.redis_password, fe_cfg.redis_timeout_ms) != 0)
        goto failed;
    errpos = "spool";
    if (fe_queue_init(ch.base, index, err, sizeof err) != 0) goto failed;
    errpos = "caches";
    if (fe_auth_init() != 0 || fe_openrosa_auth_init(ch.base) != 0 || fe_depcache_init() != 0)
        goto failed;
    errpos = "revocations";
    if (fe_revoke_init(ch.base, fe_cfg.revocation_poll_ms) != 0) goto failed;
    errpos = "identity";
    /* sign-ups keep one thread at least: at most password_threads - 1 are reserved for logins */
    int reserved = fe_cfg.password_reserved_threads < fe_cfg.password_threads
                       ? fe_cfg.password_reserved_threads
                       : fe_cfg.password_threads - 1;
    if (fe_workpool_init(ch.base, fe_cfg.password_threads, reserved, fe_cfg.password_queue_auth,
                         fe_cfg.password_queue_signup) != 0 ||
        fe_throttle_init(ch.base) != 0)
        goto failed;
    ch.sig_term = evsignal_new(ch.base, SIGTERM, term_cb, NULL);
    ch.sig_int = evsignal_new(ch.base, SIGINT, term_cb, NULL);
    ch.sig_hup = evsignal_new(ch.base, SIGHUP, hup_cb, NULL);
    errpos = "evsignal_new";
    if (!ch.sig_term || !ch.sig_int || !ch.sig_hup) goto failed;
    event_add(ch.sig_term, NULL);
    event_add(ch.sig_int, NULL);
    event_add(ch.sig_hup, NULL);

    fv_info("child %d serving", index);
    event_base_dispatch(ch.base);
    rc = 0;
    goto cleanup;

failed:
    fv_error("child %d: %s failed%s%s", index, errpos, err[0] ? ": " : "", err);
cleanup:
    /* Close Redis and PostgreSQL first: their pending callbacks answer their requests while
     * evhttp still exists; then evhttp closes the connections. The work pool goes first: the
     * completions it delivers may still query PostgreSQL (answered 503 by its shutdown). */
    fe_workpool_shutdown();
    fe_redis_shutdown();
    fe_queue_shutdown();
    fe_pg_shutdown();
    fe_conn_shutdown();
    if (ch.http) evhttp_free(ch.http);
    fe_metrics_http_free();
    fe_revoke_shutdown();
    fe_ratelimit_shutdown();
    fe_depcache_shutdown();
    fe_auth_shutdown();
    fe_openrosa_auth_shutdown();
    fe_throttle_shutdown();
    fe_unverified_shutdown();
    if (ch.sig_term) event_free(ch.sig_term);
    if (ch.sig_int) event_free(ch.sig_int);
    if (ch.sig_hup) event_free(ch.sig_hup);
    if (ch.drain_tick) event_free(ch.drain_tick);
    if (ch.drain_deadline) event_free(ch.drain_deadline);
    if (ch.ssl_ctx) SSL_CTX_free(ch.ssl_ctx);
    if (ch.base) event_base_free(ch.base);
    return rc;
}

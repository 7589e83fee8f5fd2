/* The balancer process's one context: event base, backend pool, listeners, counters; and the
 * operations every module shares (add, drain and release backends, reload the list). */
#ifndef LB_SERVER_H
#define LB_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

#include "lb_addr.h"
#include "lb_backend.h"

struct event_base;
struct event;
struct evconnlistener;
struct evhttp;
struct lb_conn;
struct lb_spawner;

/* One per process, owned by main(); every module borrows it. */
typedef struct lb_server {
    struct event_base *base;
    lb_pool pool;
    SSL_CTX *check_ctx;              /* TLS client context of the health checks */
    lb_addr listen;                  /* proxy_addr:proxy_port */
    struct evconnlistener *listener; /* NULL once stopping */
    struct event *listen_retry;      /* re-enables accepting after EMFILE */
    struct evhttp *admin;
    struct event *reaper;   /* frees closed connections at the end of the iteration */
    struct lb_conn *conns;  /* open connections, doubly linked */
    struct lb_conn *closed; /* closed ones waiting for the reaper */
    long nconns;
    struct lb_spawner *spawner;
    const char *config_path; /* borrowed from argv */
    bool stopping;           /* SIGTERM: no new connections, exit when none is left */
    struct event *drain_timer;
    struct event *signals[5];
    /* counters for /metrics */
    unsigned long long conns_total, connect_retries, connect_failures, spawns_total, spawn_failures;
} lb_server;

/* Adds a backend (LB_CHECKING) and starts its checks, first_delay_ms from now. NULL with a
 * reason in err when it is already there, max_backends is reached, or out of memory. */
lb_backend *lb_server_add_backend(lb_server *s, const lb_addr *a, lb_source src, int first_delay_ms,
                                  char *err, size_t errlen);
/* Starts draining b: out of rotation, checks stopped, freed when its last connection ends. */
void lb_server_drain_backend(lb_server *s, lb_backend *b, const char *reason);
/* A connection to b has ended (b->active already decremented): frees a drained b when idle. */
void lb_server_backend_released(lb_server *s, lb_backend *b);
/* A check completed (state may have changed): lets the spawner look again. */
void lb_server_checked(lb_server *s, bool changed);
/* SIGHUP: reads the config file again; applies the backend list (and log_level) when the whole
 * file is valid, keeps everything as it was otherwise. */
void lb_server_reload(lb_server *s);
/* The backends that are not draining. */
size_t lb_server_live_backends(const lb_server *s);
/* Milliseconds on the monotonic clock. */
long long lb_now_ms(void);

#endif

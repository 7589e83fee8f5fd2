/* The backend pool: each front end we forward to, its health state machine (HAProxy-style
 * rise/fall counter), and the least-connections choice. Pure bookkeeping: no I/O here. */
#ifndef LB_BACKEND_H
#define LB_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lb_addr.h"

/* A backend's lifecycle. In rotation: LB_UP and LB_DEGRADED. */
typedef enum lb_state {
    LB_CHECKING = 0, /* just added (config, runtime or spawned): not in rotation until `rise`
                        good checks in a row; `fall` failures in a row make it LB_DOWN */
    LB_UP,           /* in service, last check said "ready": in rotation */
    LB_DEGRADED,     /* in service, last check said "degraded" (e.g. PostgreSQL down): still
                        accepts submissions, so it stays in rotation */
    LB_DOWN,         /* failed `fall` checks: out of rotation, still checked; `rise` good checks
                        bring it back */
    LB_DRAINING,     /* removed (admin DELETE or gone from the config at reload): no new
                        connections, no checks; freed when its last connection ends */
} lb_state;
#define LB_NSTATES 5

/* Where a backend came from; reload only touches LB_SRC_CONFIG ones. */
typedef enum lb_source { LB_SRC_CONFIG = 0, LB_SRC_RUNTIME, LB_SRC_SPAWNED } lb_source;

/* What one health check concluded. */
typedef enum lb_result { LB_RES_READY = 0, LB_RES_DEGRADED, LB_RES_FAILED } lb_result;
#define LB_NRESULTS 3

/* The last completed check, as /status shows it. */
typedef struct lb_last_check {
    bool done;       /* false until the first check completes */
    double at;       /* wall clock, seconds since the epoch */
    bool ok;         /* ready or degraded */
    int http_status; /* 0 when no HTTP answer (refused, timeout, TLS failure) */
    double latency_ms;
    char error[160]; /* "" when ok */
} lb_last_check;

struct lb_check;

/* One backend. Owned by its lb_pool; connections borrow it (the pool frees a draining backend
 * only when `active` is back to 0, see lb_pool_reap). */
typedef struct lb_backend {
    uint64_t id; /* unique per process, never reused (connections remember tried ids) */
    lb_addr addr;
    lb_state state;
    lb_source source;
    int health;               /* 0 .. rise+fall-1; in service when >= rise (HAProxy's counter) */
    int fails;                /* consecutive failures while LB_CHECKING */
    long active;              /* connections open or connecting to it now */
    unsigned long long total; /* connections established, ever */
    unsigned long long checks[LB_NRESULTS];
    lb_last_check last;
    pid_t spawned_pid; /* the spawned front end's pid when the command printed it */
    /* A spawned front end whose process exited is restarted on the same address (lb_spawn.c):
     * restart_due_ms > 0 while a restart waits out its backoff (monotonic ms). */
    long long restart_due_ms;
    long long started_ms;   /* when its current process was spawned (monotonic ms) */
    int quick_exits;        /* exits in a row, each within LB_SPAWN_STABLE_MS of its start */
    unsigned restarts;      /* restarts, ever (/status) */
    struct lb_check *check; /* the health checker's state (lb_check.c owns it) */
} lb_backend;

typedef struct lb_pool {
    lb_backend **v; /* owned, in insertion order */
    size_t n, cap;
    uint64_t next_id;
    size_t rr; /* rotates the start of the tie-break among equally loaded backends */
} lb_pool;

const char *lb_state_name(lb_state s);
const char *lb_source_name(lb_source s);
const char *lb_result_name(lb_result r);

/* Adds a backend in LB_CHECKING; the pool owns it. NULL when out of memory. */
lb_backend *lb_pool_add(lb_pool *p, const lb_addr *addr, lb_source source);
/* The backend with this canonical address that is not draining, or NULL. Borrows. */
lb_backend *lb_pool_find(const lb_pool *p, const char *addr_text);
/* Takes b out of the pool and frees it; b->check must already be released. */
void lb_pool_remove(lb_pool *p, lb_backend *b);
/* Frees every backend (their checks must already be released) and the array. */
void lb_pool_free(lb_pool *p);

bool lb_backend_in_rotation(const lb_backend *b);
/* Counts backends in the given state (LB_NSTATES: every one not draining). */
size_t lb_pool_count(const lb_pool *p, int state);

/* Least connections among the backends in rotation, skipping the ids in skip[0..nskip-1]; ties
 * are broken round-robin. When no backend is in rotation at all, it falls back to the ones
 * still LB_CHECKING (a client would be refused otherwise). NULL when there is none. */
lb_backend *lb_pool_pick(lb_pool *p, const uint64_t *skip, size_t nskip);

/* Feeds one check result into the rise/fall state machine. Returns true when the state changed
 * (the transition is logged: "backend ADDR state OLD -> NEW (reason)"). Draining backends are
 * left alone. */
bool lb_backend_record(lb_backend *b, lb_result r, int rise, int fall, const char *reason);
/* Moves b to state s, logging the transition when it is one. */
void lb_backend_set_state(lb_backend *b, lb_state s, const char *reason);

#endif

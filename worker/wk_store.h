/* The worker's side of PostgreSQL: a batch of submissions written in one transaction. */
#ifndef WK_STORE_H
#define WK_STORE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "wk_batch.h"

typedef enum wk_store_rc {
    WK_STORE_OK,       /* committed (a retry of a stored row counts as written: ids are keys;
                        * a row whose id another response holds is kept in refused_submissions) */
    WK_STORE_REJECTED, /* PostgreSQL refused the data (SQLSTATE class 22, 23, or 54 for the
                        * INSERT); rolled back */
    WK_STORE_RETRY,    /* anything else (connection lost, timeout, deadlock): try again later */
} wk_store_rc;

typedef struct wk_store {
    PGconn *conn;           /* owned; NULL while disconnected */
    const char *dsn;        /* borrowed from the configuration */
    int connect_timeout_ms; /* a connection attempt gives up after this long */
    int statement_timeout_ms;
    /* While a statement is outstanding, on_wait(wait_arg) runs every wait_tick_ms: the loop
     * keeps its claim on the batch fresh, so a slow or hung PostgreSQL never lets another
     * worker take the batch over (and count a delivery). */
    void (*on_wait)(void *wait_arg);
    void *wait_arg;
    int wait_tick_ms;
} wk_store;

/* Connects (dropping any previous connection) without blocking for more than wait_tick_ms at a
 * time: on_wait runs between the slices, as while a statement waits, so a worker connecting to a
 * hung server keeps its claim on the batch. Then sets the session's statement_timeout and
 * synchronous_commit = on. Returns 0, or -1 with a reason in err. */
int wk_store_connect(wk_store *st, char *err, size_t errlen);
void wk_store_close(wk_store *st);

/* Runs one statement and returns its result (the caller PQclears it; NULL when it could not be
 * sent), waiting for the server in slices with on_wait between them. */
PGresult *wk_store_exec(wk_store *st, const char *sql, int nparams, const char *const *params);
/* As wk_store_exec, with PQexecParams' lengths and formats (1: binary, e.g. a bytea's bytes). */
PGresult *wk_store_exec_bin(wk_store *st, const char *sql, int nparams, const char *const *params,
                            const int *lengths, const int *formats);

/* Inserts the entries of b in state NEW (or only b->entries[only] when only >= 0) with one
 * statement in one transaction; when some id was taken, a second statement keeps those that are
 * no retry of the stored row as refused (migration 007). On OK they are committed; on REJECTED
 * and RETRY nothing is, and err says why. On RETRY over a broken connection the connection is dropped (conn == NULL). */
wk_store_rc wk_store_write(wk_store *st, const wk_batch *b, long only, char *err, size_t errlen);

#endif

/* Blocking libpq helpers for the programs that may block (fv-worker, fvctl), never an event loop. */
#ifndef FV_PGUTIL_H
#define FV_PGUTIL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* Connects with dsn; connect_timeout and application_name are defaults the dsn may override.
 * When statement_timeout_ms > 0, sets it for the session. Returns a connection the caller
 * closes with PQfinish, or NULL with a one-line reason in err. */
PGconn *fv_pgutil_connect(const char *dsn, const char *appname, int connect_timeout_s,
                          int statement_timeout_ms, char *err, size_t errlen);

/* Formats the error of res (or of conn when res is NULL) as "SQLSTATE: first line" into err. */
void fv_pgutil_error(PGconn *conn, const PGresult *res, char *err, size_t errlen);

/* Runs sql (no parameters; may hold several statements) and expects success. Returns 0, or -1
 * with the error in err. */
int fv_pgutil_exec(PGconn *conn, const char *sql, char *err, size_t errlen);

/* True when the SQLSTATE of res says the data was refused (classes 22 data exception and 23
 * integrity constraint violation): retrying the same statement will fail the same way. */
bool fv_pgutil_is_data_error(const PGresult *res);

#endif

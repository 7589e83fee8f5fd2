/* Non-blocking PostgreSQL for a front-end child: a small pool of libpq connections driven by
 * libevent, a queue of parameterised queries, a deadline per query. Nothing here blocks. */
#ifndef FE_PG_H
#define FE_PG_H

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdbool.h>

typedef enum {
    FE_PG_OK,          /* res holds the result (PGRES_TUPLES_OK or PGRES_COMMAND_OK) */
    FE_PG_UNAVAILABLE, /* no connection could take the query: answer 503 */
    FE_PG_TIMEOUT,     /* no answer within pg_timeout_ms: answer 503 */
    FE_PG_SQL,         /* the server refused the statement; sqlstate says why */
} fe_pg_status;

typedef struct fe_pg_result {
    fe_pg_status status;
    PGresult *res;    /* borrowed: valid during the callback only; NULL unless FE_PG_OK */
    char sqlstate[6]; /* for FE_PG_SQL, e.g. "23505" */
} fe_pg_result;

typedef void (*fe_pg_cb)(const fe_pg_result *r, void *arg);

/* Checks that dsn names no host that would need a DNS lookup (IP addresses, socket directories
 * or hostaddr= only). Returns 0, or -1 with the reason in err. */
int fe_pg_check_dsn(const char *dsn, char *err, size_t errlen);
/* Starts pool_size connections on base (borrowed). Returns 0 or -1. */
int fe_pg_init(struct event_base *base, const char *dsn, int pool_size, int timeout_ms);
/* Fails queued queries with FE_PG_UNAVAILABLE and closes every connection. */
void fe_pg_shutdown(void);
/* True when at least one connection is established. */
bool fe_pg_up(void);
/* Queues a query. sql is borrowed and must outlive the query (use string literals); values are
 * copied (NULL entries are SQL NULL). cb is called exactly once, never before this returns. */
void fe_pg_query(const char *sql, int nparams, const char *const *values, fe_pg_cb cb, void *arg);

#endif

/* Blocking libpq helpers: connect with timeouts, uniform error text. */
#include "fv_pgutil.h"

#include <stdio.h>
#include <string.h>

static void first_line(char *s)
{
    char *nl = strchr(s, '\n');
    if (nl) *nl = '\0';
}

void fv_pgutil_error(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* The primary message without libpq's "ERROR:  " prefix and its detail lines. */
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL && res) msg = PQresultErrorMessage(res);
    if (msg == NULL || *msg == '\0') msg = conn ? PQerrorMessage(conn) : "no connection";
    if (*msg == '\0') msg = "unknown error";
    snprintf(err, errlen, "%s%s%s", state ? state : "", state ? ": " : "", msg);
    first_line(err);
}

PGconn *fv_pgutil_connect(const char *dsn, const char *appname, int connect_timeout_s,
                          int statement_timeout_ms, char *err, size_t errlen)
{
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", connect_timeout_s > 0 ? connect_timeout_s : 5);
    /* Keywords are applied in order, so the dsn (expanded from dbname, last) overrides these. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {timeout, appname, dsn, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL) {
        snprintf(err, errlen, "PQconnectdbParams: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        fv_pgutil_error(conn, NULL, err, errlen);
        goto failed;
    }
    if (statement_timeout_ms > 0) {
        char ms[32];
        snprintf(ms, sizeof ms, "%d", statement_timeout_ms);
        const char *params[] = {ms};
        PGresult *res = PQexecParams(conn, "SELECT set_config('statement_timeout', $1, false)", 1, NULL,
                                     params, NULL, NULL, 0);
        bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        if (!ok) fv_pgutil_error(conn, res, err, errlen);
        PQclear(res);
        if (!ok) goto failed;
    }
    return conn;
failed:
    PQfinish(conn);
    return NULL;
}

int fv_pgutil_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fv_pgutil_error(conn, res, err, errlen);
        rc = -1;
    }
    PQclear(res);
    return rc;
}

bool fv_pgutil_is_data_error(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
}

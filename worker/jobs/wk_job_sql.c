/* The step of a kind whose work is one SQL function fn(job id, items) returning 'more', 'done' or
 * 'failed:<why>' (migration 013: fv_job_revert_step, fv_job_purge_step). */
#include <stdio.h>
#include <string.h>

#include "fv_pgutil.h"
#include "wk_job_kinds.h"

wk_job_rc wk_job_sql_step(wk_store *st, const char *sql, const wk_job *job, int items, char *err,
                          size_t errlen)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", items);
    const char *params[] = {job->id, lim};
    PGresult *res = wk_store_exec(st, sql, 2, params);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        fv_pgutil_error(st->conn, res, err, errlen);
        PQclear(res);
        return WK_JOB_RETRY;
    }
    const char *out = PQgetvalue(res, 0, 0);
    wk_job_rc rc = WK_JOB_MORE;
    if (strcmp(out, "done") == 0) {
        rc = WK_JOB_DONE;
    } else if (strncmp(out, "failed:", 7) == 0) {
        snprintf(err, errlen, "%s", out + 7);
        rc = WK_JOB_FAILED;
    }
    PQclear(res);
    return rc;
}

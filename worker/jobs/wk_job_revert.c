/* Kind 'revert' (POST /v1/orgs/{org}/revert): puts back every response and site of the org a
 * user changed in a window. The work of a step is fv_job_revert_step (migration 013), which
 * handles at most `items` objects and moves the job's cursor in the same transaction. */
#include <stdio.h>
#include <string.h>

#include "fv_pgutil.h"
#include "wk_job_kinds.h"

wk_job_rc wk_job_revert_step(wk_store *st, const wk_job *job, int items, char *err, size_t errlen)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", items);
    const char *params[] = {job->id, lim};
    PGresult *res = wk_store_exec(st, "SELECT fv_job_revert_step($1, $2::int)", 2, params);
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

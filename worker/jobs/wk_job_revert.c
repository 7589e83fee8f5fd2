/* Kind 'revert' (POST /v1/orgs/{org}/revert): puts back every response and site of the org a
 * user changed in a window. The work of a step is fv_job_revert_step (migration 013), which
 * handles at most `items` objects and moves the job's cursor in the same transaction. */
#include "wk_job_kinds.h"

wk_job_rc wk_job_revert_step(wk_store *st, const wk_job *job, int items, char *err, size_t errlen)
{
    return wk_job_sql_step(st, "SELECT fv_job_revert_step($1, $2::int)", job, items, err, errlen);
}

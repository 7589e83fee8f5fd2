/* Kind 'purge' (POST /v1/surveys/{id}/purge): removes questions' answers from every response of a
 * survey and from its history. The work of a step is fv_job_purge_step (migration 013), which opens
 * the audited history purge (fv_history_purge_begin) in the step's transaction, handles at most
 * `items` responses and moves the job's cursor in the same transaction. */
#include "wk_job_kinds.h"

wk_job_rc wk_job_purge_step(wk_store *st, const wk_job *job, int items, char *err, size_t errlen)
{
    return wk_job_sql_step(st, "SELECT fv_job_purge_step($1, $2::int)", job, items, err, errlen);
}

/* The steps of the job kinds (one file each: worker/jobs/wk_job_<kind>.c). */
#ifndef WK_JOB_KINDS_H
#define WK_JOB_KINDS_H

#include "wk_jobs.h"

/* wk_job_sql.c: runs sql (a string literal; $1 the job id, $2 items) returning 'more', 'done' or
 * 'failed:<why>', as a kind's step. */
wk_job_rc wk_job_sql_step(wk_store *st, const char *sql, const wk_job *job, int items, char *err,
                          size_t errlen);

/* wk_job_purge.c */
wk_job_rc wk_job_purge_step(wk_store *st, const wk_job *job, int items, char *err, size_t errlen);

/* wk_job_revert.c */
wk_job_rc wk_job_revert_step(wk_store *st, const wk_job *job, int items, char *err, size_t errlen);
/* The organisation export (wk_job_export.c). */
wk_job_rc wk_job_export_step(wk_store *st, const wk_job *job, int items, char *err, size_t errlen);
/* Deletes the bytes of expired and failed exports, every export_sweep_ms, when st is connected
 * and idle (between two batches). */
void wk_job_export_sweep(wk_store *st);

#endif

/* The steps of the job kinds (one file each: worker/jobs/wk_job_<kind>.c). */
#ifndef WK_JOB_KINDS_H
#define WK_JOB_KINDS_H

#include "wk_jobs.h"

/* The organisation export (wk_job_export.c). */
wk_job_rc wk_job_export_step(wk_store *st, const wk_job *job, int items, char *err, size_t errlen);
/* Deletes the bytes of expired and failed exports, every export_sweep_ms, when st is connected
 * and idle (between two batches). */
void wk_job_export_sweep(wk_store *st);

#endif

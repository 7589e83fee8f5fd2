/* The steps of the job kinds (one file each: worker/jobs/wk_job_<kind>.c). */
#ifndef WK_JOB_KINDS_H
#define WK_JOB_KINDS_H

#include "wk_jobs.h"

/* wk_job_revert.c */
wk_job_rc wk_job_revert_step(wk_store *st, const wk_job *job, int items, char *err, size_t errlen);

#endif

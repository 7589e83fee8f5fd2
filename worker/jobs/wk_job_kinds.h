/* The steps of the job kinds (one file each: worker/jobs/wk_job_<kind>.c). */
#ifndef WK_JOB_KINDS_H
#define WK_JOB_KINDS_H

#include "wk_jobs.h"

#endif

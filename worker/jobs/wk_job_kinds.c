/* The registry of job kinds (wk_jobs.h): one row per kind, each kind in its own file
 * worker/jobs/wk_job_<kind>.c declaring its step in wk_job_kinds.h. */
#include "wk_job_kinds.h"

const wk_job_kind wk_job_kinds[] = {
    {"revert", wk_job_revert_step},
    {"purge", wk_job_purge_step},
    {"export", wk_job_export_step},
    {NULL, NULL},
};

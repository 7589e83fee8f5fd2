/* The worker's jobs (migration 013): long work run beside the submission stream in bounded steps.
 * wk_jobs_tick, called by the loop between two batches, claims a job when it holds none (FOR
 * UPDATE SKIP LOCKED: queued, or running with an expired lease, i.e. its worker died) and runs one
 * step of the job it holds. A step is one transaction: it renews the lease only if this worker's
 * claim is still the current one (the fence: lease_owner and attempts), runs the kind's step
 * (bounded work whose effects are written with the job's checkpoint, progress and result in the
 * same transaction), and commits; the last step ends the job with its audit entry
 * (fv_job_finish). So a job runs to the end exactly once however often its workers crash. */
#ifndef WK_JOBS_H
#define WK_JOBS_H

#include <stdbool.h>
#include <stddef.h>

#include "wk_store.h"

typedef enum wk_job_rc {
    WK_JOB_MORE,   /* the step committed work (or none was due); call again */
    WK_JOB_DONE,   /* the job's work is all done: it ends 'done' in this step's transaction */
    WK_JOB_FAILED, /* the job cannot be done (err says why): the step is rolled back and the job
                    * ends 'failed' with err in its errors */
    WK_JOB_RETRY,  /* PostgreSQL failed (connection, timeout, deadlock): the step is rolled back
                    * and tried again later */
} wk_job_rc;

/* The job being run, as its step sees it (all strings owned by wk_jobs). */
typedef struct wk_job {
    char id[40], org_id[40], kind[40], created_by[40];
    char *params;     /* jsonb text */
    char *checkpoint; /* jsonb text, as the last committed step left it */
    int attempts;     /* this claim's number */
} wk_job;

/* A kind of job: one file each (worker/jobs/wk_job_<kind>.c) and one row in wk_job_kinds. */
typedef struct wk_job_kind {
    const char *name;
    /* Runs one bounded step of job (at most `items` objects) on st's open transaction, which it
     * must leave open (no COMMIT/ROLLBACK): its effects and the job row's new checkpoint, progress
     * and result (UPDATE jobs ... WHERE id = job->id) are written there. On WK_JOB_FAILED and
     * WK_JOB_RETRY err says why. */
    wk_job_rc (*step)(wk_store *st, const wk_job *job, int items, char *err, size_t errlen);
} wk_job_kind;

/* The registry (worker/jobs/wk_job_kinds.c), ended by a row with name NULL. */
extern const wk_job_kind wk_job_kinds[];

typedef struct wk_jobs {
    wk_store *store;   /* borrowed: the loop's PostgreSQL connection, used between batches */
    const char *owner; /* borrowed: this worker's consumer name, the lease owner */
    int poll_ms, lease_ms, step_items, max_attempts;
    bool held;              /* a job is claimed */
    wk_job job;             /* ... this one */
    long long next_poll_ms; /* no claim before this (monotonic ms) */
    unsigned failures;      /* consecutive failed steps of the held job */
    unsigned long long steps, finished;
} wk_jobs;

/* Sets up J (from wk_cfg) on the borrowed store and owner. */
void wk_jobs_init(wk_jobs *J, wk_store *store, const char *owner);
/* Claims a job when none is held and one is due, or runs one step of the held one. Returns true
 * while a job is held (the loop then does not block long on Redis). Never blocks on anything but
 * PostgreSQL, for at most one bounded step. */
bool wk_jobs_tick(wk_jobs *J);
/* On a graceful stop: gives the held job back (queued, the claim not counted) so another worker
 * takes it at once. */
void wk_jobs_release(wk_jobs *J);
/* Frees the held job's strings (its lease runs out and another worker takes it over). */
void wk_jobs_free(wk_jobs *J);

#endif

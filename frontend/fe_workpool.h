/* A small thread pool for CPU-heavy work a front-end child must keep off its event loop
 * (PBKDF2 password hashing, zxcvbn), handing the results back to libevent through an eventfd.
 *
 * Ownership:
 *   - A job (the caller's struct) belongs to the pool from fe_work_submit until the pool frees it
 *     with the job_free given at submission (which must wipe any password in it). run() works on
 *     the job alone, on a pool thread: it must not touch the loop, a request or shared state.
 *   - owner (e.g. the fe_req) is borrowed. done(job, ran, owner) is called on the loop thread
 *     once the job ran (ran = true), or when the pool shuts down before running it (ran = false);
 *     then the job is freed. done must not keep pointers into the job.
 *   - If the owner goes away first (a request answered or freed while its job runs), it calls
 *     fe_work_detach(handle): done is then never called and the job is just freed on completion.
 *     The handle stays valid until done is called or the job is freed after a detach; an owner
 *     keeps it in its state and clears it at the start of done.
 *
 * Two classes of jobs, each with its own bounded queue: FE_WORK_AUTH (logins, signed-in users
 * proving their password: fe_work_submit) and FE_WORK_BULK (anonymous sign-ups:
 * fe_work_submit_bulk). The first `reserved` threads take only FE_WORK_AUTH jobs; the others take
 * FE_WORK_AUTH first, then FE_WORK_BULK. So no number of sign-ups can take the capacity logins
 * need, and a full queue of one class never refuses the other's jobs. */
#ifndef FE_WORKPOOL_H
#define FE_WORKPOOL_H

#include <event2/event.h>
#include <stdbool.h>

typedef struct fe_work fe_work;
typedef void (*fe_work_run_fn)(void *job);
typedef void (*fe_work_done_fn)(void *job, bool ran, void *owner);

typedef enum { FE_WORK_AUTH, FE_WORK_BULK, FE_WORK_NCLASSES } fe_work_class;

/* Starts nthreads threads (reserved of them for FE_WORK_AUTH only; reserved < nthreads) and the
 * completion event on base (borrowed); max_auth and max_bulk bound the jobs of each class waiting
 * for a thread. Returns 0 or -1. */
int fe_workpool_init(struct event_base *base, int nthreads, int reserved, int max_auth, int max_bulk);
/* Stops the threads (each finishes its current job), then calls done for every job that has not
 * been delivered (ran = false for those never run). Call before evhttp is freed. */
void fe_workpool_shutdown(void);
/* Queues job. Returns its handle, or NULL when the queue is full, the pool is not running or out
 * of memory: then nothing was taken (the job is still the caller's). */
fe_work *fe_work_submit(void *job, fe_work_run_fn run, fe_work_done_fn done, void (*job_free)(void *),
                        void *owner);
/* The same for an FE_WORK_BULK job (anonymous sign-up). */
fe_work *fe_work_submit_bulk(void *job, fe_work_run_fn run, fe_work_done_fn done,
                             void (*job_free)(void *), void *owner);
/* The owner is gone: the job's result is discarded (see above). */
void fe_work_detach(fe_work *w);
/* Jobs queued or running (for tests and metrics). */
int fe_workpool_busy(void);
/* Jobs of class c waiting for a thread (loop thread; for the Retry-After of a full queue). */
int fe_workpool_queued(fe_work_class c);

#endif

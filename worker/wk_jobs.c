/* The worker's jobs: claim, lease, fenced steps, takeover after a crash (wk_jobs.h). */
#include "wk_jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fv_log.h"
#include "fv_pgutil.h"
#include "wk_config.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* $1 owner, $2 lease (ms): the oldest job that is queued or whose lease expired (its worker died
 * or lost PostgreSQL) becomes this worker's, one claim more. SKIP LOCKED: a job another worker is
 * stepping (its row locked by the step's fence) is never waited for. */
static const char claim_sql[] =
    "WITH c AS (SELECT id FROM jobs"
    "           WHERE state = 'queued' OR (state = 'running' AND lease_expires < now())"
    "           ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " UPDATE jobs j SET state = 'running', lease_owner = $1,"
    "        lease_expires = now() + $2::int * interval '1 millisecond',"
    "        started_at = COALESCE(j.started_at, now()), attempts = j.attempts + 1"
    " FROM c WHERE j.id = c.id"
    " RETURNING j.id, j.org_id, j.kind, j.params::text, j.checkpoint::text, j.created_by, j.attempts";

/* The fence, first statement of every step: $1 job, $2 owner, $3 attempts (this claim), $4 lease
 * (ms). Renews the lease and locks the row for the step, or finds no row when the job is no longer
 * this claim's (taken over after the lease expired, or ended). */
static const char fence_sql[] =
    "UPDATE jobs SET lease_expires = now() + $4::int * interval '1 millisecond'"
    " WHERE id = $1 AND lease_owner = $2 AND attempts = $3::int AND state = 'running'"
    " RETURNING checkpoint::text";

static const char finish_sql[] = "SELECT fv_job_finish($1, $2, $3)";

/* A graceful stop gives the job back at once (the claim is not counted). */
static const char release_sql[] =
    "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires = NULL,"
    "                attempts = attempts - 1"
    " WHERE id = $1 AND lease_owner = $2 AND attempts = $3::int AND state = 'running'";

void wk_jobs_init(wk_jobs *J, wk_store *store, const char *owner)
{
    memset(J, 0, sizeof *J);
    J->store = store;
    J->owner = owner;
    J->poll_ms = wk_cfg.jobs_poll_ms;
    J->lease_ms = wk_cfg.jobs_lease_ms;
    J->step_items = wk_cfg.jobs_step_items;
    J->max_attempts = wk_cfg.jobs_max_attempts;
}

static void drop_job(wk_jobs *J)
{
    free(J->job.params);
    free(J->job.checkpoint);
    memset(&J->job, 0, sizeof J->job);
    J->held = false;
    J->failures = 0;
}

void wk_jobs_free(wk_jobs *J)
{
    drop_job(J);
}

/* Runs sql; returns its result when its status is want, else NULL with why (the result freed). */
static PGresult *run(wk_store *st, const char *sql, int n, const char *const *params,
                     ExecStatusType want, char *why, size_t whylen)
{
    PGresult *res = wk_store_exec(st, sql, n, params);
    if (res && PQresultStatus(res) == want) return res;
    fv_pgutil_error(st->conn, res, why, whylen);
    PQclear(res);
    return NULL;
}

static bool run_cmd(wk_store *st, const char *sql, char *why, size_t whylen)
{
    PGresult *res = run(st, sql, 0, NULL, PGRES_COMMAND_OK, why, whylen);
    PQclear(res);
    return res != NULL;
}

/* Rolls back an open transaction; a connection that cannot is dropped (the loop reconnects). */
static void rollback(wk_store *st)
{
    if (st->conn == NULL) return;
    if (PQstatus(st->conn) != CONNECTION_OK) {
        wk_store_close(st);
        return;
    }
    if (PQtransactionStatus(st->conn) != PQTRANS_IDLE) {
        char why[256];
        if (fv_pgutil_exec(st->conn, "ROLLBACK", why, sizeof why) != 0) wk_store_close(st);
    }
}

static bool connected(wk_jobs *J)
{
    if (J->store->conn && PQstatus(J->store->conn) == CONNECTION_OK) return true;
    char err[512];
    if (wk_store_connect(J->store, err, sizeof err) != 0) {
        fv_debug("jobs: postgresql unavailable: %s", err);
        return false;
    }
    return true;
}

static void copy_field(char *dst, size_t n, const PGresult *res, int col)
{
    snprintf(dst, n, "%s", PQgetvalue(res, 0, col));
}

/* Claims a job; true when one is held now. */
static bool claim(wk_jobs *J)
{
    char lease[16], why[512];
    snprintf(lease, sizeof lease, "%d", J->lease_ms);
    const char *params[] = {J->owner, lease};
    PGresult *res = run(J->store, claim_sql, 2, params, PGRES_TUPLES_OK, why, sizeof why);
    if (res == NULL) {
        fv_warn("jobs: claiming a job failed: %s", why);
        rollback(J->store);
        return false;
    }
    if (PQntuples(res) == 1) {
        wk_job *j = &J->job;
        copy_field(j->id, sizeof j->id, res, 0);
        copy_field(j->org_id, sizeof j->org_id, res, 1);
        copy_field(j->kind, sizeof j->kind, res, 2);
        copy_field(j->created_by, sizeof j->created_by, res, 5);
        j->params = strdup(PQgetvalue(res, 0, 3));
        j->checkpoint = strdup(PQgetvalue(res, 0, 4));
        j->attempts = atoi(PQgetvalue(res, 0, 6));
        J->held = true;
        J->failures = 0;
        if (j->params == NULL || j->checkpoint == NULL) {
            fv_error("jobs: out of memory claiming job %s", j->id);
            drop_job(J); /* its lease runs out; it is claimed again */
        } else {
            fv_info("jobs: claimed job %s (%s, claim %d)", j->id, j->kind, j->attempts);
        }
    }
    PQclear(res);
    return J->held;
}

/* BEGIN and the fence. 1: the job is still ours (transaction open); 0: it is not (nothing open);
 * -1: PostgreSQL failed (why). */
static int begin_fenced(wk_jobs *J, char *why, size_t whylen)
{
    if (!run_cmd(J->store, "BEGIN", why, whylen)) return -1;
    char attempts[16], lease[16];
    snprintf(attempts, sizeof attempts, "%d", J->job.attempts);
    snprintf(lease, sizeof lease, "%d", J->lease_ms);
    const char *params[] = {J->job.id, J->owner, attempts, lease};
    PGresult *res = run(J->store, fence_sql, 4, params, PGRES_TUPLES_OK, why, whylen);
    if (res == NULL) return -1;
    int rc = PQntuples(res) == 1;
    if (rc) {
        char *cp = strdup(PQgetvalue(res, 0, 0));
        if (cp == NULL) {
            snprintf(why, whylen, "out of memory");
            rc = -1;
        } else {
            free(J->job.checkpoint);
            J->job.checkpoint = cp;
        }
    }
    PQclear(res);
    if (rc == 0) rollback(J->store);
    return rc;
}

static bool finish(wk_jobs *J, const char *state, const char *error, char *why, size_t whylen)
{
    const char *params[] = {J->job.id, state, error};
    PGresult *res = run(J->store, finish_sql, 3, params, PGRES_TUPLES_OK, why, whylen);
    PQclear(res);
    return res != NULL;
}

static const wk_job_kind *find_kind(const char *name)
{
    for (const wk_job_kind *k = wk_job_kinds; k->name; k++)
        if (strcmp(k->name, name) == 0) return k;
    return NULL;
}

/* Ends the held job 'failed' with error, in a fenced transaction of its own. */
static void fail_job(wk_jobs *J, const char *error)
{
    char why[512];
    int f = begin_fenced(J, why, sizeof why);
    if (f == 1 && finish(J, "failed", error, why, sizeof why) &&
        run_cmd(J->store, "COMMIT", why, sizeof why)) {
        fv_warn("jobs: job %s (%s) failed: %s", J->job.id, J->job.kind, error);
        J->finished++;
        drop_job(J);
        return;
    }
    if (f == 0) {
        fv_info("jobs: job %s is no longer ours", J->job.id);
        drop_job(J);
        return;
    }
    fv_warn("jobs: ending job %s as failed did not commit (retried): %s", J->job.id, why);
    rollback(J->store);
}

/* One step of the held job. */
static void step(wk_jobs *J)
{
    char why[512] = "", err[512] = "";
    wk_job *j = &J->job;
    if (j->attempts > J->max_attempts) {
        snprintf(err, sizeof err,
                 "claimed %d times without finishing (its workers stopped while running it)",
                 j->attempts);
        fail_job(J, err);
        return;
    }
    const wk_job_kind *kind = find_kind(j->kind);
    if (kind == NULL) {
        snprintf(err, sizeof err, "unknown job kind '%s'", j->kind);
        fail_job(J, err);
        return;
    }
    int f = begin_fenced(J, why, sizeof why);
    if (f == 0) {
        fv_info("jobs: job %s was taken over or ended elsewhere; dropped", j->id);
        drop_job(J);
        return;
    }
    wk_job_rc rc = WK_JOB_RETRY;
    if (f == 1) {
        rc = kind->step(J->store, j, J->step_items, err, sizeof err);
        if (rc == WK_JOB_DONE && !finish(J, "done", NULL, err, sizeof err)) rc = WK_JOB_RETRY;
        /* A COMMIT lost with its connection leaves the outcome unknown: the next step's fence and
         * the checkpoint say where the job is. */
        if ((rc == WK_JOB_MORE || rc == WK_JOB_DONE) && !run_cmd(J->store, "COMMIT", err, sizeof err))
            rc = WK_JOB_RETRY;
    } else {
        snprintf(err, sizeof err, "%s", why);
    }
    J->steps++;
    switch (rc) {
    case WK_JOB_MORE: J->failures = 0; return;
    case WK_JOB_DONE:
        fv_info("jobs: job %s (%s) done", j->id, j->kind);
        J->finished++;
        drop_job(J);
        return;
    case WK_JOB_FAILED:
        rollback(J->store);
        fail_job(J, err);
        return;
    case WK_JOB_RETRY:
        rollback(J->store);
        if (++J->failures >= (unsigned)J->max_attempts) {
            char msg[600];
            snprintf(msg, sizeof msg, "a step failed %u times: %s", J->failures, err);
            fail_job(J, msg);
            return;
        }
        fv_warn("jobs: a step of job %s failed (attempt %u of %d), retried: %s", j->id, J->failures,
                J->max_attempts, err);
        J->next_poll_ms = now_ms() + J->poll_ms;
        return;
    }
}

bool wk_jobs_tick(wk_jobs *J)
{
    long long now = now_ms();
    if (now < J->next_poll_ms) return J->held;
    if (!connected(J)) {
        J->next_poll_ms = now + J->poll_ms;
        return J->held;
    }
    if (!J->held) {
        if (!claim(J)) {
            J->next_poll_ms = now + J->poll_ms;
            return false;
        }
    }
    step(J);
    return J->held;
}

void wk_jobs_release(wk_jobs *J)
{
    if (!J->held) return;
    char attempts[16], why[512];
    snprintf(attempts, sizeof attempts, "%d", J->job.attempts);
    const char *params[] = {J->job.id, J->owner, attempts};
    if (J->store->conn && PQstatus(J->store->conn) == CONNECTION_OK) {
        PGresult *res = run(J->store, release_sql, 3, params, PGRES_COMMAND_OK, why, sizeof why);
        if (res) fv_info("jobs: job %s given back for another worker", J->job.id);
        else fv_warn("jobs: giving job %s back failed (its lease runs out): %s", J->job.id, why);
        PQclear(res);
    }
    drop_job(J);
}

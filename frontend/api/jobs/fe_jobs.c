/* Jobs (migration 013): GET /v1/jobs/{id} shows a job's state, progress counts, conflicts and
 * errors to the org's admins and to its creator while a member of the org (fv_job_read_verdict);
 * everybody else gets 404. The jobs are created by the endpoints of their kinds (revert, purge,
 * export) and run by the workers (worker/wk_jobs.c). */
#include "fe_handlers.h"
#include "fe_verdict.h"

/* $1 job, $2 caller, $3 mfa. */
static const char sql_get[] =
    "SELECT fv_job_read_verdict($2::uuid, j, $3::boolean), fv_job_json(j)::text "
    "FROM (SELECT 1) one LEFT JOIN jobs j ON j.id = $1::uuid";

void fe_jobs_get(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "job")) return;
    const char *params[] = {r->param[0], r->user->id, fe_verdict_mfa(r)};
    fe_verdict_run(r, sql_get, 3, params, 200, "job", NULL);
}

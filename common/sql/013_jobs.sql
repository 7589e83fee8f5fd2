-- 013: jobs (issue 11). Long work the workers run beside the submission stream: revert of a
-- compromised account, purge of questions, the organisation export (migration 015). A job is one
-- row; the API creates it 'queued'; a worker claims it (FOR UPDATE SKIP LOCKED) and holds a lease
-- on it (lease_owner, lease_expires) which every step renews; a job whose lease expired (its
-- worker died) is claimed again by another worker. Every step runs in one transaction that first
-- renews the lease only if this worker's claim is still the current one (lease_owner and attempts:
-- the fence), does a bounded piece of the kind's work, and records how far it got (checkpoint,
-- progress, result) in the job row, so a step's effects and its checkpoint commit together or not
-- at all: a job taken over after a crash goes on from the last committed step and does nothing
-- twice (docs/security.md, "Jobs"). The worker side is worker/wk_jobs.c.

CREATE TABLE jobs (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES orgs(id),
    kind          text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,31}$'),
    params        jsonb NOT NULL DEFAULT '{}',
    state         text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    -- counts shown by GET /v1/jobs/{id} (each kind names its own: total, done, conflicts, ...)
    progress      jsonb NOT NULL DEFAULT '{}',
    -- the kind's private cursor: where its next step starts
    checkpoint    jsonb NOT NULL DEFAULT '{}',
    -- {"conflicts": [...], "errors": [...]} (each list bounded by its kind; the counts are in progress)
    result        jsonb NOT NULL DEFAULT '{"conflicts": [], "errors": []}',
    created_by    uuid NOT NULL REFERENCES users(id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    lease_owner   text,
    lease_expires timestamptz,
    attempts      integer NOT NULL DEFAULT 0, -- claims so far (a takeover after a crash is one more)
    CHECK ((state IN ('done', 'failed')) = (finished_at IS NOT NULL))
);
-- The claim's scan: jobs waiting or running (a running one is claimable once its lease expired).
CREATE INDEX jobs_open ON jobs (created_at) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_org ON jobs (org_id, created_at);

-- GET /v1/jobs/{id}: the org's admins (with the TOTP session the org requires of its admins) and
-- the job's creator while a member of the org (migration 009: rights need current membership).
CREATE FUNCTION fv_job_read_verdict(u uuid, j jobs, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN j.id IS NULL OR u IS NULL THEN 'hidden'
                WHEN v.verdict = 'ok' THEN 'ok'
                WHEN j.created_by = u AND fv_is_org_member(u, j.org_id) THEN 'ok'
                WHEN v.verdict = 'totp_required' THEN 'totp_required'
                ELSE 'hidden' END
    FROM (SELECT fv_org_admin_verdict(u, j.org_id, mfa) AS verdict) v
$$;

CREATE FUNCTION fv_job_json(j jobs) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', j.id, 'org_id', j.org_id, 'kind', j.kind, 'state', j.state,
                              'params', j.params, 'progress', j.progress,
                              'conflicts', COALESCE(j.result->'conflicts', '[]'::jsonb),
                              'errors', COALESCE(j.result->'errors', '[]'::jsonb),
                              'created_by', j.created_by, 'created_at', fv_ts(j.created_at),
                              'started_at', fv_ts(j.started_at), 'finished_at', fv_ts(j.finished_at),
                              'attempts', j.attempts)
$$;

-- Ends job id (state done or failed) with its audit entry ('job.done' / 'job.failed', actor the
-- creator, the kind and the progress counts in detail); error (may be NULL) is appended to its
-- errors. Called by the worker in the transaction of the job's last step.
CREATE FUNCTION fv_job_finish(id uuid, final_state text, error text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    j jobs;
BEGIN
    UPDATE jobs x SET state = final_state, finished_at = now(), lease_owner = NULL, lease_expires = NULL,
                      result = CASE WHEN error IS NULL THEN x.result
                                    ELSE jsonb_set(x.result, '{errors}',
                                                   COALESCE(x.result->'errors', '[]'::jsonb)
                                                   || jsonb_build_array(jsonb_build_object('error', error))) END
    WHERE x.id = fv_job_finish.id AND x.state IN ('queued', 'running')
    RETURNING * INTO j;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO audit (actor, action, target_type, target_id, org_id, detail)
    VALUES (j.created_by, 'job.' || final_state, 'job', j.id::text, j.org_id,
            jsonb_build_object('kind', j.kind, 'progress', j.progress, 'attempts', j.attempts,
                               'errors', jsonb_array_length(COALESCE(j.result->'errors', '[]'::jsonb)))
            || CASE WHEN error IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('error', error) END);
END $$;

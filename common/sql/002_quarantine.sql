-- 002: the quarantine. A submission accepted while PostgreSQL was down and the front end could
-- not check the submitter's permission (marked unverified) is checked by the worker before it is
-- written; one it refuses (not an enumerator, unknown deployment, answers that fail the form)
-- lands here with the reason, and an audit entry says so. Never in responses.
CREATE TABLE quarantine (
    id             uuid PRIMARY KEY,          -- the submission id
    deployment_id  uuid NOT NULL,             -- as claimed: may name no deployment
    submitted_by   uuid NOT NULL,
    data           jsonb NOT NULL,
    location       jsonb,
    collected_at   timestamptz,
    received_at    timestamptz NOT NULL,
    reason         text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantine_submitter ON quarantine (submitted_by);

-- 007: a submission whose id is already taken. The submission id is the primary key of responses:
-- a retry of the same submission (same submitter, deployment and content) stays a no-op, but one
-- that reuses an id for something else (another submitter's, another deployment's, other answers)
-- is no longer dropped: the worker keeps it here, whole, with the reason, and the submitter can
-- ask what became of it (GET /v1/submissions/{id}, fv_submission_status_json). Neither side
-- learns anything of the other: the refused entry is shown to its submitter only (and to the
-- operator: fvctl refused), never to the owner of the existing response, and the status of the
-- refused submitter names no org, deployment or answer of the existing one.
CREATE TABLE refused_submissions (
    seq            bigserial PRIMARY KEY,
    id             uuid NOT NULL,             -- the submission id asked for (held by a response)
    deployment_id  uuid NOT NULL,             -- as claimed by the submission
    survey_id      uuid,                      -- NULL: not known (accepted unverified)
    survey_version integer,
    submitted_by   uuid NOT NULL,
    data           jsonb NOT NULL,
    location       jsonb,
    collected_at   timestamptz,
    received_at    timestamptz NOT NULL,
    reason         text NOT NULL CHECK (reason IN ('id_conflict')),
    fingerprint    text NOT NULL,             -- fv_submission_fingerprint: a retry is kept once
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX refused_submissions_once
    ON refused_submissions (id, submitted_by, deployment_id, fingerprint);
CREATE INDEX refused_submissions_submitter ON refused_submissions (submitted_by, id);
CREATE INDEX refused_submissions_created ON refused_submissions (created_at);

-- The content of a submission as one text: the same answers, location and collection time give
-- the same fingerprint (jsonb's text is canonical: key order and spacing do not count).
CREATE OR REPLACE FUNCTION fv_submission_fingerprint(data jsonb, loc jsonb, coll timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT md5(data::text || '|' || COALESCE(loc::text, '') || '|'
               || COALESCE(extract(epoch FROM coll)::text, ''))
$$;

-- The rule: a submission (submitter sub, deployment dep, answers data, location loc, collected
-- at coll) carrying the id of stored response x is a retry of it, an idempotent success, when it
-- has x's submitter, deployment and content as first submitted (x's 'submit' event: an edit or a
-- resubmission since does not make the client's retry a conflict). Anything else is an
-- id_conflict, refused.
CREATE OR REPLACE FUNCTION fv_submission_is_retry(x responses, sub uuid, dep uuid, data jsonb,
                                                  loc jsonb, coll timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT x.submitted_by = sub AND x.deployment_id = dep
       AND x.collected_at IS NOT DISTINCT FROM coll
       AND EXISTS (SELECT 1 FROM response_events e
                   WHERE e.response_id = x.id AND e.action = 'submit'
                     AND e.data = fv_submission_is_retry.data
                     AND e.location IS NOT DISTINCT FROM loc)
$$;

-- What became of submission sid of user u, as GET /v1/submissions/{id} answers it; NULL when u
-- has no refused, stored or quarantined submission with that id (the front end then asks the
-- queue's claim, else answers 404). Only u's own rows count: whether another user's response
-- holds sid is never said. A refused entry is answered first (it always follows the stored
-- response it conflicts with: if u holds that response too, GET /v1/responses/{id} shows it).
-- A quarantined one gives no reason: the worker's reason may say whether a deployment the
-- submitter cannot see exists.
CREATE OR REPLACE FUNCTION fv_submission_status_json(u uuid, sid uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT jsonb_build_object(
                    'id', f.id, 'status', 'refused', 'reason', f.reason,
                    'refused_at', fv_ts(f.created_at),
                    'entry', jsonb_build_object('deployment_id', f.deployment_id, 'data', f.data,
                                                'location', f.location,
                                                'collected_at', fv_ts(f.collected_at),
                                                'received_at', fv_ts(f.received_at)))
         FROM refused_submissions f WHERE f.id = sid AND f.submitted_by = u
         ORDER BY f.seq DESC LIMIT 1),
        (SELECT jsonb_build_object('id', r.id, 'status', 'stored', 'stored_at', fv_ts(r.created_at))
         FROM responses r WHERE r.id = sid AND r.submitted_by = u),
        (SELECT jsonb_build_object('id', q.id, 'status', 'quarantined',
                                   'quarantined_at', fv_ts(q.created_at))
         FROM quarantine q WHERE q.id = sid AND q.submitted_by = u))
$$;

-- The same rule for an id already in the quarantine (an unverified submission refused by the
-- worker's re-check): a submission that is no retry of quarantine row q is refused too, not
-- dropped.
CREATE OR REPLACE FUNCTION fv_quarantine_is_retry(q quarantine, sub uuid, dep uuid, data jsonb,
                                                  loc jsonb, coll timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT q.submitted_by = sub AND q.deployment_id = dep AND q.data = fv_quarantine_is_retry.data
       AND q.location IS NOT DISTINCT FROM loc AND q.collected_at IS NOT DISTINCT FROM coll
$$;

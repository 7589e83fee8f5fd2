-- 010: what an org admin manages after the fact: a deployment closed and reopened
-- (closed_at), a survey archived and unarchived (archived_at), the revocation kinds that make
-- every front end drop what it cached about a deployment or a survey at once, and the verdicts
-- of the management endpoints (docs/api/surveys-and-responses.md, "Managing").

-- A closed deployment refuses submissions (409 deployment_closed); its data stays readable and
-- its responses reviewable. NULL: open.
ALTER TABLE deployments ADD COLUMN closed_at timestamptz;
-- An archived survey is left out of GET /v1/surveys (unless ?archived=true) and refuses new
-- definitions, new deployments and submissions (409 survey_archived). NULL: not archived.
ALTER TABLE surveys ADD COLUMN archived_at timestamptz;
-- Counts the changes of PATCH /v1/deployments/{id}: a change whose statement began before
-- another committed sees an older revision than the row it locked, and answers 409 conflict
-- (else it would replace roles it cannot see).
ALTER TABLE deployments ADD COLUMN revision integer NOT NULL DEFAULT 0;

-- Two more kinds of revocation (fe_revoke.h):
--   deployment  subject = deployment id: its principals changed, or it was closed or reopened
--   survey      subject = survey id: it was archived or unarchived, or a grant was removed
-- Every cached answer about the subject older than the row is no longer used (fe_depcache).
-- The kinds allowed so far (003's, and any an earlier migration added) are kept: the check is
-- rebuilt from the one in force plus these two.
DO $$
DECLARE
    kinds text[];
BEGIN
    SELECT array_agg(DISTINCT m[1]) INTO kinds
    FROM pg_constraint c, regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g') m
    WHERE c.conrelid = 'revocations'::regclass AND c.conname = 'revocations_kind_check';
    kinds := ARRAY(SELECT DISTINCT k FROM unnest(COALESCE(kinds, '{}') ||
                   ARRAY['session', 'user_sessions', 'api_key', 'permissions', 'deployment', 'survey']) k
                   ORDER BY 1);
    ALTER TABLE revocations DROP CONSTRAINT IF EXISTS revocations_kind_check;
    EXECUTE format('ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check '
                   'CHECK (kind = ANY (%L::text[]))', kinds);
END $$;

-- The worker's re-check of verified entries (wk_verify_revoked) asks, once per batch, for each
-- deployment's `deployment` revocations newer than the front end's check.
CREATE INDEX revocations_deployment_subject ON revocations (subject, id) WHERE kind = 'deployment';

-- A deployment as the API returns it, with its roles and whether it is closed.
CREATE OR REPLACE FUNCTION fv_deployment_json(d deployments) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', d.id, 'survey_id', d.survey_id, 'name', d.name,
                              'branch_id', d.branch_id, 'team_id', d.team_id,
                              'approval_stages', d.approval_stages, 'created_at', fv_ts(d.created_at),
                              'closed', d.closed_at IS NOT NULL, 'closed_at', fv_ts(d.closed_at),
                              'roles', fv_deployment_roles_json(d.id))
$$;

-- A survey as the API returns it to u, with whether it is archived.
CREATE OR REPLACE FUNCTION fv_survey_json(s surveys, u uuid, with_definition boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', s.id, 'org_id', s.org_id, 'name', s.name, 'version', s.current_version,
                              'created_at', fv_ts(s.created_at), 'updated_at', fv_ts(s.updated_at),
                              'role', fv_survey_role(u, s.id),
                              'archived', s.archived_at IS NOT NULL, 'archived_at', fv_ts(s.archived_at))
        || CASE WHEN with_definition THEN jsonb_build_object('definition', (
                SELECT v.definition FROM survey_versions v
                WHERE v.survey_id = s.id AND v.version = s.current_version))
           ELSE '{}'::jsonb END
$$;

-- Changing deployment d (PATCH /v1/deployments/{id}): its managers (fv_is_deployment_manager,
-- org-admin power counted as the TOTP policy allows). 'hidden' when u may not see it,
-- 'totp_required' when u would manage it with a TOTP session, 'forbidden' for other viewers.
CREATE OR REPLACE FUNCTION fv_deployment_manage_verdict(u uuid, d uuid, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT fv_can_see_deployment(u, d) THEN 'hidden'
                WHEN fv_is_deployment_manager(u, d, mfa) THEN 'ok'
                WHEN fv_is_deployment_manager(u, d) THEN 'totp_required'
                ELSE 'forbidden' END
$$;

-- Reading survey s's grants (GET /v1/surveys/{id}/access): its admins (a read: org-admin power
-- counts without a TOTP session, as for every read). Viewers see the survey but not who else
-- may: 'forbidden'.
CREATE OR REPLACE FUNCTION fv_survey_grants_read_verdict(u uuid, s uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN fv_survey_read_verdict(u, s) <> 'ok' THEN 'hidden'
                WHEN COALESCE(fv_survey_role(u, s) = 'admin', false) THEN 'ok'
                ELSE 'forbidden' END
$$;

-- A survey grant as the API lists it.
CREATE OR REPLACE FUNCTION fv_survey_grant_json(g survey_grants) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('principal', jsonb_build_object('type', g.principal_type, 'id', g.principal_id),
                              'role', g.role, 'granted_by', g.granted_by, 'created_at', fv_ts(g.created_at))
$$;

-- Branch b and every branch below it (at most 64 levels): the branches whose members
-- GET /v1/orgs/{org}/branches/{branch}/members?below=true lists.
CREATE OR REPLACE FUNCTION fv_branch_and_descendants(b uuid) RETURNS SETOF uuid
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE t(id, depth) AS (
        SELECT b, 0
        UNION ALL
        SELECT x.id, t.depth + 1 FROM branches x JOIN t ON x.parent_id = t.id WHERE t.depth < 64)
    SELECT id FROM t
$$;

-- Roles as the API shows them (fv_deployment_roles_json) from rows [{role, stage, ptype, pid}]
-- and a number of approval stages: what a change is about to store, before it is visible.
CREATE OR REPLACE FUNCTION fv_roles_json_of(rows jsonb, stages integer) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    WITH p AS (SELECT x.role, x.stage, jsonb_build_object('type', x.ptype, 'id', x.pid) AS j
               FROM jsonb_to_recordset(COALESCE(rows, '[]'::jsonb)) AS x(role text, stage int, ptype text, pid uuid))
    SELECT jsonb_build_object(
        'enumerators', COALESCE((SELECT jsonb_agg(j) FROM p WHERE role = 'enumerator'), '[]'),
        'viewers', COALESCE((SELECT jsonb_agg(j) FROM p WHERE role = 'viewer'), '[]'),
        'managers', COALESCE((SELECT jsonb_agg(j) FROM p WHERE role = 'manager'), '[]'),
        'approvers', COALESCE((
            SELECT jsonb_agg(COALESCE((SELECT jsonb_agg(j) FROM p WHERE role = 'approver' AND p.stage = g.n),
                                      '[]') ORDER BY g.n)
            FROM generate_series(1, stages) g(n)), '[]'))
$$;

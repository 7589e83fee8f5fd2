-- 004: access control on surveys, deployments and responses: survey grants, the response
-- lifecycle's events, and the SQL rule functions that every read, write and the worker's re-check
-- of unverified submissions share (DESIGN sections 2 and 4).
--
-- The rules, in words (the lead's access model):
--   * a principal {user|team|branch, id} includes the user; the team's members; the members of
--     the branch or of any branch above it (a member of a sub-branch or a sibling is not "in" it);
--   * survey admin: org admin of the survey's org, its creator, or included in an admin grant;
--     survey viewer: included in a viewer grant (admin wins);
--   * deployment manager: named as manager, survey admin, or membership role admin/manager on
--     the deployment's target branch (or one above it) or on its target team;
--   * reading a response: manager -> any status; approver of stage k -> pending at stage k and
--     final; viewer -> final; enumerator -> their own. Soft-deleted: nobody.

-- Who may see or administer a survey besides its creator and the org's admins. One role per
-- principal and survey: PUT /v1/surveys/{id}/access replaces it, role null deletes it.
CREATE TABLE survey_grants (
    survey_id      uuid NOT NULL REFERENCES surveys(id),
    principal_type text NOT NULL CHECK (principal_type IN ('user', 'team', 'branch')),
    principal_id   uuid NOT NULL,
    role           text NOT NULL CHECK (role IN ('admin', 'viewer')),
    granted_by     uuid NOT NULL REFERENCES users(id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (survey_id, principal_type, principal_id)
);
CREATE INDEX survey_grants_principal ON survey_grants (principal_id);

-- The response lifecycle:
--   pending  stage = k (1..approval_stages): waiting for the approvers of stage k
--   final    stage = 0: approved by every stage (or the deployment has none)
--   rejected stage = the stage that rejected it; rejection_message says why; the submitter may
--            resubmit it (back to pending at stage 1, or final without stages)
ALTER TABLE responses ADD COLUMN rejection_message text;

-- One row per change of a response, numbered by the response's version after the change.
-- data/location: the answers as they stand after submit, resubmit and edit (NULL otherwise).
CREATE TABLE response_events (
    id          bigserial PRIMARY KEY,
    response_id uuid NOT NULL REFERENCES responses(id),
    version     integer NOT NULL,
    action      text NOT NULL CHECK (action IN ('submit', 'approve', 'reject', 'resubmit', 'edit', 'delete')),
    stage       integer NOT NULL,          -- the stage acted on (0: none)
    status      text NOT NULL,             -- the status after the change
    actor       uuid NOT NULL REFERENCES users(id),
    override    boolean NOT NULL DEFAULT false, -- approved or rejected by a survey admin or manager
                                                -- who is not an approver of that stage
    message     text,
    data        jsonb,
    location    jsonb,
    at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (response_id, version)
);

-- ---- rule functions ----

-- True when principal {ptype, pid} includes user u.
CREATE FUNCTION fv_principal_includes(u uuid, ptype text, pid uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE ptype
        WHEN 'user' THEN pid = u
        WHEN 'team' THEN EXISTS (SELECT 1 FROM memberships m WHERE m.team_id = pid AND m.user_id = u)
        WHEN 'branch' THEN EXISTS (
            SELECT 1 FROM memberships m
            WHERE m.user_id = u AND m.branch_id IN (SELECT fv_branch_and_ancestors(pid)))
        ELSE false
    END
$$;

-- 'admin', 'viewer' or NULL. With mfa = false, admin power that comes only from being an admin
-- of an organisation that requires TOTP for its admins does not count (see fv_survey_admin_needs_totp).
CREATE FUNCTION fv_survey_role(u uuid, s uuid, mfa boolean DEFAULT true) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM surveys x JOIN orgs o ON o.id = x.org_id
                     WHERE x.id = s AND (x.created_by = u OR
                           ((mfa OR NOT o.require_admin_totp) AND fv_is_org_admin(u, x.org_id))))
          OR EXISTS (SELECT 1 FROM survey_grants g
                     WHERE g.survey_id = s AND g.role = 'admin'
                       AND fv_principal_includes(u, g.principal_type, g.principal_id))
            THEN 'admin'
        WHEN EXISTS (SELECT 1 FROM survey_grants g
                     WHERE g.survey_id = s AND g.role = 'viewer'
                       AND fv_principal_includes(u, g.principal_type, g.principal_id))
            THEN 'viewer'
    END
$$;

-- True when u would be survey admin of s through org-admin power but the org requires a TOTP
-- session for that and mfa is false: the action answers 403 totp_required.
CREATE FUNCTION fv_survey_admin_needs_totp(u uuid, s uuid, mfa boolean) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(fv_survey_role(u, s, true) = 'admin', false)
       AND NOT COALESCE(fv_survey_role(u, s, mfa) = 'admin', false)
$$;

-- True when u is named, directly or through a team or branch, in role `r` of deployment d
-- (any named role when r is NULL). The worker's re-check of unverified submissions calls this.
CREATE OR REPLACE FUNCTION fv_has_deployment_role(u uuid, d uuid, r text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM deployment_roles dr
        WHERE dr.deployment_id = d AND (r IS NULL OR dr.role = r)
          AND fv_principal_includes(u, dr.principal_type, dr.principal_id))
$$;

-- True when u manages deployment d: named manager, survey admin, or implicit manager (membership
-- role admin or manager on the target branch or a branch above it, or on the target team).
-- With mfa = false, the power of an org admin (admin on the root branch) does not count when the
-- org requires TOTP for its admins (changes answer 403 totp_required; reads pass mfa = true).
CREATE FUNCTION fv_is_deployment_manager(u uuid, d uuid, mfa boolean DEFAULT true) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM deployments x JOIN surveys s ON s.id = x.survey_id JOIN orgs o ON o.id = s.org_id
        WHERE x.id = d AND (
            fv_has_deployment_role(u, d, 'manager')
            OR EXISTS (SELECT 1 FROM memberships m
                       WHERE m.user_id = u AND m.role IN ('admin', 'manager')
                         AND ((x.branch_id IS NOT NULL
                               AND m.branch_id IN (SELECT fv_branch_and_ancestors(x.branch_id)))
                              OR (x.team_id IS NOT NULL AND m.team_id = x.team_id))
                         AND (mfa OR NOT o.require_admin_totp
                              OR NOT (m.role = 'admin' AND m.branch_id = o.root_branch_id)))
            OR COALESCE(fv_survey_role(u, x.survey_id, mfa) = 'admin', false)))
$$;

-- What u may do in a deployment, computed once per deployment (lists join it to every row).
CREATE TYPE fv_dep_access AS (
    manager         boolean,  -- fv_is_deployment_manager
    enumerator      boolean,
    viewer          boolean,
    approver_stages integer[] -- the stages u approves, ascending; empty when none
);

CREATE FUNCTION fv_deployment_access(u uuid, d uuid) RETURNS fv_dep_access
LANGUAGE sql STABLE AS $$
    SELECT ROW(fv_is_deployment_manager(u, d),
               fv_has_deployment_role(u, d, 'enumerator'),
               fv_has_deployment_role(u, d, 'viewer'),
               ARRAY(SELECT DISTINCT dr.stage FROM deployment_roles dr
                     WHERE dr.deployment_id = d AND dr.role = 'approver'
                       AND fv_principal_includes(u, dr.principal_type, dr.principal_id)
                     ORDER BY 1))::fv_dep_access
$$;

-- True when access a (of u) holds any role in the deployment.
CREATE FUNCTION fv_access_any(a fv_dep_access) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(a.manager OR a.enumerator OR a.viewer OR cardinality(a.approver_stages) > 0, false)
$$;

-- The reading rule for one response row, given the reader's access to its deployment.
CREATE FUNCTION fv_response_visible(a fv_dep_access, u uuid, submitted_by uuid, status text,
                                    stage integer, deleted_at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT deleted_at IS NULL AND COALESCE(
        a.manager
        OR (a.enumerator AND submitted_by = u)
        OR (status = 'final' AND (a.viewer OR cardinality(a.approver_stages) > 0))
        OR (status = 'pending' AND stage = ANY (a.approver_stages)), false)
$$;

-- True when u may read response resp (a soft-deleted one: never).
CREATE FUNCTION fv_can_read_response(u uuid, resp uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM responses x
        WHERE x.id = resp
          AND fv_response_visible(fv_deployment_access(u, x.deployment_id), u, x.submitted_by,
                                  x.status, x.stage, x.deleted_at))
$$;

-- True when u may see deployment d: survey admin or viewer, or any role in it.
CREATE FUNCTION fv_can_see_deployment(u uuid, d uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM deployments x
        WHERE x.id = d AND (fv_survey_role(u, x.survey_id) IS NOT NULL
                            OR fv_access_any(fv_deployment_access(u, d))))
$$;

-- True when u may see survey s (its design): survey admin or viewer, or any role in one of its
-- deployments (an enumerator needs the form).
CREATE FUNCTION fv_can_see_survey(u uuid, s uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT fv_survey_role(u, s) IS NOT NULL
        OR EXISTS (SELECT 1 FROM deployments d
                   WHERE d.survey_id = s AND fv_access_any(fv_deployment_access(u, d.id)))
$$;

-- The names of a definition's confidential questions: removed from the answers for everybody
-- but survey admins.
CREATE FUNCTION fv_confidential_names(definition jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(array_agg(q->>'name'), '{}')
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(definition->'questions') = 'array'
                                   THEN definition->'questions' ELSE '[]'::jsonb END) q
    WHERE jsonb_typeof(q) = 'object' AND q->'confidential' = 'true'::jsonb
$$;

-- A deployment's roles as the API shows them: {enumerators:[P], viewers:[P], managers:[P],
-- approvers:[[P..] per stage]}, P = {type, id}.
CREATE FUNCTION fv_deployment_roles_json(d uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH p AS (SELECT dr.role, dr.stage,
                      jsonb_build_object('type', dr.principal_type, 'id', dr.principal_id) AS j
               FROM deployment_roles dr WHERE dr.deployment_id = d)
    SELECT jsonb_build_object(
        'enumerators', COALESCE((SELECT jsonb_agg(j) FROM p WHERE role = 'enumerator'), '[]'),
        'viewers', COALESCE((SELECT jsonb_agg(j) FROM p WHERE role = 'viewer'), '[]'),
        'managers', COALESCE((SELECT jsonb_agg(j) FROM p WHERE role = 'manager'), '[]'),
        'approvers', COALESCE((
            SELECT jsonb_agg(COALESCE((SELECT jsonb_agg(j) FROM p WHERE role = 'approver' AND p.stage = g.n),
                                      '[]') ORDER BY g.n)
            FROM deployments x, generate_series(1, x.approval_stages) g(n) WHERE x.id = d), '[]'))
$$;

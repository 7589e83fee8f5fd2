-- 009: rights inside an organisation's objects need current membership of that organisation
-- (issue 10). Before, a survey's creator stayed its admin through surveys.created_by and a user
-- named directly as a principal (a survey grant, a deployment role) kept that right after being
-- removed from the organisation: only team and branch principals went with the membership.
--
-- The rule, in words: every right on a survey, deployment or response of organisation O (survey
-- admin or viewer, any deployment role, approving a stage, managing, resubmitting, editing) needs
-- a membership (any) of the user in O at the moment it is used. So:
--   * the creator of a survey is its admin only while a member of its organisation;
--   * a user principal includes the user only while a member of the object's organisation;
--   * a team or branch principal includes the members of that team or branch (or of a branch
--     above it) in that organisation (a membership of another organisation never counts);
--   * a user principal may be named only when the user is a member of the organisation
--     (fv_principal_valid: the endpoints answer 422 principal_not_member).
-- Removing a member's last membership in O (DELETE /v1/orgs/{org}/members/{user}) deletes the
-- user-principal grants and deployment roles naming them on O's objects too, so joining again
-- restores none of them (frontend/api/orgs/fe_orgs.c); the rule above is what cuts the rights at
-- the moment of the removal, whatever rows are left.
-- fv_has_tie (migration 007: a membership, a role or a grant) now amounts to a membership, since
-- roles and grants count only for members: an unverified submission of a removed member is the
-- operator's quarantine (org_visible false); a verified one the worker refuses after a removal is
-- the organisation's (worker/wk_verify.c, wk_verify_quarantine_revoked: the front end had checked
-- the submitter).

-- The three-argument form knew no organisation and let a user principal include its user for
-- good; dropped so that no caller can use it any more.
DROP FUNCTION fv_principal_includes(uuid, text, uuid);

-- True when principal {ptype, pid} named on an object of organisation org includes user u, a
-- member of org: the user themself; the team's members; the members of the branch or of any
-- branch above it.
CREATE FUNCTION fv_principal_includes(u uuid, ptype text, pid uuid, org uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE ptype
        WHEN 'user' THEN pid = u AND fv_is_org_member(u, org)
        WHEN 'team' THEN EXISTS (SELECT 1 FROM memberships m
                                 WHERE m.team_id = pid AND m.user_id = u AND m.org_id = org)
        WHEN 'branch' THEN EXISTS (
            SELECT 1 FROM memberships m
            WHERE m.user_id = u AND m.org_id = org
              AND m.branch_id IN (SELECT fv_branch_and_ancestors(pid)))
        ELSE false
    END
$$;

-- 'admin', 'viewer' or NULL; nothing for a user who is not a member of the survey's organisation.
-- With mfa = false, admin power that comes only from being an admin of an organisation that
-- requires TOTP for its admins does not count (see fv_survey_admin_needs_totp).
CREATE OR REPLACE FUNCTION fv_survey_role(u uuid, s uuid, mfa boolean DEFAULT true) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN NOT fv_is_org_member(u, x.org_id) THEN NULL
        WHEN x.created_by = u
          OR ((mfa OR NOT o.require_admin_totp) AND fv_is_org_admin(u, x.org_id))
          OR EXISTS (SELECT 1 FROM survey_grants g
                     WHERE g.survey_id = s AND g.role = 'admin'
                       AND fv_principal_includes(u, g.principal_type, g.principal_id, x.org_id))
            THEN 'admin'
        WHEN EXISTS (SELECT 1 FROM survey_grants g
                     WHERE g.survey_id = s AND g.role = 'viewer'
                       AND fv_principal_includes(u, g.principal_type, g.principal_id, x.org_id))
            THEN 'viewer'
    END
    FROM surveys x JOIN orgs o ON o.id = x.org_id WHERE x.id = s
$$;

-- True when u, a member of d's organisation, is named, directly or through a team or branch, in
-- role `r` of deployment d (any named role when r is NULL). The worker's re-check calls this.
CREATE OR REPLACE FUNCTION fv_has_deployment_role(u uuid, d uuid, r text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM deployments x JOIN surveys s ON s.id = x.survey_id
        JOIN deployment_roles dr ON dr.deployment_id = x.id
        WHERE x.id = d AND (r IS NULL OR dr.role = r)
          AND fv_principal_includes(u, dr.principal_type, dr.principal_id, s.org_id))
$$;

-- True when u manages deployment d: a member of its organisation who is named manager, survey
-- admin, or implicit manager (membership role admin or manager on the target branch or a branch
-- above it, or on the target team). mfa as in migration 004.
CREATE OR REPLACE FUNCTION fv_is_deployment_manager(u uuid, d uuid, mfa boolean DEFAULT true) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM deployments x JOIN surveys s ON s.id = x.survey_id JOIN orgs o ON o.id = s.org_id
        WHERE x.id = d AND fv_is_org_member(u, s.org_id) AND (
            fv_has_deployment_role(u, d, 'manager')
            OR EXISTS (SELECT 1 FROM memberships m
                       WHERE m.user_id = u AND m.org_id = s.org_id AND m.role IN ('admin', 'manager')
                         AND ((x.branch_id IS NOT NULL
                               AND m.branch_id IN (SELECT fv_branch_and_ancestors(x.branch_id)))
                              OR (x.team_id IS NOT NULL AND m.team_id = x.team_id))
                         AND (mfa OR NOT o.require_admin_totp
                              OR NOT (m.role = 'admin' AND m.branch_id = o.root_branch_id)))
            OR COALESCE(fv_survey_role(u, x.survey_id, mfa) = 'admin', false)))
$$;

CREATE OR REPLACE FUNCTION fv_deployment_access(u uuid, d uuid) RETURNS fv_dep_access
LANGUAGE sql STABLE AS $$
    SELECT ROW(fv_is_deployment_manager(u, d),
               fv_has_deployment_role(u, d, 'enumerator'),
               fv_has_deployment_role(u, d, 'viewer'),
               ARRAY(SELECT DISTINCT dr.stage
                     FROM deployments x JOIN surveys s ON s.id = x.survey_id
                     JOIN deployment_roles dr ON dr.deployment_id = x.id
                     WHERE x.id = d AND dr.role = 'approver'
                       AND fv_principal_includes(u, dr.principal_type, dr.principal_id, s.org_id)
                     ORDER BY 1))::fv_dep_access
$$;

-- True when u approves stage st of deployment d (named, directly or through a team or branch, and
-- a member of its organisation).
CREATE OR REPLACE FUNCTION fv_is_stage_approver(u uuid, d uuid, st integer) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM deployments x JOIN surveys s ON s.id = x.survey_id
                   JOIN deployment_roles dr ON dr.deployment_id = x.id
                   WHERE x.id = d AND dr.role = 'approver' AND dr.stage = st
                     AND fv_principal_includes(u, dr.principal_type, dr.principal_id, s.org_id))
$$;

-- True when principal {ptype, pid} may be named in org's surveys and deployments: a member of org
-- (a user who is not a member, or no such user: the endpoints answer 422 principal_not_member,
-- one answer for both so a user id's existence is not told), a team or branch of org.
CREATE OR REPLACE FUNCTION fv_principal_valid(ptype text, pid uuid, org uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE ptype
        WHEN 'user' THEN fv_is_org_member(pid, org)
        WHEN 'team' THEN EXISTS (SELECT 1 FROM teams t WHERE t.id = pid AND t.org_id = org)
        WHEN 'branch' THEN EXISTS (SELECT 1 FROM branches b WHERE b.id = pid AND b.org_id = org)
        ELSE false END
$$;

-- A survey grant as GET /v1/orgs/{org}/grants shows it.
CREATE FUNCTION fv_grant_json(g survey_grants) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('survey_id', g.survey_id,
                              'principal', jsonb_build_object('type', g.principal_type, 'id', g.principal_id),
                              'role', g.role, 'granted_by', g.granted_by, 'created_at', fv_ts(g.created_at))
$$;

-- The sort key of a grant in lists (its primary key has three columns; a list's cursor is one UUID).
CREATE FUNCTION fv_grant_key(g survey_grants) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT md5(g.survey_id::text || '/' || g.principal_type || '/' || g.principal_id::text)::uuid
$$;

-- The worker's re-check of verified submissions after a removal (worker/wk_verify.c,
-- wk_verify_revoked) asks, once per batch, for each submitter's `permissions` revocations newer
-- than the front end's check.
CREATE INDEX revocations_permissions_subject ON revocations (subject, id) WHERE kind = 'permissions';

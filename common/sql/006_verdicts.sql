-- 006: the permission rules the handlers used to write inline, as named functions, and the
-- verdicts of surveys, responses, sites and API keys. A verdict function returns the text the front
-- end answers by (frontend/api/fe_verdict.h): 'ok', 'hidden' (404), 'forbidden' (403),
-- 'totp_required' (403), or a state of the object ('not_pending', 'key_revoked', ...).

-- ---- organisations ----

-- True when u is the only admin of org's root branch: the org admin no change may remove
-- (fv_keep_an_org_admin of migration 005 closes the race of two concurrent changes).
CREATE OR REPLACE FUNCTION fv_is_last_org_admin(u uuid, org uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT fv_is_org_admin(u, org)
       AND NOT EXISTS (SELECT 1 FROM memberships m JOIN orgs o ON o.id = m.org_id
                       WHERE o.id = org AND m.branch_id = o.root_branch_id AND m.role = 'admin'
                         AND m.user_id <> u)
$$;

-- The organisations u is a member of (holds a membership in).
CREATE OR REPLACE FUNCTION fv_member_orgs(u uuid) RETURNS SETOF uuid
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT m.org_id FROM memberships m WHERE m.user_id = u
$$;

-- A membership as the API shows it to viewer (a member of its org): the user's email only on the
-- viewer's own rows (an admin adds members by user id without their consent, so a member list
-- must not turn a user id into an email address).
CREATE OR REPLACE FUNCTION fv_membership_json(m memberships, member users, viewer uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', m.id, 'user_id', m.user_id, 'name', member.name,
                              'email', CASE WHEN m.user_id = viewer THEN member.email END,
                              'role', m.role, 'branch_id', m.branch_id, 'team_id', m.team_id,
                              'created_at', fv_ts(m.created_at))
$$;

-- Reading what belongs to org: 'ok' for its members, else 'hidden'.
CREATE OR REPLACE FUNCTION fv_member_verdict(u uuid, org uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN fv_is_org_member(u, org) THEN 'ok' ELSE 'hidden' END
$$;

-- An action for an admin or manager anywhere in org: 'hidden' for non-members, 'forbidden' for
-- other members.
CREATE OR REPLACE FUNCTION fv_org_manager_verdict(u uuid, org uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT fv_is_org_member(u, org) THEN 'hidden'
                WHEN NOT fv_is_org_manager(u, org) THEN 'forbidden' ELSE 'ok' END
$$;

-- Changing org's settings (org admin); turning the TOTP requirement on (require_totp true) needs a
-- TOTP session even where the org does not require one yet.
CREATE OR REPLACE FUNCTION fv_org_update_verdict(u uuid, org uuid, mfa boolean, require_totp boolean)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN x.verdict = 'ok' AND COALESCE(require_totp, false) AND NOT COALESCE(mfa, false)
                THEN 'totp_required' ELSE x.verdict END
    FROM (SELECT fv_org_admin_verdict(u, org, mfa) AS verdict) x
$$;

-- True when principal {ptype, pid} may be named in org's surveys and deployments: a user anywhere,
-- a team or branch of org.
CREATE OR REPLACE FUNCTION fv_principal_valid(ptype text, pid uuid, org uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE ptype
        WHEN 'user' THEN EXISTS (SELECT 1 FROM users x WHERE x.id = pid)
        WHEN 'team' THEN EXISTS (SELECT 1 FROM teams t WHERE t.id = pid AND t.org_id = org)
        WHEN 'branch' THEN EXISTS (SELECT 1 FROM branches b WHERE b.id = pid AND b.org_id = org)
        ELSE false END
$$;

-- ---- sites ----

-- Changing a site of org with privacy (NULL org: no such site): 'hidden' when u may not see it,
-- 'forbidden' unless u is an admin or manager of the managing org.
CREATE OR REPLACE FUNCTION fv_site_change_verdict(u uuid, org uuid, privacy text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN org IS NULL OR NOT COALESCE(fv_site_visible(u, org, privacy), false) THEN 'hidden'
                WHEN NOT fv_is_org_manager(u, org) THEN 'forbidden' ELSE 'ok' END
$$;

-- ---- surveys ----

-- An action for survey s's admins (a new definition, grants, deployments): 'hidden' when u may
-- not see the survey, 'totp_required' when u is admin only through org-admin power without the
-- TOTP session the org requires (fv_survey_admin_needs_totp), 'forbidden' for other readers.
CREATE OR REPLACE FUNCTION fv_survey_admin_verdict(u uuid, s uuid, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM surveys x WHERE x.id = s) OR NOT fv_can_see_survey(u, s)
                  THEN 'hidden'
                WHEN COALESCE(fv_survey_role(u, s, mfa) = 'admin', false) THEN 'ok'
                WHEN fv_survey_admin_needs_totp(u, s, mfa) THEN 'totp_required'
                ELSE 'forbidden' END
$$;

-- Reading survey s: 'ok' when u may see it (fv_can_see_survey), else 'hidden'.
CREATE OR REPLACE FUNCTION fv_survey_read_verdict(u uuid, s uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN EXISTS (SELECT 1 FROM surveys x WHERE x.id = s) AND fv_can_see_survey(u, s)
                THEN 'ok' ELSE 'hidden' END
$$;

-- A survey as the API returns it to u (with the caller's survey role), with the definition of its
-- current version when with_definition.
CREATE OR REPLACE FUNCTION fv_survey_json(s surveys, u uuid, with_definition boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', s.id, 'org_id', s.org_id, 'name', s.name, 'version', s.current_version,
                              'created_at', fv_ts(s.created_at), 'updated_at', fv_ts(s.updated_at),
                              'role', fv_survey_role(u, s.id))
        || CASE WHEN with_definition THEN jsonb_build_object('definition', (
                SELECT v.definition FROM survey_versions v
                WHERE v.survey_id = s.id AND v.version = s.current_version))
           ELSE '{}'::jsonb END
$$;

-- A deployment as the API returns it, with its roles (fv_deployment_roles_json).
CREATE OR REPLACE FUNCTION fv_deployment_json(d deployments) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', d.id, 'survey_id', d.survey_id, 'name', d.name,
                              'branch_id', d.branch_id, 'team_id', d.team_id,
                              'approval_stages', d.approval_stages, 'created_at', fv_ts(d.created_at),
                              'roles', fv_deployment_roles_json(d.id))
$$;

-- ---- responses ----

-- True when u approves stage st of deployment d (named, directly or through a team or branch).
CREATE OR REPLACE FUNCTION fv_is_stage_approver(u uuid, d uuid, st integer) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM deployment_roles dr
                   WHERE dr.deployment_id = d AND dr.role = 'approver' AND dr.stage = st
                     AND fv_principal_includes(u, dr.principal_type, dr.principal_id))
$$;

-- True when u may resubmit response x: it is rejected, u submitted it and is still an enumerator
-- of its deployment.
CREATE OR REPLACE FUNCTION fv_can_resubmit(u uuid, x responses) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT x.status = 'rejected' AND x.submitted_by = u
       AND fv_has_deployment_role(u, x.deployment_id, 'enumerator')
$$;

-- Deleting response x (or editing it, unless u may resubmit it): the deployment's managers
-- (fv_is_deployment_manager, org-admin power counted as the TOTP policy allows). 'hidden' when u
-- may not read it, 'totp_required' when u would manage it with a TOTP session.
CREATE OR REPLACE FUNCTION fv_response_manager_verdict(u uuid, x responses, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN x.id IS NULL OR NOT fv_response_visible(fv_deployment_access(u, x.deployment_id), u,
                                                              x.submitted_by, x.status, x.stage, x.deleted_at)
                  THEN 'hidden'
                WHEN fv_is_deployment_manager(u, x.deployment_id, mfa) THEN 'ok'
                WHEN fv_is_deployment_manager(u, x.deployment_id) THEN 'totp_required'
                ELSE 'forbidden' END
$$;

-- Editing response x: its managers, or its submitter resubmitting it after a rejection.
CREATE OR REPLACE FUNCTION fv_response_edit_verdict(u uuid, x responses, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN v.verdict <> 'hidden' AND fv_can_resubmit(u, x) THEN 'ok' ELSE v.verdict END
    FROM (SELECT fv_response_manager_verdict(u, x, mfa) AS verdict) v
$$;

-- Approving or rejecting response x: the approvers of its current stage, or (recorded as an
-- override) its managers. 'not_pending' for those who decide when it is not waiting for approval.
CREATE OR REPLACE FUNCTION fv_response_decide_verdict(u uuid, x responses, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN v.verdict = 'hidden' THEN 'hidden'
                WHEN x.status <> 'pending'
                     AND (v.verdict = 'ok'
                          OR cardinality((fv_deployment_access(u, x.deployment_id)).approver_stages) > 0)
                  THEN 'not_pending'
                WHEN x.status = 'pending' AND fv_is_stage_approver(u, x.deployment_id, x.stage) THEN 'ok'
                ELSE v.verdict END
    FROM (SELECT fv_response_manager_verdict(u, x, mfa) AS verdict) v
$$;

-- A response as the API returns it; admin: the reader is survey admin and sees the answers to
-- confidential questions too (fv_confidential_names of the version answered).
CREATE OR REPLACE FUNCTION fv_response_json(x responses, admin boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', x.id, 'survey_id', x.survey_id, 'survey_version', x.survey_version,
        'deployment_id', x.deployment_id, 'status', x.status, 'stage', x.stage,
        'data', CASE WHEN admin THEN x.data
                     ELSE x.data - (SELECT fv_confidential_names(v.definition) FROM survey_versions v
                                    WHERE v.survey_id = x.survey_id AND v.version = x.survey_version) END,
        'location', x.location, 'submitted_by', x.submitted_by, 'collected_at', fv_ts(x.collected_at),
        'created_at', fv_ts(x.created_at), 'updated_at', fv_ts(x.updated_at), 'version', x.version)
        || CASE WHEN x.status = 'rejected' THEN jsonb_build_object('rejection_message', x.rejection_message)
                ELSE '{}'::jsonb END
$$;

-- ---- API keys ----

-- An API key as the API returns it (never the key: only its hash is stored).
CREATE OR REPLACE FUNCTION fv_api_key_json(k api_keys) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', k.id, 'name', k.name, 'created_at', fv_ts(k.created_at),
                              'revoked_at', fv_ts(k.revoked_at), 'suspended_at', fv_ts(k.suspended_at),
                              'suspended_reason', k.suspended_reason)
$$;

-- The organisations in which u may reinstate API key k: those of the key's owner that u
-- administers, where the owner was a member before the suspension (an org made, or a membership
-- granted, afterwards does not count), u never being the owner (who could otherwise make an org
-- and lift their own key's suspension). allowed: u's credential satisfies the org's TOTP policy.
CREATE OR REPLACE FUNCTION fv_key_reinstate_orgs(u uuid, k uuid, mfa boolean)
RETURNS TABLE (org_id uuid, allowed boolean) LANGUAGE sql STABLE AS $$
    SELECT DISTINCT m.org_id, NOT g.require_admin_totp OR COALESCE(mfa, false)
    FROM api_keys a JOIN memberships m ON m.user_id = a.user_id JOIN orgs g ON g.id = m.org_id
    WHERE a.id = k AND fv_is_org_admin(u, m.org_id) AND a.user_id <> u
      AND (a.suspended_at IS NULL OR m.created_at < a.suspended_at)
$$;

-- Reinstating API key k: 'hidden' unless u may reinstate it somewhere or owns it (only the owner
-- may know the key exists: 'forbidden'), 'totp_required' when no org allows it with this
-- credential, 'key_revoked' for a revoked key.
CREATE OR REPLACE FUNCTION fv_key_reinstate_verdict(u uuid, k uuid, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN a.id IS NULL THEN 'hidden'
                WHEN NOT EXISTS (SELECT 1 FROM fv_key_reinstate_orgs(u, k, mfa))
                  THEN CASE WHEN a.user_id = u THEN 'forbidden' ELSE 'hidden' END
                WHEN NOT EXISTS (SELECT 1 FROM fv_key_reinstate_orgs(u, k, mfa) o WHERE o.allowed)
                  THEN 'totp_required'
                WHEN a.revoked_at IS NOT NULL THEN 'key_revoked'
                ELSE 'ok' END
    FROM (SELECT 1) one LEFT JOIN api_keys a ON a.id = k
$$;

-- 011: joining an organisation needs the user's consent: invitations (by user id, or by email with
-- a one-time code), accepted or declined by the invitee; and the key-reinstatement rule (an org
-- admin may lift a key's suspension only when that org's data triggered it, or when the owner was
-- a member of that org before it).

-- An invitation as the inviting admin typed it: user_id or email (never checked against users at
-- creation, so the org learns nothing about who has an account), the membership offered (a branch
-- or a team) and, for an email, the SHA-256 of the one-time code the admin hands over out of band
-- (emails are not verified: whoever registered the address first must not be able to accept with
-- it alone). Closed by exactly one of accepted_at, declined_at, withdrawn_at, or by expires_at.
CREATE TABLE invitations (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES orgs(id),
    invited_by   uuid NOT NULL REFERENCES users(id),
    user_id      uuid,                              -- as typed: no foreign key (it may be no one)
    email        text,                              -- as typed
    code_hash    text CHECK (code_hash ~ '^[0-9a-f]{64}$'),
    role         text NOT NULL CHECK (role IN ('admin', 'manager', 'member')),
    branch_id    uuid REFERENCES branches(id),
    team_id      uuid REFERENCES teams(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    accepted_by  uuid REFERENCES users(id),
    declined_at  timestamptz,
    withdrawn_at timestamptz,
    CHECK ((user_id IS NULL) <> (email IS NULL)),
    CHECK ((email IS NULL) = (code_hash IS NULL)),
    CHECK ((branch_id IS NULL) <> (team_id IS NULL))
);
CREATE INDEX invitations_org ON invitations (org_id, id);
CREATE INDEX invitations_org_created ON invitations (org_id, created_at);
-- The open ones, counted against invitation_max_pending_per_org (fv_invitation_room).
CREATE INDEX invitations_org_open ON invitations (org_id, expires_at)
    WHERE accepted_at IS NULL AND withdrawn_at IS NULL;
CREATE INDEX invitations_user ON invitations (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX invitations_email ON invitations (lower(email)) WHERE email IS NOT NULL;

-- The organisation whose data the request that struck an API key out named (suspension by rate
-- limit, frontend/auth/fe_ratelimit.c), when the key's owner was then a member of it; NULL when
-- the request named no organisation's object, or one of an organisation the owner had not joined.
ALTER TABLE api_keys ADD COLUMN suspended_org_id uuid REFERENCES orgs(id);

-- True while the inviting admin may still make invitation i (admin of its branch or an ancestor;
-- for a team, org admin): an invitation of an admin who lost that power is void (withdrawn).
CREATE FUNCTION fv_invitation_inviter_ok(i invitations) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT fv_is_branch_admin(i.invited_by, COALESCE(i.branch_id, o.root_branch_id))
    FROM orgs o WHERE o.id = i.org_id
$$;

-- The status the org sees: 'withdrawn', 'accepted', 'expired' or 'pending'. A declined invitation
-- reads 'pending' until it expires: the org is not told that the address (or user id) is an
-- account that said no.
CREATE FUNCTION fv_invitation_status(i invitations) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN i.accepted_at IS NOT NULL THEN 'accepted'
                WHEN i.withdrawn_at IS NOT NULL OR NOT COALESCE(fv_invitation_inviter_ok(i), false)
                  THEN 'withdrawn'
                WHEN i.expires_at <= now() THEN 'expired'
                ELSE 'pending' END
$$;

-- The state of invitation i for its invitee: 'ok' (open), 'invitation_used', 'invitation_withdrawn',
-- 'invitation_declined' or 'invitation_expired' (verdicts of frontend/api/fe_verdict.c).
CREATE FUNCTION fv_invitation_open_verdict(i invitations) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN i.accepted_at IS NOT NULL THEN 'invitation_used'
                WHEN i.withdrawn_at IS NOT NULL OR NOT COALESCE(fv_invitation_inviter_ok(i), false)
                  THEN 'invitation_withdrawn'
                WHEN i.declined_at IS NOT NULL THEN 'invitation_declined'
                WHEN i.expires_at <= now() THEN 'invitation_expired'
                ELSE 'ok' END
$$;

-- True when invitation i is addressed to user u: by its id, or by its email (case-insensitively).
CREATE FUNCTION fv_invitation_is_for(i invitations, u uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT i.user_id = u
        OR (i.email IS NOT NULL AND EXISTS (SELECT 1 FROM users x
                                            WHERE x.id = u AND lower(x.email) = lower(i.email)))
$$;

-- An invitation as the org's admins see it: what the admin typed, the membership offered, the
-- status (fv_invitation_status); never whether it names an account.
CREATE FUNCTION fv_invitation_json(i invitations) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', i.id, 'org_id', i.org_id, 'user_id', i.user_id, 'email', i.email,
                              'role', i.role, 'branch_id', i.branch_id, 'team_id', i.team_id,
                              'invited_by', i.invited_by, 'status', fv_invitation_status(i),
                              'created_at', fv_ts(i.created_at), 'expires_at', fv_ts(i.expires_at))
$$;

-- An invitation as its invitee sees it: the org's name, the place and role offered, and whether
-- accepting needs the code the admin handed over (email invitations).
CREATE FUNCTION fv_invitation_me_json(i invitations) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', i.id, 'org_id', i.org_id,
                              'org_name', (SELECT o.name FROM orgs o WHERE o.id = i.org_id),
                              'role', i.role, 'branch_id', i.branch_id,
                              'branch_name', (SELECT b.name FROM branches b WHERE b.id = i.branch_id),
                              'team_id', i.team_id,
                              'team_name', (SELECT t.name FROM teams t WHERE t.id = i.team_id),
                              'code_required', i.code_hash IS NOT NULL,
                              'created_at', fv_ts(i.created_at), 'expires_at', fv_ts(i.expires_at))
$$;

-- Room for one more invitation of org: 'ok', 'too_many_invitations' (max_pending open ones) or
-- 'invitation_rate:<seconds>' (max_per_hour made in the last hour; seconds until one ages out).
-- Locks the org's row first and counts with a fresh snapshot (a volatile function's statements
-- each take one), so concurrent invitations of one org are counted one after the other and the
-- bounds hold exactly.
CREATE FUNCTION fv_invitation_room(org uuid, max_pending integer, max_per_hour integer) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n integer;
    oldest timestamptz;
BEGIN
    PERFORM 1 FROM orgs o WHERE o.id = org FOR UPDATE;
    SELECT count(*), min(i.created_at) INTO n, oldest FROM invitations i
    WHERE i.org_id = org AND i.created_at > now() - interval '1 hour';
    IF n >= max_per_hour THEN
        RETURN 'invitation_rate:'
            || greatest(1, ceil(extract(epoch FROM oldest + interval '1 hour' - now())))::int;
    END IF;
    SELECT count(*) INTO n FROM invitations i
    WHERE i.org_id = org AND i.accepted_at IS NULL AND i.withdrawn_at IS NULL
      AND i.expires_at > now();  -- declined ones count: the org cannot tell them apart
    IF n >= max_pending THEN
        RETURN 'too_many_invitations';
    END IF;
    RETURN 'ok';
END $$;

-- The organisation of the object a request named (kind: 'org', 'survey', 'deployment',
-- 'response', 'site'; id its id), NULL for none.
CREATE FUNCTION fv_request_org(kind text, id uuid) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT CASE kind
        WHEN 'org' THEN (SELECT o.id FROM orgs o WHERE o.id = fv_request_org.id)
        WHEN 'survey' THEN (SELECT s.org_id FROM surveys s WHERE s.id = fv_request_org.id)
        WHEN 'deployment' THEN (SELECT s.org_id FROM deployments d JOIN surveys s ON s.id = d.survey_id
                                WHERE d.id = fv_request_org.id)
        WHEN 'response' THEN (SELECT s.org_id FROM responses x JOIN surveys s ON s.id = x.survey_id
                              WHERE x.id = fv_request_org.id)
        WHEN 'site' THEN (SELECT t.org_id FROM sites t WHERE t.id = fv_request_org.id)
        END
$$;

-- The organisation whose data triggered the suspension of owner's key by a request naming
-- {kind, id}: that object's org when owner is a member of it (a membership they consented to),
-- else NULL. A key used against an org its owner never joined (a thief hammering his own org
-- with a stolen key, to lift the suspension as its admin) names no organisation.
CREATE FUNCTION fv_suspension_org(owner uuid, kind text, id uuid) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT x.org FROM (SELECT fv_request_org(kind, id) AS org) x
    WHERE x.org IS NOT NULL AND fv_is_org_member(owner, x.org)
$$;

-- The organisations in which u may reinstate API key k (replaces migration 006's rule): those u
-- administers where either the key's suspension was triggered by that org's data
-- (api_keys.suspended_org_id), or the owner was a member before the suspension (a membership made
-- afterwards, e.g. by accepting an invitation, does not count). u is never the owner (who could
-- otherwise make an org and lift their own key's suspension). Memberships need the owner's consent
-- (invitations), so no org the owner did not join has this power. allowed: u's credential
-- satisfies the org's TOTP policy.
CREATE OR REPLACE FUNCTION fv_key_reinstate_orgs(u uuid, k uuid, mfa boolean)
RETURNS TABLE (org_id uuid, allowed boolean) LANGUAGE sql STABLE AS $$
    SELECT DISTINCT g.id, NOT g.require_admin_totp OR COALESCE(mfa, false)
    FROM api_keys a,
         LATERAL (SELECT a.suspended_org_id AS org WHERE a.suspended_org_id IS NOT NULL
                  UNION
                  SELECT m.org_id FROM memberships m
                  WHERE m.user_id = a.user_id
                    AND (a.suspended_at IS NULL OR m.created_at < a.suspended_at)) x
         JOIN orgs g ON g.id = x.org
    WHERE a.id = k AND fv_is_org_admin(u, g.id) AND a.user_id <> u
$$;

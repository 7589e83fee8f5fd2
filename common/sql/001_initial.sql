-- 001: the backbone schema: users, API keys, organisations, branches, teams, memberships,
-- surveys with versioned definitions, deployments with their roles, responses, audit.
-- Applied by `fvctl migrate` inside one transaction and recorded in schema_migrations.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    name          text NOT NULL,
    password_hash text,                        -- pbkdf2_sha256$iter$salt$hash (issue 3); NULL: API keys only
    is_admin      boolean NOT NULL DEFAULT false, -- operator-level account made by fvctl create-admin
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users(id),
    key_hash     text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'), -- SHA-256 hex; the key itself is never stored
    name         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    suspended_at timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE orgs (
    id             uuid PRIMARY KEY,
    name           text NOT NULL,
    root_branch_id uuid NOT NULL,
    created_by     uuid NOT NULL REFERENCES users(id),
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- A tree per organisation; the root branch has parent_id NULL and stands for the org itself.
CREATE TABLE branches (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs(id) DEFERRABLE INITIALLY DEFERRED,
    parent_id  uuid REFERENCES branches(id),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX branches_org ON branches (org_id);
CREATE INDEX branches_parent ON branches (parent_id);
ALTER TABLE orgs ADD CONSTRAINT orgs_root_branch_fk FOREIGN KEY (root_branch_id)
    REFERENCES branches(id) DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE teams (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs(id),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A user's role in a branch (reaching its sub-branches) or in a team.
CREATE TABLE memberships (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs(id),
    user_id    uuid NOT NULL REFERENCES users(id),
    role       text NOT NULL CHECK (role IN ('admin', 'manager', 'member')),
    branch_id  uuid REFERENCES branches(id),
    team_id    uuid REFERENCES teams(id),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((branch_id IS NULL) <> (team_id IS NULL))
);
CREATE UNIQUE INDEX memberships_branch_key ON memberships (user_id, branch_id) WHERE branch_id IS NOT NULL;
CREATE UNIQUE INDEX memberships_team_key ON memberships (user_id, team_id) WHERE team_id IS NOT NULL;
CREATE INDEX memberships_org ON memberships (org_id);

CREATE TABLE surveys (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES orgs(id),
    name            text NOT NULL,
    current_version integer NOT NULL DEFAULT 1,
    created_by      uuid NOT NULL REFERENCES users(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX surveys_org ON surveys (org_id);

-- Every version of a survey's form definition is kept: responses name the one they answered.
CREATE TABLE survey_versions (
    survey_id  uuid NOT NULL REFERENCES surveys(id),
    version    integer NOT NULL CHECK (version >= 1),
    definition jsonb NOT NULL,
    created_by uuid NOT NULL REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (survey_id, version)
);

CREATE TABLE deployments (
    id              uuid PRIMARY KEY,
    survey_id       uuid NOT NULL REFERENCES surveys(id),
    name            text NOT NULL,
    branch_id       uuid REFERENCES branches(id),
    team_id         uuid REFERENCES teams(id),
    approval_stages integer NOT NULL DEFAULT 0 CHECK (approval_stages BETWEEN 0 AND 16),
    created_by      uuid NOT NULL REFERENCES users(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((branch_id IS NULL) <> (team_id IS NULL))
);
CREATE INDEX deployments_survey ON deployments (survey_id);

-- Who does what in a deployment; approvers carry their stage (1..approval_stages).
CREATE TABLE deployment_roles (
    deployment_id  uuid NOT NULL REFERENCES deployments(id),
    role           text NOT NULL CHECK (role IN ('enumerator', 'viewer', 'manager', 'approver')),
    stage          integer NOT NULL DEFAULT 0,
    principal_type text NOT NULL CHECK (principal_type IN ('user', 'team', 'branch')),
    principal_id   uuid NOT NULL,
    PRIMARY KEY (deployment_id, role, stage, principal_type, principal_id)
);
CREATE INDEX deployment_roles_principal ON deployment_roles (principal_id);

-- One row per submission: the submission id is the primary key, so a replayed entry is a no-op.
CREATE TABLE responses (
    id             uuid PRIMARY KEY,
    survey_id      uuid NOT NULL REFERENCES surveys(id),
    survey_version integer NOT NULL,
    deployment_id  uuid NOT NULL REFERENCES deployments(id),
    submitted_by   uuid NOT NULL REFERENCES users(id),
    status         text NOT NULL CHECK (status IN ('pending', 'final', 'rejected')),
    stage          integer NOT NULL DEFAULT 0,
    data           jsonb NOT NULL,
    location       jsonb,
    collected_at   timestamptz,
    received_at    timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    version        integer NOT NULL DEFAULT 1,
    deleted_at     timestamptz
);
CREATE INDEX responses_survey_created ON responses (survey_id, created_at, id);
CREATE INDEX responses_deployment ON responses (deployment_id);
CREATE INDEX responses_submitter ON responses (submitted_by);

-- Append-only: the trigger below refuses UPDATE and DELETE.
CREATE TABLE audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       uuid,
    action      text NOT NULL,
    target_type text,
    target_id   text,
    address     inet,
    detail      jsonb
);
CREATE INDEX audit_at ON audit (at);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit is append-only';
END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE OR TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- Shared rule helpers: the same functions serve reads, writes and the worker's checks.

-- The branch and every branch above it (a role on a branch reaches its sub-branches, so a
-- member of any of these has that role on b).
CREATE FUNCTION fv_branch_and_ancestors(b uuid) RETURNS SETOF uuid
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE up(id, parent_id) AS (
        SELECT id, parent_id FROM branches WHERE id = b
        UNION ALL
        SELECT br.id, br.parent_id FROM branches br JOIN up ON br.id = up.parent_id
    )
    SELECT id FROM up
$$;

-- True when u holds `admin` on the organisation's root branch.
CREATE FUNCTION fv_is_org_admin(u uuid, org uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM memberships m JOIN orgs o ON o.id = m.org_id
        WHERE m.user_id = u AND m.org_id = org AND m.branch_id = o.root_branch_id
          AND m.role = 'admin')
$$;

-- True when u has any membership in the organisation.
CREATE FUNCTION fv_is_org_member(u uuid, org uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u AND m.org_id = org)
$$;

-- True when u is named, directly or through a team or branch, in role `r` of deployment d
-- (any role when r is NULL).
CREATE FUNCTION fv_has_deployment_role(u uuid, d uuid, r text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM deployment_roles dr
        WHERE dr.deployment_id = d AND (r IS NULL OR dr.role = r) AND (
            (dr.principal_type = 'user' AND dr.principal_id = u)
            OR (dr.principal_type = 'team' AND EXISTS (
                SELECT 1 FROM memberships m WHERE m.team_id = dr.principal_id AND m.user_id = u))
            OR (dr.principal_type = 'branch' AND EXISTS (
                SELECT 1 FROM memberships m
                WHERE m.user_id = u AND m.branch_id IN (SELECT fv_branch_and_ancestors(dr.principal_id))))))
$$;

-- RFC 3339 text in UTC with microseconds, as the API returns timestamps.
CREATE FUNCTION fv_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

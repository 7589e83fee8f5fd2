-- 005: sites (water points, clinics) with their managing organisation, privacy and history, and
-- the organisation rule functions the org and site endpoints decide access with.

-- A site is managed by one organisation. privacy: public (anyone reads all of it), protected (any
-- signed-in user reads id, org, name, type, location and privacy; the managing org reads all),
-- private (only the managing org). Deletes are soft (deleted_at).
CREATE TABLE sites (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs(id),
    name       text NOT NULL,
    type       text NOT NULL,
    privacy    text NOT NULL CHECK (privacy IN ('public', 'protected', 'private')),
    location   jsonb,                         -- {lat, lon} or NULL
    properties jsonb NOT NULL DEFAULT '{}',
    version    integer NOT NULL DEFAULT 1,
    created_by uuid NOT NULL REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX sites_org ON sites (org_id, id) WHERE deleted_at IS NULL;
CREATE INDEX sites_privacy ON sites (privacy, id) WHERE deleted_at IS NULL;

-- Every version of a site (DESIGN section 3, history): who, when, which operation, the full state.
CREATE TABLE site_versions (
    site_id    uuid NOT NULL REFERENCES sites(id),
    version    integer NOT NULL,
    operation  text NOT NULL CHECK (operation IN ('create', 'update', 'delete')),
    actor      uuid NOT NULL REFERENCES users(id),
    at         timestamptz NOT NULL DEFAULT now(),
    state      jsonb NOT NULL,
    PRIMARY KEY (site_id, version)
);

-- Memberships are listed per organisation in id order (pagination).
CREATE INDEX memberships_org_id ON memberships (org_id, id);
CREATE INDEX teams_org ON teams (org_id, id);

-- True when u holds `admin` on branch b or on one of its ancestors (the org admin is admin of
-- every branch of the org: the root is everyone's ancestor).
CREATE FUNCTION fv_is_branch_admin(u uuid, b uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM memberships m
        WHERE m.user_id = u AND m.role = 'admin'
          AND m.branch_id IN (SELECT fv_branch_and_ancestors(b)))
$$;

-- True when u holds `admin` or `manager` anywhere in the organisation (a branch or a team).
CREATE FUNCTION fv_is_org_manager(u uuid, org uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM memberships m
                   WHERE m.user_id = u AND m.org_id = org AND m.role IN ('admin', 'manager'))
$$;

-- The verdict on an action that needs admin power in org (on branch b and its sub-branches; b NULL
-- means the root, i.e. org admin). mfa: the caller's session was opened with a TOTP code.
--   'hidden'        no such org, or u is not a member of it (answer 404)
--   'forbidden'     a member without that admin power (403)
--   'totp_required' an admin, but the org requires TOTP of its admins and mfa is false (403)
--   'ok'
-- b must be a branch of org (the caller checks); the front end's helper is frontend/fe_verdict.h.
CREATE FUNCTION fv_admin_verdict(u uuid, org uuid, b uuid, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN o.id IS NULL OR NOT fv_is_org_member(u, o.id) THEN 'hidden'
        WHEN NOT fv_is_branch_admin(u, COALESCE(b, o.root_branch_id)) THEN 'forbidden'
        WHEN o.require_admin_totp AND NOT COALESCE(mfa, false) THEN 'totp_required'
        ELSE 'ok' END
    FROM (SELECT 1) one LEFT JOIN orgs o ON o.id = org
$$;

-- The same for org-admin power (the root branch).
CREATE FUNCTION fv_org_admin_verdict(u uuid, org uuid, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT fv_admin_verdict(u, org, NULL, mfa)
$$;

-- Whether u (NULL: anonymous) may see site s at all, and all of it.
CREATE FUNCTION fv_site_visible(u uuid, org uuid, privacy text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT privacy = 'public'
        OR (u IS NOT NULL AND privacy = 'protected')
        OR (u IS NOT NULL AND fv_is_org_member(u, org))
$$;

CREATE FUNCTION fv_site_full(u uuid, org uuid, privacy text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT privacy = 'public' OR (u IS NOT NULL AND fv_is_org_member(u, org))
$$;

-- A site as the API returns it to a caller who may see all of it (full) or only the protected
-- part (id, org_id, name, type, location, privacy).
CREATE FUNCTION fv_site_json(s sites, full_view boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN full_view THEN
        jsonb_build_object('id', s.id, 'org_id', s.org_id, 'name', s.name, 'type', s.type,
                           'privacy', s.privacy, 'location', s.location, 'properties', s.properties,
                           'version', s.version, 'created_by', s.created_by,
                           'created_at', fv_ts(s.created_at), 'updated_at', fv_ts(s.updated_at))
    ELSE
        jsonb_build_object('id', s.id, 'org_id', s.org_id, 'name', s.name, 'type', s.type,
                           'privacy', s.privacy, 'location', s.location)
    END
$$;

-- u's strongest role anywhere in the organisation (admin, manager, member), NULL for none.
CREATE FUNCTION fv_org_role(u uuid, org uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT m.role FROM memberships m WHERE m.user_id = u AND m.org_id = org
    ORDER BY CASE m.role WHEN 'admin' THEN 0 WHEN 'manager' THEN 1 ELSE 2 END LIMIT 1
$$;

-- An organisation as the API returns it to u (a member).
CREATE FUNCTION fv_org_json(o orgs, u uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', o.id, 'name', o.name, 'root_branch_id', o.root_branch_id,
                              'require_admin_totp', o.require_admin_totp,
                              'created_at', fv_ts(o.created_at), 'role', fv_org_role(u, o.id),
                              'org_admin', fv_is_org_admin(u, o.id))
$$;

-- Every organisation keeps an admin (membership `admin` on its root branch). The org endpoints
-- refuse such a change with 409 last_admin; this trigger closes the race of two concurrent
-- removals (each statement's check saw the other admin): it locks the org row, then counts with a
-- fresh snapshot, so the second of two such transactions sees the first one's commit and fails.
CREATE FUNCTION fv_keep_an_org_admin() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    root uuid;
BEGIN
    IF OLD.role <> 'admin' OR OLD.branch_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT o.root_branch_id INTO root FROM orgs o WHERE o.id = OLD.org_id FOR UPDATE;
    IF root IS DISTINCT FROM OLD.branch_id THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM memberships m WHERE m.branch_id = root AND m.role = 'admin') THEN
        RAISE EXCEPTION 'organisation % would be left without an administrator', OLD.org_id
            USING ERRCODE = 'FV409';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER memberships_keep_an_admin AFTER DELETE OR UPDATE OF role ON memberships
    FOR EACH ROW EXECUTE FUNCTION fv_keep_an_org_admin();

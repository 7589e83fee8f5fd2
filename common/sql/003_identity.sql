-- 003: identity: TOTP, session tokens and their revocation, API key suspension, the org's TOTP
-- policy, and the organisation an audit entry belongs to.

-- TOTP: the secret is sealed (common/fv_seal.c, associated data "totp:<user id>"); the login asks
-- for a code only once the enrolment is confirmed. totp_last_step is the last accepted time step:
-- a code of that step or an earlier one is refused (used once).
-- sessions_valid_after: session tokens issued before it are void (password change, erasure).
ALTER TABLE users
    ADD COLUMN totp_secret          text,
    ADD COLUMN totp_confirmed_at    timestamptz,
    ADD COLUMN totp_last_step       bigint NOT NULL DEFAULT 0,
    ADD COLUMN sessions_valid_after timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN password_changed_at  timestamptz;

-- Sessions opened by login. Tokens are verified without this table (signed, stateless); it lists
-- a user's sessions and records their end.
CREATE TABLE sessions (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users(id),
    mfa        boolean NOT NULL DEFAULT false,
    address    inet,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

-- What every front end must forget or refuse within seconds: each child reads new rows (and hears
-- them at once through Redis pub/sub). A row stops mattering at expires_at.
--   session       subject = session id: that token is void
--   user_sessions subject = user id: tokens issued before not_before are void
--   api_key       subject = key hash: drop it from every key cache
--   permissions   subject = user id: drop the user's cached permissions (membership change)
CREATE TABLE revocations (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('session', 'user_sessions', 'api_key', 'permissions')),
    subject    text NOT NULL,
    not_before timestamptz,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revocations_expires ON revocations (expires_at);

ALTER TABLE api_keys ADD COLUMN suspended_reason text;

ALTER TABLE orgs ADD COLUMN require_admin_totp boolean NOT NULL DEFAULT false;

-- The organisation an entry concerns (NULL for account-level entries such as logins): what
-- GET /v1/orgs/{org}/audit shows.
ALTER TABLE audit ADD COLUMN org_id uuid;
CREATE INDEX audit_org ON audit (org_id, id) WHERE org_id IS NOT NULL;

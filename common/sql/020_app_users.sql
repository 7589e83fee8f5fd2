-- 020 (issue 13, authentication the clients can do): per-deployment app users, as ODK Central
-- has them. An app user is a device's identity for one deployment: a users row (so that what it
-- submits names a submitter, responses.submitted_by) that can never sign in (no password, an
-- address under the reserved .invalid domain), plus its app_users row with the SHA-256 of its
-- token (fva_..., shown once). It acts as an enumerator of exactly that deployment on the
-- OpenRosa routes (/v1/key/{token}/openrosa/deployments/{id}/...) and nowhere else.
--
-- Revoking one writes a revocations row of kind 'api_key' with the token's hash as subject (the
-- front ends' key caches already drop such subjects at once, docs/security.md); closing the
-- deployment or archiving the survey writes 'deployment' / 'survey' rows as before, and the
-- verdict below refuses then too.
CREATE TABLE app_users (
    id            uuid PRIMARY KEY REFERENCES users(id),
    deployment_id uuid NOT NULL REFERENCES deployments(id),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    token_hash    text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_by    uuid NOT NULL REFERENCES users(id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    revoked_by    uuid REFERENCES users(id)
);
CREATE INDEX app_users_deployment ON app_users (deployment_id, created_at);

-- 'ok' when u is a live app user of deployment d (not revoked, the deployment open, its survey
-- not archived); 'hidden' when u is an app user otherwise (another deployment, revoked, closed);
-- NULL when u is no app user.
CREATE FUNCTION fv_app_user_verdict(u uuid, d uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN a.deployment_id = d AND a.revoked_at IS NULL AND x.closed_at IS NULL
                     AND s.archived_at IS NULL THEN 'ok' ELSE 'hidden' END
    FROM app_users a JOIN deployments x ON x.id = a.deployment_id JOIN surveys s ON s.id = x.survey_id
    WHERE a.id = u
$$;

-- The OpenRosa routes' verdict (016) with app users: an app user reads its own deployment only.
CREATE OR REPLACE FUNCTION fv_openrosa_verdict(u uuid, d uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(fv_app_user_verdict(u, d),
           CASE WHEN u IS NULL OR NOT fv_can_see_deployment(u, d) THEN 'hidden'
                WHEN fv_has_deployment_role(u, d, 'enumerator') THEN 'ok'
                ELSE 'forbidden' END)
$$;

-- A deployment's OpenRosa URL for an app user's token: Collect's Server URL.
CREATE FUNCTION fv_openrosa_key_url(base text, token text, d uuid) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT base || '/v1/key/' || token || '/openrosa/deployments/' || d::text
$$;

-- An app user as the API lists it (never its token or hash).
CREATE FUNCTION fv_app_user_json(a app_users) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', a.id, 'deployment_id', a.deployment_id, 'name', a.name,
                              'created_by', a.created_by, 'created_at', fv_ts(a.created_at),
                              'revoked', a.revoked_at IS NOT NULL, 'revoked_at', fv_ts(a.revoked_at))
$$;

-- 028 (issue 12, envelope encryption at rest; docs/security.md "Personal data at rest"): people's
-- names and emails are sealed under the global data key (025, scope 'global'), by the programs
-- (common/fv_pii.c), never in SQL; emails are found by a keyed hash, never in clear.
--
--   users.email_sealed        "fv:users:<id>:email"        the email as typed
--   users.name_sealed         "fv:users:<id>:name"
--   invitations.email_sealed  "fv:invitations:<id>:email"  the email the admin typed
-- (associated data: a sealed value copied to another row or column does not open.) pii_version:
-- the global data key's version they are sealed under (the same as their headers say).
--
-- email_hmac: HMAC-SHA256 of the email lower-cased (ASCII, as lower(email) compared them) under
-- the subkey "fv-email-hmac" of the master key email_hmac_key (its id): logins, sign-up's
-- uniqueness, invitations to an email and fvctl look emails up with the HMACs under every key of
-- the key file (= ANY), and `fvctl rotate-master-key` recomputes them under the new current key.
--
-- Rows from before this migration keep email and name in clear (email_hmac NULL) until the
-- workers' sweep (worker/wk_seal.c) seals them and clears the clear columns; until then every
-- reader accepts both (fv_pii_cell), lookups match either, and the old unique index still guards
-- the clear ones. A new row never holds a clear email or name.

ALTER TABLE users ALTER COLUMN email DROP NOT NULL, ALTER COLUMN name DROP NOT NULL,
    ADD COLUMN email_sealed bytea, ADD COLUMN name_sealed bytea,
    ADD COLUMN pii_version integer CHECK (pii_version >= 1),
    ADD COLUMN email_hmac bytea CHECK (length(email_hmac) = 32),
    ADD COLUMN email_hmac_key text CHECK (email_hmac_key ~ '^[0-9a-f]{8}$'),
    -- why the sweep could not seal the row (then it leaves it alone until an operator clears this)
    ADD COLUMN pii_seal_error text,
    ADD CONSTRAINT users_email_held CHECK (email IS NOT NULL OR (email_sealed IS NOT NULL AND email_hmac IS NOT NULL)),
    ADD CONSTRAINT users_name_held CHECK (name IS NOT NULL OR name_sealed IS NOT NULL),
    ADD CONSTRAINT users_hmac_keyed CHECK ((email_hmac IS NULL) = (email_hmac_key IS NULL)),
    ADD CONSTRAINT users_pii_version CHECK (
        (email_sealed IS NULL AND name_sealed IS NULL) = (pii_version IS NULL)
        AND (email_sealed IS NULL OR fv_dk_version(email_sealed) = pii_version)
        AND (name_sealed IS NULL OR fv_dk_version(name_sealed) = pii_version));
CREATE UNIQUE INDEX users_email_hmac ON users (email_hmac);
CREATE INDEX users_email_hmac_key ON users (email_hmac_key) WHERE email_hmac_key IS NOT NULL;
CREATE INDEX users_pii_clear ON users (id) WHERE email IS NOT NULL OR name IS NOT NULL;

ALTER TABLE invitations DROP CONSTRAINT invitations_check, DROP CONSTRAINT invitations_check1,
    ADD COLUMN email_sealed bytea, ADD COLUMN pii_version integer CHECK (pii_version >= 1),
    ADD COLUMN email_hmac bytea CHECK (length(email_hmac) = 32),
    ADD COLUMN email_hmac_key text CHECK (email_hmac_key ~ '^[0-9a-f]{8}$'),
    ADD COLUMN pii_seal_error text,
    ADD CONSTRAINT invitations_addressee CHECK ((user_id IS NULL) <> (email IS NULL AND email_sealed IS NULL)),
    ADD CONSTRAINT invitations_code CHECK ((email IS NULL AND email_sealed IS NULL) = (code_hash IS NULL)),
    ADD CONSTRAINT invitations_sealed_hmac CHECK ((email_sealed IS NULL) = (email_hmac IS NULL)
                                                  AND (email_hmac IS NULL) = (email_hmac_key IS NULL)
                                                  AND (email_sealed IS NULL) = (pii_version IS NULL)
                                                  AND (email_sealed IS NULL OR fv_dk_version(email_sealed) = pii_version));
CREATE INDEX invitations_email_hmac ON invitations (email_hmac) WHERE email_hmac IS NOT NULL;
CREATE INDEX invitations_email_hmac_key ON invitations (email_hmac_key) WHERE email_hmac_key IS NOT NULL;
CREATE INDEX invitations_pii_clear ON invitations (id) WHERE email IS NOT NULL AND email NOT LIKE '%@erased.invalid';

-- ---- reading: one text value per field, opened by the reader (common/fv_pii.h) ----
-- 'c:<value>' in clear (before the sweep), 's:<version>:<wrapped global data key>:<hex>' sealed,
-- NULL when neither.
CREATE FUNCTION fv_pii_cell(clear text, sealed bytea) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN sealed IS NOT NULL THEN
                    's:' || fv_dk_version(sealed) || ':' ||
                    COALESCE((SELECT k.wrapped FROM data_keys k
                              WHERE k.scope = 'global' AND k.version = fv_dk_version(sealed)), '') ||
                    ':' || encode(sealed, 'hex')
                WHEN clear IS NOT NULL THEN 'c:' || clear END
$$;

-- A field inside a statement's JSON: in clear a string, sealed {"fv_sealed": <cell>, "aad": aad}
-- for the reader to open (fv_pii_json_open: only at the keys and depths it is told).
CREATE FUNCTION fv_pii_json(clear text, sealed bytea, aad text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN sealed IS NOT NULL THEN jsonb_build_object('fv_sealed', fv_pii_cell(NULL, sealed), 'aad', aad)
                ELSE to_jsonb(clear) END
$$;

-- True when user u's email is the one invitation i was sent to: by the HMACs (both under the same
-- master key: during a master-key rotation a row not yet recomputed matches again once
-- `fvctl rotate-master-key` has passed), or in clear for rows the sweep has not sealed yet.
CREATE OR REPLACE FUNCTION fv_invitation_is_for(i invitations, u uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT i.user_id = u
        OR (i.email_hmac IS NOT NULL AND EXISTS (SELECT 1 FROM users x
                                                 WHERE x.id = u AND x.email_hmac = i.email_hmac))
        OR (i.email IS NOT NULL AND EXISTS (SELECT 1 FROM users x
                                            WHERE x.id = u AND lower(x.email) = lower(i.email)))
$$;

CREATE OR REPLACE FUNCTION fv_membership_json(m memberships, member users, viewer uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', m.id, 'user_id', m.user_id,
                              'name', fv_pii_json(member.name, member.name_sealed, 'fv:users:' || member.id || ':name'),
                              'email', CASE WHEN m.user_id = viewer THEN
                                  fv_pii_json(member.email, member.email_sealed, 'fv:users:' || member.id || ':email') END,
                              'role', m.role, 'branch_id', m.branch_id, 'team_id', m.team_id,
                              'created_at', fv_ts(m.created_at))
$$;

CREATE OR REPLACE FUNCTION fv_invitation_json(i invitations) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', i.id, 'org_id', i.org_id, 'user_id', i.user_id,
                              'email', fv_pii_json(i.email, i.email_sealed, 'fv:invitations:' || i.id || ':email'),
                              'role', i.role, 'branch_id', i.branch_id, 'team_id', i.team_id,
                              'invited_by', i.invited_by, 'status', fv_invitation_status(i),
                              'created_at', fv_ts(i.created_at), 'expires_at', fv_ts(i.expires_at))
$$;

-- ---- GET /v1/me/personal-data: the account's email and name, opened by the front end ----
CREATE OR REPLACE FUNCTION fv_personal_data(u uuid, lim integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'account', jsonb_build_object('id', x.id,
                                      'email', fv_pii_json(x.email, x.email_sealed, 'fv:users:' || x.id || ':email'),
                                      'name', fv_pii_json(x.name, x.name_sealed, 'fv:users:' || x.id || ':name'),
                                      'created_at', fv_ts(x.created_at), 'is_admin', x.is_admin,
                                      'totp_enrolled', x.totp_confirmed_at IS NOT NULL,
                                      'password_changed_at', fv_ts(x.password_changed_at)),
        'memberships', COALESCE((SELECT jsonb_agg(j ORDER BY k) FROM (
            SELECT m.id AS k, jsonb_build_object('id', m.id, 'org_id', m.org_id, 'org_name', o.name,
                       'role', m.role, 'branch_id', m.branch_id, 'branch_name', b.name,
                       'team_id', m.team_id, 'team_name', t.name, 'created_at', fv_ts(m.created_at)) AS j
            FROM memberships m JOIN orgs o ON o.id = m.org_id
            LEFT JOIN branches b ON b.id = m.branch_id LEFT JOIN teams t ON t.id = m.team_id
            WHERE m.user_id = u ORDER BY m.id LIMIT 1000) q), '[]'::jsonb),
        'invitations', COALESCE((SELECT jsonb_agg(j ORDER BY k) FROM (
            SELECT i.id AS k, fv_invitation_me_json(i) || jsonb_build_object(
                       'accepted_at', fv_ts(i.accepted_at), 'declined_at', fv_ts(i.declined_at),
                       'withdrawn_at', fv_ts(i.withdrawn_at)) AS j
            FROM invitations i WHERE fv_invitation_is_for(i, u) ORDER BY i.id LIMIT 1000) q), '[]'::jsonb),
        'api_keys', COALESCE((SELECT jsonb_agg(j ORDER BY q.id) FROM (
            SELECT k.id, fv_api_key_json(k) AS j FROM api_keys k WHERE k.user_id = u
            ORDER BY k.id LIMIT 1000) q), '[]'::jsonb),
        'sessions', fv_personal_data_section(u, 'sessions', NULL, lim),
        'audit', fv_personal_data_section(u, 'audit', NULL, lim),
        'submissions', fv_personal_data_section(u, 'submissions', NULL, lim),
        'refused_submissions', fv_personal_data_section(u, 'refused_submissions', NULL, lim),
        'quarantined_submissions', fv_personal_data_section(u, 'quarantined_submissions', NULL, lim))
    FROM users x WHERE x.id = u AND x.disabled_at IS NULL
$$;

-- ---- POST /v1/me/erase ----
-- As 014's, given the account's email and name opened by the front end (u_email, u_name) and its
-- email's HMACs under every master key (u_hmacs: the sealed invitations addressed to it); the
-- sealed fields and the HMAC go with the rest.
DROP FUNCTION fv_erase_account(uuid, inet, integer, integer);
CREATE FUNCTION fv_erase_account(u uuid, addr inet, session_ttl_s integer, key_ttl_s integer,
                                 u_email text, u_name text, u_hmacs bytea[])
RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    me users;
    p text := fv_pseudonym(u);
    needles text[];
    email_hash text;
    hmacs_hex text[];
    n_sessions integer;
    n_keys integer;
    n_orgs integer;
    n_invitations integer;
BEGIN
    SELECT * INTO me FROM users x WHERE x.id = u AND x.disabled_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('verdict', 'hidden');
    END IF;
    IF EXISTS (SELECT 1 FROM fv_member_orgs(u) o WHERE fv_is_last_org_admin(u, o)) THEN
        RETURN jsonb_build_object('verdict', 'last_admin');
    END IF;
    -- the email and name as the caller opened them (sealed rows hold neither in clear)
    me.email := COALESCE(me.email, u_email);
    me.name := COALESCE(me.name, u_name);
    IF me.email IS NULL OR me.name IS NULL THEN
        RAISE EXCEPTION 'fv_erase_account: the email and name of % are needed', u;
    END IF;
    PERFORM set_config('fieldvault.erase_email', lower(me.email), true);
    needles := ARRAY[lower(me.email), lower(me.name)];
    hmacs_hex := ARRAY(SELECT encode(h, 'hex') FROM unnest(u_hmacs) h);
    email_hash := encode(sha256(convert_to(lower(me.email), 'UTF8')), 'hex');

    -- opens the erasure: the entry names the pseudonym, never the name or email
    INSERT INTO audit (actor, action, target_type, target_id, address, detail)
    VALUES (u, 'user.erase', 'user', u::text, NULL,
            jsonb_build_object('pseudonym', p, 'txid', txid_current()::text));
    PERFORM set_config('fieldvault.erasure', txid_current()::text, true);

    -- every organisation is told, in its own audit log, that the member left by erasure
    INSERT INTO audit (actor, action, target_type, target_id, org_id, detail)
    SELECT u, 'member.remove', 'user', u::text, o, jsonb_build_object('reason', 'erasure', 'pseudonym', p,
                                                                   'left_org', true)
    FROM fv_member_orgs(u) o;
    GET DIAGNOSTICS n_orgs = ROW_COUNT;

    -- rights: grants and deployment roles naming u, then the memberships (the org-admin trigger
    -- of migration 005 still guards a concurrent removal of the other admin: FV409)
    DELETE FROM survey_grants g WHERE g.principal_type = 'user' AND g.principal_id = u;
    DELETE FROM deployment_roles r WHERE r.principal_type = 'user' AND r.principal_id = u;
    DELETE FROM memberships m WHERE m.user_id = u;
    INSERT INTO revocations (kind, subject, expires_at) VALUES ('permissions', u::text, now() + interval '1 day');

    -- sessions and keys: each refused at once by every front end
    WITH s AS (UPDATE sessions x SET revoked_at = now()
               WHERE x.user_id = u AND x.revoked_at IS NULL AND x.expires_at > now()
               RETURNING x.id, x.expires_at)
    INSERT INTO revocations (kind, subject, expires_at) SELECT 'session', s.id::text, s.expires_at FROM s;
    GET DIAGNOSTICS n_sessions = ROW_COUNT;
    -- every token of u issued until the longest session could end is void: a login whose
    -- statement saw the account before this transaction committed cannot outlive the erasure
    INSERT INTO revocations (kind, subject, not_before, expires_at)
    VALUES ('user_sessions', u::text, now() + make_interval(secs => session_ttl_s + 60),
            now() + make_interval(secs => 2 * session_ttl_s + 60));
    WITH k AS (UPDATE api_keys x SET revoked_at = now()
               WHERE x.user_id = u AND x.revoked_at IS NULL RETURNING x.key_hash)
    INSERT INTO revocations (kind, subject, expires_at)
    SELECT 'api_key', k.key_hash, now() + make_interval(secs => key_ttl_s) FROM k;
    GET DIAGNOSTICS n_keys = ROW_COUNT;
    UPDATE api_keys x SET name = p WHERE x.user_id = u AND lower(x.name) = ANY (needles);
    UPDATE sessions x SET address = NULL WHERE x.user_id = u AND x.address IS NOT NULL;

    -- invitations: the open ones to u withdrawn, the email erased from every one addressed to it
    UPDATE invitations i SET withdrawn_at = now()
    WHERE (i.user_id = u OR lower(i.email) = lower(me.email) OR i.email_hmac = ANY (u_hmacs))
      AND i.accepted_at IS NULL AND i.withdrawn_at IS NULL AND i.declined_at IS NULL;
    GET DIAGNOSTICS n_invitations = ROW_COUNT;
    UPDATE invitations i SET email = p || '@erased.invalid', email_sealed = NULL, email_hmac = NULL,
                             email_hmac_key = NULL, pii_version = NULL
    WHERE lower(i.email) = lower(me.email) OR i.email_hmac = ANY (u_hmacs);

    -- the audit log: the email in any entry's detail (an email is distinctive: it has an @) and
    -- the login failures' email hash, both found through the index of the details' strings; the
    -- name in the entries by or about u only (a name may be a common word: "admin", "member");
    -- and the addresses u acted from (personal data too)
    -- (since 028 the failed logins carry the email's HMAC under the master key of the day, hex: the
    -- ones under a key still in the key file are found; under a dropped key nobody can link them)
    UPDATE audit a SET detail = fv_replace_strings(a.detail, ARRAY[lower(me.email), email_hash] || hmacs_hex, p)
    WHERE fv_json_strings(a.detail) && (ARRAY[lower(me.email), email_hash] || hmacs_hex);
    UPDATE audit a SET detail = fv_replace_strings(a.detail, ARRAY[lower(me.name)], p)
    WHERE (a.actor = u OR (a.target_type = 'user' AND a.target_id = u::text))
      AND fv_json_strings(a.detail) @> ARRAY[lower(me.name)];
    UPDATE audit a SET address = NULL WHERE a.actor = u AND a.address IS NOT NULL;

    -- the submissions the worker refused or quarantined are u's own: an answer equal to the name
    -- or email is replaced there too (rows in clear, from before 027); SQL cannot compare a sealed
    -- answer (027), so a sealed one loses all its answers and its location instead: it erases
    -- more, never less
    UPDATE refused_submissions q SET data = fv_replace_strings(q.data, needles, p)
    WHERE q.submitted_by = u AND q.answers_kv IS NULL AND q.data <> fv_replace_strings(q.data, needles, p);
    UPDATE quarantine q SET data = fv_replace_strings(q.data, needles, p)
    WHERE q.submitted_by = u AND q.answers_kv IS NULL AND q.data <> fv_replace_strings(q.data, needles, p);
    UPDATE refused_submissions SET data = '{}'::jsonb, location = NULL WHERE submitted_by = u AND answers_kv IS NOT NULL;
    UPDATE quarantine SET data = '{}'::jsonb, location = NULL WHERE submitted_by = u AND answers_kv IS NOT NULL;

    UPDATE users x SET email = p || '@erased.invalid', name = p, email_sealed = NULL, name_sealed = NULL,
                       pii_version = NULL, email_hmac = NULL, email_hmac_key = NULL, password_hash = NULL,
                       totp_secret = NULL, totp_confirmed_at = NULL, disabled_at = now(),
                       sessions_valid_after = now()
    WHERE x.id = u;
    RETURN jsonb_build_object('verdict', 'ok', 'pseudonym', p, 'sessions_revoked', n_sessions,
                              'api_keys_revoked', n_keys, 'orgs_left', n_orgs,
                              'invitations_withdrawn', n_invitations);
END $$;

-- 019's trigger read the erased account's email from its row: a sealed row has none in clear, so
-- fv_erase_account leaves it in the transaction's setting fieldvault.erase_email.
CREATE OR REPLACE FUNCTION fv_audit_withdraws_exports() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    me users;
    o uuid;
BEGIN
    IF NEW.action = 'user.erase' THEN
        -- in fv_erase_account, before the memberships, the audit details and the account change
        SELECT * INTO me FROM users x WHERE x.id = NEW.actor;
        FOR o IN SELECT DISTINCT e.org_id FROM exports e
                 WHERE e.state IN ('building', 'ready')
                   AND (fv_user_ever_in_org(NEW.actor, e.org_id)
                        OR EXISTS (SELECT 1 FROM audit a WHERE a.org_id = e.org_id
                                   AND fv_json_strings(a.detail) && ARRAY[COALESCE(lower(me.email), current_setting('fieldvault.erase_email', true))])) LOOP
            PERFORM fv_exports_withdraw(o, NEW.actor, jsonb_build_object('reason', 'erasure',
                                                                       'pseudonym', NEW.detail->'pseudonym'));
        END LOOP;
    ELSIF NEW.org_id IS NOT NULL THEN
        -- survey.purge, or the end of a purge job (the trigger's WHEN)
        PERFORM fv_exports_withdraw(NEW.org_id, NEW.actor, jsonb_build_object(
            'reason', 'purge', 'job_id', COALESCE(NEW.detail->>'job_id', NEW.target_id)));
    END IF;
    RETURN NULL;
END $$;

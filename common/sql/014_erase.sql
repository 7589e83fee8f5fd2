-- 014: personal data and erasure (issue 11, DESIGN section 3; docs/security.md "Personal data and
-- erasure"). GET /v1/me/personal-data reads fv_personal_data / fv_personal_data_section; POST
-- /v1/me/erase runs fv_erase_account, in one transaction:
--   * the account disabled for good (disabled_at; no endpoint and no fvctl command clears it), its
--     password hash and TOTP secret dropped, every session and API key revoked with a revocations
--     row each (every front end refuses them within a poll), its memberships, grants, deployment
--     roles and pending invitations removed (refused with 'last_admin' while it is the only admin
--     of an organisation: the org would be left without one);
--   * the name and email replaced everywhere they are stored by a stable pseudonym
--     ('erased-' and 16 hex digits of the SHA-256 of the user id): users, invitations addressed to
--     the email, the audit entries' detail JSON (the invitee's email of invitation.create, the
--     email_sha256 of failed logins), API key names equal to either, and the IP addresses of the
--     user's sessions and of the audit entries the user made;
--   * the audit log stays append-only: UPDATE is refused except of an entry's detail (and its
--     address, to NULL) inside a transaction that opened an erasure (fv_erasure_active: the
--     setting below AND its 'user.erase' audit entry), exactly as migration 012 does for history.
-- The history tables (response_events.state, site_versions.state) hold the rows of responses and
-- sites, where a user appears by id only (submitted_by, actor, created_by): nothing of the name or
-- email is there to erase, so fv_history_purge_begin is not needed (docs/security.md). Answers
-- are the organisation's data; the survey purge removes identifying answers.

-- The stable pseudonym of user u (what history and audit keep: the id stays the foreign key).
CREATE FUNCTION fv_pseudonym(u uuid) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'erased-' || left(encode(sha256(convert_to(u::text, 'UTF8')), 'hex'), 16)
$$;

-- j with every string equal (case-insensitively) to one of needles (lower case) replaced by repl.
CREATE FUNCTION fv_replace_strings(j jsonb, needles text[], repl text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(j)
        WHEN 'object' THEN (SELECT COALESCE(jsonb_object_agg(e.key, fv_replace_strings(e.value, needles, repl)),
                                            '{}'::jsonb) FROM jsonb_each(j) e)
        WHEN 'array' THEN (SELECT COALESCE(jsonb_agg(fv_replace_strings(a.v, needles, repl) ORDER BY a.n),
                                           '[]'::jsonb) FROM jsonb_array_elements(j) WITH ORDINALITY a(v, n))
        WHEN 'string' THEN CASE WHEN lower(j #>> '{}') = ANY (needles) THEN to_jsonb(repl) ELSE j END
        ELSE j END
$$;

-- Every string of j, lower-cased (NULL j: none): what an audit entry's detail says, indexed so an
-- erasure finds the entries naming an email without reading the whole log.
CREATE FUNCTION fv_json_strings(j jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(array_agg(DISTINCT lower(x #>> '{}')), '{}')
    FROM jsonb_path_query(COALESCE(j, 'null'::jsonb), 'strict $.**') x
    WHERE jsonb_typeof(x) = 'string'
$$;

-- ---- the audit log: append-only, except one audited erasure ----

-- The entries by or about a user (the personal-data document, the erasure): by actor, by target.
CREATE INDEX audit_actor ON audit (actor, id) WHERE actor IS NOT NULL;
CREATE INDEX audit_target ON audit (target_id, id) WHERE target_id IS NOT NULL;
CREATE INDEX audit_strings ON audit USING gin (fv_json_strings(detail));

CREATE FUNCTION fv_erasure_active() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(current_setting('fieldvault.erasure', true), '') = txid_current()::text
       AND EXISTS (SELECT 1 FROM audit a
                   WHERE a.action = 'user.erase' AND a.detail->>'txid' = txid_current()::text)
$$;

CREATE INDEX audit_erasure ON audit ((detail->>'txid')) WHERE action = 'user.erase';

CREATE FUNCTION fv_audit_update_erasure_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF fv_erasure_active() AND (NEW.address IS NULL OR NEW.address = OLD.address)
       AND to_jsonb(NEW) - ARRAY['detail', 'address'] = to_jsonb(OLD) - ARRAY['detail', 'address'] THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit is append-only';
END $$;

DROP TRIGGER audit_no_update ON audit;
CREATE TRIGGER audit_no_delete BEFORE DELETE OR TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_update_erasure_only BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION fv_audit_update_erasure_only();

-- ---- POST /v1/me/erase ----

-- Erases account u (the caller, who proved the password and TOTP already): 'hidden' when there is
-- no such live account, 'last_admin' when u is the only admin of an organisation, else 'ok' with
-- everything above done. session_ttl_s / key_ttl_s: how long the revocation rows must live (as the
-- password change's). Returns the verdict and counts as jsonb.
CREATE FUNCTION fv_erase_account(u uuid, addr inet, session_ttl_s integer, key_ttl_s integer)
RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    me users;
    p text := fv_pseudonym(u);
    needles text[];
    email_hash text;
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
    needles := ARRAY[lower(me.email), lower(me.name)];
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
    WHERE (i.user_id = u OR lower(i.email) = lower(me.email))
      AND i.accepted_at IS NULL AND i.withdrawn_at IS NULL AND i.declined_at IS NULL;
    GET DIAGNOSTICS n_invitations = ROW_COUNT;
    UPDATE invitations i SET email = p || '@erased.invalid' WHERE lower(i.email) = lower(me.email);

    -- the audit log: the email in any entry's detail (an email is distinctive: it has an @) and
    -- the login failures' email hash, both found through the index of the details' strings; the
    -- name in the entries by or about u only (a name may be a common word: "admin", "member");
    -- and the addresses u acted from (personal data too)
    UPDATE audit a SET detail = fv_replace_strings(a.detail, ARRAY[lower(me.email), email_hash], p)
    WHERE fv_json_strings(a.detail) && ARRAY[lower(me.email), email_hash];
    UPDATE audit a SET detail = fv_replace_strings(a.detail, ARRAY[lower(me.name)], p)
    WHERE (a.actor = u OR (a.target_type = 'user' AND a.target_id = u::text))
      AND fv_json_strings(a.detail) @> ARRAY[lower(me.name)];
    UPDATE audit a SET address = NULL WHERE a.actor = u AND a.address IS NOT NULL;

    -- the submissions the worker refused or quarantined are u's own: an answer equal to the name
    -- or email is replaced there too
    UPDATE refused_submissions q SET data = fv_replace_strings(q.data, needles, p)
    WHERE q.submitted_by = u AND q.data <> fv_replace_strings(q.data, needles, p);
    UPDATE quarantine q SET data = fv_replace_strings(q.data, needles, p)
    WHERE q.submitted_by = u AND q.data <> fv_replace_strings(q.data, needles, p);

    UPDATE users x SET email = p || '@erased.invalid', name = p, password_hash = NULL,
                       totp_secret = NULL, totp_confirmed_at = NULL, disabled_at = now(),
                       sessions_valid_after = now()
    WHERE x.id = u;
    RETURN jsonb_build_object('verdict', 'ok', 'pseudonym', p, 'sessions_revoked', n_sessions,
                              'api_keys_revoked', n_keys, 'orgs_left', n_orgs,
                              'invitations_withdrawn', n_invitations);
END $$;

-- ---- GET /v1/me/personal-data ----

-- One page (at most lim items after cursor aft, NULL: from the start) of a long section of what
-- is held about u: 'sessions', 'audit', 'submissions', 'refused_submissions',
-- 'quarantined_submissions'. {"items": [...], "next": cursor or null}. The cursor is the last
-- item's id (seq for refused submissions) as text; the caller checked its syntax.
CREATE FUNCTION fv_personal_data_section(u uuid, section text, aft text, lim integer) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    items jsonb;
    last text;
    n integer;
    keys text[];
    sess text[];
BEGIN
    IF section = 'sessions' THEN
        SELECT jsonb_agg(j ORDER BY k), count(*), max(k::text) INTO items, n, last FROM (
            SELECT s.id AS k, jsonb_build_object('id', s.id, 'created_at', fv_ts(s.created_at),
                       'expires_at', fv_ts(s.expires_at), 'revoked_at', fv_ts(s.revoked_at),
                       'address', host(s.address), 'mfa', s.mfa) AS j
            FROM sessions s WHERE s.user_id = u AND (aft IS NULL OR s.id > aft::uuid)
            ORDER BY s.id LIMIT lim) x;
    ELSIF section = 'audit' THEN
        SELECT COALESCE(array_agg(k.id::text), '{}') INTO keys FROM api_keys k WHERE k.user_id = u;
        SELECT COALESCE(array_agg(s.id::text), '{}') INTO sess FROM sessions s WHERE s.user_id = u;
        -- entries by u or about u (its account, keys, sessions); the detail and address only of
        -- entries by u about u: another person's entry may name others (an admin's address, an
        -- invitee's email)
        SELECT jsonb_agg(j ORDER BY k), count(*), max(k)::text INTO items, n, last FROM (
            SELECT a.id AS k, jsonb_build_object('id', a.id, 'at', fv_ts(a.at), 'actor', a.actor,
                       'action', a.action, 'target_type', a.target_type, 'target_id', a.target_id,
                       'org_id', a.org_id,
                       'address', CASE WHEN a.actor = u THEN host(a.address) END,
                       'detail', CASE WHEN a.actor = u AND about THEN a.detail END) AS j
            FROM (SELECT a.*, (a.target_type = 'user' AND a.target_id = u::text)
                              OR (a.target_type = 'api_key' AND a.target_id = ANY (keys))
                              OR (a.target_type = 'session' AND a.target_id = ANY (sess)) AS about
                  FROM audit a
                  WHERE (a.actor = u OR a.target_id = ANY (ARRAY[u::text] || keys || sess))
                    AND (aft IS NULL OR a.id > aft::bigint)) a
            WHERE a.actor = u OR a.about
            ORDER BY a.id LIMIT lim) x;
    ELSIF section = 'submissions' THEN
        -- the data subject's own answers are theirs: included whole (confidential ones too)
        SELECT jsonb_agg(j ORDER BY k), count(*), max(k::text) INTO items, n, last FROM (
            SELECT x.id AS k, jsonb_build_object('id', x.id, 'deployment_id', x.deployment_id,
                       'survey_id', x.survey_id, 'survey_version', x.survey_version, 'status', x.status,
                       'stage', x.stage, 'version', x.version, 'collected_at', fv_ts(x.collected_at),
                       'received_at', fv_ts(x.received_at), 'created_at', fv_ts(x.created_at),
                       'updated_at', fv_ts(x.updated_at), 'deleted_at', fv_ts(x.deleted_at),
                       'data', x.data, 'location', x.location) AS j
            FROM responses x WHERE x.submitted_by = u AND (aft IS NULL OR x.id > aft::uuid)
            ORDER BY x.id LIMIT lim) y;
    ELSIF section = 'refused_submissions' THEN
        SELECT jsonb_agg(j ORDER BY k), count(*), max(k)::text INTO items, n, last FROM (
            SELECT q.seq AS k, jsonb_build_object('seq', q.seq, 'id', q.id, 'deployment_id', q.deployment_id,
                       'reason', q.reason, 'collected_at', fv_ts(q.collected_at),
                       'received_at', fv_ts(q.received_at), 'created_at', fv_ts(q.created_at),
                       'data', q.data, 'location', q.location) AS j
            FROM refused_submissions q WHERE q.submitted_by = u AND (aft IS NULL OR q.seq > aft::bigint)
            ORDER BY q.seq LIMIT lim) y;
    ELSIF section = 'quarantined_submissions' THEN
        SELECT jsonb_agg(j ORDER BY k), count(*), max(k::text) INTO items, n, last FROM (
            SELECT q.id AS k, jsonb_build_object('id', q.id, 'deployment_id', q.deployment_id,
                       'reason', q.reason, 'collected_at', fv_ts(q.collected_at),
                       'received_at', fv_ts(q.received_at), 'created_at', fv_ts(q.created_at),
                       'data', q.data, 'location', q.location) AS j
            FROM quarantine q WHERE q.submitted_by = u AND (aft IS NULL OR q.id > aft::uuid)
            ORDER BY q.id LIMIT lim) y;
    ELSE
        RAISE EXCEPTION 'unknown personal-data section %', section USING ERRCODE = '22023';
    END IF;
    RETURN jsonb_build_object('items', COALESCE(items, '[]'::jsonb),
                              'next', CASE WHEN n >= lim THEN last END);
END $$;

-- The whole document (first pages of the long sections), NULL when u is no live account.
-- Short sections are capped at 1000 items each (memberships, invitations, API keys: bounded by
-- the server's own limits long before that).
CREATE FUNCTION fv_personal_data(u uuid, lim integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'account', jsonb_build_object('id', x.id, 'email', x.email, 'name', x.name,
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

-- 027 (issue 12, envelope encryption at rest; docs/security.md "Answers at rest",
-- common/fv_answers.h): a response's answers and location are sealed by the programs under the
-- organisation's data key (025), value by value: responses.data keeps its keys (the question
-- names) and every value is a string, the base64 of the value sealed with associated data
-- "fv:answer:<submission id>:<question name>"; responses.location is one such string
-- ("fv:location:<submission id>"). SQL can still leave confidential answers out (data - names),
-- strip purged questions, find which answer names an attachment (by question, below) and compare a
-- retry with what was stored (the sealing is deterministic), but it no longer reads a value: the
-- confidential-mode offset of the GPS points (024) is applied by the programs when they open the
-- answers (fv_answers_finish), from the "_fv" hint fv_response_json now writes.

-- The data key version every value of the row is sealed under; NULL: in clear (written before
-- this migration, until the workers' sweep seals it). The history states carry it too (to_jsonb
-- of the row), so each version opens under its own.
ALTER TABLE responses ADD COLUMN answers_kv integer CHECK (answers_kv >= 1);
ALTER TABLE quarantine ADD COLUMN answers_kv integer CHECK (answers_kv >= 1);
ALTER TABLE refused_submissions ADD COLUMN answers_kv integer CHECK (answers_kv >= 1);
CREATE INDEX responses_answers_clear ON responses (survey_id) WHERE answers_kv IS NULL;

-- ---- which answers name an attachment ----
-- The top-level questions whose answer (anywhere inside it: a repeat's items) names the file,
-- written by the worker from the answers in clear before it seals them. The visibility of a file
-- (purges, confidential answers) is decided on these names and the keys of the answers, never on
-- the answers' values. NULL: not known (a row written before this migration: filled below).
ALTER TABLE response_attachments ADD COLUMN questions text[];
UPDATE response_attachments a
SET questions = COALESCE((SELECT array_agg(e.key ORDER BY e.key) FROM responses r, jsonb_each(r.data) e
                          WHERE r.id = a.response_id AND jsonb_typeof(r.data) = 'object'
                            AND jsonb_path_exists(e.value, '$.** ? (@ == $n)', jsonb_build_object('n', a.name))),
                         '{}');

-- True when one of questions is a key of data (an answer still there).
CREATE FUNCTION fv_names_answered(data jsonb, questions text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_typeof(data) = 'object' AND EXISTS (SELECT 1 FROM unnest(questions) q WHERE data ? q)
$$;

CREATE OR REPLACE FUNCTION fv_attachment_visible(x responses, name text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT fv_openrosa_purged(x)
        OR EXISTS (SELECT 1 FROM response_attachments a WHERE a.response_id = x.id AND a.name = fv_attachment_visible.name
                   AND fv_names_answered(x.data, a.questions))
$$;

-- The purge's removal of the OpenRosa side (026), on the questions.
CREATE OR REPLACE FUNCTION fv_openrosa_purge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE response_events SET state = state || '{"xml_sha256": null}'::jsonb
    WHERE response_id = NEW.response_id AND state->>'xml_sha256' IS NOT NULL;
    UPDATE responses SET xml_sha256 = NULL WHERE id = NEW.response_id AND xml_sha256 IS NOT NULL;
    DELETE FROM response_xml WHERE response_id = NEW.response_id;
    WITH d AS (DELETE FROM response_attachments a USING responses r
               WHERE a.response_id = NEW.response_id AND r.id = a.response_id
                 AND NOT fv_names_answered(r.data, a.questions)
               RETURNING a.org_id, a.sha256)
    DELETE FROM attachment_blobs b USING d
    WHERE b.org_id = d.org_id AND b.sha256 = d.sha256
      AND NOT EXISTS (SELECT 1 FROM response_attachments x WHERE x.org_id = b.org_id AND x.sha256 = b.sha256);
    RETURN NULL;
END $$;

-- Whether a reader who is not survey admin of response x may read its attachment name in
-- confidential mode: when an answer shown to them names it (never one only a confidential answer
-- names). True outside confidential mode.
CREATE FUNCTION fv_attachment_shown(x responses, name text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT m.conf OR EXISTS (
        SELECT 1 FROM response_attachments a WHERE a.response_id = x.id AND a.name = fv_attachment_shown.name
          AND fv_names_answered(x.data - m.hidden, a.questions))
    FROM fv_response_mask(x) m
$$;

-- ---- a response as the API returns it ----
-- As in 024, except that the values are written as stored (sealed, or in clear before the sweep)
-- and the masking of the points is the programs': "_fv" tells them the response's submission id,
-- organisation, the key version and its wrapped key (fv_dk_wrapped, 026), and for a reader who is
-- not survey admin in confidential mode the mask: the response's offset seed, the radius and the
-- geopoint questions to move (none for an encrypted response: its data is the envelope; its
-- location is moved all the same). Confidential answers are still left out here, by name. The
-- programs drop "_fv" before anything leaves them (fv_answers_finish).
CREATE OR REPLACE FUNCTION fv_response_json(x responses, admin boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', x.id, 'survey_id', x.survey_id, 'survey_version', x.survey_version,
        'deployment_id', x.deployment_id, 'status', x.status, 'stage', x.stage,
        'data', t.data, 'encrypted', t.encrypted, 'location', x.location,
        'submitted_by', x.submitted_by, 'collected_at', fv_ts(x.collected_at),
        'created_at', fv_ts(x.created_at), 'updated_at', fv_ts(x.updated_at), 'version', x.version,
        '_fv', jsonb_build_object('id', x.id, 'org', s.org_id, 'kv', x.answers_kv,
                                  'wk', fv_dk_wrapped(s.org_id, x.answers_kv), 'mask', t.mask))
        || CASE WHEN x.status = 'rejected' THEN jsonb_build_object('rejection_message', x.rejection_message)
                ELSE '{}'::jsonb END
    FROM surveys s,
         (SELECT x.data, EXISTS (SELECT 1 FROM survey_versions v WHERE v.survey_id = x.survey_id
                                 AND v.version = x.survey_version AND v.public_key IS NOT NULL) AS encrypted,
                 NULL::jsonb AS mask
          WHERE admin IS TRUE
          UNION ALL
          SELECT x.data - m.hidden, m.encrypted,
                 CASE WHEN m.conf THEN jsonb_build_object('seed', x.gps_seed, 'radius', m.radius,
                                                          'geo', CASE WHEN m.encrypted THEN '{}'::text[] ELSE m.geo END)
                 END
          FROM fv_response_mask(x) m WHERE admin IS NOT TRUE) t
    WHERE s.id = x.survey_id
$$;

-- The "_fv" hint of a row's answers for a reader with no mask (survey admins, exports, the
-- submitter's own copies): submission id, org, key version and its wrapped key.
CREATE FUNCTION fv_answers_hint(id uuid, org uuid, kv integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', id, 'org', org, 'kv', kv, 'wk', fv_dk_wrapped(org, kv), 'mask', NULL)
$$;

-- The organisation of deployment d (NULL: none).
CREATE FUNCTION fv_deployment_org(d uuid) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT s.org_id FROM deployments x JOIN surveys s ON s.id = x.survey_id WHERE x.id = d
$$;

-- ---- refused and quarantined submissions: sealed as the responses are (same associated data:
-- their submission id), read with the same hint ----
CREATE OR REPLACE FUNCTION fv_submission_status_json(u uuid, sid uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT jsonb_build_object(
                    'id', f.id, 'status', 'refused', 'reason', f.reason,
                    'refused_at', fv_ts(f.created_at),
                    'entry', jsonb_build_object('deployment_id', f.deployment_id, 'data', f.data,
                                                'location', f.location,
                                                'collected_at', fv_ts(f.collected_at),
                                                'received_at', fv_ts(f.received_at),
                                                '_fv', fv_answers_hint(f.id, fv_deployment_org(f.deployment_id),
                                                                       f.answers_kv)))
         FROM refused_submissions f WHERE f.id = sid AND f.submitted_by = u
         ORDER BY f.seq DESC LIMIT 1),
        (SELECT jsonb_build_object('id', r.id, 'status', 'stored', 'stored_at', fv_ts(r.created_at))
         FROM responses r WHERE r.id = sid AND r.submitted_by = u),
        (SELECT jsonb_build_object('id', q.id, 'status', 'quarantined',
                                   'quarantined_at', fv_ts(q.created_at))
         FROM quarantine q WHERE q.id = sid AND q.submitted_by = u))
$$;

-- The personal-data document (014): the submitter's own answers, refused and quarantined
-- submissions with their hints (opened by the front end before they leave it).
CREATE OR REPLACE FUNCTION fv_personal_data_section(u uuid, section text, aft text, lim integer) RETURNS jsonb
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
                       'data', x.data, 'location', x.location,
                       '_fv', fv_answers_hint(x.id, fv_deployment_org(x.deployment_id), x.answers_kv)) AS j
            FROM responses x WHERE x.submitted_by = u AND (aft IS NULL OR x.id > aft::uuid)
            ORDER BY x.id LIMIT lim) y;
    ELSIF section = 'refused_submissions' THEN
        SELECT jsonb_agg(j ORDER BY k), count(*), max(k)::text INTO items, n, last FROM (
            SELECT q.seq AS k, jsonb_build_object('seq', q.seq, 'id', q.id, 'deployment_id', q.deployment_id,
                       'reason', q.reason, 'collected_at', fv_ts(q.collected_at),
                       'received_at', fv_ts(q.received_at), 'created_at', fv_ts(q.created_at),
                       'data', q.data, 'location', q.location,
                       '_fv', fv_answers_hint(q.id, fv_deployment_org(q.deployment_id), q.answers_kv)) AS j
            FROM refused_submissions q WHERE q.submitted_by = u AND (aft IS NULL OR q.seq > aft::bigint)
            ORDER BY q.seq LIMIT lim) y;
    ELSIF section = 'quarantined_submissions' THEN
        SELECT jsonb_agg(j ORDER BY k), count(*), max(k::text) INTO items, n, last FROM (
            SELECT q.id AS k, jsonb_build_object('id', q.id, 'deployment_id', q.deployment_id,
                       'reason', q.reason, 'collected_at', fv_ts(q.collected_at),
                       'received_at', fv_ts(q.received_at), 'created_at', fv_ts(q.created_at),
                       'data', q.data, 'location', q.location,
                       '_fv', fv_answers_hint(q.id, fv_deployment_org(q.deployment_id), q.answers_kv)) AS j
            FROM quarantine q WHERE q.submitted_by = u AND (aft IS NULL OR q.id > aft::uuid)
            ORDER BY q.id LIMIT lim) y;
    ELSE
        RAISE EXCEPTION 'unknown personal-data section %', section USING ERRCODE = '22023';
    END IF;
    RETURN jsonb_build_object('items', COALESCE(items, '[]'::jsonb),
                              'next', CASE WHEN n >= lim THEN last END);
END $$;

-- ---- the erasure (014) of sealed answers ----
-- fv_erase_account replaced, in the data subject's own refused and quarantined submissions, every
-- answer equal to their name or email; SQL cannot compare a sealed answer, so those submissions'
-- answers and location are removed whole instead (migration 028's fv_erase_account does it).

-- ---- the workers' re-seal sweep of answers (worker/wk_seal_answers.c) ----
-- Answers in clear (written before this migration) or under an older data key version than
-- their org's highest are sealed again, in place: the response, every version's state (and the
-- event's copy of the answers), in one statement. History is append-only (012); a sweep's
-- statement declares itself (fv_history_reseal_begin, local to its transaction) and may then
-- change only how a version's answers are held: its state keeps every other member as it was
-- (members a state written before later migrations lacks may be filled from the row), and no
-- other column moves. A row the sweep cannot open is marked (answers_seal_error) and left alone;
-- an end-to-end encrypted envelope (stored as sent: ciphertext already) is marked so.
ALTER TABLE responses ADD COLUMN answers_seal_error text;
DROP INDEX responses_answers_clear;
CREATE INDEX responses_answers_clear ON responses (survey_id) WHERE answers_kv IS NULL AND answers_seal_error IS NULL;
ALTER TABLE quarantine ADD COLUMN answers_seal_error text;
ALTER TABLE refused_submissions ADD COLUMN answers_seal_error text;

CREATE FUNCTION fv_history_reseal_begin() RETURNS void
LANGUAGE sql AS $$
    SELECT set_config('fieldvault.history_reseal', txid_current()::text, true)
$$;

CREATE FUNCTION fv_history_reseal_active() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(current_setting('fieldvault.history_reseal', true), '') = txid_current()::text
$$;

CREATE OR REPLACE FUNCTION fv_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF fv_history_purge_active()
           AND to_jsonb(NEW) - ARRAY['state', 'data', 'location', 'message']
               = to_jsonb(OLD) - ARRAY['state', 'data', 'location', 'message'] THEN
            RETURN NEW;
        END IF;
        IF TG_TABLE_NAME = 'response_events' AND fv_history_reseal_active()
           AND to_jsonb(NEW) - ARRAY['state', 'data', 'location'] = to_jsonb(OLD) - ARRAY['state', 'data', 'location']
           AND NOT EXISTS (SELECT 1 FROM jsonb_each(OLD.state - ARRAY['data', 'location', 'answers_kv']) o
                           WHERE NEW.state -> o.key IS DISTINCT FROM o.value) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only (history: % refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'FV403';
END $$;

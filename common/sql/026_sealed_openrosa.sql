-- 026 (issue 12, envelope encryption at rest; docs/security.md "Envelope encryption"): the
-- OpenRosa instance XML and the attachments (photos, audio: personal data) are sealed under their
-- organisation's data key (025), by the programs (common/fv_datakey.c), never in SQL: PostgreSQL,
-- its dumps, its data directory and its backups hold only ciphertext of them.
--
-- Both are content-addressed side tables, so sealing and re-sealing (a rotated data key) never
-- rewrite a response or its history: a response and each of its versions' states name their XML
-- by its SHA-256 (responses.xml_sha256), and its attachments by name and SHA-256
-- (response_attachments, 023). A sealed value's associated data is its place:
--   response_xml.body      "fv:response_xml:<response id>:<sha256 hex>"
--   attachment_blobs.data  "fv:attachment_blobs:<org id>:<sha256 hex>"
-- so a sealed value copied to another row does not open. key_version: the org's data key version
-- it is sealed under (the same as its header says); NULL: in clear, from before this migration,
-- until the workers' re-seal sweep (worker/jobs/wk_reseal.c) seals it.

-- ---- the instance XML of every version of a response ----
CREATE TABLE response_xml (
    response_id uuid NOT NULL REFERENCES responses(id),
    sha256      bytea NOT NULL CHECK (length(sha256) = 32),
    org_id      uuid NOT NULL REFERENCES orgs(id),
    key_version integer CHECK (key_version >= 1),
    body        bytea NOT NULL CHECK (key_version IS NULL OR fv_dk_version(body) = key_version),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- why the re-seal sweep could not open it (a flipped byte, a value from another row, a master
    -- key gone from the key file): the sweep leaves such a row alone until an operator clears this
    seal_error  text,
    PRIMARY KEY (response_id, sha256)
);
CREATE INDEX response_xml_clear ON response_xml (org_id) WHERE key_version IS NULL;
CREATE INDEX response_xml_key ON response_xml (org_id, key_version);

ALTER TABLE responses ADD COLUMN xml_sha256 bytea CHECK (xml_sha256 IS NULL OR length(xml_sha256) = 32);

-- The XML received before this migration moves into response_xml (in clear until the sweep seals
-- it), from the responses and from every version's state; the states then name it by digest.
-- The history's append-only and completeness triggers are off for these two statements only:
-- they change how the XML is held, not what any version holds (the same XML, by its digest).
INSERT INTO response_xml (response_id, sha256, org_id, body)
SELECT DISTINCT ON (1, 2) v.response_id, sha256(convert_to(v.xml, 'UTF8')), s.org_id, convert_to(v.xml, 'UTF8')
FROM (SELECT r.id AS response_id, r.survey_id, r.xml FROM responses r WHERE r.xml IS NOT NULL
      UNION ALL
      SELECT e.response_id, r.survey_id, e.state->>'xml' FROM response_events e
      JOIN responses r ON r.id = e.response_id WHERE e.state->>'xml' IS NOT NULL) v
JOIN surveys s ON s.id = v.survey_id;

ALTER TABLE response_events DISABLE TRIGGER response_events_append_only;
UPDATE response_events
SET state = (state - 'xml') || jsonb_build_object('xml_sha256',
        CASE WHEN state->>'xml' IS NULL THEN NULL
             ELSE '\x' || encode(sha256(convert_to(state->>'xml', 'UTF8')), 'hex') END)
WHERE state ? 'xml';
ALTER TABLE response_events ENABLE TRIGGER response_events_append_only;

ALTER TABLE responses DISABLE TRIGGER responses_history_on_update;
UPDATE responses SET xml_sha256 = sha256(convert_to(xml, 'UTF8')) WHERE xml IS NOT NULL;
ALTER TABLE responses ENABLE TRIGGER responses_history_on_update;
ALTER TABLE responses DROP COLUMN xml;

-- ---- attachment contents, per organisation ----
-- Deduplicated by SHA-256 within an organisation (023 did so across all of them; each org's are
-- sealed under its own key now). size: of the content in clear.
ALTER TABLE response_attachments DROP CONSTRAINT response_attachments_sha256_fkey;
ALTER TABLE attachment_blobs RENAME TO attachment_blobs_023;
CREATE TABLE attachment_blobs (
    org_id      uuid NOT NULL REFERENCES orgs(id),
    sha256      bytea NOT NULL CHECK (length(sha256) = 32),
    size        bigint NOT NULL CHECK (size >= 0),
    key_version integer CHECK (key_version >= 1),
    data        bytea NOT NULL CHECK (key_version IS NULL OR fv_dk_version(data) = key_version),
    seal_error  text, -- as response_xml.seal_error
    PRIMARY KEY (org_id, sha256)
);
INSERT INTO attachment_blobs (org_id, sha256, size, data)
SELECT DISTINCT ON (a.org_id, b.sha256) a.org_id, b.sha256, b.size, b.data
FROM response_attachments a JOIN attachment_blobs_023 b ON b.sha256 = a.sha256;
DROP TABLE attachment_blobs_023;
ALTER TABLE response_attachments ADD CONSTRAINT response_attachments_blob_fkey
    FOREIGN KEY (org_id, sha256) REFERENCES attachment_blobs (org_id, sha256);
CREATE INDEX attachment_blobs_clear ON attachment_blobs (org_id) WHERE key_version IS NULL;
CREATE INDEX attachment_blobs_key ON attachment_blobs (org_id, key_version);

-- ---- the purge (023) on the new layout ----
-- A purge's 'purge' version of a response removes the OpenRosa side of the purged answers: the
-- XML of the response and of every version (the digests in the states, and the bodies), and the
-- attachments no remaining answer names (their contents too when no other response of the org
-- names them).
CREATE OR REPLACE FUNCTION fv_openrosa_purge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- the versions first: the response's own update is checked against its current version's
    -- state at the end of its statement (migration 012)
    UPDATE response_events SET state = state || '{"xml_sha256": null}'::jsonb
    WHERE response_id = NEW.response_id AND state->>'xml_sha256' IS NOT NULL;
    UPDATE responses SET xml_sha256 = NULL WHERE id = NEW.response_id AND xml_sha256 IS NOT NULL;
    DELETE FROM response_xml WHERE response_id = NEW.response_id;
    WITH d AS (DELETE FROM response_attachments a USING responses r
               WHERE a.response_id = NEW.response_id AND r.id = a.response_id
                 AND NOT jsonb_path_exists(r.data, '$.** ? (@ == $n)', jsonb_build_object('n', a.name))
               RETURNING a.org_id, a.sha256)
    DELETE FROM attachment_blobs b USING d
    WHERE b.org_id = d.org_id AND b.sha256 = d.sha256
      AND NOT EXISTS (SELECT 1 FROM response_attachments x WHERE x.org_id = b.org_id AND x.sha256 = b.sha256);
    RETURN NULL;
END $$;

-- ---- reading a sealed value: the data key it needs ----
-- The wrapped data key of org o's version v (NULL: v NULL, a value in clear), for the reader to
-- unwrap (or find in its ring) beside the value, in the same query.
CREATE FUNCTION fv_dk_wrapped(o uuid, v integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT k.wrapped FROM data_keys k WHERE k.scope = 'org:' || o AND k.version = v
$$;

-- ---- the organisation's attachment quota, kept by triggers ----
-- openrosa_org_quota_mb counts the bytes of an organisation's attachments (response_attachments
-- .size: each response that names a file counts it) and of the encrypted files its encrypted
-- submissions carry inside their envelope (the ODK format's submission.xml.enc and media, base64
-- in responses.data: their decoded size). The front end's check of each submission read the sum
-- of every attachment of the org (a scan that grew with every file stored); these rows hold it:
-- 8 shards per org, so that two transactions adding files for one org rarely wait on one row
-- (the shard is the transaction id modulo 8); the quota is the sum of an org's shards. Written
-- once per statement (transition tables), not per row.
CREATE TABLE org_storage (
    org_id uuid NOT NULL REFERENCES orgs(id),
    shard  smallint NOT NULL CHECK (shard BETWEEN 0 AND 7),
    bytes  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, shard)
);

-- The decoded bytes of an encrypted envelope's files (fv_odkcrypt.h), 0 for any other data.
CREATE FUNCTION fv_envelope_bytes(data jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(data) = 'object' AND jsonb_typeof(data->'encryptedXmlFile') = 'string'
                THEN length(data->>'encryptedXmlFile') * 3 / 4
                     + COALESCE((SELECT sum(length(m->>'content') * 3 / 4)
                                 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(data->'media') = 'array'
                                                                THEN data->'media' ELSE '[]' END) m), 0)
                ELSE 0 END
$$;

CREATE FUNCTION fv_org_storage_add(o uuid, delta bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO org_storage (org_id, shard, bytes)
    SELECT o, (txid_current() % 8)::smallint, delta WHERE o IS NOT NULL AND delta <> 0
    ON CONFLICT (org_id, shard) DO UPDATE SET bytes = org_storage.bytes + EXCLUDED.bytes
$$;

CREATE FUNCTION fv_org_storage_attachments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM fv_org_storage_add(n.org_id, n.total) FROM (
            SELECT org_id, sum(size)::bigint AS total FROM fv_new_rows GROUP BY org_id) n;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM fv_org_storage_add(o.org_id, -o.total) FROM (
            SELECT org_id, sum(size)::bigint AS total FROM fv_old_rows GROUP BY org_id) o;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER response_attachments_storage_ins AFTER INSERT ON response_attachments
    REFERENCING NEW TABLE AS fv_new_rows FOR EACH STATEMENT EXECUTE FUNCTION fv_org_storage_attachments();
CREATE TRIGGER response_attachments_storage_upd AFTER UPDATE ON response_attachments
    REFERENCING NEW TABLE AS fv_new_rows OLD TABLE AS fv_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION fv_org_storage_attachments();
CREATE TRIGGER response_attachments_storage_del AFTER DELETE ON response_attachments
    REFERENCING OLD TABLE AS fv_old_rows FOR EACH STATEMENT EXECUTE FUNCTION fv_org_storage_attachments();

-- Encrypted envelopes: counted when the response is inserted (they are never edited: an encrypted
-- survey's responses refuse edits, and purges leave them alone; deletes are soft). A row trigger
-- whose WHEN is checked without calling any function: the worker's batch insert of ordinary
-- submissions pays one jsonb key lookup per row, nothing more.
CREATE FUNCTION fv_org_storage_envelope() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fv_org_storage_add((SELECT s.org_id FROM surveys s WHERE s.id = NEW.survey_id),
                               fv_envelope_bytes(NEW.data));
    RETURN NULL;
END $$;
CREATE TRIGGER responses_storage_ins AFTER INSERT ON responses
    FOR EACH ROW WHEN (NEW.data ? 'encryptedXmlFile') EXECUTE FUNCTION fv_org_storage_envelope();

-- What is stored already.
INSERT INTO org_storage (org_id, shard, bytes)
SELECT org_id, 0, sum(b) FROM (
    SELECT a.org_id, a.size AS b FROM response_attachments a
    UNION ALL
    SELECT s.org_id, fv_envelope_bytes(r.data) FROM responses r JOIN surveys s ON s.id = r.survey_id
    WHERE jsonb_typeof(r.data->'encryptedXmlFile') = 'string') x
GROUP BY org_id HAVING sum(b) <> 0;

-- The org's bytes against its quota.
CREATE FUNCTION fv_org_storage_bytes(o uuid) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(sum(bytes), 0)::bigint FROM org_storage WHERE org_id = o
$$;

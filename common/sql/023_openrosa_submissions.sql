-- 023: OpenRosa submissions (issue 13, docs/api/openrosa.md): the instance XML kept byte for
-- byte with its response, and the attachments (photos, audio, ...) in PostgreSQL.

-- The XML as received in xml_submission_file and its meta/instanceID; NULL for a JSON
-- submission. Being columns of the response, both are in every version's state (history).
ALTER TABLE responses ADD COLUMN xml text, ADD COLUMN instance_id text;

-- Attachment contents, deduplicated by SHA-256 across all responses: one row per distinct
-- content, in a bytea (PostgreSQL TOASTs it into 2 kB chunks out of line; every front end and
-- worker reaches it as they reach the responses). Never deleted while an attachment names it.
CREATE TABLE attachment_blobs (
    sha256 bytea PRIMARY KEY CHECK (length(sha256) = 32),
    size   bigint NOT NULL CHECK (size >= 0),
    data   bytea NOT NULL
);

-- A response's attachments by file name, as the instance names them. org_id: the response's
-- survey's organisation, whose quota (openrosa_org_attachment_quota_bytes) counts size.
CREATE TABLE response_attachments (
    response_id  uuid NOT NULL REFERENCES responses(id),
    name         text NOT NULL,
    content_type text NOT NULL,
    size         bigint NOT NULL,
    sha256       bytea NOT NULL REFERENCES attachment_blobs(sha256),
    org_id       uuid NOT NULL REFERENCES orgs(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (response_id, name)
);
CREATE INDEX response_attachments_org ON response_attachments (org_id);
CREATE INDEX response_attachments_blob ON response_attachments (sha256);

-- An edit (meta/deprecatedID) finds the response holding the instance it replaces.
CREATE INDEX responses_deployment_instance ON responses (deployment_id, instance_id)
    WHERE instance_id IS NOT NULL;

-- A purge (migration 013) strips answers from the responses and their history, but the XML holds
-- them too: the XML of a response received before a purge of its survey is withheld (the API and
-- the export answer as if there were none), and so is an attachment no remaining answer names
-- (the purged answer was its file name).
CREATE OR REPLACE FUNCTION fv_openrosa_purged(x responses) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM survey_purges p
                   WHERE p.survey_id = x.survey_id AND p.purged_at >= x.received_at)
$$;

CREATE OR REPLACE FUNCTION fv_attachment_visible(x responses, name text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT fv_openrosa_purged(x)
        OR jsonb_path_exists(x.data, '$.** ? (@ == $n)', jsonb_build_object('n', name))
$$;

-- A purge's 'purge' version of a response (fv_job_purge_step, migration 013, inside its audited
-- fv_history_purge_begin) also removes the purged answers from the OpenRosa side: the XML of the
-- response and of every version's state, and the attachments no remaining answer names (their
-- contents too when no other response names them).
CREATE OR REPLACE FUNCTION fv_openrosa_purge() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gone bytea[];
BEGIN
    -- the versions first: the response's own update is checked against its current version's
    -- state at the end of its statement (migration 012)
    UPDATE response_events SET state = state || '{"xml": null}'::jsonb
    WHERE response_id = NEW.response_id AND state->>'xml' IS NOT NULL;
    UPDATE responses SET xml = NULL WHERE id = NEW.response_id AND xml IS NOT NULL;
    WITH d AS (DELETE FROM response_attachments a USING responses r
               WHERE a.response_id = NEW.response_id AND r.id = a.response_id
                 AND NOT jsonb_path_exists(r.data, '$.** ? (@ == $n)', jsonb_build_object('n', a.name))
               RETURNING a.sha256)
    SELECT array_agg(d.sha256) INTO gone FROM d;
    DELETE FROM attachment_blobs b WHERE b.sha256 = ANY (gone)
      AND NOT EXISTS (SELECT 1 FROM response_attachments x WHERE x.sha256 = b.sha256);
    RETURN NULL;
END $$;
CREATE TRIGGER response_events_openrosa_purge AFTER INSERT ON response_events
    FOR EACH ROW WHEN (NEW.action = 'purge') EXECUTE FUNCTION fv_openrosa_purge();

-- Who may submit to deployment d: its enumerators by the rule (004), and its live app users
-- (020: an app user is an enumerator of exactly its deployment). The submission lookup of the
-- front ends and the worker's checks of unverified entries ask this.
CREATE OR REPLACE FUNCTION fv_may_submit(u uuid, d uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(fv_app_user_verdict(u, d) = 'ok', fv_has_deployment_role(u, d, 'enumerator'))
$$;

-- Whether u sees deployment d for the submission's answers (403 rather than 404): an app user
-- sees its own deployment only.
CREATE OR REPLACE FUNCTION fv_sees_for_submit(u uuid, d uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(fv_app_user_verdict(u, d) = 'ok', fv_can_see_deployment(u, d))
$$;

-- 022: OpenRosa submissions (issue 13, docs/api/openrosa.md): the instance XML kept byte for
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

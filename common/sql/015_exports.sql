-- 015: the whole-organisation export (issue 11). POST /v1/orgs/{org}/exports creates a job of
-- kind 'export' (migration 013) and its exports row in one statement; a worker builds the zip
-- (worker/jobs/wk_job_export.c) and stores it here, in PostgreSQL, as numbered chunks of bounded
-- size, so every front end of every VM reads the same bytes (no file on one host's disk);
-- GET /v1/exports/{id} streams the chunks in order. A ready export expires after the worker's
-- export_ttl_s: the worker then deletes its chunks and marks the row 'expired' (the row stays,
-- so a late download answers 410 export_expired rather than a bare 404). docs/security.md,
-- "Export".

CREATE TABLE exports (
    id         uuid PRIMARY KEY REFERENCES jobs(id), -- the job's id is the export's
    org_id     uuid NOT NULL REFERENCES orgs(id),
    created_by uuid NOT NULL REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now(),
    state      text NOT NULL DEFAULT 'building' CHECK (state IN ('building', 'ready', 'failed', 'expired')),
    attempt    integer NOT NULL DEFAULT 0, -- the job claim whose chunks these are
    size       bigint,                     -- bytes of the zip (ready)
    chunks     integer,                    -- number of chunks (ready)
    sha256     text,                       -- of the whole zip (ready)
    expires_at timestamptz,                -- set when ready
    CHECK (state <> 'ready' OR (size IS NOT NULL AND chunks IS NOT NULL AND expires_at IS NOT NULL))
);
CREATE INDEX exports_org ON exports (org_id, created_at);
CREATE INDEX exports_expiry ON exports (expires_at) WHERE state = 'ready';

-- The zip's bytes: chunk seq (0, 1, ...) of at most 8 MiB (the worker writes export_chunk_bytes).
CREATE TABLE export_chunks (
    export_id uuid NOT NULL REFERENCES exports(id) ON DELETE CASCADE,
    seq       integer NOT NULL CHECK (seq >= 0),
    data      bytea NOT NULL CHECK (octet_length(data) BETWEEN 1 AND 8388608),
    PRIMARY KEY (export_id, seq)
);
-- The chunks are stored as they are: a zip is compressed already.
ALTER TABLE export_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Downloading export e: the org's admins only (with the TOTP session the org requires of its
-- admins), like starting one; 'hidden' for everybody else (no such export). Then the export's own
-- state: 'export_not_ready' while building or failed, 'export_expired' once expired.
CREATE FUNCTION fv_export_download_verdict(u uuid, e exports, mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN e.id IS NULL OR u IS NULL THEN 'hidden'
                WHEN v.verdict <> 'ok' THEN v.verdict
                WHEN e.state = 'expired' OR (e.state = 'ready' AND e.expires_at <= now()) THEN 'export_expired'
                WHEN e.state <> 'ready' THEN 'export_not_ready'
                ELSE 'ok' END
    FROM (SELECT CASE WHEN e.id IS NULL OR u IS NULL THEN 'hidden'
                      ELSE fv_org_admin_verdict(u, e.org_id, mfa) END AS verdict) v
$$;

CREATE FUNCTION fv_export_json(e exports) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', e.id, 'org_id', e.org_id, 'state', e.state,
                              'created_by', e.created_by, 'created_at', fv_ts(e.created_at),
                              'size', e.size, 'sha256', e.sha256, 'expires_at', fv_ts(e.expires_at),
                              'download', '/v1/exports/' || e.id)
$$;

-- The CSV columns of survey s: one per question of every definition version (in the order of
-- the newest version that has it, then older ones), a select_multiple question one column per
-- choice ("<question>/<choice>"). kind: 'value' (the answer as text) or 'choice' (1 when chosen,
-- 0 when answered without it, empty when unanswered).
CREATE FUNCTION fv_export_csv_columns(s uuid)
RETURNS TABLE (ord bigint, name text, question text, kind text, choice text)
LANGUAGE sql STABLE AS $$
    WITH q AS (SELECT DISTINCT ON (qq->>'name') qq->>'name' AS question, qq->>'type' AS type,
                      qq->'choices' AS choices, -v.version AS vrank, n AS pos
               FROM survey_versions v,
                    jsonb_array_elements(CASE WHEN jsonb_typeof(v.definition->'questions') = 'array'
                                              THEN v.definition->'questions' ELSE '[]'::jsonb END)
                        WITH ORDINALITY AS t(qq, n)
               WHERE v.survey_id = s AND qq ? 'name'
               ORDER BY qq->>'name', v.version DESC),
         cols AS (SELECT q.vrank, q.pos, 0::bigint AS cpos, q.question AS name, q.question, 'value' AS kind,
                         NULL::text AS choice
                  FROM q WHERE q.type IS DISTINCT FROM 'select_multiple'
                  UNION ALL
                  SELECT q.vrank, q.pos, c.n, q.question || '/' || (c.ch #>> '{}'), q.question, 'choice',
                         c.ch #>> '{}'
                  FROM q, jsonb_array_elements(CASE WHEN jsonb_typeof(q.choices) = 'array' THEN q.choices
                                                    ELSE '[]'::jsonb END) WITH ORDINALITY AS c(ch, n)
                  WHERE q.type = 'select_multiple')
    SELECT row_number() OVER (ORDER BY vrank, pos, cpos), name, question, kind, choice
    FROM cols ORDER BY vrank, pos, cpos
$$;

-- One response's CSV cells for the columns of its survey (fv_export_csv_columns, in order):
-- the fixed columns first (id, survey_version, status, submitted_by, collected_at, created_at,
-- updated_at, deleted_at, latitude, longitude), then one per column. Text, unescaped: the
-- worker quotes each cell and neutralises formulas (common/fv_csv.c).
CREATE FUNCTION fv_export_csv_row(x responses, cols jsonb) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY[x.id::text, x.survey_version::text, x.status, x.submitted_by::text,
                 fv_ts(x.collected_at), fv_ts(x.created_at), fv_ts(x.updated_at), fv_ts(x.deleted_at),
                 x.location->>'lat', x.location->>'lon']
           || COALESCE((SELECT array_agg(CASE WHEN c->>'kind' = 'choice' THEN
                                             CASE WHEN COALESCE(jsonb_typeof(x.data->(c->>'question')), 'null') <> 'array' THEN NULL
                                                  WHEN x.data->(c->>'question') @> jsonb_build_array(c->>'choice') THEN '1'
                                                  ELSE '0' END
                                         WHEN jsonb_typeof(x.data->(c->>'question')) IN ('object', 'array')
                                         THEN (x.data->(c->>'question'))::text
                                         ELSE x.data->>(c->>'question') END ORDER BY n)
                        FROM jsonb_array_elements(cols) WITH ORDINALITY AS t(c, n)), ARRAY[]::text[])
$$;

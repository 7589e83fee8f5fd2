-- 024 (issue 12, confidential mode; DESIGN.md section 3, docs/api/surveys-and-responses.md): a
-- survey is in confidential mode when its definition says "confidential_mode": true or one of its
-- questions is "confidential". For everybody but its survey admins, its confidential answers are
-- left out (as since 004) and its responses' GPS points (location and every geopoint answer) are
-- moved by an offset drawn once per response, so every read agrees and averaging reads reveals
-- nothing. Survey admins see the true points.

-- The offset's seed: 122 random bits from gen_random_uuid() (core PostgreSQL since 13; it draws
-- from pg_strong_random, OpenSSL's RAND_bytes in Debian's build: a CSPRNG, never random()).
-- A column DEFAULT, so every way a response is inserted draws one (the worker's batch insert gains
-- one C call per row and no SQL function), and the ALTER draws one for every existing response.
-- Never shown to anybody: fv_response_json does not output it (it is in the history states, which
-- the API shows only through fv_response_json too).
ALTER TABLE responses ADD COLUMN gps_seed uuid NOT NULL DEFAULT gen_random_uuid();

-- Drawn once: no update changes it. A revert (fv_revert_object, 013) writes every column from an
-- older version's state, and a state written before 024 has no gps_seed (null); without this the
-- revert would fail the NOT NULL, and a later seed would give a new offset (a second draw to
-- average). Fires only when an UPDATE names the column (edits and approvals do not).
CREATE FUNCTION fv_keep_gps_seed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.gps_seed := OLD.gps_seed;
    RETURN NEW;
END
$$;
CREATE TRIGGER responses_keep_gps_seed BEFORE UPDATE OF gps_seed ON responses
    FOR EACH ROW WHEN (NEW.gps_seed IS DISTINCT FROM OLD.gps_seed) EXECUTE FUNCTION fv_keep_gps_seed();

-- The radius of the displacement in metres: the definition's confidential_gps_radius_m (checked
-- by the front end, common/fv_form.c: 1 to 100000), default 1000.
CREATE FUNCTION fv_confidential_radius(definition jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(definition->'confidential_gps_radius_m') = 'number'
                THEN least(greatest((definition->>'confidential_gps_radius_m')::double precision, 1), 100000)
                ELSE 1000 END
$$;

-- The names of a definition's geopoint questions.
CREATE FUNCTION fv_geopoint_names(definition jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(array_agg(q->>'name'), '{}')
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(definition->'questions') = 'array'
                                   THEN definition->'questions' ELSE '[]'::jsonb END) q
    WHERE jsonb_typeof(q) = 'object' AND q->>'type' = 'geopoint'
$$;

-- Point p ({lat, lon, ...}) moved by the offset of seed within radius metres: distance
-- radius*sqrt(u) (uniform over the disc's area), bearing 2*pi*v, u and v from 32 random bits each
-- of the seed (u never 0: the moved point is never the true one). The offset in metres becomes
-- degrees on a sphere of the Earth's mean radius (longitude scaled by the latitude's cosine),
-- latitude clamped to [-90, 90], longitude wrapped into [-180, 180). Other members (accuracy,
-- altitude) are kept. Not a point (or no seed): null, never the true value.
CREATE FUNCTION fv_gps_displace(p jsonb, seed uuid, radius double precision) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    lat double precision;
    lon double precision;
    r double precision;
    a double precision;
BEGIN
    IF p IS NULL OR jsonb_typeof(p) = 'null' THEN
        RETURN p;
    END IF;
    IF seed IS NULL OR jsonb_typeof(p) <> 'object' OR jsonb_typeof(p->'lat') IS DISTINCT FROM 'number'
       OR jsonb_typeof(p->'lon') IS DISTINCT FROM 'number' THEN
        RETURN NULL;
    END IF;
    lat := (p->>'lat')::double precision;
    lon := (p->>'lon')::double precision;
    r := radius * sqrt((('x' || substr(seed::text, 1, 8))::bit(32)::bigint + 0.5) / 4294967296.0);
    a := 2 * pi() * ('x' || substr(seed::text, 29, 8))::bit(32)::bigint / 4294967296.0;
    lon := lon + degrees(r * sin(a) / (6371008.8 * greatest(cos(radians(lat)), 1e-9)));
    lat := least(90.0, greatest(-90.0, lat + degrees(r * cos(a) / 6371008.8)));
    RETURN p || jsonb_build_object('lat', lat, 'lon', lon - 360.0 * floor((lon + 180.0) / 360.0));
END
$$;

-- A response's answers as a non-admin sees them in confidential mode: without the confidential
-- answers, every geopoint answer moved by the response's offset.
CREATE FUNCTION fv_confidential_data(data jsonb, hidden text[], geo text[], seed uuid,
                                     radius double precision) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(data) <> 'object' THEN data - hidden
                ELSE (SELECT COALESCE(jsonb_object_agg(e.key, CASE WHEN e.key = ANY (geo)
                                                                   THEN fv_gps_displace(e.value, seed, radius)
                                                                   ELSE e.value END), '{}'::jsonb)
                      FROM jsonb_each(data - hidden) e) END
$$;

-- The masking facts of response x: the confidential names of the version it answered and of the
-- survey's current version (a question made confidential later hides old answers too), its
-- geopoint names, whether it is encrypted (022), whether either version is in confidential mode,
-- and the current version's radius.
CREATE FUNCTION fv_response_mask(x responses, OUT hidden text[], OUT geo text[], OUT encrypted boolean,
                                 OUT conf boolean, OUT radius double precision)
LANGUAGE sql STABLE AS $$
    SELECT h.names, fv_geopoint_names(a.definition) || fv_geopoint_names(c.definition),
           COALESCE(a.public_key IS NOT NULL, false),
           cardinality(h.names) > 0 OR COALESCE(a.definition->'confidential_mode' = 'true'::jsonb, false)
               OR COALESCE(c.definition->'confidential_mode' = 'true'::jsonb, false),
           fv_confidential_radius(COALESCE(c.definition, a.definition))
    FROM (SELECT 1) one
    LEFT JOIN survey_versions a ON a.survey_id = x.survey_id AND a.version = x.survey_version
    LEFT JOIN surveys s ON s.id = x.survey_id
    LEFT JOIN survey_versions c ON c.survey_id = s.id AND c.version = s.current_version
    CROSS JOIN LATERAL (SELECT fv_confidential_names(a.definition)
                               || CASE WHEN c.version IS DISTINCT FROM a.version
                                       THEN fv_confidential_names(c.definition) ELSE '{}' END AS names) h
$$;

-- True when a reader who is not survey admin sees response x masked (confidential mode).
CREATE FUNCTION fv_response_confidential(x responses) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT (fv_response_mask(x)).conf
$$;

-- A response as the API returns it: as in 022 (encrypted), plus confidential mode: for a reader
-- who is not survey admin (admin false), geopoint answers and location moved by the response's
-- offset (gps_seed) when the survey is in confidential mode. An encrypted response's data is the
-- envelope (no answers to move); its location is moved all the same.
CREATE OR REPLACE FUNCTION fv_response_json(x responses, admin boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', x.id, 'survey_id', x.survey_id, 'survey_version', x.survey_version,
        'deployment_id', x.deployment_id, 'status', x.status, 'stage', x.stage,
        'data', t.data, 'encrypted', t.encrypted, 'location', t.location,
        'submitted_by', x.submitted_by, 'collected_at', fv_ts(x.collected_at),
        'created_at', fv_ts(x.created_at), 'updated_at', fv_ts(x.updated_at), 'version', x.version)
        || CASE WHEN x.status = 'rejected' THEN jsonb_build_object('rejection_message', x.rejection_message)
                ELSE '{}'::jsonb END
    FROM (-- a survey admin (exports too): as stored, without reading the definitions
          SELECT x.data, EXISTS (SELECT 1 FROM survey_versions v WHERE v.survey_id = x.survey_id
                                 AND v.version = x.survey_version AND v.public_key IS NOT NULL) AS encrypted,
                 x.location
          WHERE admin IS TRUE
          UNION ALL
          SELECT CASE WHEN m.conf AND NOT m.encrypted
                      THEN fv_confidential_data(x.data, m.hidden, m.geo, x.gps_seed, m.radius)
                      ELSE x.data - m.hidden END,
                 m.encrypted,
                 CASE WHEN m.conf THEN fv_gps_displace(x.location, x.gps_seed, m.radius) ELSE x.location END
          FROM fv_response_mask(x) m WHERE admin IS NOT TRUE) t
$$;

-- One version of a response's history as the API shows it: as in 012, with the response's own
-- offset (the states written before 024 have no gps_seed; the offset is the response's, whichever
-- version is read, so the history agrees with the reads).
CREATE OR REPLACE FUNCTION fv_response_version_json(e response_events, admin boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('version', e.version, 'operation', e.action, 'actor', e.actor,
                              'at', fv_ts(e.at), 'override', e.override, 'message', e.message,
                              'deleted', e.state->>'deleted_at' IS NOT NULL,
                              'state', fv_response_json(jsonb_populate_record(NULL::responses,
                                  e.state || jsonb_build_object('gps_seed',
                                      (SELECT r.gps_seed FROM responses r WHERE r.id = e.response_id))),
                                  admin))
$$;

-- An edit by a reader who is not survey admin of a response in confidential mode: a geopoint
-- answer (or the location) sent back as the reader was shown it (the moved point) keeps the true
-- point stored, so reading, editing and saving never replaces the truth by its mask.
CREATE FUNCTION fv_gps_unmask(sent jsonb, stored jsonb, seed uuid, radius double precision) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(sent) = 'object' AND jsonb_typeof(sent->'lat') = 'number'
                     AND jsonb_typeof(sent->'lon') = 'number' AND m IS NOT NULL
                     AND (sent->>'lat')::double precision = (m->>'lat')::double precision
                     AND (sent->>'lon')::double precision = (m->>'lon')::double precision
                THEN stored ELSE sent END
    FROM fv_gps_displace(stored, seed, radius) m
$$;

CREATE FUNCTION fv_confidential_unmask_data(sent jsonb, stored jsonb, geo text[], seed uuid,
                                            radius double precision) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(sent) <> 'object' OR jsonb_typeof(stored) <> 'object' THEN sent
                ELSE (SELECT COALESCE(jsonb_object_agg(e.key, CASE WHEN e.key = ANY (geo)
                                                                   THEN fv_gps_unmask(e.value, stored->e.key, seed, radius)
                                                                   ELSE e.value END), '{}'::jsonb)
                      FROM jsonb_each(sent) e) END
$$;

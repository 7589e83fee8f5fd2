-- 022 (issue 12, end to end): a survey version may carry an RSA public key (the ODK
-- encrypted-submission format, common/fv_odkcrypt.h). Its submissions then arrive encrypted by
-- the client and are stored as received: responses.data holds the envelope (ciphertext), which
-- the server cannot read. (017 is unused and stays unused; 019 and 021 were taken by other
-- issues meanwhile, and 020 is left to the branch that may hold it.)
--
-- public_key: the key as PEM (SubjectPublicKeyInfo, normalised by the front end, at least 2048
-- bits); public_key_bytes: its modulus in bytes, the exact length of an envelope's wrapped key
-- and signature (the front end and the worker check it without parsing the key again).
ALTER TABLE survey_versions
    ADD COLUMN public_key text,
    ADD COLUMN public_key_bytes integer,
    ADD CONSTRAINT survey_versions_public_key_check
        CHECK ((public_key IS NULL) = (public_key_bytes IS NULL)
               AND (public_key_bytes IS NULL OR public_key_bytes BETWEEN 256 AND 1024)
               AND (public_key IS NULL OR octet_length(public_key) <= 16384));

-- A survey as the API returns it to u: as in 010, plus its XForm formID (form_id: the element
-- signature of an encrypted submission covers it, fv-decrypt needs it) and the current version's
-- public key (public_key: PEM, or null for a survey whose submissions are in clear).
CREATE OR REPLACE FUNCTION fv_survey_json(s surveys, u uuid, with_definition boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', s.id, 'org_id', s.org_id, 'name', s.name, 'version', s.current_version,
                              'created_at', fv_ts(s.created_at), 'updated_at', fv_ts(s.updated_at),
                              'role', fv_survey_role(u, s.id),
                              'archived', s.archived_at IS NOT NULL, 'archived_at', fv_ts(s.archived_at),
                              'form_id', COALESCE(s.xform_form_id, s.id::text),
                              'public_key', (SELECT v.public_key FROM survey_versions v
                                             WHERE v.survey_id = s.id AND v.version = s.current_version))
        || CASE WHEN with_definition THEN jsonb_build_object('definition', (
                SELECT v.definition FROM survey_versions v
                WHERE v.survey_id = s.id AND v.version = s.current_version))
           ELSE '{}'::jsonb END
$$;

-- A response as the API returns it: as in 006, plus `encrypted` (true when the version it was
-- submitted to has a public key: `data` is then the envelope as received, never answers).
CREATE OR REPLACE FUNCTION fv_response_json(x responses, admin boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', x.id, 'survey_id', x.survey_id, 'survey_version', x.survey_version,
        'deployment_id', x.deployment_id, 'status', x.status, 'stage', x.stage,
        'data', CASE WHEN admin THEN x.data
                     ELSE x.data - (SELECT fv_confidential_names(v.definition) FROM survey_versions v
                                    WHERE v.survey_id = x.survey_id AND v.version = x.survey_version) END,
        'encrypted', EXISTS (SELECT 1 FROM survey_versions v WHERE v.survey_id = x.survey_id
                             AND v.version = x.survey_version AND v.public_key IS NOT NULL),
        'location', x.location, 'submitted_by', x.submitted_by, 'collected_at', fv_ts(x.collected_at),
        'created_at', fv_ts(x.created_at), 'updated_at', fv_ts(x.updated_at), 'version', x.version)
        || CASE WHEN x.status = 'rejected' THEN jsonb_build_object('rejection_message', x.rejection_message)
                ELSE '{}'::jsonb END
$$;

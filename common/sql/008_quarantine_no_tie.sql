-- 007: a refused unverified submission from someone with no tie to the deployment's organisation
-- (not a member of it, no grant or role on the survey or the deployment) is kept for the
-- operator only: org_visible false hides it from GET /v1/orgs/{org}/quarantine, fvctl quarantine
-- lists it. The organisation's audit log gets one content-free entry (no answers, no reason
-- text from the submission, no submitter) so its admins know a refused submission named their
-- deployment; the full entry is in the quarantine row and an operator-level audit row (org_id
-- NULL). So an outsider cannot write content into another organisation's quarantine or audit log
-- by naming its deployment while PostgreSQL is down.
ALTER TABLE quarantine ADD COLUMN org_visible boolean NOT NULL DEFAULT true;
CREATE INDEX quarantine_operator ON quarantine (id) WHERE NOT org_visible;

-- True when u has a tie to deployment d's organisation: a membership in it, a role in one of its
-- deployments' or a grant on the survey (fv_can_see_deployment covers roles and grants).
CREATE FUNCTION fv_has_tie(u uuid, d uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM deployments x JOIN surveys s ON s.id = x.survey_id
        WHERE x.id = d AND (fv_is_org_member(u, s.org_id) OR fv_can_see_deployment(u, d)))
$$;

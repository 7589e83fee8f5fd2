-- 018: one verdict for "may u give a membership at this place of org": PUT members and
-- invitations asked the same five questions in two statements.

-- Giving a membership on branch (or team) of org, whose root branch is root (NULL: no such org):
-- 'hidden' unless u is a member of org; 'invalid:<field>:<why>' for a branch or team of another
-- org; else the verdict of fv_admin_verdict (an admin of the branch or above it, the org's TOTP
-- policy included).
CREATE OR REPLACE FUNCTION fv_membership_place_verdict(u uuid, org uuid, branch uuid, team uuid, root uuid,
                                                       mfa boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN root IS NULL OR NOT fv_is_org_member(u, org) THEN 'hidden'
        WHEN branch IS NOT NULL AND NOT EXISTS (SELECT 1 FROM branches b WHERE b.id = branch AND b.org_id = org)
          THEN 'invalid:branch_id:not a branch of this organisation'
        WHEN team IS NOT NULL AND NOT EXISTS (SELECT 1 FROM teams x WHERE x.id = team AND x.org_id = org)
          THEN 'invalid:team_id:not a team of this organisation'
        ELSE fv_admin_verdict(u, org, branch, mfa) END
$$;

-- 021: a member's removal and the writes that name that member are serialised on the member's
-- rows, so neither can miss the other (issue 10's documented race, docs/security.md "Limits").
--
-- One statement sees one snapshot: a removal whose statement began just before another admin's
-- PUT of a further membership (or a grant, or a deployment role naming the user) committed did
-- not see that row and left it in place. The writers lock the member's membership rows (PUT
-- members FOR UPDATE, grants and deployment roles FOR SHARE) in the statement that checks the
-- membership; the removal first locks the same rows FOR UPDATE in a statement of its own and only
-- then, in a second statement with a fresh snapshot (a VOLATILE plpgsql function takes one per
-- statement), deletes. So either the writer committed first, and the removal's delete sees and
-- removes what it wrote, or the removal holds the rows, and the writer waits and then finds them
-- deleted (not a member: 409 not_a_member / 422 principal_not_member).

-- Removes every membership of p_user in p_org, or only the one on p_branch or p_team, as
-- DELETE /v1/orgs/{org}/members/{user} (frontend/api/orgs/fe_orgs.c says what it removes and
-- audits). Returns (verdict, NULL): 'ok', 'no_such_membership', 'last_admin' or the admin verdict.
CREATE OR REPLACE FUNCTION fv_member_remove(p_actor uuid, p_org uuid, p_mfa boolean, p_user uuid,
                                            p_branch uuid, p_team uuid, p_addr text)
RETURNS TABLE (verdict text, body text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    PERFORM 1 FROM memberships m WHERE m.org_id = p_org AND m.user_id = p_user ORDER BY m.id FOR UPDATE;
    RETURN QUERY
    WITH o AS (SELECT x.id, x.root_branch_id FROM orgs x WHERE x.id = p_org),
         sel AS (SELECT m.id, m.role, m.branch_id, m.team_id FROM memberships m
                 WHERE m.org_id = p_org AND m.user_id = p_user
                   AND (p_branch IS NULL OR m.branch_id = p_branch)
                   AND (p_team IS NULL OR m.team_id = p_team)),
         v AS (SELECT CASE
                 WHEN x.verdict <> 'ok' THEN x.verdict
                 WHEN NOT EXISTS (SELECT 1 FROM sel) THEN 'no_such_membership'
                 WHEN EXISTS (SELECT 1 FROM sel, o WHERE sel.branch_id = o.root_branch_id)
                      AND fv_is_last_org_admin(p_user, p_org) THEN 'last_admin'
                 ELSE 'ok' END AS verdict
               FROM (SELECT fv_org_admin_verdict(p_actor, p_org, p_mfa) AS verdict) x),
         d AS (DELETE FROM memberships m WHERE m.id IN (SELECT sel.id FROM sel)
               AND (SELECT v.verdict FROM v) = 'ok' RETURNING m.role, m.branch_id, m.team_id),
         gone AS (SELECT 1 AS yes WHERE EXISTS (SELECT 1 FROM d) AND NOT EXISTS (
                      SELECT 1 FROM memberships m WHERE m.org_id = p_org AND m.user_id = p_user
                      AND m.id NOT IN (SELECT sel.id FROM sel))),
         dg AS (DELETE FROM survey_grants g USING surveys s, gone
                WHERE g.survey_id = s.id AND s.org_id = p_org AND g.principal_type = 'user'
                  AND g.principal_id = p_user RETURNING g.survey_id, g.role),
         dr AS (DELETE FROM deployment_roles r USING deployments x, surveys s, gone
                WHERE r.deployment_id = x.id AND x.survey_id = s.id AND s.org_id = p_org
                  AND r.principal_type = 'user' AND r.principal_id = p_user
                RETURNING r.deployment_id, r.role, r.stage),
         rv AS (INSERT INTO revocations (kind, subject, expires_at)
                SELECT 'permissions', p_user::text, now() + interval '1 day' WHERE EXISTS (SELECT 1 FROM d)),
         a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail)
               SELECT p_actor, 'member.remove', 'user', p_user::text, NULLIF(p_addr, '')::inet, p_org,
                      jsonb_build_object('removed', (SELECT jsonb_agg(jsonb_build_object(
                          'role', d.role, 'branch_id', d.branch_id, 'team_id', d.team_id)) FROM d),
                        'left_org', EXISTS (SELECT 1 FROM gone),
                        'grants', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                            'survey_id', dg.survey_id, 'role', dg.role)) FROM dg), '[]'),
                        'deployment_roles', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                            'deployment_id', dr.deployment_id, 'role', dr.role, 'stage', dr.stage))
                            FROM dr), '[]'),
                        'creator_of', COALESCE((SELECT jsonb_agg(s.id ORDER BY s.id) FROM surveys s, gone
                            WHERE s.org_id = p_org AND s.created_by = p_user), '[]'),
                        'grants_made', (SELECT count(*) FROM survey_grants g JOIN surveys s
                            ON s.id = g.survey_id WHERE s.org_id = p_org AND g.granted_by = p_user
                            AND EXISTS (SELECT 1 FROM gone)
                            AND NOT (g.principal_type = 'user' AND g.principal_id = p_user)))
               WHERE EXISTS (SELECT 1 FROM d))
    SELECT v.verdict, NULL::text FROM v;
END
$$;

"""The permission table of the access contract: who may do what (issue 3).

One row per endpoint, one column per role; each cell is the status the caller gets:
    2xx  allowed            403  visible but not allowed      404  not visible at all
    401  not signed in      409  allowed, but the response is not waiting for approval (a restore:
                                 the object is not deleted)
test_permissions.py builds the world below and tries every cell; LIST_ROWS says which rows of
each list a role sees (exactly: a row a role may not see in a list fails the test).

The world (test_permissions.py):
    org A: root -> region -> district, and a sibling region2; team T
    survey S (read-only world) and survey M (the same shape, for the cells that change things),
    each created by org_admin and deployed:
      D  to region: enumerators [branch region], viewers [team T], managers [user manager],
         approvers [[user approver1], [user approver2]]          (two approval stages)
      D2 to region: enumerators [user enumerator2]                (no approval stages)
    survey grants: viewer -> user survey_viewer, admin -> user survey_admin
    memberships (role member unless said): enumerator and enumerator2 in region, dep_viewer in
      team T, org_admin admin on root, below in district, beside in region2, other_org admin of
      org B. manager, approvers, the survey grantees and {grantee} are named as users and are
      members of branch region3 (under root, named nowhere): rights on an org's objects need a
      membership of the org (migration 009), and this one confers nothing else, so in the org and
      site rows they answer as beside does.
    responses of S (inserted as the worker writes them), submitted by enumerator unless said:
      p1 pending at stage 1, p2 pending at stage 2, fin final, rej rejected at stage 1,
      p1x pending at stage 1 by enumerator2, oth final in D2 by enumerator2, del final and deleted.
Paths: {survey} {dep} {dep2} {p1} {p2} {fin} {rej} {del} name objects of S; {msurvey} {mdep}
name M's; {fresh:<status>:<stage>} is a new response of M's D made for the cell.
Note: org_admin is in branch region (root is above it), so it is also an enumerator of D.
Org A also manages three sites made by org_admin: {pub} public, {prot} protected, {priv}
private; {fresh_site} is a new private one, {fresh_member} a new member of org A and
{fresh_invitation} a new invitation of stranger to org A's root (by org_admin), made for
the cell ({oa_key} and {susp_key} too: API keys made with SQL; {fresh_session} a live session of
org_admin's). The identity rows show the
credential rules: logout and the second factor need a session, a password change the current
password (the table's users have API keys and no password). {org} is org A, {grantee} a member with no role, {outsider} a user of no org, org_b the other org's id in lists.
"""

ROLES = ["anonymous", "stranger", "other_org", "enumerator", "dep_viewer", "manager",
         "approver1", "approver2", "survey_viewer", "survey_admin", "org_admin", "below", "beside"]

# fmt: off
ROWS = [
    # method, path                                        anon strn othr enum dviw mngr apr1 apr2 sviw sadm oadm belw besd
    # ---- access: surveys, grants, deployments, responses ----
    ("POST",   "/v1/surveys",                              401, 404, 404, 201, 201, 201, 201, 201, 201, 201, 201, 201, 201),
    ("GET",    "/v1/surveys",                              401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET",    "/v1/surveys/{survey}",                     401, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 404, 404),
    ("PUT",    "/v1/surveys/{msurvey}/definition",         401, 404, 404, 403, 403, 403, 403, 403, 403, 200, 200, 404, 404),
    ("PUT",    "/v1/surveys/{msurvey}/access",             401, 404, 404, 403, 403, 403, 403, 403, 403, 200, 200, 404, 404),
    # purge (issue 11): survey admins, from a TOTP session always (the table's callers hold API keys)
    ("POST",   "/v1/surveys/{msurvey}/purge",              401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 403, 404, 404),
    ("POST",   "/v1/surveys/{msurvey}/deployments",        401, 404, 404, 403, 403, 403, 403, 403, 403, 201, 201, 404, 404),
    ("GET",    "/v1/surveys/{survey}/deployments",         401, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 404, 404),
    ("GET",    "/v1/deployments/{dep}",                    401, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 404, 404),
    ("GET",    "/v1/deployments/{dep2}",                   401, 404, 404, 404, 404, 404, 404, 404, 200, 200, 200, 404, 404),
    ("POST",   "/v1/deployments/{mdep}/responses",         401, 404, 404, 202, 403, 403, 403, 403, 403, 403, 202, 404, 404),
    ("GET",    "/v1/surveys/{survey}/responses",           401, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 404, 404),
    ("GET",    "/v1/submissions/{fin}",                    401, 404, 404, 200, 404, 404, 404, 404, 404, 404, 404, 404, 404),
    ("GET",    "/v1/responses/{p1}",                       401, 404, 404, 200, 404, 200, 200, 404, 404, 200, 200, 404, 404),
    ("GET",    "/v1/responses/{p2}",                       401, 404, 404, 200, 404, 200, 404, 200, 404, 200, 200, 404, 404),
    ("GET",    "/v1/responses/{fin}",                      401, 404, 404, 200, 200, 200, 200, 200, 404, 200, 200, 404, 404),
    ("GET",    "/v1/responses/{rej}",                      401, 404, 404, 200, 404, 200, 404, 404, 404, 200, 200, 404, 404),
    ("GET",    "/v1/responses/{del}",                      401, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404),
    ("PATCH",  "/v1/responses/{fresh:pending:1}",          401, 404, 404, 403, 404, 200, 403, 404, 404, 200, 200, 404, 404),
    ("PATCH",  "/v1/responses/{fresh:rejected:1}",         401, 404, 404, 200, 404, 200, 404, 404, 404, 200, 200, 404, 404),
    ("DELETE", "/v1/responses/{fresh:final:0}",            401, 404, 404, 403, 403, 204, 403, 403, 404, 204, 204, 404, 404),
    ("POST",   "/v1/responses/{fresh:pending:1}/approve",  401, 404, 404, 403, 404, 200, 200, 404, 404, 200, 200, 404, 404),
    ("POST",   "/v1/responses/{fresh:pending:2}/approve",  401, 404, 404, 403, 404, 200, 404, 200, 404, 200, 200, 404, 404),
    ("POST",   "/v1/responses/{fresh:final:0}/approve",    401, 404, 404, 403, 403, 409, 409, 409, 404, 409, 409, 404, 404),
    ("POST",   "/v1/responses/{fresh:pending:1}/reject",   401, 404, 404, 403, 404, 200, 200, 404, 404, 200, 200, 404, 404),
    ("POST",   "/v1/responses/{fresh:pending:2}/reject",   401, 404, 404, 403, 404, 200, 404, 200, 404, 200, 200, 404, 404),
    # management (issue 10): grants listed by survey admins only (viewers see the survey: 403);
    # {fresh_grantee} a user granted viewer on M for the cell; {fresh_dep} a new deployment of M
    # shaped as D; {fresh_survey} a new survey shaped as S, {fresh_archived} one archived
    ("GET",    "/v1/surveys/{survey}/access",              401, 404, 404, 403, 403, 403, 403, 403, 403, 200, 200, 404, 404),
    ("DELETE", "/v1/surveys/{msurvey}/access/{ptype_user}/{fresh_grantee}", 401, 404, 404, 403, 403, 403, 403, 403, 403, 204, 204, 404, 404),
    ("PATCH",  "/v1/deployments/{fresh_dep}",              401, 404, 404, 403, 403, 200, 403, 403, 403, 200, 200, 404, 404),
    ("POST",   "/v1/surveys/{fresh_survey}/archive",       401, 404, 404, 403, 403, 403, 403, 403, 403, 200, 200, 404, 404),
    ("POST",   "/v1/surveys/{fresh_archived}/unarchive",   401, 404, 404, 403, 403, 403, 403, 403, 403, 200, 200, 404, 404),
    # history (issue 11): a response's history is read by exactly those who read the response; a
    # deleted one's by its managers only, who restore it ({fresh_del}: a new deleted response of M)
    ("GET",    "/v1/responses/{p1}/history",               401, 404, 404, 200, 404, 200, 200, 404, 404, 200, 200, 404, 404),
    ("GET",    "/v1/responses/{fin}/history",              401, 404, 404, 200, 200, 200, 200, 200, 404, 200, 200, 404, 404),
    ("GET",    "/v1/responses/{rej}/history",              401, 404, 404, 200, 404, 200, 404, 404, 404, 200, 200, 404, 404),
    ("GET",    "/v1/responses/{del}/history",              401, 404, 404, 404, 404, 200, 404, 404, 404, 200, 200, 404, 404),
    ("POST",   "/v1/responses/{fresh_del}/restore",        401, 404, 404, 404, 404, 200, 404, 404, 404, 200, 200, 404, 404),
    ("POST",   "/v1/responses/{fresh:final:0}/restore",    401, 404, 404, 403, 403, 409, 403, 403, 404, 409, 409, 404, 404),
    ("GET",    "/v1/surveys/{survey}/xform",               401, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 404, 404),
    ("PUT",    "/v1/surveys/{msurvey}/media/{logo}",       401, 404, 404, 403, 403, 403, 403, 403, 403, 200, 200, 404, 404),
    # OpenRosa: enumerators read; others who see the deployment get an empty form list and 403
    ("GET",    "/v1/openrosa/deployments/{dep}/formList",  401, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 404, 404),
    ("GET",    "/v1/openrosa/deployments/{dep}/form",      401, 404, 404, 200, 403, 403, 403, 403, 403, 403, 200, 404, 404),
    ("GET",    "/v1/openrosa/deployments/{dep}/manifest",  401, 404, 404, 200, 403, 403, 403, 403, 403, 403, 200, 404, 404),
    ("GET",    "/v1/openrosa/deployments/{dep}/media/{nomedia}", 401, 404, 404, 404, 403, 403, 403, 403, 403, 403, 404, 404, 404),
    # OpenRosa submissions (answers in the OpenRosa envelope): M's D, a fresh instance per cell
    ("HEAD",   "/v1/openrosa/deployments/{mdep}/submission", 401, 204, 204, 204, 204, 204, 204, 204, 204, 204, 204, 204, 204),
    ("POST",   "/v1/openrosa/deployments/{mdep}/submission", 401, 404, 404, 201, 403, 403, 403, 403, 403, 403, 201, 404, 404),
    # no response of the table was sent as XML: 404 for every reader too (the reading rule of
    # these two is GET /v1/responses/{id}'s: test_openrosa_submissions.py)
    ("GET",    "/v1/responses/{fin}/xml",                  401, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404),
    ("GET",    "/v1/responses/{fin}/attachments/{nomedia}", 401, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404),
    # app users (OpenRosa tokens, migration 020): the deployment's managers, as for PATCH;
    # {fresh_app_user} an app user of M's D made with SQL
    ("POST",   "/v1/deployments/{mdep}/app-users",         401, 404, 404, 403, 403, 201, 403, 403, 403, 201, 201, 404, 404),
    ("GET",    "/v1/deployments/{dep}/app-users",          401, 404, 404, 403, 403, 200, 403, 403, 403, 200, 200, 404, 404),
    ("DELETE", "/v1/deployments/{mdep}/app-users/{fresh_app_user}", 401, 404, 404, 403, 403, 204, 403, 403, 403, 204, 204, 404, 404),
    # ---- access end ----

    # ---- orgs: organisations, branches, teams, members, audit, quarantine ----
    ("POST",   "/v1/orgs",                                 401, 201, 201, 201, 201, 201, 201, 201, 201, 201, 201, 201, 201),
    ("GET",    "/v1/orgs",                                 401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET",    "/v1/orgs/{org}",                           401, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("PATCH",  "/v1/orgs/{org}",                           401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 200, 403, 403),
    ("POST",   "/v1/orgs/{org}/branches",                  401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 201, 403, 403),
    ("GET",    "/v1/orgs/{org}/branches",                  401, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("POST",   "/v1/orgs/{org}/teams",                     401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 201, 403, 403),
    ("GET",    "/v1/orgs/{org}/teams",                     401, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("PUT",    "/v1/orgs/{org}/members/{grantee}",         401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 200, 403, 403),
    ("DELETE", "/v1/orgs/{org}/members/{fresh_member}",    401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 204, 403, 403),
    ("GET",    "/v1/orgs/{org}/members",                   401, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET",    "/v1/orgs/{org}/audit",                     401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 200, 403, 403),
    ("GET",    "/v1/orgs/{org}/quarantine",                401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 200, 403, 403),
    # one membership only (issue 10): the one on branch region2 of {fresh_member}; the org's grants
    ("DELETE", "/v1/orgs/{org}/members/{fresh_member}?branch_id={region2}", 401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 204, 403, 403),
    ("GET",    "/v1/orgs/{org}/grants",                    401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 200, 403, 403),
    ("GET",    "/v1/orgs/{org}/grants?granted_by={grantee}", 401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 200, 403, 403),
    # joining needs consent: PUT members only for members (409 not_a_member for {outsider}, a
    # user with no membership); invitations by whoever may set the membership
    # ({fresh_invitation}: to the root, for stranger, by org_admin)
    ("PUT",    "/v1/orgs/{org}/members/{outsider}",        401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 409, 403, 403),
    ("POST",   "/v1/orgs/{org}/invitations",               401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 201, 403, 403),
    ("GET",    "/v1/orgs/{org}/invitations",               401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 200, 403, 403),
    ("DELETE", "/v1/orgs/{org}/invitations/{fresh_invitation}", 401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 204, 403, 403),
    ("GET",    "/v1/orgs/{org}/teams/{team}/members",      401, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET",    "/v1/orgs/{org}/branches/{region}/members", 401, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    # revert of a (compromised) account's changes: a job, for the org admin (issue 11)
    ("POST",   "/v1/orgs/{org}/revert",                    401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 202, 403, 403),
    # exports (issue 11): the org's admins only ({export}: a ready export of org A, made with SQL;
    # the POST cell of org_admin starts a real export job)
    ("POST",   "/v1/orgs/{org}/exports",                   401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 202, 403, 403),
    ("GET",    "/v1/exports/{export}",                     401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 200, 403, 403),
    # ---- orgs end ----

    # ---- sites: {pub} public, {prot} protected, {priv} private, all managed by org A ----
    ("POST",   "/v1/sites",                                401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 201, 403, 403),
    ("GET",    "/v1/sites",                                200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET",    "/v1/sites/{pub}",                          200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET",    "/v1/sites/{prot}",                         404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET",    "/v1/sites/{priv}",                         404, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("PATCH",  "/v1/sites/{pub}",                          401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 403),
    ("PATCH",  "/v1/sites/{priv}",                         401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 200, 403, 403),
    ("DELETE", "/v1/sites/{fresh_site}",                   401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 204, 403, 403),
    # history (issue 11): read by those who see the site (a deleted one's: those who may change it,
    # and restore it); {fresh_del_site}: a new private site org_admin deleted
    ("GET",    "/v1/sites/{pub}/history",                  200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET",    "/v1/sites/{prot}/history",                 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET",    "/v1/sites/{priv}/history",                 404, 404, 404, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET",    "/v1/sites/{fresh_del_site}/history",       404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 200, 404, 404),
    ("POST",   "/v1/sites/{fresh_del_site}/restore",       401, 404, 404, 404, 404, 404, 404, 404, 404, 404, 200, 404, 404),
    ("POST",   "/v1/sites/{pub}/restore",                  401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 409, 403, 403),
    ("POST",   "/v1/sites/{priv}/restore",                 401, 404, 404, 403, 403, 403, 403, 403, 403, 403, 409, 403, 403),
    # ---- sites end ----

    # ---- jobs (issue 11): {job} a finished job of org A created by enumerator, read by the org's
    # admins and its creator (a member) ----
    ("GET",    "/v1/jobs/{job}",                           401, 404, 404, 200, 404, 404, 404, 404, 404, 404, 200, 404, 404),
    # ---- jobs end ----

    # ---- api keys: {oa_key} a fresh key of org_admin, {susp_key} a fresh suspended key of enumerator ----
    # (the table's callers sign in with API keys: a key may not mint keys, a session may)
    ("POST",   "/v1/me/api-keys",                          401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403),
    ("GET",    "/v1/me/api-keys",                          401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("DELETE", "/v1/me/api-keys/{oa_key}",                 401, 404, 404, 404, 404, 404, 404, 404, 404, 404, 204, 404, 404),
    ("POST",   "/v1/api-keys/{susp_key}/reinstate",        401, 404, 404, 403, 404, 404, 404, 404, 404, 404, 200, 404, 404),
    # ---- api keys end ----

    # ---- identity: accounts, sessions, TOTP (the table's callers hold API keys, no session) ----
    ("POST",   "/v1/users",                                202, 202, 202, 202, 202, 202, 202, 202, 202, 202, 202, 202, 202),
    ("POST",   "/v1/auth/login",                           200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("POST",   "/v1/auth/logout",                          401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403),
    ("GET",    "/v1/me",                                   401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("PUT",    "/v1/me/password",                          401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403),
    ("POST",   "/v1/me/totp",                              401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403),
    ("POST",   "/v1/me/totp/confirm",                      401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403),
    ("DELETE", "/v1/me/totp",                              401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403),
    # the caller's own sessions: listed by anyone signed in; ended only with a session (the
    # table's callers use API keys) and the password again
    ("GET",    "/v1/me/sessions",                          401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("DELETE", "/v1/me/sessions",                          401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403),
    ("DELETE", "/v1/me/sessions/{fresh_session}",          401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403),
    # the caller's invitations ({fresh_invitation} is stranger's): accepting needs a session and
    # the password (the table's callers hold API keys); declining is the invitee's
    ("GET",    "/v1/me/invitations",                       401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("POST",   "/v1/me/invitations/{fresh_invitation}/accept", 401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403),
    ("POST",   "/v1/me/invitations/{fresh_invitation}/decline", 401, 204, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404),
    # personal data (issue 11): the caller's own document, for anyone signed in; erasure needs a
    # session and the password (the table's callers hold API keys: 403 session_required)
    ("GET",    "/v1/me/personal-data",                     401, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("POST",   "/v1/me/erase",                             401, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403),
    # ---- identity end ----
    # ---- other areas end ----
]
# fmt: on

# Exactly which labelled rows each role finds in a list (roles not named answer as ROWS says:
# 401/404, no list). A survey a role created itself (the POST /v1/surveys cells) may appear too.
LIST_ROWS = {
    "/v1/surveys": {
        "stranger": set(), "other_org": set(), "below": set(), "beside": set(),
        **{r: {"survey", "msurvey"} for r in ("enumerator", "dep_viewer", "manager", "approver1",
                                              "approver2", "survey_viewer", "survey_admin", "org_admin")},
    },
    "/v1/surveys/{survey}/deployments": {
        **{r: {"dep"} for r in ("enumerator", "dep_viewer", "manager", "approver1", "approver2")},
        **{r: {"dep", "dep2"} for r in ("survey_viewer", "survey_admin", "org_admin")},
    },
    "/v1/surveys/{survey}/responses": {
        "enumerator":    {"p1", "p2", "fin", "rej"},
        "dep_viewer":    {"fin"},
        "manager":       {"p1", "p2", "fin", "rej", "p1x"},
        "approver1":     {"p1", "p1x", "fin"},
        "approver2":     {"p2", "fin"},
        "survey_viewer": set(),
        "survey_admin":  {"p1", "p2", "fin", "rej", "p1x", "oth"},
        "org_admin":     {"p1", "p2", "fin", "rej", "p1x", "oth"},
    },
}

# Lists of org A's objects: the roles that may list them see exactly these labelled rows (and,
# for branches and teams, any made by a POST cell; for members, users added by cells).
MEMBERS_A = ("enumerator", "dep_viewer", "manager", "approver1", "approver2", "survey_viewer", "survey_admin",
             "org_admin", "below", "beside")
LIST_ROWS["/v1/sites?org={org}"] = {
    "anonymous": {"pub"},
    **{r: {"pub", "prot"} for r in ("stranger", "other_org")},
    **{r: {"pub", "prot", "priv"} for r in MEMBERS_A},
}
LIST_ROWS["/v1/orgs"] = {
    "stranger": set(),
    **{r: {"org"} for r in MEMBERS_A},
    "other_org": {"org_b"},
}

# Bodies of the cells that need one, by (method, path).
BODIES = {
    ("POST", "/v1/surveys"): lambda w: {"org_id": w.org_id, "name": "made by a cell", "definition": w.definition},
    ("PUT", "/v1/surveys/{msurvey}/definition"): lambda w: {"definition": w.definition},
    ("PUT", "/v1/surveys/{msurvey}/media/{logo}"): lambda w: {"content_type": "image/png", "content_base64": "iVBORw0K"},
    ("PUT", "/v1/surveys/{msurvey}/access"): lambda w: {"principal_type": "user", "principal_id": w.grantee,
                                                       "role": "viewer"},
    ("POST", "/v1/surveys/{msurvey}/deployments"): lambda w: {"name": "made by a cell", "branch_id": w.region,
                                                             "roles": {}},
    ("POST", "/v1/deployments/{mdep}/responses"): lambda w: {"data": w.answers},
    # multipart: {"__files__": [...]} (test_permissions.py sends it as files)
    ("POST", "/v1/openrosa/deployments/{mdep}/submission"): lambda w: {"__files__": w.openrosa_instance()},
    ("PATCH", "/v1/responses/{fresh:pending:1}"): lambda w: {"data": w.answers},
    ("PATCH", "/v1/responses/{fresh:rejected:1}"): lambda w: {"data": w.answers},
    ("POST", "*/reject"): lambda w: {"message": "not good enough"},
    ("POST", "*/approve"): lambda w: {},
    ("POST", "/v1/orgs"): lambda w: {"name": "made by a cell"},
    ("POST", "/v1/me/api-keys"): lambda w: {"name": "made by a cell", "current_password": w.password},
    ("POST", "/v1/users"): lambda w: {"email": f"cell-{w.next_id()}@example.org", "name": "Cell",
                                      "password": w.password},
    ("POST", "/v1/auth/login"): lambda w: {"email": w.login_email, "password": w.password},
    ("PUT", "/v1/me/password"): lambda w: {"current_password": w.password, "new_password": w.password + "!"},
    ("POST", "/v1/me/totp/confirm"): lambda w: {"code": "123456"},
    ("POST", "/v1/me/totp"): lambda w: {"current_password": w.password},
    ("DELETE", "/v1/me/totp"): lambda w: {"code": "123456", "current_password": w.password},
    ("DELETE", "/v1/me/sessions"): lambda w: {"current_password": w.password},
    ("DELETE", "/v1/me/sessions/{fresh_session}"): lambda w: {"current_password": w.password},
    ("POST", "/v1/me/erase"): lambda w: {"current_password": w.password},
    ("PATCH", "/v1/orgs/{org}"): lambda w: {"name": "Permission table org"},
    ("PATCH", "/v1/deployments/{fresh_dep}"): lambda w: {"name": "renamed by a cell"},
    ("POST", "/v1/deployments/{mdep}/app-users"): lambda w: {"name": "made by a cell"},
    ("POST", "/v1/orgs/{org}/branches"): lambda w: {"name": "made by a cell", "parent_id": w.region},
    ("POST", "/v1/orgs/{org}/teams"): lambda w: {"name": "made by a cell"},
    ("PUT", "/v1/orgs/{org}/members/{grantee}"): lambda w: {"role": "member", "branch_id": w.region2},
    ("PUT", "/v1/orgs/{org}/members/{outsider}"): lambda w: {"role": "member", "branch_id": w.region2},
    ("POST", "/v1/orgs/{org}/invitations"): lambda w: {"user_id": w.next_id(), "role": "member"},
    ("POST", "*/accept"): lambda w: {"current_password": w.password},
    ("POST", "/v1/surveys/{msurvey}/purge"): lambda w: {"questions": ["household"], "reason": "a cell"},
    ("POST", "/v1/orgs/{org}/revert"): lambda w: {"user_id": w.users["enumerator"].id,
                                                  "since": "2020-01-01T00:00:00Z",
                                                  "until": "2020-01-02T00:00:00Z"},
    ("POST", "/v1/sites"): lambda w: {"org_id": w.org_id, "name": "made by a cell", "type": "well",
                                      "privacy": "private"},
    ("PATCH", "/v1/sites/{pub}"): lambda w: {"properties": {"depth_m": 12}},
    ("PATCH", "/v1/sites/{priv}"): lambda w: {"properties": {"depth_m": 7}},
}


import re  # noqa: E402

ABBREV = {"anonymous": "anon", "stranger": "strn", "other_org": "othr", "enumerator": "enum",
          "dep_viewer": "dviw", "manager": "mngr", "approver1": "apr1", "approver2": "apr2",
          "survey_viewer": "sviw", "survey_admin": "sadm", "org_admin": "oadm", "below": "belw",
          "beside": "besd"}


def markdown():
    """The table as docs/security.md shows it (test_permissions.py checks they agree)."""
    lines = ["| method | path | " + " | ".join(ABBREV[r] for r in ROLES) + " |",
             "| --- | --- | " + " | ".join("---" for _ in ROLES) + " |"]
    for row in ROWS:
        cells = []
        for v in row[2:]:
            cells.append(f"**{v}**" if v < 300 else str(v))
        path = re.sub(r"\{fresh:(\w+):(\d)\}", r"{new \1 response, stage \2}", row[1])
        lines.append(f"| {row[0]} | `{path}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")

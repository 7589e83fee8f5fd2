/* The route table: every endpoint of the front end, in one place. Routes are matched in order;
 * the first whose pattern and method match takes the request. Each group below belongs to one
 * area of the code: add a route to its group (metrics name = handler's resource_action). */
#include "fe_handlers.h"
#include "fe_metrics.h"

#include <string.h>

#define GET EVHTTP_REQ_GET
#define POST EVHTTP_REQ_POST
#define PUT EVHTTP_REQ_PUT
#define PATCH EVHTTP_REQ_PATCH
#define DELETE EVHTTP_REQ_DELETE
#define NONE FE_AUTH_NONE
#define AUTH FE_AUTH_REQUIRED
#define OPTIONAL FE_AUTH_OPTIONAL
#define OPENROSA FE_AUTH_OPENROSA /* also under /v1/key/{token}/ (fe_openrosa_auth.h) */

const fe_route fe_routes[] = {
    /* method, pattern, handler, auth, body, metrics name */

    /* health: api/health/ */
    {GET, "/healthz", fe_health_healthz, NONE, false, "healthz"},
    {GET, "/readyz", fe_health_readyz, NONE, false, "readyz"},
    {GET, "/metrics", fe_health_metrics, NONE, false, "metrics"},

    /* identity: api/identity/ (accounts, sessions, me, TOTP) */
    {POST, "/v1/users", fe_accounts_signup, NONE, true, "users_create"},
    {POST, "/v1/auth/login", fe_sessions_login, NONE, true, "auth_login"},
    {POST, "/v1/auth/logout", fe_sessions_logout, AUTH, false, "auth_logout"},
    {GET, "/v1/me/sessions", fe_mysessions_list, AUTH, false, "my_sessions_list"},
    {DELETE, "/v1/me/sessions", fe_mysessions_end_others, AUTH, true, "my_sessions_end_others"},
    {DELETE, "/v1/me/sessions/:id", fe_mysessions_end, AUTH, true, "my_sessions_end"},
    {GET, "/v1/me", fe_me_get, AUTH, false, "me"},
    {PUT, "/v1/me/password", fe_me_password, AUTH, true, "me_password"},
    {POST, "/v1/me/totp", fe_totp_enrol, AUTH, true, "totp_enrol"},
    {POST, "/v1/me/totp/confirm", fe_totp_confirm, AUTH, true, "totp_confirm"},
    {DELETE, "/v1/me/totp", fe_totp_disable, AUTH, true, "totp_disable"},
    {GET, "/v1/me/invitations", fe_invitations_me_list, AUTH, false, "my_invitations_list"},
    {POST, "/v1/me/invitations/:id/accept", fe_invitations_me_accept, AUTH, true,
     "my_invitations_accept"},
    {POST, "/v1/me/invitations/:id/decline", fe_invitations_me_decline, AUTH, false,
     "my_invitations_decline"},
    {GET, "/v1/me/personal-data", fe_personal_data_get, AUTH, false, "me_personal_data"},
    {POST, "/v1/me/erase", fe_me_erase, AUTH, true, "me_erase"},


    /* API keys: api/identity/fe_apikeys.c */
    {POST, "/v1/me/api-keys", fe_apikeys_create, AUTH, true, "apikeys_create"},
    {GET, "/v1/me/api-keys", fe_apikeys_list, AUTH, false, "apikeys_list"},
    {DELETE, "/v1/me/api-keys/:id", fe_apikeys_revoke, AUTH, false, "apikeys_revoke"},
    {POST, "/v1/api-keys/:id/reinstate", fe_apikeys_reinstate, AUTH, false, "apikeys_reinstate"},


    /* organisations, branches, teams, members, audit, quarantine, grants: api/orgs/ */
    {POST, "/v1/orgs", fe_orgs_create, AUTH, true, "orgs_create"},
    {GET, "/v1/orgs", fe_orgs_list, AUTH, false, "orgs_list"},
    {GET, "/v1/orgs/:org", fe_orgs_get, AUTH, false, "orgs_get"},
    {PATCH, "/v1/orgs/:org", fe_orgs_update, AUTH, true, "orgs_update"},
    {POST, "/v1/orgs/:org/branches", fe_orgs_branch_create, AUTH, true, "orgs_branch_create"},
    {GET, "/v1/orgs/:org/branches", fe_orgs_branch_list, AUTH, false, "orgs_branch_list"},
    {POST, "/v1/orgs/:org/teams", fe_orgs_team_create, AUTH, true, "orgs_team_create"},
    {GET, "/v1/orgs/:org/teams", fe_orgs_team_list, AUTH, false, "orgs_team_list"},
    {GET, "/v1/orgs/:org/members", fe_orgs_member_list, AUTH, false, "orgs_member_list"},
    {PUT, "/v1/orgs/:org/members/:user", fe_orgs_member_set, AUTH, true, "orgs_member_set"},
    {DELETE, "/v1/orgs/:org/members/:user", fe_orgs_member_remove, AUTH, false, "orgs_member_remove"},
    {GET, "/v1/orgs/:org/audit", fe_orgs_audit, AUTH, false, "orgs_audit"},
    {GET, "/v1/orgs/:org/teams/:team/members", fe_groups_team_members, AUTH, false, "orgs_team_members"},
    {GET, "/v1/orgs/:org/branches/:branch/members", fe_groups_branch_members, AUTH, false,
     "orgs_branch_members"},
    {POST, "/v1/orgs/:org/invitations", fe_invitations_create, AUTH, true, "invitations_create"},
    {GET, "/v1/orgs/:org/invitations", fe_invitations_list, AUTH, false, "invitations_list"},
    {DELETE, "/v1/orgs/:org/invitations/:id", fe_invitations_withdraw, AUTH, false,
     "invitations_withdraw"},
    {POST, "/v1/orgs/:org/revert", fe_revert_create, AUTH, true, "orgs_revert"},
    {POST, "/v1/orgs/:org/exports", fe_exports_create, AUTH, false, "exports_create"},
    {GET, "/v1/exports/:id", fe_exports_download, AUTH, false, "exports_download"},

    {GET, "/v1/orgs/:id/quarantine", fe_quarantine_list, AUTH, false, "quarantine_list"},
    {GET, "/v1/orgs/:id/grants", fe_grants_list, AUTH, false, "orgs_grant_list"},

    /* surveys, grants, deployments, responses and their review: api/surveys/ */
    {POST, "/v1/surveys", fe_surveys_create, AUTH, true, "surveys_create"},
    {GET, "/v1/surveys", fe_surveys_list, AUTH, false, "surveys_list"},
    {GET, "/v1/surveys/:id", fe_surveys_get, AUTH, false, "surveys_get"},
    {PUT, "/v1/surveys/:id/definition", fe_surveys_put_definition, AUTH, true, "surveys_put_definition"},
    {PUT, "/v1/surveys/:id/access", fe_surveys_put_access, AUTH, true, "surveys_put_access"},
    {POST, "/v1/surveys/:id/deployments", fe_deployments_create, AUTH, true, "deployments_create"},
    {GET, "/v1/surveys/:id/deployments", fe_deployments_list, AUTH, false, "deployments_list"},
    {GET, "/v1/deployments/:id", fe_deployments_get, AUTH, false, "deployments_get"},
    {GET, "/v1/surveys/:id/responses", fe_responses_list, AUTH, false, "responses_list"},
    {POST, "/v1/deployments/:id/responses", fe_submit_response, AUTH, true, "responses_submit"},
    {GET, "/v1/submissions/:id", fe_submissions_get, AUTH, false, "submissions_get"},
    {GET, "/v1/responses/:id", fe_responses_get, AUTH, false, "responses_get"},
    {PATCH, "/v1/responses/:id", fe_review_patch, AUTH, true, "responses_patch"},
    {DELETE, "/v1/responses/:id", fe_review_delete, AUTH, false, "responses_delete"},
    {POST, "/v1/responses/:id/approve", fe_review_approve, AUTH, true, "responses_approve"},
    {POST, "/v1/responses/:id/reject", fe_review_reject, AUTH, true, "responses_reject"},
    {GET, "/v1/surveys/:id/access", fe_survey_grants_list, AUTH, false, "survey_grants_list"},
    {DELETE, "/v1/surveys/:id/access/:type/:principal", fe_survey_grants_remove, AUTH, false,
     "survey_grants_remove"},
    {PATCH, "/v1/deployments/:id", fe_deployments_patch, AUTH, true, "deployments_patch"},
    {POST, "/v1/surveys/:id/archive", fe_surveys_archive, AUTH, false, "surveys_archive"},
    {POST, "/v1/surveys/:id/unarchive", fe_surveys_unarchive, AUTH, false, "surveys_unarchive"},
    {GET, "/v1/responses/:id/history", fe_response_history, AUTH, false, "responses_history"},
    {POST, "/v1/responses/:id/restore", fe_response_restore, AUTH, false, "responses_restore"},
    {POST, "/v1/surveys/:id/purge", fe_purge_create, AUTH, true, "surveys_purge"},
    {GET, "/v1/surveys/:id/xform", fe_surveys_get_xform, AUTH, false, "surveys_get_xform"},
    {PUT, "/v1/surveys/:id/media/:name", fe_surveys_put_media, AUTH, true, "surveys_put_media"},
    {POST, "/v1/deployments/:id/app-users", fe_app_users_create, AUTH, true, "app_users_create"},
    {GET, "/v1/deployments/:id/app-users", fe_app_users_list, AUTH, false, "app_users_list"},
    {DELETE, "/v1/deployments/:id/app-users/:app", fe_app_users_revoke, AUTH, false, "app_users_revoke"},
    /* OpenRosa: authenticated by fe_openrosa_authenticate (OPENROSA); the same routes are
     * reachable as /v1/key/{token}/openrosa/... with an app user's token */
    {GET, "/v1/openrosa/deployments/:id/formList", fe_openrosa_form_list, OPENROSA, false,
     "openrosa_form_list"},
    {GET, "/v1/openrosa/deployments/:id/form", fe_openrosa_form, OPENROSA, false, "openrosa_form"},
    {GET, "/v1/openrosa/deployments/:id/manifest", fe_openrosa_manifest, OPENROSA, false,
     "openrosa_manifest"},
    {GET, "/v1/openrosa/deployments/:id/media/:name", fe_openrosa_media, OPENROSA, false,
     "openrosa_media"},
    /* OpenRosa submissions (fe_orsubmit.c): every answer in the OpenRosa envelope */
    {EVHTTP_REQ_HEAD, "/v1/openrosa/deployments/:id/submission", fe_orsubmit_head, OPENROSA, false,
     "openrosa_submission_head"},
    {POST, "/v1/openrosa/deployments/:id/submission", fe_orsubmit_post, OPENROSA, false,
     "openrosa_submission"},
    {GET, "/v1/responses/:id/xml", fe_orsubmit_get_xml, AUTH, false, "responses_get_xml"},
    {GET, "/v1/responses/:id/attachments/:name", fe_orsubmit_get_attachment, AUTH, false,
     "responses_get_attachment"},


    /* sites: api/orgs/fe_sites.c */
    {POST, "/v1/sites", fe_sites_create, AUTH, true, "sites_create"},
    {GET, "/v1/sites", fe_sites_list, OPTIONAL, false, "sites_list"},
    {GET, "/v1/sites/:id", fe_sites_get, OPTIONAL, false, "sites_get"},
    {PATCH, "/v1/sites/:id", fe_sites_update, AUTH, true, "sites_update"},
    {DELETE, "/v1/sites/:id", fe_sites_delete, AUTH, false, "sites_delete"},
    {GET, "/v1/sites/:id/history", fe_site_history, OPTIONAL, false, "sites_history"},
    {POST, "/v1/sites/:id/restore", fe_site_restore, AUTH, false, "sites_restore"},

    /* jobs: api/jobs/ (the kinds' own endpoints stay in their areas' groups) */
    {GET, "/v1/jobs/:id", fe_jobs_get, AUTH, false, "jobs_get"},

};

const int fe_nroutes = (int)(sizeof fe_routes / sizeof fe_routes[0]);

const char *fe_route_name(int i)
{
    return i >= 0 && i < fe_nroutes ? fe_routes[i].name : "unmatched";
}

_Static_assert(sizeof fe_routes / sizeof fe_routes[0] < FE_METRICS_MAX_ROUTES,
               "FE_METRICS_MAX_ROUTES must leave room for every route and 'unmatched'");

bool fe_route_match(const char *pattern, const char *path, char param[FE_MAX_PARAMS][FE_PARAM_MAX])
{
    int np = 0;
    while (*pattern && *path) {
        if (*pattern != '/' || *path != '/') return false;
        pattern++;
        path++;
        const char *pe = strchr(pattern, '/'), *se = strchr(path, '/');
        size_t pl = pe ? (size_t)(pe - pattern) : strlen(pattern);
        size_t sl = se ? (size_t)(se - path) : strlen(path);
        if (pattern[0] == ':') {
            if (sl == 0 || sl >= FE_PARAM_MAX || np >= FE_MAX_PARAMS) return false;
            memcpy(param[np], path, sl);
            param[np][sl] = '\0';
            np++;
        } else if (pl != sl || memcmp(pattern, path, pl) != 0) {
            return false;
        }
        pattern += pl;
        path += sl;
    }
    return *pattern == '\0' && *path == '\0';
}

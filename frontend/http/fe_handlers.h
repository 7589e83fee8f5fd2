/* Every request handler of the front end, one file per resource (frontend/api/<area>/). */
#ifndef FE_HANDLERS_H
#define FE_HANDLERS_H

#include "fe_reply.h"

/* fe_health.c */
void fe_health_healthz(fe_req *r);
void fe_health_readyz(fe_req *r);
void fe_health_metrics(fe_req *r);
/* fe_accounts.c */
void fe_accounts_signup(fe_req *r);
/* fe_sessions.c */
void fe_sessions_login(fe_req *r);
void fe_sessions_logout(fe_req *r);
/* fe_mysessions.c */
void fe_mysessions_list(fe_req *r);
void fe_mysessions_end(fe_req *r);
void fe_mysessions_end_others(fe_req *r);
/* fe_me.c */
void fe_me_get(fe_req *r);
void fe_me_password(fe_req *r);
/* fe_erase.c */
void fe_personal_data_get(fe_req *r);
void fe_me_erase(fe_req *r);
/* fe_totp.c */
void fe_totp_enrol(fe_req *r);
void fe_totp_confirm(fe_req *r);
void fe_totp_disable(fe_req *r);
/* fe_apikeys.c */
void fe_apikeys_create(fe_req *r);
void fe_apikeys_list(fe_req *r);
void fe_apikeys_revoke(fe_req *r);
void fe_apikeys_reinstate(fe_req *r);

/* fe_orgs.c */
void fe_orgs_create(fe_req *r);
void fe_orgs_list(fe_req *r);
void fe_orgs_get(fe_req *r);
void fe_orgs_update(fe_req *r);
void fe_orgs_branch_create(fe_req *r);
void fe_orgs_branch_list(fe_req *r);
void fe_orgs_team_create(fe_req *r);
void fe_orgs_team_list(fe_req *r);
void fe_orgs_member_list(fe_req *r);
void fe_orgs_member_set(fe_req *r);
void fe_orgs_member_remove(fe_req *r);

/* fe_invitations.c (the org's side) and fe_invitations_me.c (the invitee's) */
void fe_invitations_create(fe_req *r);
void fe_invitations_list(fe_req *r);
void fe_invitations_withdraw(fe_req *r);
/* fe_exports.c */
void fe_exports_create(fe_req *r);
void fe_exports_download(fe_req *r);
void fe_invitations_me_list(fe_req *r);
void fe_invitations_me_accept(fe_req *r);
void fe_invitations_me_decline(fe_req *r);
void fe_orgs_audit(fe_req *r);
/* fe_groups.c */
void fe_groups_team_members(fe_req *r);
void fe_groups_branch_members(fe_req *r);
/* fe_quarantine.c */
void fe_quarantine_list(fe_req *r);
/* fe_grants.c */
void fe_grants_list(fe_req *r);

/* fe_surveys.c */
void fe_surveys_create(fe_req *r);
void fe_surveys_list(fe_req *r);
void fe_surveys_get(fe_req *r);
void fe_surveys_put_definition(fe_req *r);
void fe_surveys_get_xform(fe_req *r);
/* OpenRosa (api/surveys/fe_openrosa.c): form list, form, manifest, media; media uploads. */
void fe_openrosa_form_list(fe_req *r);
void fe_openrosa_form(fe_req *r);
void fe_openrosa_manifest(fe_req *r);
void fe_openrosa_media(fe_req *r);
void fe_surveys_put_media(fe_req *r);
/* OpenRosa submissions (api/surveys/fe_orsubmit.c) and what they store. */
void fe_orsubmit_head(fe_req *r);
void fe_orsubmit_post(fe_req *r);
void fe_orsubmit_get_xml(fe_req *r);
void fe_orsubmit_get_attachment(fe_req *r);
/* fe_app_users.c: a deployment's app users (OpenRosa tokens) */
void fe_app_users_create(fe_req *r);
void fe_app_users_list(fe_req *r);
void fe_app_users_revoke(fe_req *r);
/* The OpenRosa base: public_url, or https://<listen_addr>:<listen_port>. Static. */
const char *fe_openrosa_base(void);
void fe_surveys_put_access(fe_req *r);
/* fe_deployments.c */
void fe_deployments_create(fe_req *r);
void fe_deployments_list(fe_req *r);
void fe_deployments_get(fe_req *r);
void fe_deployments_patch(fe_req *r);
/* fe_survey_grants.c */
void fe_survey_grants_list(fe_req *r);
void fe_survey_grants_remove(fe_req *r);
/* fe_archive.c */
void fe_surveys_archive(fe_req *r);
void fe_surveys_unarchive(fe_req *r);
/* fe_submit.c */
void fe_submit_response(fe_req *r);
/* fe_responses.c */
void fe_responses_get(fe_req *r);
void fe_submissions_get(fe_req *r);
void fe_responses_list(fe_req *r);
/* fe_review.c */
void fe_review_patch(fe_req *r);
void fe_review_delete(fe_req *r);
void fe_review_approve(fe_req *r);
void fe_review_reject(fe_req *r);
/* fe_response_history.c */
void fe_response_history(fe_req *r);
void fe_response_restore(fe_req *r);

/* fe_sites.c */
void fe_sites_create(fe_req *r);
void fe_sites_list(fe_req *r);
void fe_sites_get(fe_req *r);
void fe_sites_update(fe_req *r);
void fe_sites_delete(fe_req *r);
/* fe_site_history.c */
void fe_site_history(fe_req *r);
void fe_site_restore(fe_req *r);

/* api/orgs/fe_revert.c */
void fe_revert_create(fe_req *r);

/* api/surveys/fe_purge.c */
void fe_purge_create(fe_req *r);

/* api/jobs/fe_jobs.c */
void fe_jobs_get(fe_req *r);


#endif

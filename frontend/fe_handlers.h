/* Every request handler of the front end, one file per resource. */
#ifndef FE_HANDLERS_H
#define FE_HANDLERS_H

#include "fe_http.h"

/* fe_health.c */
void fe_health_healthz(fe_req *r);
void fe_health_readyz(fe_req *r);
void fe_health_metrics(fe_req *r);
/* ---- identity ---- */
/* fe_accounts.c */
void fe_accounts_signup(fe_req *r);
/* fe_sessions.c */
void fe_sessions_login(fe_req *r);
void fe_sessions_logout(fe_req *r);
/* fe_me.c */
void fe_me_get(fe_req *r);
void fe_me_password(fe_req *r);
/* fe_totp.c */
void fe_totp_enrol(fe_req *r);
void fe_totp_confirm(fe_req *r);
void fe_totp_disable(fe_req *r);
/* ---- identity end ---- */
/* ---- api keys ---- */
/* ---- api keys end ---- */

/* ---- orgs ---- */
/* fe_orgs.c */
void fe_orgs_create(fe_req *r);
/* ---- orgs end ---- */

/* ---- access ---- */
/* fe_surveys.c */
void fe_surveys_create(fe_req *r);
void fe_surveys_get(fe_req *r);
/* fe_deployments.c */
void fe_deployments_create(fe_req *r);
/* fe_responses.c */
int fe_responses_init(void);
void fe_responses_shutdown(void);
/* After a membership or role change of user_id: deletes the permissions shared through Redis
 * (best effort; every child drops its own through fe_revoke's permissions rows). */
void fe_responses_forget_user_shared(const char *user_id);
void fe_responses_submit(fe_req *r);
void fe_responses_get(fe_req *r);
void fe_responses_list(fe_req *r);
/* ---- access end ---- */

/* ---- sites ---- */
/* ---- sites end ---- */


#endif

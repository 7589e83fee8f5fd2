/* Access decided in SQL: a statement computes a verdict (the caller's right to act, the state of
 * the objects involved) and acts only when it is 'ok', all in one statement; this module runs such
 * statements and answers by verdict, and says how a request's TOTP state is passed to SQL. Every
 * handler that decides access answers through it: the one exception is the submission path with
 * its caches (fe_submit.c, fe_depcache.c).
 *
 * The statement's result is one row: column 0 the verdict, column 1 the reply body as JSON text
 * (NULL for 204); a list's statement (FE_VERDICT_PAGE_SQL) has column 1 the items and column 2 the
 * sort key of the last one when another page follows. A handler may add columns after these for
 * its own use after an 'ok' (never a permission: those are the verdict's). No row at all counts
 * as hidden. Verdicts, each with one reply (the table in fe_verdict.c):
 *   ok                    the statement acted: ok_status with column 1
 *   hidden                404 not_found "no such <what>": the caller may not see the object
 *   forbidden             403 forbidden: visible, but this action is not the caller's
 *   totp_required         403 totp_required: the org requires its admins to have signed in with TOTP
 *   last_admin            409 last_admin: the change would leave the org without an admin
 *   version_conflict      409 version_conflict: the object changed since the version sent
 *   conflict              409 conflict: the object changed between two steps of the request
 *   not_pending           409 not_pending: the response is not waiting for approval
 *   not_deleted           409 not_deleted: a restore of an object that is not deleted
 *   key_revoked           409 key_revoked: a revoked API key cannot be reinstated
 *   too_many_keys         409 too_many_keys: the user holds the most live API keys allowed
 *   no_such_user          404 no_such_user
 *   no_such_org           404 org_not_found: no such organisation, or the caller is not a member
 *   no_such_membership    404 not_found "no such membership"
 *   no_such_grant         404 not_found "no such grant"
 *   deployment_closed     409 deployment_closed: the deployment is closed (refuses submissions)
 *   survey_archived       409 survey_archived: the survey is archived
 *   responses_pending     409 responses_pending: responses wait at an approval stage being removed
 *   not_a_member          409 not_a_member: a membership change for a user not in the org
 *   too_many_invitations  409 too_many_invitations: the org's pending invitations are at the cap
 *   invitation_used, invitation_withdrawn, invitation_declined, invitation_expired
 *                         409 of the same codes: the invitation is no longer open
 *   wrong_invitation_code 403 wrong_invitation_code: an email invitation's code missing or wrong
 *   export_running        409 export_running: the org has an export being built already
 *   export_not_ready      409 export_not_ready: the export is being built, or failed
 *   export_expired        410 export_expired: the export's file was deleted at its expiry
 *   export_withdrawn      410 export_withdrawn: a purge or an erasure withdrew it (migration 019)
 *   invalid:<field>:<why> 422 validation_failed with fields {<field>: <why>}
 *   principal_not_member:<field>  422 principal_not_member with fields {<field>: ...}: a user
 *                         principal who is not a member of the object's organisation (or no such
 *                         user: one answer for both)
 *
 * The rules are SQL functions of common/sql (fv_*_verdict of migrations 005 and 006 return these
 * verdicts): pass fe_verdict_mfa(r) as their mfa parameter. API keys never count as mfa. */
#ifndef FE_VERDICT_H
#define FE_VERDICT_H

#include "fe_page.h"
#include "fe_reply.h"

/* "true" when r's caller signed in with a TOTP code (a session with mfa), else "false"
 * (anonymous callers and API keys). A static string. */
const char *fe_verdict_mfa(const fe_req *r);

/* The caller's user id as an SQL parameter: NULL for an anonymous caller. Borrowed from r. */
const char *fe_verdict_user(const fe_req *r);

/* Answers r by verdict (not 'ok'), naming what (a string literal) in 404 messages. Takes over r. */
void fe_verdict_reply(fe_req *r, const char *verdict, const char *what);

/* True when path parameter i of r is a UUID; else answers the verdict 'hidden' (404 "no such
 * <what>") and returns false (r is then gone). */
bool fe_verdict_id(fe_req *r, int i, const char *what);

/* Reads the object of path parameter 0 (answering 404 when it is not a UUID): runs sql with $1 the
 * id and $2 the caller (NULL: anonymous) and answers 200 with its body, or by its verdict. */
void fe_verdict_get(fe_req *r, const char *sql, const char *what);

/* For handlers of several steps: the body (column 1, borrowed from res; "" when NULL) of an 'ok'
 * verdict statement's result, or NULL after answering r by the verdict or the failure (r is then
 * gone). */
const char *fe_verdict_answer(fe_req *r, const fe_pg_result *res, const char *what);

/* Answers r with status and the JSON body (borrowed), finishing first the responses it carries
 * (their answers opened and masked, fv_answers.h) on a pool thread when it has any. Frees r's
 * handler state before that (the caller must not use it after). Every reply that carries a
 * response goes through here or through the calls below, which do the same. Takes over r. */
void fe_verdict_reply_json(fe_req *r, int status, const char *body);

/* Runs sql (a string literal, borrowed) with params (copied) and answers r by the verdict, with
 * ok_status and the body of column 1 when it is 'ok'. what names the object in 404 messages
 * (a string literal). When forget_user is non-NULL (copied), the statement changed that user's
 * memberships and wrote a `permissions` revocation: after an 'ok', the user's Redis-shared
 * permissions are deleted and this child polls the revocations at once. Takes over r (sets
 * r->state). */
void fe_verdict_run(fe_req *r, const char *sql, int nparams, const char *const *params, int ok_status,
                    const char *what, const char *forget_user);

/* fe_verdict_run for a statement that wrote a `deployment` or `survey` revocation (migration 010)
 * when it changed something: after an 'ok', this child polls the revocations at once, and when
 * forget_deployment is non-NULL (copied) drops its own and the Redis-shared entry of that
 * deployment first (fe_depcache_forget_deployment), so this child's next submission asks again.
 * Takes over r. */
void fe_verdict_run_revoking(fe_req *r, const char *sql, int nparams, const char *const *params,
                             int ok_status, const char *what, const char *forget_deployment);

/* Runs a list's statement (FE_VERDICT_PAGE_SQL) for page pg (borrowed) and answers r 200
 * {"items": [...], "next": cursor | null} when it is 'ok', else by the verdict. Takes over r. */
void fe_verdict_list(fe_req *r, const fe_page *pg, const char *sql, int nparams,
                     const char *const *params, const char *what);

/* fe_page_read of r's query for a list of kind, then fe_verdict_list with params (borrowed; at
 * most FE_VERDICT_LIST_PARAMS) followed by the page's parameters: the cursor (for TS_UUID its
 * date-time and its id) and the page size. Takes over r. */
#define FE_VERDICT_LIST_PARAMS 8
void fe_verdict_page_list(fe_req *r, fe_page_kind kind, const char *sql, int nparams,
                          const char *const *params, const char *what);

/* fe_verdict_page_list for lists whose items hold names or emails (fv_pii_json fields, migration
 * 028: member lists, invitations): opened before the answer (fe_pii_json). Takes over r. */
void fe_verdict_page_list_pii(fe_req *r, fe_page_kind kind, const char *sql, int nparams,
                              const char *const *params, const char *what);

/* A verdict statement answering one page of a list: verdict is an SQL expression ('ok' lists),
 * rows a SELECT (already filtered by the caller's grants and by the cursor) whose columns include
 * those of order, the page's order (unqualified column names, e.g. "id", "id DESC",
 * "created_at, id"); key the text of an item's sort key as fe_page_encode takes it and item its
 * jsonb, both expressions over the columns of `page`; lim the parameter holding the page size
 * (e.g. "$4"). Column 1 is the items' JSON array, column 2 the last item's key when more follow. */
#define FE_VERDICT_PAGE_SQL(verdict, rows, order, key, item, lim)                       \
    "WITH v AS (SELECT (" verdict ") AS verdict), "                                     \
    "     rows AS (SELECT * FROM (" rows ") x WHERE (SELECT verdict FROM v) = 'ok' "    \
    "              ORDER BY " order " LIMIT " lim "::int + 1), "                        \
    "     page AS (SELECT *, row_number() OVER (ORDER BY " order ") AS fv_n FROM rows " \
    "              ORDER BY " order " LIMIT " lim "::int) "                             \
    "SELECT v.verdict, CASE WHEN v.verdict = 'ok' THEN "                                \
    "       COALESCE((SELECT jsonb_agg(" item                                           \
    " ORDER BY page.fv_n) FROM page), '[]'::jsonb)::text END, "                         \
    "       CASE WHEN v.verdict = 'ok' AND (SELECT count(*) FROM rows) > " lim "::int " \
    "            THEN (SELECT " key " FROM page ORDER BY page.fv_n DESC LIMIT 1) END "  \
    "FROM v"

#endif

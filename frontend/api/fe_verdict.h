/* Access decided in SQL: a statement computes a verdict (the caller's right to act, the state of
 * the objects involved) and acts only when it is 'ok', all in one statement; this module runs such
 * statements and answers by verdict, and says how a request's TOTP state is passed to SQL.
 *
 * The statement's result is one row: column 0 the verdict, column 1 the reply body as JSON text
 * (NULL for 204). Verdicts:
 *   ok                    the statement acted: ok_status with column 1
 *   hidden                404 not_found ("no such <what>"): the caller may not see the object
 *   forbidden             403 forbidden: visible, but this action is not the caller's
 *   totp_required         403 totp_required: the org requires its admins to have signed in with TOTP
 *   last_admin            409 last_admin: the change would leave the org without an admin
 *   version_conflict      409 version_conflict: the object changed since the version sent
 *   no_such_user          404 no_such_user
 *   no_such_membership    404 not_found
 *   invalid:<field>:<why> 422 validation_failed with fields {<field>: <why>}
 * No row at all counts as hidden.
 *
 * The organisation TOTP policy (orgs.require_admin_totp) lives in the SQL function
 * fv_admin_verdict(user, org, branch, mfa) / fv_org_admin_verdict(user, org, mfa) of migration
 * 005: pass fe_verdict_mfa(r) as its mfa parameter. API keys never count as mfa. */
#ifndef FE_VERDICT_H
#define FE_VERDICT_H

#include "fe_reply.h"

/* "true" when r's caller signed in with a TOTP code (a session with mfa), else "false"
 * (anonymous callers and API keys). A static string. */
const char *fe_verdict_mfa(const fe_req *r);

/* The caller's user id as an SQL parameter: NULL for an anonymous caller. Borrowed from r. */
const char *fe_verdict_user(const fe_req *r);

/* Runs sql (a string literal, borrowed) with params (copied) and answers r by the verdict, with
 * ok_status and the body of column 1 when it is 'ok'. what names the object in 404 messages
 * (a string literal). When forget_user is non-NULL (copied), the statement changed that user's
 * memberships and wrote a `permissions` revocation: after an 'ok', the user's Redis-shared
 * permissions are deleted and this child polls the revocations at once. Takes over r (sets
 * r->state). */
void fe_verdict_run(fe_req *r, const char *sql, int nparams, const char *const *params, int ok_status,
                   const char *what, const char *forget_user);

/* Paging of a list: `?after=<cursor>&limit=` (1..500, default 50). after_is_int: the cursor is a
 * positive integer (audit ids), else a UUID. On success writes the page size as text into
 * limit_text (the statement fetches one row more to know whether a next page exists), sets
 * *after (caller frees; NULL when absent) and returns true; else answers r 422 and returns false
 * (r is then gone). */
bool fe_verdict_page(fe_req *r, bool after_is_int, char limit_text[16], char **after);

/* A verdict statement answering one page of a list, in id order: verdict is an SQL expression
 * ('ok' lists), rows a SELECT with an `id` column (already filtered by the caller's grants and by
 * the `after` cursor), item a jsonb expression over the columns of `page`, lim the parameter
 * holding the page size (e.g. "$4"). Column 1 is {"items": [...], "next": last id | null}. */
#define FE_VERDICT_PAGE_SQL(verdict, rows, item, lim)                                               \
    "WITH v AS (SELECT (" verdict ") AS verdict), "                                                 \
    "     rows AS (SELECT * FROM (" rows ") x WHERE (SELECT verdict FROM v) = 'ok' "                \
    "              ORDER BY x.id LIMIT " lim "::int + 1), "                                         \
    "     page AS (SELECT * FROM rows ORDER BY id LIMIT " lim "::int) "                             \
    "SELECT v.verdict, CASE WHEN v.verdict = 'ok' THEN jsonb_build_object('items', "                \
    "       COALESCE((SELECT jsonb_agg(" item " ORDER BY page.id) FROM page), '[]'::jsonb), "       \
    "       'next', CASE WHEN (SELECT count(*) FROM rows) > " lim "::int "                          \
    "                    THEN (SELECT id::text FROM page ORDER BY id DESC LIMIT 1) END)::text END " \
    "FROM v"

#endif

/* A site's history and its restore: GET /v1/sites/{id}/history (every version, paged by version
 * number; anonymous callers too, for public sites) and POST /v1/sites/{id}/restore (a soft-deleted
 * site back). Who may is decided in SQL by verdict (fe_verdict.h) with the functions of migration
 * 012 (fv_site_history_verdict, fv_site_restore_verdict), which call the site rules
 * (fv_site_visible, fv_site_change_verdict); fv_site_version_json shows each version no more fully
 * than the caller may see the site now, nor than they could see it then. */
#include <stdlib.h>

#include "fe_handlers.h"
#include "fe_verdict.h"

/* $1 site, $2 caller (NULL: anonymous), $3 the last version of the page before, $4 the page size. */
static const char sql_history[] = FE_VERDICT_PAGE_SQL(
    "(SELECT fv_site_history_verdict($2::uuid, s) FROM (SELECT 1) one LEFT JOIN sites s ON s.id = $1::uuid)",
    "SELECT v.version, fv_site_version_json(v, s, $2::uuid) AS j "
    "FROM sites s JOIN site_versions v ON v.site_id = s.id "
    "WHERE s.id = $1::uuid AND ($3::bigint IS NULL OR v.version > $3::bigint)",
    "version", "page.version::text", "page.j", "$4");

void fe_site_history(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "site")) return;
    const char *params[] = {r->param[0], fe_verdict_user(r)};
    fe_verdict_page_list(r, FE_PAGE_INT, sql_history, 2, params, "site");
}

/* $1 caller, $2 site, $3 address: those who may change the site restore it
 * (fv_site_restore_verdict), the row locked so versions follow each other. */
static const char sql_restore[] =
    "WITH cur AS (SELECT s.id FROM sites s WHERE s.id = $2 FOR UPDATE), "
    "     v AS (SELECT fv_site_restore_verdict($1, s) AS verdict "
    "           FROM (SELECT 1) one LEFT JOIN cur ON true LEFT JOIN sites s ON s.id = cur.id), "
    "     u AS (UPDATE sites s SET deleted_at = NULL, updated_at = now(), version = s.version + 1 "
    "           WHERE s.id = $2 AND s.deleted_at IS NOT NULL AND (SELECT verdict FROM v) = 'ok' "
    "           RETURNING s.id, s.org_id, s.version, fv_site_json(s, true) AS j, to_jsonb(s) AS state), "
    "     h AS (INSERT INTO site_versions (site_id, version, operation, actor, state) "
    "           SELECT u.id, u.version, 'restore', $1, u.state FROM u), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1, 'site.restore', 'site', u.id::text, NULLIF($3, '')::inet, u.org_id, "
    "                  jsonb_build_object('version', u.version) FROM u) "
    "SELECT v.verdict, (SELECT u.j::text FROM u) FROM v";

void fe_site_restore(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "site")) return;
    const char *params[] = {r->user->id, r->param[0], r->address};
    fe_verdict_run(r, sql_restore, 3, params, 200, "site", NULL);
}

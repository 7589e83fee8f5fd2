/* Sites (water points, clinics): create, list, read, change and soft-delete, by privacy and
 * managing organisation (DESIGN section 4). Access is decided in SQL by verdict (fe_verdict.h);
 * every change appends a site_versions row (the full new row, migration 012) and an audit row (with
 * org_id) in the same statement. Restore and history: fe_site_history.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_verdict.h"
#include "fe_handlers.h"
#include "fv_check.h"

#define FE_NAME_MAX 200
#define FE_TYPE_MAX 100
#define FE_PROPERTIES_MAX 32768

/* The fields of a site as sent: owned by the handler that parsed them (site_fields_free). */
typedef struct site_fields {
    const char *name, *type, *privacy; /* borrowed from the body; NULL when absent */
    bool location_set;                 /* "location" was sent (null clears it) */
    char *location;                    /* owned: {"lat":..,"lon":..} or NULL */
    char *properties;                  /* owned: a JSON object or NULL when absent */
} site_fields;

static void site_fields_free(site_fields *f)
{
    free(f->location);
    free(f->properties);
}

static bool text_ok(yajl_val v, size_t max)
{
    return v && YAJL_IS_STRING(v) && v->u.string[0] && strlen(v->u.string) <= max;
}

/* Reads a site's fields from r->body into f (create: name, type, privacy required). Answers r and
 * returns false when they are invalid (or memory runs out). */
static bool site_fields_parse(fe_req *r, bool create, site_fields *f)
{
    yajl_val body = r->body;
    yajl_val name = fv_json_get(body, "name"), type = fv_json_get(body, "type");
    yajl_val privacy = fv_json_get(body, "privacy"), loc = fv_json_get(body, "location");
    yajl_val props = fv_json_get(body, "properties");
    const char *bad[8], *why[8];
    size_t nbad = 0;
    memset(f, 0, sizeof *f);
    if ((create || name) && !text_ok(name, FE_NAME_MAX))
        bad[nbad] = "name", why[nbad++] = "required: a string of 1 to 200 characters";
    if ((create || type) && !text_ok(type, FE_TYPE_MAX))
        bad[nbad] = "type", why[nbad++] = "required: a string of 1 to 100 characters";
    if ((create || privacy) &&
        !(privacy && YAJL_IS_STRING(privacy) &&
          (!strcmp(privacy->u.string, "public") || !strcmp(privacy->u.string, "protected") ||
           !strcmp(privacy->u.string, "private"))))
        bad[nbad] = "privacy", why[nbad++] = "required: public, protected or private";
    fv_geopoint geo;
    const char *geo_why = loc && !YAJL_IS_NULL(loc) ? fv_check_geopoint(loc, &geo) : NULL;
    if (geo_why) bad[nbad] = "location", why[nbad++] = geo_why;
    if (props && !YAJL_IS_OBJECT(props)) bad[nbad] = "properties", why[nbad++] = "must be an object";
    if (!create && fv_json_get(body, "org_id"))
        bad[nbad] = "org_id", why[nbad++] = "the managing organisation cannot be changed";
    if (!create && !name && !type && !privacy && !loc && !props)
        bad[nbad] = "name", why[nbad++] = "nothing to change";
    if (!nbad && props) {
        f->properties = fv_json_text(props);
        if (f->properties && strlen(f->properties) > FE_PROPERTIES_MAX)
            bad[nbad] = "properties", why[nbad++] = "at most 32768 bytes of JSON";
    }
    if (nbad) {
        site_fields_free(f);
        fe_reply_error_fields(r, 422, "validation_failed", "the site is invalid", nbad, bad, why);
        return false;
    }
    f->name = name ? name->u.string : NULL;
    f->type = type ? type->u.string : NULL;
    f->privacy = privacy ? privacy->u.string : NULL;
    f->location_set = loc != NULL;
    bool oom = props && !f->properties;
    if (loc && !YAJL_IS_NULL(loc)) oom = oom || !(f->location = fv_geopoint_json(&geo));
    if (oom) {
        site_fields_free(f);
        fe_reply_oom(r);
        return false;
    }
    return true;
}

/* ---- POST /v1/sites ---- */

/* An admin or manager anywhere in the org creates; other members 403, everyone else 404. */
static const char sql_site_create[] =
    "WITH v AS (SELECT fv_org_manager_verdict($1, $2) AS verdict), "
    "     ins AS (INSERT INTO sites AS s (id, org_id, name, type, privacy, location, properties, created_by) "
    "             SELECT $3, $2, $4, $5, $6, $7::jsonb, COALESCE($8::jsonb, '{}'), $1 "
    "             WHERE (SELECT verdict FROM v) = 'ok' "
    "             RETURNING fv_site_json(s, true) AS j, to_jsonb(s) AS state), "
    "     h AS (INSERT INTO site_versions (site_id, version, operation, actor, state) "
    "           SELECT $3, 1, 'create', $1, ins.state FROM ins), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1, 'site.create', 'site', $3::text, NULLIF($9, '')::inet, $2, "
    "                  jsonb_build_object('name', $4::text, 'type', $5::text, 'privacy', $6::text) FROM ins) "
    "SELECT v.verdict, (SELECT ins.j::text FROM ins) FROM v";

void fe_sites_create(fe_req *r)
{
    yajl_val org = fv_json_get(r->body, "org_id");
    site_fields f;
    if (!org || !YAJL_IS_STRING(org) || !fv_id_valid(org->u.string)) {
        const char *n[] = {"org_id"}, *why[] = {"required: the managing organisation's id (UUID)"};
        fe_reply_error_fields(r, 422, "validation_failed", "the site is invalid", 1, n, why);
        return;
    }
    if (!site_fields_parse(r, true, &f)) return;
    char id[FV_UUID_STRLEN + 1];
    fv_id_new(id);
    const char *params[] = {r->user->id, org->u.string, id,           f.name,    f.type,
                            f.privacy,   f.location,    f.properties, r->address};
    fe_verdict_run(r, sql_site_create, 9, params, 201, "organisation", NULL);
    site_fields_free(&f);
}

/* ---- GET /v1/sites, GET /v1/sites/{id} ---- */

/* Public sites for everyone, protected ones for signed-in callers (all of it only for members of
 * the managing org), private ones for members of the managing org. */
static const char sql_site_list[] = FE_VERDICT_PAGE_SQL(
    "'ok'",
    "SELECT s.id, fv_site_json(s, fv_site_full($1::uuid, s.org_id, s.privacy)) AS j FROM sites s "
    "WHERE s.deleted_at IS NULL AND fv_site_visible($1::uuid, s.org_id, s.privacy) "
    "  AND ($2::uuid IS NULL OR s.org_id = $2::uuid) AND ($3::text IS NULL OR s.type = $3::text) "
    "  AND ($4::uuid IS NULL OR s.id > $4::uuid)",
    "id", "page.id::text", "page.j", "$5");

void fe_sites_list(fe_req *r)
{
    char *org = fe_query_param(r, "org"), *type = fe_query_param(r, "type");
    if (org && !fv_id_valid(org)) {
        const char *n[] = {"org"}, *why[] = {"an organisation id (UUID)"};
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", 1, n, why);
    } else if (type && (!*type || strlen(type) > FE_TYPE_MAX)) {
        const char *n[] = {"type"}, *why[] = {"a string of 1 to 100 characters"};
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", 1, n, why);
    } else {
        const char *params[] = {fe_verdict_user(r), org, type};
        fe_verdict_page_list(r, FE_PAGE_UUID, sql_site_list, 3, params, "site");
    }
    free(org);
    free(type);
}

static const char sql_site_get[] =
    "SELECT 'ok', fv_site_json(s, fv_site_full($2::uuid, s.org_id, s.privacy))::text FROM sites s "
    "WHERE s.id = $1 AND s.deleted_at IS NULL AND fv_site_visible($2::uuid, s.org_id, s.privacy)";

void fe_sites_get(fe_req *r)
{
    fe_verdict_get(r, sql_site_get, "site");
}

/* ---- PATCH, DELETE /v1/sites/{id} ---- */

/* The verdict on changing site $2 by $1: hidden when the caller may not see it, forbidden unless
 * an admin or manager of the managing org. `cur` locks the row so versions follow each other. */
#define SITE_CHANGE_VERDICT                                                                           \
    "WITH cur AS (SELECT s.id, s.org_id, s.privacy, s.version FROM sites s "                          \
    "             WHERE s.id = $2 AND s.deleted_at IS NULL FOR UPDATE), "                             \
    "     v0 AS (SELECT fv_site_change_verdict($1, cur.org_id, cur.privacy) AS verdict, cur.version " \
    "            FROM (SELECT 1) one LEFT JOIN cur ON true), "

static const char sql_site_update[] = SITE_CHANGE_VERDICT
    "     v AS (SELECT CASE WHEN v0.verdict = 'ok' AND $9::int IS NOT NULL AND $9::int <> v0.version "
    "                       THEN 'version_conflict' ELSE v0.verdict END AS verdict FROM v0), "
    "     u AS (UPDATE sites s SET name = COALESCE($3::text, s.name), type = COALESCE($4::text, s.type), "
    "                  privacy = COALESCE($5::text, s.privacy), "
    "                  location = CASE WHEN $6::boolean THEN $7::jsonb ELSE s.location END, "
    "                  properties = COALESCE($8::jsonb, s.properties), "
    "                  version = s.version + 1, updated_at = now() "
    "           WHERE s.id = $2 AND s.deleted_at IS NULL AND (SELECT verdict FROM v) = 'ok' "
    "           RETURNING s.id, s.org_id, s.version, fv_site_json(s, true) AS j, to_jsonb(s) AS state), "
    "     h AS (INSERT INTO site_versions (site_id, version, operation, actor, state) "
    "           SELECT u.id, u.version, 'update', $1, u.state FROM u), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1, 'site.update', 'site', u.id::text, NULLIF($10, '')::inet, u.org_id, "
    "                  jsonb_build_object('version', u.version) FROM u) "
    "SELECT v.verdict, (SELECT u.j::text FROM u) FROM v";

void fe_sites_update(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "site")) return;
    yajl_val version = fv_json_get(r->body, "version");
    if (version && !(YAJL_IS_INTEGER(version) && YAJL_GET_INTEGER(version) >= 1 &&
                     YAJL_GET_INTEGER(version) <= 2147483647)) {
        const char *n[] = {"version"}, *why[] = {"the version you read: a positive integer"};
        fe_reply_error_fields(r, 422, "validation_failed", "the site is invalid", 1, n, why);
        return;
    }
    site_fields f;
    if (!site_fields_parse(r, false, &f)) return;
    char vtext[24] = "";
    if (version) snprintf(vtext, sizeof vtext, "%lld", YAJL_GET_INTEGER(version));
    const char *params[] = {r->user->id, r->param[0],  f.name,
                            f.type,      f.privacy,    f.location_set ? "true" : "false",
                            f.location,  f.properties, version ? vtext : NULL,
                            r->address};
    fe_verdict_run(r, sql_site_update, 10, params, 200, "site", NULL);
    site_fields_free(&f);
}

static const char sql_site_delete[] = SITE_CHANGE_VERDICT
    "     v AS (SELECT verdict FROM v0), "
    "     u AS (UPDATE sites s SET deleted_at = now(), updated_at = now(), version = s.version + 1 "
    "           WHERE s.id = $2 AND s.deleted_at IS NULL AND (SELECT verdict FROM v) = 'ok' "
    "           RETURNING s.id, s.org_id, s.version, to_jsonb(s) AS state), "
    "     h AS (INSERT INTO site_versions (site_id, version, operation, actor, state) "
    "           SELECT u.id, u.version, 'delete', $1, u.state FROM u), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1, 'site.delete', 'site', u.id::text, NULLIF($3, '')::inet, u.org_id, "
    "                  jsonb_build_object('version', u.version) FROM u) "
    "SELECT v.verdict, NULL FROM v";

void fe_sites_delete(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "site")) return;
    const char *params[] = {r->user->id, r->param[0], r->address};
    fe_verdict_run(r, sql_site_delete, 3, params, 204, "site", NULL);
}

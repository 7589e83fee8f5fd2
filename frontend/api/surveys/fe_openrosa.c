/* OpenRosa form discovery (issue 13, Forms part): per deployment, the xforms list, the form (the
 * stored XForm bytes of the survey's current version), the manifest and the media files; and the
 * survey admins' media uploads. Who may read is decided in SQL (fv_openrosa_verdict, migration
 * 016): the deployment's enumerators; others who see the deployment get an empty form list and
 * 403 on the rest; everybody else 404; an app user (migration 020) its own deployment only.
 * Authentication: fe_openrosa_authenticate (frontend/auth/fe_openrosa_auth.h: HTTP Basic, an
 * app-user token under /v1/key/{token}/, or Bearer), run by the dispatcher for these routes.
 *
 * Every answer of these routes carries X-OpenRosa-Version: 1.0 (errors too) and Date (evhttp).
 * The form list, the form and the manifest carry a strong ETag, the MD5 of their body (the form's
 * is the form list's hash), computed by PostgreSQL, and answer 304 to an If-None-Match naming
 * it (fe_etag.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/crypto.h>

#include "fe_config.h"
#include "fe_etag.h"
#include "fe_handlers.h"
#include "fe_openrosa_auth.h"
#include "fe_verdict.h"
#include "fv_log.h"

#define MEDIA_NAME_MAX 128
#define MEDIA_MAX_PER_SURVEY 100
#define XML_TYPE "text/xml; charset=utf-8"
#define FE_STR2(x) #x
#define FE_STR(x) FE_STR2(x)

const char *fe_openrosa_base(void)
{
    static char base[300];
    if (!base[0]) {
        if (fe_cfg.public_url && fe_cfg.public_url[0])
            snprintf(base, sizeof base, "%s", fe_cfg.public_url);
        else if (strchr(fe_cfg.listen_addr, ':'))
            snprintf(base, sizeof base, "https://[%s]:%d", fe_cfg.listen_addr, fe_cfg.listen_port);
        else snprintf(base, sizeof base, "https://%s:%d", fe_cfg.listen_addr, fe_cfg.listen_port);
    }
    return base;
}

static void openrosa_headers(fe_req *r)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    evhttp_remove_header(h, "X-OpenRosa-Version"); /* fe_openrosa_authenticate set it already */
    evhttp_add_header(h, "X-OpenRosa-Version", "1.0");
}

/* The deployment's OpenRosa URL as this request reached it into out: with an app user's token,
 * <base>/v1/key/<token>/openrosa/deployments/<id> (Collect then fetches the form, the manifest and
 * the media with its token too), else <base>/v1/openrosa/deployments/<id>; the id in lower case,
 * as fv_openrosa_url writes it. The caller wipes out (it may hold the token). */
static void deployment_url(const fe_req *r, char *out, size_t outlen)
{
    char id[FV_UUID_STRLEN + 1]; /* a UUID (fe_verdict_id checked it) */
    snprintf(id, sizeof id, "%.*s", FV_UUID_STRLEN, r->param[0]);
    for (size_t i = 0; id[i]; i++)
        if (id[i] >= 'A' && id[i] <= 'Z') id[i] = (char)(id[i] + 32);
    /* the token is well formed (FE_APP_TOKEN_LEN bytes: fe_openrosa_authenticate checked it) */
    if (r->app_token[0])
        snprintf(out, outlen, "%s/v1/key/%.*s/openrosa/deployments/%s", fe_openrosa_base(),
                 FE_APP_TOKEN_LEN, r->app_token, id);
    else snprintf(out, outlen, "%s/v1/openrosa/deployments/%s", fe_openrosa_base(), id);
}

/* ---- the form list ---- */

/* $1 deployment, $2 caller, $3 the deployment's URL (deployment_url). The list holds the deployment's survey when the caller is
 * an enumerator and its current version has an XForm; else it is empty (a caller who may see
 * the deployment), also while the deployment is closed, or 404. hash is md5 of the stored bytes; manifestUrl only when media exist. */
static const char sql_form_list[] =
    "WITH v AS (SELECT fv_openrosa_verdict($2::uuid, $1::uuid) AS verdict), "
    "     f AS (SELECT s.name, sv.xform_form_id, sv.xform_version, md5(sv.xform) AS md5, "
    "                  EXISTS (SELECT 1 FROM survey_media m WHERE m.survey_id = s.id) AS media "
    "           FROM v, deployments d JOIN surveys s ON s.id = d.survey_id "
    "           JOIN survey_versions sv ON sv.survey_id = s.id AND sv.version = s.current_version "
    "           WHERE v.verdict = 'ok' AND d.id = $1::uuid AND d.closed_at IS NULL AND sv.xform IS NOT NULL), "
    "     b AS (SELECT CASE WHEN v.verdict = 'forbidden' THEN 'ok' ELSE v.verdict END AS verdict, "
    "       '<?xml version=\"1.0\" encoding=\"UTF-8\"?>' || "
    "       xmlelement(name xforms, xmlattributes('http://openrosa.org/xforms/xformsList' AS xmlns), "
    "         (SELECT xmlagg(xmlelement(name xform, "
    "             xmlelement(name \"formID\", f.xform_form_id), xmlelement(name name, f.name), "
    "             xmlelement(name version, f.xform_version), xmlelement(name hash, 'md5:' || f.md5), "
    "             xmlelement(name \"downloadUrl\", $3::text || '/form'), "
    "             CASE WHEN f.media THEN xmlelement(name \"manifestUrl\", "
    "                                      $3::text || '/manifest') END)) "
    "          FROM f))::text AS body "
    "           FROM v) "
    /* the body's MD5: its entity tag (fe_etag.h) */
    "SELECT verdict, body, md5(body) FROM b";

/* An 'ok' answer's body (column 1) with its MD5 (column 2) as its entity tag: 304 when the
 * caller's If-None-Match names it, else 200. Only a caller the verdict lets read it gets either:
 * a tag never tells anybody else whether a deployment or a form exists. */
static void tagged_xml(fe_req *r, const fe_pg_result *res, const char *xml)
{
    char etag[FE_ETAG_MAX];
    if (fe_etag_of_md5(PQgetvalue(res->res, 0, 2), etag) && fe_etag_answer(r, etag)) return;
    fe_reply_text(r, 200, XML_TYPE, xml, strlen(xml));
}

static void xml_answer(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    const char *xml = fe_verdict_answer(r, res, "deployment");
    if (!xml) return;
    tagged_xml(r, res, xml);
}

void fe_openrosa_form_list(fe_req *r)
{
    openrosa_headers(r);
    if (!fe_verdict_id(r, 0, "deployment")) return;
    char url[512];
    deployment_url(r, url, sizeof url);
    const char *params[] = {r->param[0], r->user->id, url};
    fe_pg_query(sql_form_list, 3, params, xml_answer, r); /* copies the parameters */
    OPENSSL_cleanse(url, sizeof url);
}

/* ---- the form ---- */

/* The XForm and its MD5 (the form list's hash, and the answer's entity tag). */
static const char sql_form[] =
    "SELECT verdict, x, md5(x) FROM ("
    "SELECT v.verdict, CASE WHEN v.verdict = 'ok' THEN "
    "         (SELECT sv.xform FROM deployments d JOIN surveys s ON s.id = d.survey_id "
    "          JOIN survey_versions sv ON sv.survey_id = s.id AND sv.version = s.current_version "
    "          WHERE d.id = $1::uuid) END "
    "FROM (SELECT fv_openrosa_verdict($2::uuid, $1::uuid) AS verdict) v) t(verdict, x)";

static void form_answer(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    const char *xml = fe_verdict_answer(r, res, "deployment");
    if (!xml) return;
    if (!*xml) {
        fe_reply_error(r, 404, "not_found", "the survey's current version has no XForm");
        return;
    }
    tagged_xml(r, res, xml);
}

void fe_openrosa_form(fe_req *r)
{
    openrosa_headers(r);
    if (!fe_verdict_id(r, 0, "deployment")) return;
    const char *params[] = {r->param[0], r->user->id};
    fe_pg_query(sql_form, 2, params, form_answer, r);
}

/* ---- the manifest ---- */

static const char sql_manifest[] =
    "WITH v AS (SELECT fv_openrosa_verdict($2::uuid, $1::uuid) AS verdict), "
    "     b AS (SELECT v.verdict, '<?xml version=\"1.0\" encoding=\"UTF-8\"?>' || "
    "       xmlelement(name manifest, xmlattributes('http://openrosa.org/xforms/xformsManifest' AS xmlns), "
    "         (SELECT xmlagg(xmlelement(name \"mediaFile\", xmlelement(name filename, m.name), "
    "                    xmlelement(name hash, 'md5:' || md5(m.content)), "
    "                    xmlelement(name \"downloadUrl\", $3::text || '/media/' || m.name)) "
    "                    ORDER BY m.name) "
    "          FROM deployments d JOIN survey_media m ON m.survey_id = d.survey_id "
    "          WHERE v.verdict = 'ok' AND d.id = $1::uuid))::text AS body "
    "           FROM v) "
    "SELECT verdict, body, md5(body) FROM b";

void fe_openrosa_manifest(fe_req *r)
{
    openrosa_headers(r);
    if (!fe_verdict_id(r, 0, "deployment")) return;
    char url[512];
    deployment_url(r, url, sizeof url);
    const char *params[] = {r->param[0], r->user->id, url};
    fe_pg_query(sql_manifest, 3, params, xml_answer, r); /* copies the parameters */
    OPENSSL_cleanse(url, sizeof url);
}

/* ---- media files ---- */

/* Media names: ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ (as the table's CHECK), never "." or "..". */
static bool media_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MEDIA_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || (i > 0 && (c == '.' || c == '-'));
        if (!ok) return false;
    }
    return true;
}

/* The content as hex ("\x..." in libpq's text format) and its type; the type is column 2. */
static const char sql_media[] =
    "SELECT v.verdict, CASE WHEN v.verdict = 'ok' THEN m.content END, m.content_type "
    "FROM (SELECT fv_openrosa_verdict($2::uuid, $1::uuid) AS verdict) v "
    "LEFT JOIN deployments d ON d.id = $1::uuid "
    "LEFT JOIN survey_media m ON m.survey_id = d.survey_id AND m.name = $3";

static void media_answer(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    const char *hex = fe_verdict_answer(r, res, "deployment");
    if (!hex) return;
    if (PQgetisnull(res->res, 0, 1)) {
        fe_reply_error(r, 404, "not_found", "no such media file");
        return;
    }
    size_t len = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)hex, &len); /* ours: PQfreemem */
    if (!bytes) {
        fe_reply_oom(r);
        return;
    }
    char type[128];
    snprintf(type, sizeof type, "%s", PQgetvalue(res->res, 0, 2));
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    evhttp_add_header(h, "Content-Disposition", "attachment");
    fe_reply_text(r, 200, type, (const char *)bytes, len);
    PQfreemem(bytes);
}

void fe_openrosa_media(fe_req *r)
{
    openrosa_headers(r);
    if (!fe_verdict_id(r, 0, "deployment")) return;
    if (!media_name_ok(r->param[1])) {
        fe_reply_error(r, 404, "not_found", "no such media file");
        return;
    }
    const char *params[] = {r->param[0], r->user->id, r->param[1]};
    fe_pg_query(sql_media, 3, params, media_answer, r);
}

/* ---- media uploads (survey admin) ---- */

/* $1 survey, $2 caller, $3 mfa, $4 name, $5 content type, $6 content (base64), $7 address. */
static const char sql_media_put[] =
    "WITH s AS (SELECT x.id, x.org_id, "
    "                  CASE WHEN v.verdict <> 'ok' THEN v.verdict "
    "                       WHEN (SELECT count(*) FROM survey_media m WHERE m.survey_id = x.id AND m.name <> $4) "
    "                            >= " FE_STR(
        MEDIA_MAX_PER_SURVEY) " "
                              "                         THEN 'invalid:name:a survey holds at most " FE_STR(
                                  MEDIA_MAX_PER_SURVEY) " media files' "
                                                        "                       ELSE 'ok' END AS verdict "
                                                        "           FROM surveys x, LATERAL (SELECT fv_survey_admin_verdict($2::uuid, x.id, $3::boolean) AS verdict) v "
                                                        "           WHERE x.id = $1::uuid), "
                                                        "     up AS (INSERT INTO survey_media (survey_id, name, content_type, content, created_by) "
                                                        "            SELECT s.id, $4, $5, decode($6, 'base64'), $2::uuid FROM s WHERE s.verdict = 'ok' "
                                                        "            ON CONFLICT (survey_id, name) DO UPDATE SET content_type = EXCLUDED.content_type, "
                                                        "               content = EXCLUDED.content, created_by = EXCLUDED.created_by, created_at = now() "
                                                        "            RETURNING name, content_type, length(content) AS size, md5(content) AS md5), "
                                                        "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
                                                        "           SELECT $2::uuid, 'survey.media', 'survey', s.id::text, NULLIF($7, '')::inet, s.org_id, "
                                                        "                  jsonb_build_object('name', up.name, 'size', up.size, 'md5', up.md5) FROM s, up) "
                                                        "SELECT s.verdict, (SELECT jsonb_build_object('survey_id', s.id, 'name', up.name, "
                                                        "                          'content_type', up.content_type, 'size', up.size, 'hash', 'md5:' || up.md5)::text "
                                                        "                   FROM up) FROM s";

static bool base64_ok(const char *s)
{
    size_t n = strlen(s), pad = 0;
    if (n == 0 || n % 4) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '=') {
            if (i < n - 2) return false;
            pad++;
            continue;
        }
        if (pad) return false;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '/'))
            return false;
    }
    return true;
}

/* The media types a media file may have (what ODK forms use: images, audio, video, CSV for
 * external choices, GeoJSON); a file is always served as an attachment with nosniff, and never as
 * a type a browser would run (no HTML, no SVG). Keep in step with docs/openapi.yaml. */
static const char *const media_types[] = {"image/png",
                                          "image/jpeg",
                                          "image/gif",
                                          "image/webp",
                                          "audio/mpeg",
                                          "audio/ogg",
                                          "audio/wav",
                                          "audio/mp4",
                                          "video/mp4",
                                          "video/3gpp",
                                          "text/csv",
                                          "application/geo+json",
                                          "application/octet-stream"};

static bool content_type_ok(const char *s)
{
    for (size_t i = 0; i < sizeof media_types / sizeof media_types[0]; i++)
        if (strcmp(s, media_types[i]) == 0) return true;
    return false;
}

void fe_surveys_put_media(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "survey")) return;
    const char *type = fv_json_get_str(r->body, "content_type");
    const char *content = fv_json_get_str(r->body, "content_base64");
    const char *bad[3], *why[3];
    size_t nbad = 0;
    if (!media_name_ok(r->param[1]))
        bad[nbad] = "name", why[nbad++] = "letters, digits, _, . and - (not first), at most 128";
    if (!type || !content_type_ok(type))
        bad[nbad] = "content_type",
        why[nbad++] =
            "required: one of image/png, image/jpeg, image/gif, image/webp, audio/mpeg, audio/ogg, audio/wav, "
            "audio/mp4, video/mp4, video/3gpp, text/csv, application/geo+json, application/octet-stream";
    if (!content || !base64_ok(content))
        bad[nbad] = "content_base64", why[nbad++] = "required: the file in base64 (RFC 4648, padded)";
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "the media file is invalid", nbad, bad, why);
        return;
    }
    const char *params[] = {r->param[0], r->user->id, fe_verdict_mfa(r), r->param[1],
                            type,        content,     r->address};
    fe_verdict_run(r, sql_media_put, 7, params, 200, "survey", NULL);
}

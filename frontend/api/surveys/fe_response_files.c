/* GET /v1/responses/{id}/xml and GET /v1/responses/{id}/attachments/{name}: an OpenRosa
 * response's instance XML and its files, read back by the response's reading rule (the
 * submission itself is fe_orsubmit.c). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/evp.h>
#include "fe_config.h"
#include "fe_handlers.h"
#include "fe_identity.h"
#include "fe_metrics.h"
#include "fe_pg.h"
#include "fe_queue.h"
#include "fe_subid.h"
#include "fe_submit.h"
#include "fe_verdict.h"
#include "fe_workpool.h"
#include "fv_envelope.h"
#include "fv_instance.h"
#include "fv_json.h"
#include "fv_log.h"
#include "fv_multipart.h"
#include "fv_odkcrypt.h"
#include "fv_odkmanifest.h"

#define ATT_NAME_MAX 255 /* as fe_orsubmit.c stores them */

/* ---- reading back: the XML and the attachments, by the reading rule ---- */

/* The XML of a response a purge reached is withheld (fv_openrosa_purged, migration 023), and so
 * is the XML of a response in confidential mode from every reader who is not survey admin
 * (migration 024): it holds the confidential answers and the true GPS points as received, which
 * only survey admins see. */
static const char sql_xml[] = "SELECT 'ok', CASE WHEN fv_openrosa_purged(r) THEN NULL ELSE r.xml END, "
                              "       r.xml IS NOT NULL AND fv_response_confidential(r) "
                              "       AND COALESCE(fv_survey_role($2, r.survey_id) <> 'admin', true) "
                              "FROM responses r "
                              "WHERE r.id = $1::uuid AND fv_can_read_response($2, r.id)";

static void xml_read(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    const char *xml = fe_verdict_answer(r, res, "response");
    if (!xml) return;
    if (PQgetisnull(res->res, 0, 1)) {
        fe_reply_error(r, 404, "not_found",
                       "no XML for this response (it was not sent as XML, or a purge withdrew it)");
        return;
    }
    if (PQgetvalue(res->res, 0, 2)[0] == 't') {
        fe_reply_error(
            r, 403, "forbidden",
            "the survey is in confidential mode: the XML as received is for survey admins only");
        return;
    }
    fe_reply_text(r, 200, "text/xml; charset=utf-8", xml, strlen(xml));
}

void fe_orsubmit_get_xml(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "response")) return;
    const char *params[] = {r->param[0], r->user->id};
    fe_pg_query(sql_xml, 2, params, xml_read, r);
}

static const char sql_attachment[] =
    "SELECT 'ok', b.data, a.content_type FROM responses r "
    "JOIN response_attachments a ON a.response_id = r.id AND a.name = $3 "
    "JOIN attachment_blobs b ON b.sha256 = a.sha256 "
    "WHERE r.id = $1::uuid AND fv_can_read_response($2, r.id) AND fv_attachment_visible(r, $3) "
    /* confidential mode (migration 024): a reader who is not survey admin gets only the files
     * that the answers shown to them name (never one named by a confidential answer) */
    "  AND (NOT fv_response_confidential(r) OR COALESCE(fv_survey_role($2, r.survey_id) = 'admin', false) "
    "       OR jsonb_path_exists(fv_response_json(r, false)->'data', '$.** ? (@ == $n)', "
    "                            jsonb_build_object('n', $3::text)))";

static void attachment_read(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status == FE_PG_OK && PQntuples(res->res) == 0) {
        fe_reply_error(r, 404, "not_found", "no such attachment");
        return;
    }
    const char *hx = fe_verdict_answer(r, res, "attachment");
    if (!hx) return;
    size_t len = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)hx, &len); /* ours: PQfreemem */
    if (!bytes) {
        fe_reply_oom(r);
        return;
    }
    char type[FV_MULTIPART_MAX_NAME + 1];
    snprintf(type, sizeof type, "%s", PQgetvalue(res->res, 0, 2));
    /* never rendered by a browser in our origin: a download, sniffing off (fe_reply.c); named
     * as ODK Central names it (RFC 6266: an ASCII fallback, the UTF-8 name percent-encoded) */
    char *name = evhttp_uridecode(r->param[1], 0, NULL);
    char *enc = name ? evhttp_uriencode(name, -1, 0) : NULL;
    char disp[3 * 256 + 300];
    if (name && enc) {
        char ascii[ATT_NAME_MAX + 1];
        size_t k = 0;
        for (const char *c = name; *c && k < ATT_NAME_MAX; c++)
            ascii[k++] = ((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f && *c != '"' &&
                          *c != '\\')
                             ? *c
                             : '_';
        ascii[k] = '\0';
        snprintf(disp, sizeof disp, "attachment; filename=\"%s\"; filename*=UTF-8''%s", ascii, enc);
    } else {
        snprintf(disp, sizeof disp, "attachment");
    }
    free(name);
    free(enc);
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Content-Disposition", disp);
    fe_reply_text(r, 200, type, (const char *)bytes, len);
    PQfreemem(bytes);
}

void fe_orsubmit_get_attachment(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "response")) return;
    char *name = evhttp_uridecode(r->param[1], 0, NULL);
    if (!name) {
        fe_reply_oom(r);
        return;
    }
    const char *params[] = {r->param[0], r->user->id, name};
    fe_pg_query(sql_attachment, 3, params, attachment_read, r);
    free(name); /* fe_pg_query copies the values */
}

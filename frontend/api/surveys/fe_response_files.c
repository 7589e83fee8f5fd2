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
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "fe_config.h"
#include "fe_datakeys.h"
#include "fe_handlers.h"
#include "fe_identity.h"
#include "fe_metrics.h"
#include "fe_pg.h"
#include "fe_queue.h"
#include "fe_subid.h"
#include "fe_submit.h"
#include "fe_verdict.h"
#include "fe_workpool.h"
#include "fv_attachment.h"
#include "fv_envelope.h"
#include "fv_instance.h"
#include "fv_json.h"
#include "fv_log.h"
#include "fv_multipart.h"
#include "fv_odkcrypt.h"
#include "fv_odkmanifest.h"

/* ---- reading back: the XML and the attachments, by the reading rule ---- */

/* The XML of a response a purge reached is withheld (fv_openrosa_purged, migration 023), and so
 * is the XML of a response in confidential mode from every reader who is not survey admin
 * (migration 024): it holds the confidential answers and the true GPS points as received, which
 * only survey admins see. */
static const char sql_xml[] =
    "SELECT 'ok', CASE WHEN fv_openrosa_purged(r) THEN NULL ELSE x.body END, "
    "       r.xml_sha256 IS NOT NULL AND fv_response_confidential(r) "
    "       AND COALESCE(fv_survey_role($2, r.survey_id) <> 'admin', true), "
    "       x.org_id::text, fv_dk_wrapped(x.org_id, x.key_version), encode(x.sha256, 'hex') "
    "FROM responses r LEFT JOIN response_xml x ON x.response_id = r.id AND x.sha256 = r.xml_sha256 "
    "WHERE r.id = $1::uuid AND fv_can_read_response($2, r.id)";

/* Opens the sealed value (bytea text) in column col of res's row 0, of org (column orgcol) with
 * its wrapped key (orgcol + 1), under aad; NULL after answering 500 (the row is named in the log and
 * the reply: a value that does not open is an error, never garbage). The caller frees it. */
static unsigned char *open_sealed(fe_req *r, const fe_pg_result *res, int col, int orgcol,
                                  const char *aad, const char *what, size_t *len)
{
    size_t blen = 0;
    unsigned char *sealed = PQunescapeBytea((const unsigned char *)PQgetvalue(res->res, 0, col),
                                            &blen); /* ours: PQfreemem */
    if (!sealed) {
        fe_reply_oom(r);
        return NULL;
    }
    char err[256];
    const char *wrapped = PQgetisnull(res->res, 0, orgcol + 1) ? NULL
                                                               : PQgetvalue(res->res, 0, orgcol + 1);
    unsigned char *pt = fe_datakeys_open(PQgetvalue(res->res, 0, orgcol), wrapped, aad, sealed, blen,
                                         len, err, sizeof err);
    PQfreemem(sealed);
    if (!pt) {
        /* param 0 is a UUID (fe_verdict_id checked it) */
        fv_error("%s of response %.*s: %s", what, FV_UUID_STRLEN, r->param[0], err);
        char msg[600];
        snprintf(msg, sizeof msg, "the %s of response %.*s does not open: %s", what, FV_UUID_STRLEN,
                 r->param[0], err);
        fe_reply_error(r, 500, "internal", msg);
    }
    return pt;
}

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
    char aad[FV_DK_AAD_MAX];
    fv_dk_aad_xml(r->param[0], PQgetvalue(res->res, 0, 5), aad);
    size_t len = 0;
    unsigned char *body = open_sealed(r, res, 1, 3, aad, "XML", &len); /* owned */
    if (!body) return;
    fe_reply_text(r, 200, "text/xml; charset=utf-8", (const char *)body, len);
    OPENSSL_cleanse(body, len);
    free(body);
}

void fe_orsubmit_get_xml(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "response")) return;
    const char *params[] = {r->param[0], r->user->id};
    fe_pg_query(sql_xml, 2, params, xml_read, r);
}

static const char sql_attachment[] =
    "SELECT 'ok', b.data, b.org_id::text, fv_dk_wrapped(b.org_id, b.key_version), a.content_type, "
    "       encode(a.sha256, 'hex') FROM responses r "
    "JOIN response_attachments a ON a.response_id = r.id AND a.name = $3 "
    "JOIN attachment_blobs b ON b.org_id = a.org_id AND b.sha256 = a.sha256 "
    "WHERE r.id = $1::uuid AND fv_can_read_response($2, r.id) AND fv_attachment_visible(r, $3) "
    /* confidential mode (migration 024): a reader who is not survey admin gets only the files
     * that the answers shown to them name (never one named by a confidential answer) */
    "  AND (COALESCE(fv_survey_role($2, r.survey_id) = 'admin', false) OR fv_attachment_shown(r, $3))";

static void attachment_read(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status == FE_PG_OK && PQntuples(res->res) == 0) {
        fe_reply_error(r, 404, "not_found", "no such attachment");
        return;
    }
    if (!fe_verdict_answer(r, res, "attachment")) return;
    char aad[FV_DK_AAD_MAX];
    fv_dk_aad_blob(PQgetvalue(res->res, 0, 2), PQgetvalue(res->res, 0, 5), aad);
    size_t len = 0;
    unsigned char *bytes = open_sealed(r, res, 1, 2, aad, "attachment", &len); /* owned */
    if (!bytes) return;
    char type[FV_MULTIPART_MAX_NAME + 1];
    snprintf(type, sizeof type, "%s", PQgetvalue(res->res, 0, 4));
    /* never rendered by a browser in our origin: a download, sniffing off (fe_reply.c); named
     * as ODK Central names it (RFC 6266: an ASCII fallback, the UTF-8 name percent-encoded) */
    char *name = evhttp_uridecode(r->param[1], 0, NULL);
    char *enc = name ? evhttp_uriencode(name, -1, 0) : NULL; /* at most 3 bytes per byte */
    char disp[sizeof "attachment; filename=\"\"; filename*=UTF-8''" + FV_ATTACHMENT_NAME_MAX +
              3 * FV_ATTACHMENT_NAME_MAX];
    if (name && enc) {
        char ascii[FV_ATTACHMENT_NAME_MAX + 1];
        size_t k = 0;
        for (const char *c = name; *c && k < FV_ATTACHMENT_NAME_MAX; c++)
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
    OPENSSL_cleanse(bytes, len);
    free(bytes);
}

void fe_orsubmit_get_attachment(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "response")) return;
    char *name = evhttp_uridecode(r->param[1], 0, NULL);
    if (!name) {
        fe_reply_oom(r);
        return;
    }
    /* A name no submission can store (fv_attachment.h) names no attachment: not asked for. The
     * request target's %00 never gets here (fe_framing.c). */
    const char *bad = fv_attachment_name_problem(name);
    if (bad) {
        free(name);
        char why[128];
        snprintf(why, sizeof why, "no such attachment: %s", bad);
        fe_reply_error(r, 404, "not_found", why);
        return;
    }
    const char *params[] = {r->param[0], r->user->id, name};
    fe_pg_query(sql_attachment, 3, params, attachment_read, r);
    free(name); /* fe_pg_query copies the values */
}

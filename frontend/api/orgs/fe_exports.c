/* Organisation exports (migration 015, docs/api/exports.md): POST /v1/orgs/{org}/exports starts
 * a worker job of kind 'export' (migration 013) that builds the org's zip into PostgreSQL
 * (worker/jobs/wk_job_export.c); GET /v1/exports/{id} streams it, one stored chunk at a time.
 *
 * Who: the org's admins (with the TOTP session the org requires of its admins), for both; the
 * rules are SQL functions (fv_org_admin_verdict, fv_export_download_verdict). Every start and
 * every download is audited ('export.create', 'export.download') in the statement that decides.
 *
 * Bounded memory: a download holds at most one chunk (export_chunk_bytes, at most 8 MiB) as its
 * hex text in the PGresult while it is decoded, then the decoded bytes until the socket took
 * them: the next chunk is queried only once the previous one was written out. So a slow reader
 * costs one chunk, and nothing grows with the export's size. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_handlers.h"
#include "fe_verdict.h"
#include "fv_log.h"

/* $1 caller, $2 org, $3 mfa, $4 address: an org admin starts an export unless one is being
 * built (one at a time per org: each holds a worker and the org's whole data in storage). */
static const char sql_create[] =
    "WITH v AS (SELECT CASE WHEN fv_org_admin_verdict($1::uuid, $2::uuid, $3::boolean) <> 'ok' "
    "                       THEN fv_org_admin_verdict($1::uuid, $2::uuid, $3::boolean) "
    "                       WHEN EXISTS (SELECT 1 FROM exports e WHERE e.org_id = $2::uuid AND e.state = 'building') "
    "                       THEN 'export_running' ELSE 'ok' END AS verdict), "
    "     j AS (INSERT INTO jobs (id, org_id, kind, created_by) "
    "           SELECT gen_random_uuid(), $2::uuid, 'export', $1::uuid FROM v WHERE v.verdict = 'ok' RETURNING *), "
    "     e AS (INSERT INTO exports (id, org_id, created_by) SELECT j.id, j.org_id, j.created_by FROM j RETURNING *), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1::uuid, 'export.create', 'export', e.id::text, NULLIF($4, '')::inet, e.org_id, "
    "                  '{}'::jsonb FROM e) "
    "SELECT v.verdict, (SELECT (fv_job_json(j) || jsonb_build_object('export', fv_export_json(e)))::text "
    "                   FROM j, e) FROM v";

void fe_exports_create(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "organisation")) return;
    const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r), r->address};
    fe_verdict_run(r, sql_create, 4, params, 202, "organisation", NULL);
}

/* $1 caller, $2 export, $3 mfa, $4 address: the verdict and, when 'ok', the audit entry of this
 * download; columns 2.. the number of chunks, the size, the SHA-256. */
static const char sql_download[] =
    "WITH v AS (SELECT fv_export_download_verdict($1::uuid, x, $3::boolean) AS verdict, x.id, x.org_id, "
    "                  x.chunks, x.size, x.sha256 "
    "           FROM (SELECT 1) one LEFT JOIN exports x ON x.id = $2::uuid), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1::uuid, 'export.download', 'export', v.id::text, NULLIF($4, '')::inet, v.org_id, "
    "                  jsonb_build_object('size', v.size, 'sha256', v.sha256) FROM v WHERE v.verdict = 'ok') "
    "SELECT v.verdict, NULL, v.chunks, v.size, v.sha256 FROM v";

static const char sql_chunk[] =
    "SELECT data FROM export_chunks WHERE export_id = $1::uuid AND seq = $2::int";

/* One download (r->state until the stream starts; then owned by the stream's callbacks). */
typedef struct download {
    fe_req *r;
    void *stream;                /* NULL until started */
    char id[FV_UUID_STRLEN + 1]; /* a UUID (fe_verdict_id checked it) */
    long seq, nchunks;
    bool querying; /* a chunk's query is outstanding */
    bool gone;     /* the connection closed */
} download;

static void next_chunk(download *d);

static void end(download *d, bool complete)
{
    fe_reply_stream_end(d->stream, complete); /* frees d->r */
    free(d);
}

static void gone(void *arg)
{
    download *d = arg;
    d->gone = true;
    if (!d->querying) end(d, false); /* else the query's answer ends it */
}

static void sent(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    next_chunk(arg);
}

static void got_chunk(const fe_pg_result *res, void *arg)
{
    download *d = arg;
    d->querying = false;
    if (d->gone) {
        end(d, false);
        return;
    }
    if (res->status != FE_PG_OK || PQntuples(res->res) != 1) {
        /* the export expired meanwhile, or PostgreSQL failed: the body is cut short */
        fv_warn("req %s: export %s chunk %ld unavailable; download cut", d->r->req_id, d->id, d->seq);
        end(d, false);
        return;
    }
    size_t len = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(res->res, 0, 0), &len);
    struct evbuffer *buf = bytes ? evbuffer_new() : NULL;
    /* the bytes are handed to the connection's buffer by reference; PQfreemem frees them once
     * they were written */
    if (!buf || evbuffer_add_reference(buf, bytes, len,
                                       (evbuffer_ref_cleanup_cb)(void (*)(void))PQfreemem, NULL) != 0) {
        if (buf) evbuffer_free(buf);
        if (bytes) PQfreemem(bytes);
        end(d, false);
        return;
    }
    d->seq++;
    bool ok = fe_reply_stream_chunk(d->stream, buf, sent, d);
    evbuffer_free(buf);
    if (!ok) end(d, false);
}

static void next_chunk(download *d)
{
    if (d->seq >= d->nchunks) {
        end(d, true);
        return;
    }
    char seq[24];
    snprintf(seq, sizeof seq, "%ld", d->seq);
    const char *params[] = {d->id, seq};
    d->querying = true;
    fe_pg_query(sql_chunk, 2, params, got_chunk, d);
}

static void decided(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (!fe_verdict_answer(r, res, "export")) return;
    download *d = calloc(1, sizeof *d);
    if (!d) {
        fe_reply_oom(r);
        return;
    }
    d->r = r;
    snprintf(d->id, sizeof d->id, "%.*s", FV_UUID_STRLEN, r->param[0]); /* a UUID: checked */
    d->nchunks = atol(PQgetvalue(res->res, 0, 2));
    char disp[128];
    snprintf(disp, sizeof disp, "attachment; filename=\"fieldvault-export-%s.zip\"", d->id);
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "X-Export-Size",
                      PQgetvalue(res->res, 0, 3));
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "X-Export-SHA256",
                      PQgetvalue(res->res, 0, 4));
    d->stream = fe_reply_stream_start(r, "application/zip", disp, gone, d);
    if (!d->stream) {
        free(d);
        return;
    }
    next_chunk(d);
}

void fe_exports_download(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "export")) return;
    const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r), r->address};
    fe_pg_query(sql_download, 4, params, decided, r);
}

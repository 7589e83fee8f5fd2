/* Replies: JSON bodies, errors, the access log and request metrics; every reply answers and frees its request. */
#include "fe_reply.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <openssl/rand.h>
#include <sys/queue.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fe_auth.h"
#include "fe_config.h"
#include "fe_framing.h"
#include "fe_metrics.h"
#include "fv_form.h"
#include "fv_log.h"

int fe_http_inflight;
int fe_http_unflushed;

/* X-Request-Id: a random prefix drawn once per child (so it names no pid and differs between
 * children and across restarts) and a counter of the child's requests. */
static char reqid_prefix[13];
static unsigned long long reqid_counter;

bool fe_reqid_seed(void)
{
    unsigned char b[6];
    if (RAND_bytes(b, sizeof b) != 1) return false;
    for (size_t i = 0; i < sizeof b; i++) snprintf(reqid_prefix + 2 * i, 3, "%02x", b[i]);
    reqid_counter = 0;
    return true;
}

void fe_reqid_next(char *out, size_t n)
{
    snprintf(out, n, "%s-%llx", reqid_prefix, ++reqid_counter);
}

/* libevent wrote the whole reply to the socket (a reply whose connection failed never gets
 * here: the drain bounds its wait for this count). */
static void reply_flushed(struct evhttp_request *ev, void *arg)
{
    fe_http_unflushed--;
}
bool fe_http_draining;

static double elapsed_s(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    default: return "OTHER";
    }
}

static void req_free(fe_req *r)
{
    if (r->state && r->state_free) r->state_free(r->state);
    if (r->body) yajl_tree_free(r->body);
    fe_auth_user_free(r->user);
    OPENSSL_cleanse(r->app_token, sizeof r->app_token);
    free(r);
}

/* uri with the token of a /v1/key/{token}/... path replaced by "***" into out (a secret is never
 * logged), uri itself otherwise. */
static const char *redacted_uri(const char *uri, char *out, size_t outlen)
{
    static const char prefix[] = "/v1/key/";
    if (!uri || strncmp(uri, prefix, sizeof prefix - 1) != 0) return uri;
    const char *rest = strchr(uri + sizeof prefix - 1, '/');
    snprintf(out, outlen, "%s***%s", prefix, rest ? rest : "");
    return out;
}

static void access_log(fe_req *r, int status, double secs)
{
    /* r->ev is NULL when a streamed reply's connection closed before its end (fe_reply_stream_*) */
    char redacted[1024];
    const char *uri = redacted_uri(r->ev ? evhttp_request_get_uri(r->ev) : NULL, redacted,
                                   sizeof redacted);
    char path[1024];
    fv_json_escape(uri ? uri : "", uri ? strlen(uri) : 0, path, sizeof path);
    char line[2048];
    snprintf(line, sizeof line,
             "{\"level\":\"info\",\"proc\":\"frontend\",\"msg\":\"access\",\"req\":\"%s\","
             "\"method\":\"%s\",\"path\":\"%s\",\"route\":\"%s\",\"status\":%d,\"ms\":%.3f,"
             "\"user\":%s%s%s,\"addr\":\"%s\"}",
             r->req_id, r->ev ? method_name(evhttp_request_get_command(r->ev)) : "GET", path,
             fe_route_name(r->route >= 0 ? r->route : fe_nroutes), status, secs * 1000.0,
             r->user ? "\"" : "", r->user ? r->user->id : "null", r->user ? "\"" : "", r->address);
    fv_log_raw_json(line);
}

/* The reason phrase of each status we answer, as RFC 9110 names it; NULL leaves it to libevent.
 * libevent 2.1 says "Client Error" for 422 and 429 and "Request Entity Too Large" for 413. */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return NULL;
    }
}

/* The body of a 500 when even the error reply cannot be generated. */
#define FE_REPLY_INTERNAL "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}"

/* The headers of every reply. */
static void common_headers(fe_req *r)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    evhttp_add_header(h, "X-Request-Id", r->req_id);
    evhttp_add_header(h, "Strict-Transport-Security", FE_HSTS);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Cache-Control", "no-store");
    /* An API answer is data, never a page: nothing in it may run, load, frame it or be sent on
     * as a referrer (OWASP ASVS 14.4.3-14.4.7); JSON is saved, not shown (fe_reply_text). */
    evhttp_add_header(h, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    if (fe_http_draining) evhttp_add_header(h, "Connection", "close");
}

/* Sends the reply held in buf (taken) and ends the request. */
static void finish(fe_req *r, int status, struct evbuffer *buf)
{
    common_headers(r);
    double secs = elapsed_s(&r->start);
    fe_metrics_request(r->route >= 0 ? r->route : fe_nroutes, status, secs);
    if (fe_cfg.access_log) access_log(r, status, secs);
    if (evhttp_request_get_connection(r->ev)) {
        evhttp_request_set_on_complete_cb(r->ev, reply_flushed, NULL);
        fe_http_unflushed++;
    }
    /* A HEAD's answer is the GET's head without its content (RFC 9110 9.3.2): evhttp 2.1 would
     * write buf after the head all the same, and a keep-alive client (ODK Collect's HEAD before
     * its POST) would read it as the start of the next answer. */
    if (buf && evhttp_request_get_command(r->ev) == EVHTTP_REQ_HEAD)
        evbuffer_drain(buf, evbuffer_get_length(buf));
    evhttp_send_reply(r->ev, status, reason_phrase(status), buf);
    if (buf) evbuffer_free(buf);
    fe_http_inflight--;
    req_free(r);
}

void fe_reply_text(fe_req *r, int status, const char *content_type, const char *body, size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    if (buf && body) evbuffer_add(buf, body, len);
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    evhttp_add_header(h, "Content-Type", content_type);
    if (strncmp(content_type, "application/json", 16) == 0)
        evhttp_add_header(h, "Content-Disposition", "attachment; filename=\"api.json\"");
    finish(r, status, buf);
}

void fe_reply_not_modified(fe_req *r)
{
    finish(r, 304, NULL);
}

void fe_reply_json(fe_req *r, int status, fv_jgen *body)
{
    size_t len = 0;
    const char *text = body ? fv_jgen_buf(body, &len) : "";
    if (text == NULL) {
        /* A generator that failed (fv_json.h): a bug to fix, never invalid JSON on the wire. */
        fv_error("reply of %d not sent: JSON generation failed: %s", status, fv_jgen_error(body));
        fe_reply_text(r, 500, "application/json", FE_REPLY_INTERNAL, strlen(FE_REPLY_INTERNAL));
        return;
    }
    fe_reply_text(r, status, "application/json", text, len);
}

fv_jgen *fe_reply_gen(fe_req *r)
{
    fv_jgen *j = fv_jgen_new();
    if (!j) fe_reply_oom(r);
    return j;
}

void fe_reply_gen_send(fe_req *r, int status, fv_jgen *j)
{
    fe_reply_json(r, status, j);
    fv_jgen_free(j);
}

void fe_reply_request_id(fe_req *r, fv_jgen *j)
{
    fv_jgen_key(j, "request_id");
    fv_jgen_str(j, r->req_id);
}

static void xml_escape(struct evbuffer *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': evbuffer_add(b, "&lt;", 4); break;
        case '>': evbuffer_add(b, "&gt;", 4); break;
        case '&': evbuffer_add(b, "&amp;", 5); break;
        case '"': evbuffer_add(b, "&quot;", 6); break;
        default: evbuffer_add(b, s, 1);
        }
    }
}

/* The envelope with message, then ": name: reason; ..." for n fields. */
static void openrosa_send(fe_req *r, int status, const char *nature, const char *message, size_t n,
                          const char *const *names, const char *const *reasons)
{
    struct evbuffer *buf = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    evhttp_remove_header(h, "X-OpenRosa-Version");
    evhttp_add_header(h, "X-OpenRosa-Version", "1.0");
    evhttp_add_header(h, "Content-Type", "text/xml; charset=utf-8");
    if (buf) {
        evbuffer_add_printf(buf, "<OpenRosaResponse xmlns=\"http://openrosa.org/http/response\">"
                                 "<message nature=\"");
        xml_escape(buf, nature);
        evbuffer_add_printf(buf, "\">");
        xml_escape(buf, message);
        for (size_t i = 0; i < n; i++) {
            evbuffer_add_printf(buf, i ? "; " : ": ");
            xml_escape(buf, names[i]);
            evbuffer_add_printf(buf, ": ");
            xml_escape(buf, reasons[i]);
        }
        evbuffer_add_printf(buf, "</message></OpenRosaResponse>");
    }
    finish(r, status, buf);
}

void fe_reply_openrosa(fe_req *r, int status, const char *nature, const char *message)
{
    openrosa_send(r, status, nature, message, 0, NULL, NULL);
}

/* An error reply; retry_after_s > 0 adds Retry-After. */
static void reply_error(fe_req *r, int status, const char *code, const char *message, size_t n,
                        const char *const *names, const char *const *reasons, int retry_after_s)
{
    if (r->openrosa) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
        evhttp_add_header(h, "X-Fieldvault-Error", code);
        if (retry_after_s > 0) {
            char v[16];
            snprintf(v, sizeof v, "%d", retry_after_s);
            evhttp_add_header(h, "Retry-After", v);
        }
        openrosa_send(r, status, "error", message, n, names, reasons);
        return;
    }
    fv_jgen *j = fv_jgen_new();
    if (!j) {
        fe_reply_text(r, status, "application/json", "{}", 2);
        return;
    }
    fv_jgen_map_open(j);
    fv_jgen_key(j, "error");
    fv_jgen_map_open(j);
    fv_jgen_key(j, "code");
    fv_jgen_str(j, code);
    fv_jgen_key(j, "message");
    fv_jgen_str(j, message);
    fe_reply_request_id(r, j);
    if (n > 0) {
        fv_jgen_key(j, "fields");
        fv_jgen_map_open(j);
        for (size_t i = 0; i < n; i++) {
            fv_jgen_key(j, names[i]);
            fv_jgen_str(j, reasons[i]);
        }
        fv_jgen_map_close(j);
    }
    fv_jgen_map_close(j);
    fv_jgen_map_close(j);
    if (retry_after_s > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", retry_after_s);
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Retry-After", v);
    }
    fe_reply_json(r, status, j);
    fv_jgen_free(j);
}

void fe_reply_error_fields(fe_req *r, int status, const char *code, const char *message, size_t n,
                           const char *const *names, const char *const *reasons)
{
    reply_error(r, status, code, message, n, names, reasons, status == 503 || status == 429 ? 5 : 0);
}

void fe_reply_error_retry(fe_req *r, int status, const char *code, const char *message,
                          int retry_after_s)
{
    reply_error(r, status, code, message, 0, NULL, NULL, retry_after_s < 1 ? 1 : retry_after_s);
}

void fe_reply_oom(fe_req *r)
{
    fe_reply_error(r, 503, "overloaded", "out of memory; retry later");
}

void fe_reply_error(fe_req *r, int status, const char *code, const char *message)
{
    fe_reply_error_fields(r, status, code, message, 0, NULL, NULL);
}

void fe_reply_pg_failure(fe_req *r, const fe_pg_result *res)
{
    switch (res->status) {
    case FE_PG_UNAVAILABLE:
        fe_reply_error(r, 503, "db_unavailable", "the database is unavailable; retry later");
        return;
    case FE_PG_TIMEOUT:
        fe_reply_error(r, 503, "db_timeout", "the database did not answer in time; retry later");
        return;
    case FE_PG_SQL:
        if (!strncmp(res->sqlstate, "22", 2)) {
            fe_reply_error(r, 422, "invalid_value", "a value is out of range or malformed");
            return;
        }
        if (!strcmp(res->sqlstate, "23503")) {
            fe_reply_error(r, 422, "unknown_reference", "a referenced object does not exist");
            return;
        }
        if (!strcmp(res->sqlstate, "23505")) {
            fe_reply_error(r, 409, "conflict", "an object with this identity already exists");
            return;
        }
        if (!strncmp(res->sqlstate, "57", 2) || !strncmp(res->sqlstate, "08", 2) ||
            !strncmp(res->sqlstate, "53", 2) || !strcmp(res->sqlstate, "40001") ||
            !strcmp(res->sqlstate, "40P01")) {
            fe_reply_error(r, 503, "db_unavailable", "the database is busy; retry later");
            return;
        }
        fv_error("req %s: unexpected database error %s", r->req_id, res->sqlstate);
        fe_reply_error(r, 500, "internal", "internal error");
        return;
    case FE_PG_OK: break;
    }
    fe_reply_error(r, 500, "internal", "internal error");
}

/* Replies 422 listing every problem in errs (borrowed). */
void fe_reply_form_errors(fe_req *r, const char *message, const fv_form_errors *errs)
{
    fe_reply_form_errors_code(r, "validation_failed", message, errs);
}

void fe_reply_form_errors_code(fe_req *r, const char *code, const char *message,
                               const fv_form_errors *errs)
{
    const char **names = calloc(errs->n ? errs->n : 1, sizeof *names);
    const char **reasons = calloc(errs->n ? errs->n : 1, sizeof *reasons);
    if (!names || !reasons) {
        free(names);
        free(reasons);
        fe_reply_error(r, 422, code, message);
        return;
    }
    for (size_t i = 0; i < errs->n; i++) {
        names[i] = errs->items[i].field;
        reasons[i] = errs->items[i].reason;
    }
    fe_reply_error_fields(r, 422, code, message, errs->n, names, reasons);
    free(names);
    free(reasons);
}

char *fe_query_param(fe_req *r, const char *name)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->ev);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    if (!query) return NULL;
    /* evhttp_parse_query_str decodes %00 into a NUL that cuts the value: fe_conn.c refuses such
     * targets with 400 before they get here (fe_target_encoding_ok); this keeps it so. */
    if (!fe_target_encoding_ok(query, strlen(query))) return NULL;
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (evhttp_parse_query_str(query, &params) != 0) return NULL;
    const char *v = evhttp_find_header(&params, name);
    char *out = v ? strdup(v) : NULL;
    evhttp_clear_headers(&params);
    return out;
}

/* ---- streamed replies ---- */

/* The stream's connection closed (the client left, a deadline, the child's shutdown): from now
 * on r->ev is not ours to use. A request libevent detached from its connection (an unfinished
 * reply) is ours to free; one still attached is freed by libevent right after this call. */
typedef struct stream_ctl {
    fe_req *r;
    void (*gone)(void *arg);
    void *arg;
    bool aborting;
} stream_ctl;

static void stream_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    stream_ctl *s = arg;
    if (s->aborting) return;
    fe_req *r = s->r;
    if (r->ev && evhttp_request_get_connection(r->ev) == NULL)
        evhttp_send_reply_end(r->ev); /* frees it */
    r->ev = NULL;
    s->gone(s->arg);
}

void *fe_reply_stream_start(fe_req *r, const char *content_type, const char *disposition,
                            void (*gone)(void *), void *arg)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);
    stream_ctl *s = calloc(1, sizeof *s);
    if (!s || !evcon) {
        free(s);
        fe_reply_oom(r);
        return NULL;
    }
    s->r = r;
    s->gone = gone;
    s->arg = arg;
    common_headers(r);
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "Content-Disposition", disposition);
    evhttp_connection_set_closecb(evcon, stream_closed, s);
    evhttp_send_reply_start(r->ev, 200, "OK");
    return s;
}

bool fe_reply_stream_chunk(void *stream, struct evbuffer *buf,
                           void (*sent)(struct evhttp_connection *, void *), void *arg)
{
    stream_ctl *s = stream;
    if (!s->r->ev || !evhttp_request_get_connection(s->r->ev)) return false;
    evhttp_send_reply_chunk_with_cb(s->r->ev, buf, sent, arg);
    return true;
}

void fe_reply_stream_end(void *stream, bool complete)
{
    stream_ctl *s = stream;
    fe_req *r = s->r;
    struct evhttp_connection *evcon = r->ev ? evhttp_request_get_connection(r->ev) : NULL;
    if (evcon) evhttp_connection_set_closecb(evcon, NULL, NULL);
    double secs = elapsed_s(&r->start);
    fe_metrics_request(r->route >= 0 ? r->route : fe_nroutes, 200, secs);
    if (fe_cfg.access_log) access_log(r, 200, secs);
    if (r->ev && complete && evcon) {
        evhttp_send_reply_end(r->ev);
    } else if (r->ev && evcon) {
        /* cut short: the client must not take a truncated body for the whole (no last chunk) */
        s->aborting = true;
        evhttp_connection_free(evcon); /* frees r->ev too */
    } else if (r->ev) {
        evhttp_send_reply_end(r->ev); /* detached: frees it */
    }
    r->ev = NULL;
    fe_http_inflight--;
    free(s);
    req_free(r);
}

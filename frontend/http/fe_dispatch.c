/* The dispatcher: evhttp's callback for every request. Matches the route, parses the JSON body,
 * hands the request to authentication and then to the route's handler. */
#include "fe_reply.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fe_auth.h"
#include "fe_config.h"
#include "fe_framing.h"
#include "fe_openrosa_auth.h"

static bool is_json_content_type(const char *ct)
{
    if (!ct) return false;
    while (*ct == ' ') ct++;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Parses the JSON body of r into r->body; answers and returns false when it cannot. */
static bool parse_body(fe_req *r)
{
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Content-Type");
    if (!is_json_content_type(ct)) {
        fe_reply_error(r, 415, "unsupported_media_type", "send the body as application/json");
        return false;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    size_t len = evbuffer_get_length(in);
    if (len == 0) {
        fe_reply_error(r, 400, "malformed_json", "the request body is empty");
        return false;
    }
    if (len > (size_t)fe_cfg.max_body_bytes) {
        fe_reply_error(r, 413, "body_too_large", "the request body is too large");
        return false;
    }
    char *text = malloc(len + 1);
    if (!text) {
        fe_reply_error(r, 503, "overloaded", "out of memory; retry later");
        return false;
    }
    evbuffer_copyout(in, text, len);
    text[len] = '\0';
    /* The strict reader (fv_json.h): one pass that refuses what PostgreSQL could not store or
     * would store altered, and anything nested deep enough to hurt, before a tree is built. */
    fv_json_error err;
    r->body = fv_json_parse_z(text, len, &err);
    free(text);
    if (!r->body) {
        static const struct {
            int status;
            const char *code, *what;
        } refusal[] = {
            [FV_JSON_OK] = {400, "malformed_json", "the body is not valid JSON"},
            [FV_JSON_SYNTAX] = {400, "malformed_json", "the body is not valid JSON"},
            [FV_JSON_UTF8] = {400, "invalid_utf8", "the body is not UTF-8"},
            [FV_JSON_DEPTH] = {400, "json_too_deep", "the body is nested too deep"},
            [FV_JSON_NUMBER] = {400, "number_out_of_range",
                                "the body holds a number that cannot be stored"},
            /* Refused rather than stored altered: yajl would cut or replace these characters. */
            [FV_JSON_CHARACTER] = {422, "unsupported_character",
                                   "the body holds an unsupported character"},
            [FV_JSON_DUPLICATE_KEY] = {400, "duplicate_key", "the body names an object key twice"},
            [FV_JSON_NOMEM] = {503, "overloaded", "out of memory; retry later"},
        };
        if (err.status == FV_JSON_NOMEM) {
            fe_reply_oom(r);
            return false;
        }
        size_t k = (size_t)err.status < sizeof refusal / sizeof refusal[0] ? (size_t)err.status : 0;
        char msg[320];
        if (err.status == FV_JSON_CHARACTER) snprintf(msg, sizeof msg, "%s", err.msg);
        else snprintf(msg, sizeof msg, "%s: %s", refusal[k].what, err.msg);
        fe_reply_error(r, refusal[k].status, refusal[k].code, msg);
        return false;
    }
    if (!YAJL_IS_OBJECT(r->body)) {
        fe_reply_error(r, 400, "malformed_json", "the body must be a JSON object");
        return false;
    }
    return true;
}

/* The Allow header of a path whose routes have the methods in the mask (EVHTTP_REQ_* bits), in a
 * fixed order; HEAD goes with GET. */
static void allow_header(int methods, char *out, size_t outlen)
{
    static const struct {
        int method;
        const char *name;
    } names[] = {{EVHTTP_REQ_GET, "GET"}, {EVHTTP_REQ_GET, "HEAD"},    {EVHTTP_REQ_POST, "POST"},
                 {EVHTTP_REQ_PUT, "PUT"}, {EVHTTP_REQ_PATCH, "PATCH"}, {EVHTTP_REQ_DELETE, "DELETE"}};
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(methods & names[i].method)) continue;
        int w = snprintf(out + n, outlen - n, "%s%s", n ? ", " : "", names[i].name);
        if (w < 0 || (size_t)w >= outlen - n) break;
        n += (size_t)w;
    }
}

/* Answers a request that fe_conn.c refused before libevent parsed it (its FE_REJECT_HEADER
 * says why) and closes the connection: whatever followed on it is not trusted to be framed. */
static void refuse(fe_req *r, const char *why)
{
    const fe_reject_info *info = fe_reject_get(atoi(why));
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Connection", "close");
    if (!info) {
        fe_reply_error(r, 400, "bad_request", "malformed request");
        return;
    }
    fe_reply_error(r, info->status, info->code, info->message);
}

void fe_http_dispatch(struct evhttp_request *ev, void *arg)
{
    fe_req *r = calloc(1, sizeof *r);
    if (!r) {
        evhttp_send_error(ev, 503, "Service Unavailable");
        return;
    }
    fe_http_inflight++;
    r->ev = ev;
    r->route = -1;
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    fe_reqid_next(r->req_id, sizeof r->req_id);
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    if (evcon) {
        char *addr = NULL;
        ev_uint16_t port = 0;
        evhttp_connection_get_peer(evcon, &addr, &port);
        snprintf(r->address, sizeof r->address, "%s", addr ? addr : "");
    }

    /* Before anything else: only fe_conn.c can have set this header (fe_framing.h). */
    const char *refused = evhttp_find_header(evhttp_request_get_input_headers(ev), FE_REJECT_HEADER);
    if (refused) {
        refuse(r, refused);
        return;
    }

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || path[0] != '/') {
        fe_reply_error(r, 400, "bad_request", "malformed request target");
        return;
    }
    /* /v1/key/{token}/<rest>: the route /v1/<rest>, for the OpenRosa routes only; the token goes
     * to r->app_token for fe_openrosa_authenticate (fe_openrosa_auth.h). */
    char keyed[1024];
    bool app_key = strncmp(path, FE_APP_KEY_PATH, strlen(FE_APP_KEY_PATH)) == 0;
    if (app_key) {
        const char *tok = path + strlen(FE_APP_KEY_PATH), *slash = strchr(tok, '/');
        size_t tl = slash ? (size_t)(slash - tok) : strlen(tok);
        if (!slash || tl == 0 || tl >= sizeof r->app_token || strlen(slash) + 3 >= sizeof keyed) {
            fe_reply_error(r, 404, "not_found", "no such resource");
            return;
        }
        memcpy(r->app_token, tok, tl);
        r->app_token[tl] = '\0';
        snprintf(keyed, sizeof keyed, "/v1%s", slash);
        path = keyed;
    }
    enum evhttp_cmd_type method = evhttp_request_get_command(ev);
    int path_methods = 0; /* the methods of the routes whose pattern matches the path */
    for (int i = 0; i < fe_nroutes; i++) {
        if (app_key && fe_routes[i].auth != FE_AUTH_OPENROSA) continue;
        if (!fe_route_match(fe_routes[i].pattern, path, r->param)) continue;
        path_methods |= (int)fe_routes[i].method;
        if (fe_routes[i].method != method &&
            !(method == EVHTTP_REQ_HEAD && fe_routes[i].method == EVHTTP_REQ_GET))
            continue;
        r->route = i;
        break;
    }
    if (r->route < 0) {
        if (path_methods) {
            char allow[64];
            allow_header(path_methods, allow, sizeof allow);
            evhttp_add_header(evhttp_request_get_output_headers(ev), "Allow", allow);
            fe_reply_error(r, 405, "method_not_allowed", "this method is not allowed here");
        } else {
            fe_reply_error(r, 404, "not_found", "no such resource");
        }
        return;
    }
    const fe_route *rt = &fe_routes[r->route];
    /* The OpenRosa submission answers everything, its authentication's refusals too, in the
     * OpenRosa envelope (docs/api/openrosa.md). */
    r->openrosa = strncmp(rt->name, "openrosa_submission", 19) == 0;
    if (rt->body && !parse_body(r)) return;
    if (rt->auth == FE_AUTH_OPENROSA) {
        r->phase = FE_REQ_AUTH;
        fe_openrosa_authenticate(r, rt->handler);
        return;
    }
    if (rt->auth == FE_AUTH_REQUIRED ||
        (rt->auth == FE_AUTH_OPTIONAL &&
         evhttp_find_header(evhttp_request_get_input_headers(ev), "Authorization"))) {
        r->phase = FE_REQ_AUTH;
        fe_auth_authenticate(r, rt->handler);
        return;
    }
    r->phase = FE_REQ_HANDLER;
    rt->handler(r);
}

/* /metrics access: the token of metrics_token_file, and the separate metrics_listen listener
 * (plain HTTP, GET /metrics only, the token required there too when one is set). */
#include "fe_metrics_http.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_config.h"
#include "fe_http.h"
#include "fe_metrics.h"
#include "fv_log.h"

fv_bearer fe_metrics_token;
int fe_metrics_listen_fd = -1;

static struct evhttp *metrics_http; /* this child's metrics listener, or NULL */

bool fe_metrics_access_load(char *err, size_t errlen)
{
    memset(&fe_metrics_token, 0, sizeof fe_metrics_token);
    if (!fe_cfg.metrics_token_file[0]) return true;
    return fv_bearer_load(fe_cfg.metrics_token_file, &fe_metrics_token, err, errlen);
}

bool fe_metrics_listen_parse(const char *text, char *addr, size_t addrlen, int *port)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || addrlen < 64) return false;
    size_t n = (size_t)(colon - text);
    const char *a = text;
    if (text[0] == '[') {
        if (n < 3 || text[n - 1] != ']') return false;
        a = text + 1;
        n -= 2;
    }
    if (n >= addrlen) return false;
    memcpy(addr, a, n);
    addr[n] = '\0';
    unsigned char probe[16];
    if (inet_pton(text[0] == '[' ? AF_INET6 : AF_INET, addr, probe) != 1) return false;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p < 1 || p > 65535) return false;
    *port = (int)p;
    return true;
}

static void send_text(struct evhttp_request *req, int code, const char *ctype, const char *body,
                      size_t len)
{
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, 503, NULL);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evbuffer_add(out, body, len);
    evhttp_send_reply(req, code, NULL, out);
    evbuffer_free(out);
}

static void send_error(struct evhttp_request *req, int code, const char *ecode, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", ecode, msg);
    send_text(req, code, "application/json", body, (size_t)n);
}

static void on_metrics_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || strcmp(path, "/metrics") != 0) {
        send_error(req, 404, "not_found", "only GET /metrics here");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
        send_error(req, 405, "method_not_allowed", "only GET /metrics here");
        return;
    }
    if (fe_metrics_token.set &&
        !fv_bearer_matches(&fe_metrics_token,
                           evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization"))) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"fieldvault-metrics\"");
        send_error(req, 401, "unauthenticated", "Authorization: Bearer <metrics token> required");
        return;
    }
    size_t len = 0;
    char *text = fe_metrics_render(fe_route_name, fe_nroutes + 1, &len);
    if (!text) {
        send_error(req, 503, "overloaded", "out of memory; retry later");
        return;
    }
    send_text(req, 200, "text/plain; version=0.0.4", text, len);
    free(text);
}

bool fe_metrics_http_start(struct event_base *base)
{
    if (fe_metrics_listen_fd == -1) return true;
    metrics_http = evhttp_new(base);
    if (!metrics_http) return false;
    evhttp_set_allowed_methods(metrics_http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                                 EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_max_body_size(metrics_http, 0);
    evhttp_set_max_headers_size(metrics_http, 8192);
    evhttp_set_timeout(metrics_http, 10);
    evhttp_set_gencb(metrics_http, on_metrics_request, NULL);
    if (!evhttp_accept_socket_with_handle(metrics_http, fe_metrics_listen_fd)) {
        evhttp_free(metrics_http);
        metrics_http = NULL;
        return false;
    }
    return true;
}

void fe_metrics_http_free(void)
{
    if (metrics_http) evhttp_free(metrics_http);
    metrics_http = NULL;
}

/* Admin listener: GET /status (JSON), GET /metrics (Prometheus), POST /backends and
 * DELETE /backends/ADDR. Loopback only (checked by lb_config_check); the two that change the
 * pool need the bearer token of admin_token_file (refused when none is configured). */
#include "lb_admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "fv_bearer.h"
#include "fv_json.h"
#include "fv_log.h"
#include "lb_config.h"

#define LB_ADMIN_MAX_BODY 4096

static fv_bearer admin_token; /* from admin_token_file; not set: changes are refused */

static void reply(struct evhttp_request *req, int code, const char *ctype, const char *body, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add(out, body, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, code, NULL, out);
    evbuffer_free(out);
}

static void reply_error(struct evhttp_request *req, int code, const char *ecode, const char *msg)
{
    fv_jgen *j = fv_jgen_new();
    if (!j) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    fv_jgen_map_open(j);
    fv_jgen_key(j, "error");
    fv_jgen_map_open(j);
    fv_jgen_key(j, "code");
    fv_jgen_str(j, ecode);
    fv_jgen_key(j, "message");
    fv_jgen_str(j, msg);
    fv_jgen_map_close(j);
    fv_jgen_map_close(j);
    size_t len;
    const char *buf = fv_jgen_buf(j, &len);
    if (buf) reply(req, code, "application/json", buf, len);
    else evhttp_send_error(req, 500, NULL); /* generation failed: never invalid JSON */
    fv_jgen_free(j);
}

static void iso_time(double t, char *out, size_t outlen)
{
    time_t sec = (time_t)t;
    struct tm tm;
    gmtime_r(&sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03dZ", base, (int)((t - (double)sec) * 1000) % 1000);
}

static void gen_backend(fv_jgen *j, const lb_backend *b)
{
    fv_jgen_map_open(j);
    fv_jgen_key(j, "addr");
    fv_jgen_str(j, b->addr.text);
    fv_jgen_key(j, "state");
    fv_jgen_str(j, lb_state_name(b->state));
    fv_jgen_key(j, "source");
    fv_jgen_str(j, lb_source_name(b->source));
    fv_jgen_key(j, "active_connections");
    fv_jgen_int(j, b->active);
    fv_jgen_key(j, "total_connections");
    fv_jgen_int(j, (long long)b->total);
    fv_jgen_key(j, "pid");
    if (b->spawned_pid > 0) fv_jgen_int(j, b->spawned_pid);
    else fv_jgen_null(j);
    fv_jgen_key(j, "restarts");
    fv_jgen_int(j, b->restarts);
    fv_jgen_key(j, "restart_in_ms");
    if (b->restart_due_ms > 0) {
        long long in = b->restart_due_ms - lb_now_ms();
        fv_jgen_int(j, in > 0 ? in : 0);
    } else {
        fv_jgen_null(j);
    }
    fv_jgen_key(j, "last_check");
    if (!b->last.done) {
        fv_jgen_null(j);
    } else {
        char at[40];
        iso_time(b->last.at, at, sizeof at);
        fv_jgen_map_open(j);
        fv_jgen_key(j, "at");
        fv_jgen_str(j, at);
        fv_jgen_key(j, "ok");
        fv_jgen_bool(j, b->last.ok);
        fv_jgen_key(j, "status");
        if (b->last.http_status) fv_jgen_int(j, b->last.http_status);
        else fv_jgen_null(j);
        fv_jgen_key(j, "latency_ms");
        fv_jgen_double(j, b->last.latency_ms);
        fv_jgen_key(j, "error");
        fv_jgen_str(j, b->last.error[0] ? b->last.error : NULL);
        fv_jgen_map_close(j);
    }
    fv_jgen_map_close(j);
}

static void send_json(struct evhttp_request *req, int code, fv_jgen *j)
{
    size_t len;
    const char *buf = fv_jgen_buf(j, &len);
    if (buf) reply(req, code, "application/json", buf, len);
    else evhttp_send_error(req, 500, NULL); /* generation failed: never invalid JSON */
    fv_jgen_free(j);
}

static void handle_status(lb_server *s, struct evhttp_request *req)
{
    fv_jgen *j = fv_jgen_new();
    if (!j) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    fv_jgen_map_open(j);
    fv_jgen_key(j, "listen");
    fv_jgen_str(j, s->listen.text);
    fv_jgen_key(j, "stopping");
    fv_jgen_bool(j, s->stopping);
    fv_jgen_key(j, "active_connections");
    fv_jgen_int(j, s->nconns);
    fv_jgen_key(j, "spawned");
    size_t spawned = 0;
    for (size_t i = 0; i < s->pool.n; i++)
        spawned += s->pool.v[i]->source == LB_SRC_SPAWNED && s->pool.v[i]->state != LB_DRAINING;
    fv_jgen_int(j, (long long)spawned);
    fv_jgen_key(j, "backends");
    fv_jgen_array_open(j);
    for (size_t i = 0; i < s->pool.n; i++) gen_backend(j, s->pool.v[i]);
    fv_jgen_array_close(j);
    fv_jgen_map_close(j);
    send_json(req, 200, j);
}

static void handle_metrics(lb_server *s, struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add_printf(out,
                        "# HELP fv_lb_connections_active Client connections open now.\n"
                        "# TYPE fv_lb_connections_active gauge\nfv_lb_connections_active %ld\n",
                        s->nconns);
    evbuffer_add_printf(out,
                        "# HELP fv_lb_connections_total Client connections accepted.\n"
                        "# TYPE fv_lb_connections_total counter\nfv_lb_connections_total %llu\n",
                        s->conns_total);
    evbuffer_add_printf(
        out,
        "# HELP fv_lb_connect_retries_total Backend connects retried on another backend.\n"
        "# TYPE fv_lb_connect_retries_total counter\nfv_lb_connect_retries_total %llu\n",
        s->connect_retries);
    evbuffer_add_printf(
        out,
        "# HELP fv_lb_connect_failures_total Clients closed because no backend took them.\n"
        "# TYPE fv_lb_connect_failures_total counter\nfv_lb_connect_failures_total %llu\n",
        s->connect_failures);
    evbuffer_add_printf(out,
                        "# HELP fv_lb_spawns_total Front ends the balancer tried to start.\n"
                        "# TYPE fv_lb_spawns_total counter\nfv_lb_spawns_total %llu\n",
                        s->spawns_total);
    evbuffer_add_printf(out,
                        "# HELP fv_lb_spawn_failures_total Spawns that failed to start.\n"
                        "# TYPE fv_lb_spawn_failures_total counter\nfv_lb_spawn_failures_total %llu\n",
                        s->spawn_failures);
    evbuffer_add_printf(out,
                        "# HELP fv_lb_backend_connections_active Connections open to a backend now.\n"
                        "# TYPE fv_lb_backend_connections_active gauge\n");
    for (size_t i = 0; i < s->pool.n; i++)
        evbuffer_add_printf(out, "fv_lb_backend_connections_active{backend=\"%s\"} %ld\n",
                            s->pool.v[i]->addr.text, s->pool.v[i]->active);
    evbuffer_add_printf(out,
                        "# HELP fv_lb_backend_connections_total Connections established to a backend.\n"
                        "# TYPE fv_lb_backend_connections_total counter\n");
    for (size_t i = 0; i < s->pool.n; i++)
        evbuffer_add_printf(out, "fv_lb_backend_connections_total{backend=\"%s\"} %llu\n",
                            s->pool.v[i]->addr.text, s->pool.v[i]->total);
    evbuffer_add_printf(out, "# HELP fv_lb_backend_state 1 for the backend's current state.\n"
                             "# TYPE fv_lb_backend_state gauge\n");
    for (size_t i = 0; i < s->pool.n; i++)
        for (int st = 0; st < LB_NSTATES; st++)
            evbuffer_add_printf(out, "fv_lb_backend_state{backend=\"%s\",state=\"%s\"} %d\n",
                                s->pool.v[i]->addr.text, lb_state_name((lb_state)st),
                                (int)s->pool.v[i]->state == st);
    evbuffer_add_printf(out, "# HELP fv_lb_checks_total Health checks by result.\n"
                             "# TYPE fv_lb_checks_total counter\n");
    for (size_t i = 0; i < s->pool.n; i++)
        for (int r = 0; r < LB_NRESULTS; r++)
            evbuffer_add_printf(out, "fv_lb_checks_total{backend=\"%s\",result=\"%s\"} %llu\n",
                                s->pool.v[i]->addr.text, lb_result_name((lb_result)r),
                                s->pool.v[i]->checks[r]);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, NULL, out);
    evbuffer_free(out);
}

static void handle_add(lb_server *s, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len == 0 || len > LB_ADMIN_MAX_BODY) {
        reply_error(req, 400, "bad_request", "expected a JSON body {\"addr\":\"IP:port\"}");
        return;
    }
    char text[LB_ADMIN_MAX_BODY + 1];
    evbuffer_copyout(in, text, len);
    text[len] = '\0';
    char err[160];
    yajl_val v = fv_json_parse(text, err, sizeof err);
    const char *addr = v ? fv_json_get_str(v, "addr") : NULL;
    lb_addr a;
    if (!addr || !lb_addr_parse(addr, &a)) {
        if (v) yajl_tree_free(v);
        reply_error(req, 400, "bad_addr", "addr must be \"IP:port\" or \"[IPv6]:port\" (no host names)");
        return;
    }
    yajl_tree_free(v);
    lb_backend *b = lb_server_add_backend(s, &a, LB_SRC_RUNTIME, 0, err, sizeof err);
    if (!b) {
        reply_error(req, 409, "not_added", err);
        return;
    }
    fv_info("backend %s added at run time (admin)", b->addr.text);
    fv_jgen *j = fv_jgen_new();
    if (!j) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    gen_backend(j, b);
    send_json(req, 201, j);
}

static void handle_delete(lb_server *s, struct evhttp_request *req, const char *addr_text)
{
    char *decoded = evhttp_uridecode(addr_text, 0, NULL);
    lb_addr a;
    lb_backend *b = NULL;
    if (decoded && lb_addr_parse(decoded, &a)) b = lb_pool_find(&s->pool, a.text);
    free(decoded);
    if (!b) {
        reply_error(req, 404, "not_found", "no such backend (or already draining)");
        return;
    }
    fv_info("backend %s removed at run time (admin)", b->addr.text);
    lb_server_drain_backend(s, b, "removed by the admin API");
    static const char body[] = "{\"status\":\"draining\"}";
    reply(req, 202, "application/json", body, sizeof body - 1);
}

/* True when req carries the admin token; else answers 401 and returns false. */
static bool authorized(struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (fv_bearer_matches(&admin_token, h)) return true;
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"fv-balancer\"");
    if (!admin_token.set)
        reply_error(req, 401, "unauthenticated",
                    "changes through the admin API need admin_token_file, which is not set");
    else
        reply_error(req, 401, "unauthenticated",
                    h ? "wrong admin token" : "Authorization: Bearer <admin token> required");
    return false;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    lb_server *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (!path) path = "/";
    if (strcmp(path, "/status") == 0 && cmd == EVHTTP_REQ_GET) handle_status(s, req);
    else if (strcmp(path, "/metrics") == 0 && cmd == EVHTTP_REQ_GET) handle_metrics(s, req);
    else if (strcmp(path, "/backends") == 0 && cmd == EVHTTP_REQ_POST) {
        if (authorized(req)) handle_add(s, req);
    } else if (strncmp(path, "/backends/", 10) == 0 && cmd == EVHTTP_REQ_DELETE) {
        if (authorized(req)) handle_delete(s, req, path + 10);
    } else if (strcmp(path, "/status") == 0 || strcmp(path, "/metrics") == 0 ||
               strcmp(path, "/backends") == 0 || strncmp(path, "/backends/", 10) == 0)
        reply_error(req, 405, "method_not_allowed", "method not allowed on this path");
    else
        reply_error(req, 404, "not_found",
                    "GET /status, GET /metrics, POST /backends, DELETE /backends/ADDR");
}

bool lb_admin_start(lb_server *s)
{
    const char *errpos = "admin_token_file";
    lb_addr a;
    int fd = -1;
    char err[256];
    if (lb_cfg.admin_token_file[0] &&
        !fv_bearer_load(lb_cfg.admin_token_file, &admin_token, err, sizeof err)) {
        fv_error("cannot start the admin listener: admin_token_file: %s", err);
        return false;
    }
    if (!admin_token.set) fv_warn("admin_token_file is not set: POST and DELETE /backends are refused");
    errpos = "admin_addr";
    if (!lb_addr_from_ip(lb_cfg.admin_addr, lb_cfg.admin_port, &a)) {
        errno = EINVAL;
        goto failed;
    }
    fd = lb_addr_listen(&a, 128, &errpos);
    if (fd == -1) goto failed;
    errpos = "evhttp_new";
    s->admin = evhttp_new(s->base);
    if (!s->admin) goto failed;
    evhttp_set_allowed_methods(s->admin, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
    evhttp_set_max_body_size(s->admin, LB_ADMIN_MAX_BODY);
    evhttp_set_timeout(s->admin, 10);
    evhttp_set_gencb(s->admin, on_request, s);
    errpos = "evhttp_accept_socket";
    if (!evhttp_accept_socket_with_handle(s->admin, fd)) goto failed;
    return true;
failed:
    fv_error("cannot start the admin listener on %s:%d: %s: %s", lb_cfg.admin_addr, lb_cfg.admin_port,
             errpos, strerror(errno));
    if (fd != -1) close(fd);
    return false;
}

void lb_admin_free(lb_server *s)
{
    if (s->admin) evhttp_free(s->admin);
    s->admin = NULL;
}

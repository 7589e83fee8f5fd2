/* Health checker: one TLS connection per check, a minimal HTTP/1.1 client, the verdict fed to
 * the backend's rise/fall state machine (lb_backend_record). */
#include "lb_check.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "fv_json.h"
#include "fv_log.h"
#include "lb_config.h"

#define LB_CHECK_MAX_RESPONSE 16384

/* A backend's checker. Owned by the backend (b->check), freed by lb_check_stop. */
typedef struct lb_check {
    lb_server *srv;          /* borrowed */
    lb_backend *b;           /* borrowed: the backend owns us */
    struct event *timer;     /* the next check, or the deadline of the one in flight */
    struct bufferevent *bev; /* the check in flight (owns its socket and SSL), else NULL */
    long long started_ms;
} lb_check;

SSL_CTX *lb_check_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "SSL_CTX_new failed");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (!verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    bool loaded = ca_file && ca_file[0] ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) == 1
                                        : SSL_CTX_set_default_verify_paths(ctx) == 1;
    if (!loaded) {
        char e[256];
        ERR_error_string_n(ERR_get_error(), e, sizeof e);
        snprintf(err, errlen, "check_ca_file %s: %s", ca_file && ca_file[0] ? ca_file : "(system CAs)",
                 e);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

static int jittered(int ms)
{
    int spread = ms / 10;
    return spread > 0 ? ms - spread + (int)(random() % (2 * spread + 1)) : ms;
}

static void arm(lb_check *c, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void check_done(lb_check *c, lb_result r, int http_status, const char *error)
{
    lb_backend *b = c->b;
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    b->last.done = true;
    b->last.at = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    b->last.ok = r != LB_RES_FAILED;
    b->last.http_status = http_status;
    b->last.latency_ms = (double)(lb_now_ms() - c->started_ms);
    snprintf(b->last.error, sizeof b->last.error, "%s", error ? error : "");
    b->checks[r]++;
    char reason[200];
    if (r == LB_RES_FAILED) snprintf(reason, sizeof reason, "%s", error);
    else snprintf(reason, sizeof reason, "/readyz %s in %.0f ms", lb_result_name(r), b->last.latency_ms);
    fv_debug("check %s: %s", b->addr.text, reason);
    bool changed = lb_backend_record(b, r, lb_cfg.rise, lb_cfg.fall, reason);
    arm(c, jittered(lb_cfg.check_interval_ms));
    lb_server_checked(c->srv, changed);
}

bool lb_check_parse(const char *data, size_t len, bool eof, lb_check_answer *out)
{
    out->result = LB_RES_FAILED;
    out->http_status = 0;
    out->error[0] = '\0';
#define FAIL(status, ...)                                     \
    do {                                                      \
        out->http_status = (status);                          \
        snprintf(out->error, sizeof out->error, __VA_ARGS__); \
        return true;                                          \
    } while (0)
    if (len > LB_CHECK_MAX_RESPONSE) FAIL(0, "response larger than 16 KiB");
    char buf[LB_CHECK_MAX_RESPONSE + 1];
    if (len) memcpy(buf, data, len);
    buf[len] = '\0';
    char *hend = strstr(buf, "\r\n\r\n");
    if (!hend) {
        if (eof) FAIL(0, "%s", len ? "truncated HTTP response" : "connection closed without a response");
        return false;
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*1[01] %3d", &status) != 1 || status < 100) FAIL(0, "not an HTTP response");
    *hend = '\0';
    char *body = hend + 4;
    size_t have = len - (size_t)(body - buf);
    long clen = -1;
    for (char *line = strstr(buf, "\r\n"); line; line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0) clen = strtol(line + 17, NULL, 10);
    if (clen >= 0 && (size_t)clen > have) {
        if (eof) FAIL(status, "truncated body");
        return false;
    }
    if (clen < 0 && !eof) return false; /* read to the end (we asked for Connection: close) */
    if (clen >= 0) body[clen] = '\0';
    if (status != 200) FAIL(status, "/readyz answered %d", status);
    out->http_status = status;
    char jerr[128];
    yajl_val v = fv_json_parse(body, jerr, sizeof jerr);
    const char *st = v ? fv_json_get_str(v, "status") : NULL;
    if (st && strcmp(st, "ready") == 0) out->result = LB_RES_READY;
    else if (st && strcmp(st, "degraded") == 0) out->result = LB_RES_DEGRADED;
    else
        snprintf(out->error, sizeof out->error, "%s",
                 st ? "/readyz status is neither ready nor degraded" : "/readyz body has no status");
    if (v) yajl_tree_free(v);
    return true;
#undef FAIL
}

/* Parses what we have; returns true when the check is decided (check_done was called). */
static bool try_parse(lb_check *c, bool eof)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in);
    /* Past the limit the parser decides without looking: do not pull up a huge buffer. */
    const char *text = len > LB_CHECK_MAX_RESPONSE ? "" : (const char *)evbuffer_pullup(in, -1);
    lb_check_answer a;
    if (!lb_check_parse(text ? text : "", text ? len : 0, eof, &a)) return false;
    check_done(c, a.result, a.http_status, a.result == LB_RES_FAILED ? a.error : NULL);
    return true;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    try_parse(arg, false);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    lb_check *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        try_parse(c, true);
        return;
    }
    char e[160];
    unsigned long ssl_err = bufferevent_get_openssl_error(bev);
    int sock_err = EVUTIL_SOCKET_ERROR();
    if (ssl_err) {
        char s[120];
        ERR_error_string_n(ssl_err, s, sizeof s);
        snprintf(e, sizeof e, "TLS: %s", s);
    } else if (sock_err) {
        snprintf(e, sizeof e, "%s", strerror(sock_err));
    } else {
        snprintf(e, sizeof e, "connection error");
    }
    while (bufferevent_get_openssl_error(bev)) {}
    check_done(c, LB_RES_FAILED, 0, e);
}

static void start_check(lb_check *c)
{
    lb_backend *b = c->b;
    const char *errpos = "SSL_new";
    c->started_ms = lb_now_ms();
    SSL *ssl = SSL_new(c->srv->check_ctx);
    if (!ssl) goto failed;
    if (lb_cfg.check_server_name[0]) {
        /* The certificate must carry this name; it is also the SNI the front end sees. */
        errpos = "check_server_name";
        if (SSL_set_tlsext_host_name(ssl, lb_cfg.check_server_name) != 1 ||
            ((SSL_CTX_get_verify_mode(c->srv->check_ctx) & SSL_VERIFY_PEER) &&
             X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), lb_cfg.check_server_name, 0) != 1)) {
            SSL_free(ssl);
            goto failed;
        }
    } else if (SSL_CTX_get_verify_mode(c->srv->check_ctx) & SSL_VERIFY_PEER) {
        /* No name configured: the certificate must name the backend's IP address. */
        char ip[64];
        snprintf(ip, sizeof ip, "%s", b->addr.text[0] == '[' ? b->addr.text + 1 : b->addr.text);
        char *end = strrchr(ip, b->addr.text[0] == '[' ? ']' : ':');
        if (end) *end = '\0';
        errpos = "X509_VERIFY_PARAM_set1_ip_asc";
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) != 1) {
            SSL_free(ssl);
            goto failed;
        }
    }
    errpos = "socket";
    int fd = socket(b->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        SSL_free(ssl);
        goto failed;
    }
    errpos = "bufferevent_openssl_socket_new";
    c->bev = bufferevent_openssl_socket_new(c->srv->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        /* With BEV_OPT_CLOSE_ON_FREE, libevent 2.1 frees the SSL itself when this fails. */
        close(fd);
        goto failed;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    errpos = "connect";
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&b->addr.ss, (int)b->addr.len) == -1) {
        check_done(c, LB_RES_FAILED, 0, "connect failed");
        return;
    }
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "GET /readyz HTTP/1.1\r\nHost: %s\r\nUser-Agent: fv-balancer\r\n"
                        "Accept: application/json\r\nConnection: close\r\n\r\n",
                        b->addr.text);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    arm(c, lb_cfg.check_timeout_ms);
    return;
failed : {
    char e[160];
    snprintf(e, sizeof e, "%s: %s", errpos, strerror(errno));
    check_done(c, LB_RES_FAILED, 0, e);
}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    lb_check *c = arg;
    if (c->bev) {
        char e[64];
        snprintf(e, sizeof e, "no answer within %d ms", lb_cfg.check_timeout_ms);
        check_done(c, LB_RES_FAILED, 0, e);
    } else {
        start_check(c);
    }
}

bool lb_check_start(lb_server *s, lb_backend *b, int first_delay_ms)
{
    lb_check *c = calloc(1, sizeof *c);
    if (!c) return false;
    c->srv = s;
    c->b = b;
    c->timer = evtimer_new(s->base, on_timer, c);
    if (!c->timer) {
        free(c);
        return false;
    }
    b->check = c;
    arm(c, first_delay_ms > 0 ? first_delay_ms : 0);
    return true;
}

void lb_check_stop(lb_backend *b)
{
    lb_check *c = b->check;
    if (!c) return;
    if (c->bev) bufferevent_free(c->bev);
    event_free(c->timer);
    free(c);
    b->check = NULL;
}

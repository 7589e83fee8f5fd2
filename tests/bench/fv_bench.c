/* fv-bench: load generator for JSON and OpenRosa submissions over HTTPS keep-alive. */

/*
 * One libevent loop drives K TLS connections (bufferevent_openssl on our own non-blocking,
 * TCP_NODELAY sockets) with a small hand-written HTTP/1.1 client: each connection keeps up to
 * P requests in flight and sends the next one when a response arrives. Every request carries a
 * fresh client-side UUID as its submission id: JSON submissions to POST
 * /v1/deployments/{dep}/responses, or (--openrosa) ODK Collect's multipart POST to the
 * deployment's OpenRosa .../submission with the UUID as the instanceID, optionally with one
 * attachment. After the load phase it can poll PostgreSQL until every acknowledged id is stored
 * (end-to-end rate). See tests/bench/README.md.
 *
 * Ownership: one struct fb_bench (static, lives for the whole run) owns the event base, the TLS
 * context, the connections array, the request template (its buffers and the attachment's bytes,
 * which every request's output buffer references without copying) and the result arrays. Each struct
 * fb_conn owns its bufferevent (which owns the SSL and the fd: BEV_OPT_CLOSE_ON_FREE), its timer
 * and its ring of in-flight requests; a connection's bufferevent pointer is cleared when freed.
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <uuid/uuid.h>

#define FB_MAX_HEAD (64 * 1024) /* a response head longer than this is a protocol error */
#define FB_BODY_KEEP 1024       /* bytes of a response body kept to look for the id in */
#define FB_STATUS_MAX 600       /* status codes 100..599 */
#define FB_LOG_LIMIT 20         /* connection problems logged before going quiet */
#define FB_BACKOFF_MIN_MS 20    /* reconnect delay after a failure, doubled up to the max */
#define FB_BACKOFF_MAX_MS 1000
#define FB_PG_CHUNK 5000     /* ids per PostgreSQL poll query */
#define FB_PG_POLL_US 100000 /* 100 ms between polls that found nothing new */
#define FB_UUID_LEN 36
#define FB_RANDINT_LEN 6           /* {{randInt}}: a fresh 6-digit number per request */
#define FB_TEMPLATE_MAX (1u << 20) /* --openrosa XML template, bytes */
#define FB_ATTACH_MAX (10u << 20)  /* --attach file, bytes (the server's default body limit) */
#define FB_BOUNDARY_HEX 32         /* random hex digits of the multipart boundary */

#define FB_EXIT_OK 0
#define FB_EXIT_FAILED 1 /* the run had errors, or the drain timed out */
#define FB_EXIT_USAGE 2  /* bad options or setup failure */

/* How requests authenticate (--auth). */
enum fb_auth {
    FB_AUTH_BEARER, /* Authorization: Bearer KEY (API key or session token; the JSON API's) */
    FB_AUTH_BASIC,  /* Authorization: Basic base64(email:password), KEY = email:password */
    FB_AUTH_TOKEN,  /* an app user's token in the path: /v1/key/KEY/openrosa/... (no header) */
};

/* Command-line options, parsed once; strings borrow argv or the environment. */
struct fb_opts {
    const char *url;
    char authority[128]; /* host[:port] as given, for the Host header */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[64]; /* the IP literal, for certificate checks */
    const char *key;
    const char *deployment;
    long connections;
    long pipeline;
    long long requests;
    bool requests_set;
    double duration_s; /* 0: bounded by requests only */
    double max_time_s; /* hard deadline for the load phase */
    double timeout_s;  /* per-request (read) and connect timeout */
    const char *data;
    const char *cacert;
    const char *pg;
    double drain_timeout_s;
    const char *ids_out;
    bool json;
    const char *openrosa; /* XML template file: OpenRosa mode; NULL: JSON submissions */
    const char *attach;   /* OpenRosa mode: a file sent as one attachment part */
    enum fb_auth auth;
};

/* A fixed-width field of the request rewritten before each send. */
enum fb_patch_kind {
    FB_PATCH_UUID,    /* the request's id, 36 lower-case characters */
    FB_PATCH_RANDINT, /* a random number of FB_RANDINT_LEN digits */
};

struct fb_patch {
    char *at; /* borrowed: into fb_bench.req or fb_bench.tail */
    enum fb_patch_kind kind;
};

/* A request written on a connection and not yet answered. */
struct fb_inflight {
    uuid_t id;
    uint64_t t_sent_us;
};

enum fb_conn_state {
    FB_CONN_IDLE,      /* no socket; its timer will (re)connect it */
    FB_CONN_HANDSHAKE, /* TCP connect and TLS handshake under way; timer is the connect timeout */
    FB_CONN_OPEN,      /* TLS up: requests in flight, responses parsed as they arrive */
    FB_CONN_DONE,      /* nothing left to send and nothing in flight: closed for good */
};

enum fb_parse_state {
    FB_PARSE_HEAD,        /* waiting for a status line and headers */
    FB_PARSE_BODY_LEN,    /* Content-Length body: body_left bytes to go */
    FB_PARSE_CHUNK_SIZE,  /* chunked: waiting for a chunk-size line */
    FB_PARSE_CHUNK_DATA,  /* chunked: body_left bytes of chunk data to go */
    FB_PARSE_CHUNK_CRLF,  /* chunked: the CRLF that ends a chunk's data */
    FB_PARSE_TRAILER,     /* chunked: trailer lines until an empty one */
    FB_PARSE_UNTIL_CLOSE, /* neither length nor chunked: the body ends when the server closes */
};

enum fb_parse_result {
    FB_PARSE_MORE,  /* need more input; connection stays */
    FB_PARSE_CLOSE, /* a response said the connection ends here */
    FB_PARSE_ERROR, /* malformed or unexpected input */
};

struct fb_bench;

/* One keep-alive connection. Owned by fb_bench.conns; owns bev, timer and ring. */
struct fb_conn {
    struct fb_bench *b; /* borrowed */
    int index;
    enum fb_conn_state state;
    struct bufferevent *bev;  /* owned; NULL when no socket */
    struct event *timer;      /* owned; reconnect delay or connect timeout */
    struct fb_inflight *ring; /* owned; o.pipeline entries */
    long head;                /* oldest in-flight request */
    long count;               /* requests in flight */
    unsigned backoff_ms;
    /* response parser */
    enum fb_parse_state ps;
    int status;
    bool close_after;
    uint64_t body_left;
    size_t body_len;
    char body[FB_BODY_KEEP + 1];
};

/* The whole run. A single static instance; owns everything listed at the top of the file. */
struct fb_bench {
    struct fb_opts o;
    struct event_base *base;
    SSL_CTX *ssl_ctx;
    struct fb_conn *conns;
    struct event *deadline_ev;
    struct event *progress_ev;
    struct event *sigint_ev;
    struct event *sigterm_ev;
    /*
     * One request is req (copied into the output buffer), then, with an attachment, att
     * (referenced, never copied: constant for the run) and tail (copied). The patches rewrite
     * the id (and random numbers) in req and tail before each send; their widths are fixed, so
     * Content-Length is too.
     */
    char *req; /* owned */
    size_t req_len;
    unsigned char *att; /* owned: the attachment's bytes, or NULL */
    size_t att_len;
    char *tail; /* owned: after att: the id that makes each attachment unique, the closing boundary */
    size_t tail_len;
    struct fb_patch *patches; /* owned */
    size_t npatches;
    uint64_t rng;               /* xorshift64* state for the random numbers */
    char head[FB_MAX_HEAD + 1]; /* scratch for parsing one response head */

    uint64_t t_start_us, t_first_send_us, t_issue_end_us;
    uint64_t t_load_end_us; /* last response, or last request given up on */
    bool stopping;          /* no new requests (signal, duration or deadline) */
    bool deadline_hit;
    bool unreachable; /* no connection succeeded within --timeout */
    int signals;
    long live; /* connections not DONE */
    long long issued;

    /* counters */
    long long sent;
    /* JSON: 202 whose body names our id; OpenRosa: 201 or 202 with the success envelope */
    long long accepted;
    /* JSON: 202 whose body does not name our id; OpenRosa: 201/202 without the envelope */
    long long bad_ack;
    long long stored_201; /* OpenRosa: accepted with 201 (the server saw it stored) */
    long long queued_202; /* OpenRosa: accepted with 202 (durably queued, not yet seen stored) */
    long long status[FB_STATUS_MAX];
    long long no_response; /* sent, but the connection broke, timed out or the run ended */
    long long timed_out;   /* of no_response: abandoned at the hard deadline */
    long long conn_errors;
    long long connects;
    long long log_budget;

    uint32_t *lat_us; /* every response's latency */
    size_t lat_n, lat_cap;
    uuid_t *acked; /* every accepted id, in the order acknowledged */
    size_t acked_n, acked_cap;
};

/* Outcome of the PostgreSQL drain. */
struct fb_drain {
    bool ran;
    bool ok; /* every accepted id is stored */
    bool timed_out;
    bool failed; /* connection or query error */
    size_t stored;
    uint64_t t_visible_us; /* when the last accepted row was seen (start of that poll) */
};

static struct fb_bench fb;

static uint64_t fb_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void fb_oom(void)
{
    fprintf(stderr, "fv-bench: out of memory\n");
    exit(FB_EXIT_USAGE);
}

static struct timeval fb_tv(double seconds)
{
    struct timeval tv;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    return tv;
}

/* Logs one connection problem on stderr, going quiet after FB_LOG_LIMIT of them. */
static void fb_conn_log(struct fb_conn *c, const char *what, const char *detail)
{
    if (c->b->log_budget >= FB_LOG_LIMIT) return;
    c->b->log_budget++;
    fprintf(stderr, "fv-bench: conn %d: %s%s%s (%ld in flight)%s\n", c->index, what,
            detail && *detail ? ": " : "", detail ? detail : "", c->count,
            c->b->log_budget == FB_LOG_LIMIT ? "; further connection problems not logged" : "");
}

/* True while new requests may be issued; counts nothing. */
static bool fb_budget_left(struct fb_bench *b)
{
    if (b->stopping) return false;
    if (b->o.requests_set && b->issued >= b->o.requests) return false;
    if (b->o.duration_s > 0 && fb_now_us() >= b->t_issue_end_us) return false;
    return true;
}

static void fb_record_latency(struct fb_bench *b, uint64_t us)
{
    if (b->lat_n == b->lat_cap) {
        size_t cap = b->lat_cap ? b->lat_cap * 2 : 65536;
        uint32_t *p = realloc(b->lat_us, cap * sizeof *p);
        if (!p) fb_oom();
        b->lat_us = p;
        b->lat_cap = cap;
    }
    b->lat_us[b->lat_n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void fb_record_ack(struct fb_bench *b, const uuid_t id)
{
    if (b->acked_n == b->acked_cap) {
        size_t cap = b->acked_cap ? b->acked_cap * 2 : 65536;
        uuid_t *p = realloc(b->acked, cap * sizeof *p);
        if (!p) fb_oom();
        b->acked = p;
        b->acked_cap = cap;
    }
    uuid_copy(b->acked[b->acked_n++], id);
}

static void fb_maybe_finish(struct fb_bench *b)
{
    if (b->live == 0) event_base_loopbreak(b->base);
}

static void fb_parser_reset(struct fb_conn *c)
{
    c->ps = FB_PARSE_HEAD;
    c->status = 0;
    c->close_after = false;
    c->body_left = 0;
    c->body_len = 0;
}

/* Frees the connection's socket; in-flight requests must have been accounted for already. */
static void fb_conn_release(struct fb_conn *c)
{
    if (c->bev) {
        bufferevent_free(c->bev); /* also frees the SSL and closes the fd */
        c->bev = NULL;
    }
    event_del(c->timer);
    c->head = 0;
    c->count = 0;
    fb_parser_reset(c);
}

static void fb_conn_done(struct fb_conn *c)
{
    fb_conn_release(c);
    if (c->state != FB_CONN_DONE) {
        c->state = FB_CONN_DONE;
        c->b->live--;
        fb_maybe_finish(c->b);
    }
}

static void fb_stop_now(struct fb_bench *b);

/* Ends the connection; what was in flight is lost. Reconnects if there is still work. */
static void fb_conn_drop(struct fb_conn *c, const char *why, const char *detail, bool error)
{
    struct fb_bench *b = c->b;
    bool failed = error || c->count > 0;

    if (failed) {
        b->conn_errors++;
        b->no_response += c->count;
        if (c->count > 0) b->t_load_end_us = fb_now_us();
        fb_conn_log(c, why, detail);
    }
    fb_conn_release(c);
    if (b->connects == 0 && !b->stopping &&
        fb_now_us() - b->t_start_us >= (uint64_t)(b->o.timeout_s * 1e6)) {
        fprintf(stderr,
                "fv-bench: no TLS connection succeeded within --timeout %.0f s, "
                "giving up\n",
                b->o.timeout_s);
        b->unreachable = true;
        fb_stop_now(b);
        return;
    }
    if (!fb_budget_left(b)) {
        fb_conn_done(c);
        return;
    }
    c->state = FB_CONN_IDLE;
    unsigned delay_ms = 0;
    if (failed) {
        delay_ms = c->backoff_ms;
        c->backoff_ms = c->backoff_ms * 2 > FB_BACKOFF_MAX_MS ? FB_BACKOFF_MAX_MS : c->backoff_ms * 2;
    }
    struct timeval tv = {delay_ms / 1000, (suseconds_t)(delay_ms % 1000) * 1000};
    event_add(c->timer, &tv);
}

/* Collects OpenSSL's and the socket's view of why a bufferevent failed. */
static void fb_bev_error(struct bufferevent *bev, int sockerr, char *out, size_t outlen)
{
    unsigned long e;
    size_t used = 0;

    out[0] = '\0';
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        char buf[256];
        if (ERR_GET_LIB(e) == 0)
            continue; /* not an OpenSSL library error (libevent queues errno values too) */
        ERR_error_string_n(e, buf, sizeof buf);
        int n = snprintf(out + used, outlen - used, "%s%s", used ? "; " : "", buf);
        if (n < 0 || (size_t)n >= outlen - used) return;
        used += (size_t)n;
    }
    if (used == 0 && sockerr != 0) snprintf(out, outlen, "%s", evutil_socket_error_to_string(sockerr));
}

/*
 * A random (version 4) UUID from OpenSSL's user-space DRBG: libuuid's uuid_generate_random
 * makes five system calls per id, a fifth of this program's cost per request.
 */
static void fb_new_id(uuid_t out)
{
    if (RAND_bytes(out, sizeof(uuid_t)) != 1) {
        fprintf(stderr, "fv-bench: RAND_bytes failed\n");
        exit(FB_EXIT_USAGE);
    }
    out[6] = (unsigned char)((out[6] & 0x0f) | 0x40); /* version 4 */
    out[8] = (unsigned char)((out[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

/* A 64-bit pseudo-random number (xorshift64*): the load's filler, not a secret. */
static uint64_t fb_rand64(struct fb_bench *b)
{
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 0x2545F4914F6CDD1DULL;
}

/* Writes FB_RANDINT_LEN random decimal digits at p, the first not 0. */
static void fb_randint(struct fb_bench *b, char *p)
{
    uint64_t v = 100000 + fb_rand64(b) % 900000;
    for (int i = FB_RANDINT_LEN - 1; i >= 0; i--, v /= 10) p[i] = (char)('0' + v % 10);
}

/* Queues one request with a fresh id on an open connection. */
static void fb_conn_send(struct fb_conn *c)
{
    struct fb_bench *b = c->b;
    struct fb_inflight *r = &c->ring[(c->head + c->count) % b->o.pipeline];
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char text[FB_UUID_LEN + 1];

    fb_new_id(r->id);
    uuid_unparse_lower(r->id, text);
    for (size_t i = 0; i < b->npatches; i++) {
        if (b->patches[i].kind == FB_PATCH_UUID) memcpy(b->patches[i].at, text, FB_UUID_LEN);
        else fb_randint(b, b->patches[i].at);
    }
    r->t_sent_us = fb_now_us();
    if (evbuffer_add(out, b->req, b->req_len) == -1) fb_oom();
    if (b->att) {
        /* the constant bytes by reference (they live as long as the run); the tail copied */
        if (evbuffer_add_reference(out, b->att, b->att_len, NULL, NULL) == -1 ||
            evbuffer_add(out, b->tail, b->tail_len) == -1)
            fb_oom();
    }
    c->count++;
    b->issued++;
    b->sent++;
    if (b->t_first_send_us == 0) b->t_first_send_us = r->t_sent_us;
}

/* Tops the connection up to the pipeline depth, or closes it when the run has no work left. */
static void fb_conn_fill(struct fb_conn *c)
{
    while (c->count < c->b->o.pipeline && fb_budget_left(c->b)) fb_conn_send(c);
    if (c->count == 0) fb_conn_done(c);
}

/* Accounts for the oldest in-flight request, whose response just ended. */
static void fb_response_done(struct fb_conn *c)
{
    struct fb_bench *b = c->b;
    struct fb_inflight *r = &c->ring[c->head];
    uint64_t now = fb_now_us();

    fb_record_latency(b, now - r->t_sent_us);
    b->t_load_end_us = now;
    c->body[c->body_len] = '\0';
    if (b->o.openrosa) {
        /* The envelope names no instance: with --pipeline 1 a response is its request's. */
        bool ok = strstr(c->body, "<OpenRosaResponse") && strstr(c->body, "<message nature=\"\">");
        if ((c->status == 201 || c->status == 202) && ok) {
            b->accepted++;
            if (c->status == 201) b->stored_201++;
            else b->queued_202++;
            fb_record_ack(b, r->id);
            c->backoff_ms = FB_BACKOFF_MIN_MS;
        } else if (c->status == 201 || c->status == 202) {
            b->bad_ack++;
            fb_conn_log(c, "201/202 without the OpenRosa success envelope", NULL);
        } else {
            /* the status and the envelope's message, on one line */
            char detail[200];
            const char *m = strstr(c->body, "<message");
            int n = snprintf(detail, sizeof detail, "%d %s", c->status, m ? m : c->body);
            for (int i = 0; n > 0 && i < n && i < (int)sizeof detail - 1; i++)
                if (detail[i] == '\r' || detail[i] == '\n') detail[i] = ' ';
            b->status[c->status]++;
            fb_conn_log(c, "not accepted", detail);
        }
    } else if (c->status == 202) {
        char text[FB_UUID_LEN + 1];
        uuid_unparse_lower(r->id, text);
        if (strcasestr(c->body, text)) {
            b->accepted++;
            fb_record_ack(b, r->id);
            c->backoff_ms = FB_BACKOFF_MIN_MS;
        } else {
            b->bad_ack++;
            fb_conn_log(c, "202 without our id", text);
        }
    } else {
        b->status[c->status]++;
    }
    c->head = (c->head + 1) % b->o.pipeline;
    c->count--;
}

static void fb_body_keep(struct fb_conn *c, struct evbuffer *in, size_t n)
{
    size_t room = FB_BODY_KEEP - c->body_len;
    size_t k = n < room ? n : room;
    if (k > 0) {
        evbuffer_copyout(in, c->body + c->body_len, k);
        c->body_len += k;
    }
    evbuffer_drain(in, n);
}

/* Parses the status line and headers in b->head (NUL-terminated); false if malformed. */
static bool fb_parse_head(struct fb_conn *c, char *h)
{
    bool http10, chunked = false, has_len = false, keep_alive = false;
    uint64_t len = 0;
    char *line, *save = NULL;

    if (strncmp(h, "HTTP/1.", 7) != 0 || (h[7] != '0' && h[7] != '1') || h[8] != ' ' ||
        !isdigit((unsigned char)h[9]) || !isdigit((unsigned char)h[10]) ||
        !isdigit((unsigned char)h[11]) || (h[12] != ' ' && h[12] != '\r'))
        return false;
    http10 = h[7] == '0';
    c->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    if (c->status < 100 || c->status >= FB_STATUS_MAX) return false;

    line = strtok_r(h, "\r\n", &save); /* status line */
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        char *colon = strchr(line, ':');
        if (!colon) return false;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        if (strcasecmp(line, "Content-Length") == 0) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (errno || end == v || !isdigit((unsigned char)*v)) return false;
            while (*end == ' ' || *end == '\t') end++;
            if (*end != '\0' || (has_len && n != len)) return false;
            len = n;
            has_len = true;
        } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
            if (strcasestr(v, "chunked")) chunked = true;
        } else if (strcasecmp(line, "Connection") == 0) {
            if (strcasestr(v, "close")) c->close_after = true;
            if (strcasestr(v, "keep-alive")) keep_alive = true;
        }
    }
    if (http10 && !keep_alive) c->close_after = true;

    c->body_len = 0;
    if ((c->status >= 100 && c->status < 200) || c->status == 204 || c->status == 304) {
        c->body_left = 0;
        c->ps = FB_PARSE_BODY_LEN;
    } else if (chunked) {
        c->ps = FB_PARSE_CHUNK_SIZE;
    } else if (has_len) {
        c->body_left = len;
        c->ps = FB_PARSE_BODY_LEN;
    } else {
        c->close_after = true;
        c->ps = FB_PARSE_UNTIL_CLOSE;
    }
    return true;
}

/* Consumes as many complete responses as the input holds. eof: the server has closed. */
static enum fb_parse_result fb_conn_parse(struct fb_conn *c, struct evbuffer *in, bool eof)
{
    struct fb_bench *b = c->b;

    for (;;) {
        size_t avail = evbuffer_get_length(in);
        bool complete = false;

        switch (c->ps) {
        case FB_PARSE_HEAD: {
            if (avail == 0) return FB_PARSE_MORE;
            if (c->count == 0) return FB_PARSE_ERROR; /* a response nobody asked for */
            struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
            if (p.pos == -1) return avail > FB_MAX_HEAD ? FB_PARSE_ERROR : FB_PARSE_MORE;
            size_t hlen = (size_t)p.pos + 4;
            if (hlen > FB_MAX_HEAD) return FB_PARSE_ERROR;
            evbuffer_remove(in, b->head, hlen);
            b->head[hlen] = '\0';
            if (!fb_parse_head(c, b->head)) return FB_PARSE_ERROR;
            break;
        }
        case FB_PARSE_BODY_LEN:
        case FB_PARSE_CHUNK_DATA: {
            size_t n = avail < c->body_left ? avail : (size_t)c->body_left;
            fb_body_keep(c, in, n);
            c->body_left -= n;
            if (c->body_left > 0) return FB_PARSE_MORE;
            if (c->ps == FB_PARSE_CHUNK_DATA) c->ps = FB_PARSE_CHUNK_CRLF;
            else complete = true;
            break;
        }
        case FB_PARSE_CHUNK_SIZE: {
            size_t n;
            char *l = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
            if (!l) return avail > 1024 ? FB_PARSE_ERROR : FB_PARSE_MORE;
            char *end;
            errno = 0;
            unsigned long long size = strtoull(l, &end, 16);
            bool bad = errno || end == l || (*end != '\0' && *end != ';' && *end != ' ');
            free(l);
            if (bad || size > (1ull << 40)) return FB_PARSE_ERROR;
            if (size == 0) {
                c->ps = FB_PARSE_TRAILER;
            } else {
                c->body_left = size;
                c->ps = FB_PARSE_CHUNK_DATA;
            }
            break;
        }
        case FB_PARSE_CHUNK_CRLF: {
            char crlf[2];
            if (avail < 2) return FB_PARSE_MORE;
            evbuffer_remove(in, crlf, 2);
            if (crlf[0] != '\r' || crlf[1] != '\n') return FB_PARSE_ERROR;
            c->ps = FB_PARSE_CHUNK_SIZE;
            break;
        }
        case FB_PARSE_TRAILER: {
            size_t n;
            char *l = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
            if (!l) return avail > FB_MAX_HEAD ? FB_PARSE_ERROR : FB_PARSE_MORE;
            free(l);
            if (n == 0) complete = true;
            break;
        }
        case FB_PARSE_UNTIL_CLOSE:
            fb_body_keep(c, in, avail);
            if (!eof) return FB_PARSE_MORE;
            complete = true;
            break;
        }

        if (!complete) continue;
        if (c->status < 200) { /* interim response: the real one follows */
            fb_parser_reset(c);
            continue;
        }
        bool close_after = c->close_after;
        fb_response_done(c);
        fb_parser_reset(c);
        if (close_after) return FB_PARSE_CLOSE;
    }
}

static void fb_conn_readcb(struct bufferevent *bev, void *arg)
{
    struct fb_conn *c = arg;

    switch (fb_conn_parse(c, bufferevent_get_input(bev), false)) {
    case FB_PARSE_MORE: fb_conn_fill(c); break;
    case FB_PARSE_CLOSE: fb_conn_drop(c, "server closed after a response", NULL, false); break;
    case FB_PARSE_ERROR: fb_conn_drop(c, "malformed or unexpected response", NULL, true); break;
    }
}

static void fb_conn_eventcb(struct bufferevent *bev, short events, void *arg)
{
    struct fb_conn *c = arg;
    struct fb_bench *b = c->b;
    int sockerr = errno; /* libevent restores the socket error before a deferred event callback */
    char detail[512];

    if (events & BEV_EVENT_CONNECTED) {
        struct timeval tv = fb_tv(b->o.timeout_s);
        event_del(c->timer); /* the connect timeout */
        c->state = FB_CONN_OPEN;
        b->connects++;
        bufferevent_set_timeouts(bev, &tv, &tv);
        fb_conn_fill(c);
        return;
    }
    if (c->state == FB_CONN_HANDSHAKE && sockerr != 0 && sockerr != EAGAIN && sockerr != EINPROGRESS &&
        !(events & BEV_EVENT_TIMEOUT)) {
        /* e.g. ECONNREFUSED, which OpenSSL may have reported as a plain EOF */
        fb_conn_drop(c, "connect or TLS handshake failed", strerror(sockerr), true);
        return;
    }
    if (events & BEV_EVENT_EOF) {
        if (c->ps == FB_PARSE_UNTIL_CLOSE &&
            fb_conn_parse(c, bufferevent_get_input(bev), true) == FB_PARSE_ERROR) {
            fb_conn_drop(c, "malformed response", NULL, true);
            return;
        }
        fb_conn_drop(c,
                     c->state == FB_CONN_HANDSHAKE ? "closed during the TLS handshake"
                                                   : "closed by the server",
                     NULL, c->state == FB_CONN_HANDSHAKE);
        return;
    }
    if (events & BEV_EVENT_TIMEOUT) {
        fb_conn_drop(c, "no response within --timeout", NULL, true);
        return;
    }
    fb_bev_error(bev, sockerr, detail, sizeof detail);
    fb_conn_drop(c,
                 c->state == FB_CONN_HANDSHAKE ? "connect or TLS handshake failed" : "connection error",
                 detail, true);
}

/* Starts a TCP connect and TLS handshake; failures go through fb_conn_drop. */
static void fb_conn_open(struct fb_conn *c)
{
    struct fb_bench *b = c->b;
    int one = 1;
    SSL *ssl;
    int fd = socket(b->o.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        fb_conn_drop(c, "socket", strerror(errno), true);
        return;
    }
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1) {
        int e = errno;
        close(fd);
        fb_conn_drop(c, "setsockopt TCP_NODELAY", strerror(e), true);
        return;
    }
    if (connect(fd, (struct sockaddr *)&b->o.addr, b->o.addrlen) == -1 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        fb_conn_drop(c, "connect", strerror(e), true);
        return;
    }
    ssl = SSL_new(b->ssl_ctx);
    if (!ssl) fb_oom();
    /*
     * Takes ownership of ssl and fd (BEV_OPT_CLOSE_ON_FREE). Deferred callbacks: libevent's
     * OpenSSL bufferevent reports an EOF before it commits the data read in the same pass, so
     * without them the last responses before a close would be lost; deferred, the read
     * callback runs first.
     */
    c->bev = bufferevent_openssl_socket_new(b->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!c->bev) {
        close(fd);
        fb_oom();
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, fb_conn_readcb, NULL, fb_conn_eventcb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = FB_CONN_HANDSHAKE;
    fb_parser_reset(c);
    struct timeval tv = fb_tv(b->o.timeout_s);
    event_add(c->timer, &tv);
}

/* Timer: reconnect (IDLE) or connect timeout (HANDSHAKE). */
static void fb_conn_timercb(evutil_socket_t fd, short what, void *arg)
{
    struct fb_conn *c = arg;

    if (c->state == FB_CONN_HANDSHAKE) {
        fb_conn_drop(c, "connect or TLS handshake timed out", NULL, true);
    } else if (c->state == FB_CONN_IDLE) {
        if (fb_budget_left(c->b)) fb_conn_open(c);
        else fb_conn_done(c);
    }
}

/* Ends the load phase now: whatever is in flight is counted as unanswered. */
static void fb_stop_now(struct fb_bench *b)
{
    b->stopping = true;
    for (long i = 0; i < b->o.connections; i++) {
        struct fb_conn *c = &b->conns[i];
        if (c->state == FB_CONN_DONE) continue;
        if (c->count > 0) b->t_load_end_us = fb_now_us();
        b->no_response += c->count;
        b->timed_out += c->count;
        fb_conn_done(c);
    }
    event_base_loopbreak(b->base);
}

static void fb_deadlinecb(evutil_socket_t fd, short what, void *arg)
{
    struct fb_bench *b = arg;
    fprintf(stderr, "fv-bench: hard deadline (--max-time %.0f s) reached, stopping\n", b->o.max_time_s);
    b->deadline_hit = true;
    fb_stop_now(b);
}

static void fb_signalcb(evutil_socket_t sig, short what, void *arg)
{
    struct fb_bench *b = arg;
    if (++b->signals == 1) {
        fprintf(stderr, "fv-bench: signal %d: finishing requests in flight (again to abort)\n",
                (int)sig);
        b->stopping = true;
        /* connections waiting to reconnect finish on their timer */
        for (long i = 0; i < b->o.connections; i++)
            if (b->conns[i].state == FB_CONN_IDLE) fb_conn_done(&b->conns[i]);
    } else {
        fb_stop_now(b);
    }
}

static void fb_progresscb(evutil_socket_t fd, short what, void *arg)
{
    struct fb_bench *b = arg;
    fprintf(stderr, "fv-bench: %.0f s: sent %lld, accepted %lld, conn errors %lld\n",
            (double)(fb_now_us() - b->t_start_us) / 1e6, b->sent, b->accepted, b->conn_errors);
}

/* ---- options ---- */

static void fb_usage(FILE *f)
{
    fprintf(f, "usage: FV_BENCH_KEY=KEY fv-bench --deployment UUID [options]\n"
               "  --url https://IP:PORT   target, loopback IP only (default https://127.0.0.1:8443)\n"
               "  --key KEY               credentials as --auth says (prefer env FV_BENCH_KEY)\n"
               "  --deployment UUID       deployment to submit to (required)\n"
               "  --openrosa FILE         OpenRosa submissions (multipart POST .../submission):\n"
               "                          FILE is the instance XML with uuid:{{uuid}} as its\n"
               "                          instanceID ({{uuid}}, {{randInt}} fresh per request)\n"
               "  --attach FILE           with --openrosa: FILE as one attachment part, named by\n"
               "                          its base name (which the XML must name); the request's\n"
               "                          id is appended to its bytes so that no two are equal\n"
               "  --auth MODE             bearer (KEY: API key or token; the JSON default), token\n"
               "                          (KEY: an app user's token in the URL; the --openrosa\n"
               "                          default) or basic (KEY: email:password)\n"
               "  --connections K         keep-alive connections (default 32)\n"
               "  --pipeline P            requests in flight per connection (default 1)\n"
               "  --requests N            total requests (default 20000 unless --duration)\n"
               "  --duration S            send for S seconds (with --requests: whichever first)\n"
               "  --max-time S            hard deadline of the load phase (default 300, or\n"
               "                          duration + 30 with --duration)\n"
               "  --timeout S             connect and per-response timeout (default 30)\n"
               "  --data JSON             the response's data object (default "
               "{\"name\":\"bench\",\"age\":30}; JSON mode)\n"
               "  --cacert FILE           verify the server certificate against FILE\n"
               "                          (default: no verification)\n"
               "  --pg DSN                after the load, poll PostgreSQL until every accepted id\n"
               "                          is stored (end-to-end rate); \"\" uses the PG* env\n"
               "  --drain-timeout S       bound of that wait (default 120)\n"
               "  --ids-out FILE          write every accepted id, one per line\n"
               "  --json                  also print the summary as one JSON line, last\n"
               "exit status: 0 all accepted (and stored), 1 errors or drain timeout, 2 usage\n"
               "accepted: JSON 202 naming the id; OpenRosa 201 or 202 with the success envelope\n");
}

static bool fb_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max) return false;
    *out = (long)v;
    return true;
}

static bool fb_parse_seconds(const char *s, double min, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < min || v > 86400.0) return false;
    *out = v;
    return true;
}

/* Parses https://IPv4[:port][/] or https://[IPv6][:port][/]; only loopback addresses. */
static bool fb_parse_url(struct fb_opts *o, const char *url)
{
    const char *p, *hend, *rest;
    char host[64];
    long port = 443;

    if (strncmp(url, "https://", 8) != 0) {
        fprintf(stderr, "fv-bench: --url must start with https://\n");
        return false;
    }
    p = url + 8;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (!hend) goto bad;
        if ((size_t)(hend - p - 1) >= sizeof host) goto bad;
        memcpy(host, p + 1, (size_t)(hend - p - 1));
        host[hend - p - 1] = '\0';
        rest = hend + 1;
    } else {
        hend = p + strcspn(p, ":/");
        if ((size_t)(hend - p) >= sizeof host) goto bad;
        memcpy(host, p, (size_t)(hend - p));
        host[hend - p] = '\0';
        rest = hend;
    }
    size_t alen = (size_t)(rest - p);
    if (*rest == ':') {
        char portbuf[8];
        size_t n = strcspn(rest + 1, "/");
        if (n == 0 || n >= sizeof portbuf) goto bad;
        memcpy(portbuf, rest + 1, n);
        portbuf[n] = '\0';
        if (!fb_parse_long(portbuf, 1, 65535, &port)) goto bad;
        alen += 1 + n;
        rest += 1 + n;
    }
    if (*rest != '\0' && strcmp(rest, "/") != 0) goto bad;
    if (alen >= sizeof o->authority) goto bad;
    memcpy(o->authority, p, alen);
    o->authority[alen] = '\0';
    snprintf(o->host, sizeof o->host, "%s", host);

    memset(&o->addr, 0, sizeof o->addr);
    struct sockaddr_in *sin = (struct sockaddr_in *)&o->addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&o->addr;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        o->addrlen = sizeof *sin;
        if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127) {
            fprintf(stderr, "fv-bench: %s is not a loopback address; fv-bench is loopback only\n", host);
            return false;
        }
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        o->addrlen = sizeof *sin6;
        if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) {
            fprintf(stderr, "fv-bench: %s is not a loopback address; fv-bench is loopback only\n", host);
            return false;
        }
    } else {
        fprintf(stderr, "fv-bench: --url host must be an IP address, not \"%s\"\n", host);
        return false;
    }
    return true;
bad:
    fprintf(stderr, "fv-bench: cannot parse --url \"%s\" (want https://IP:PORT)\n", url);
    return false;
}

/* Fills o from argv and the environment; false (after a message) on any bad option. */
static bool fb_parse_args(struct fb_opts *o, int argc, char **argv)
{
    enum {
        OPT_URL = 256,
        OPT_KEY,
        OPT_DEP,
        OPT_CONNS,
        OPT_PIPE,
        OPT_REQS,
        OPT_DUR,
        OPT_MAXT,
        OPT_TIMEOUT,
        OPT_DATA,
        OPT_CACERT,
        OPT_PG,
        OPT_DRAIN,
        OPT_IDS,
        OPT_JSON,
        OPT_OPENROSA,
        OPT_ATTACH,
        OPT_AUTH,
        OPT_HELP
    };
    static const struct option longopts[] = {
        {"url", required_argument, NULL, OPT_URL},
        {"key", required_argument, NULL, OPT_KEY},
        {"deployment", required_argument, NULL, OPT_DEP},
        {"connections", required_argument, NULL, OPT_CONNS},
        {"pipeline", required_argument, NULL, OPT_PIPE},
        {"requests", required_argument, NULL, OPT_REQS},
        {"duration", required_argument, NULL, OPT_DUR},
        {"max-time", required_argument, NULL, OPT_MAXT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"data", required_argument, NULL, OPT_DATA},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"pg", required_argument, NULL, OPT_PG},
        {"drain-timeout", required_argument, NULL, OPT_DRAIN},
        {"ids-out", required_argument, NULL, OPT_IDS},
        {"json", no_argument, NULL, OPT_JSON},
        {"openrosa", required_argument, NULL, OPT_OPENROSA},
        {"attach", required_argument, NULL, OPT_ATTACH},
        {"auth", required_argument, NULL, OPT_AUTH},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *url = "https://127.0.0.1:8443";
    bool max_time_set = false, auth_set = false, data_set = false;
    long v;
    int ch;

    o->connections = 32;
    o->pipeline = 1;
    o->requests = 20000;
    o->timeout_s = 30;
    o->drain_timeout_s = 120;
    o->data = "{\"name\":\"bench\",\"age\":30}";
    o->key = getenv("FV_BENCH_KEY");

    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case OPT_URL: url = optarg; break;
        case OPT_KEY:
            o->key = optarg;
            fprintf(stderr, "fv-bench: warning: --key is visible in ps; prefer FV_BENCH_KEY\n");
            break;
        case OPT_DEP: o->deployment = optarg; break;
        case OPT_CONNS:
            if (!fb_parse_long(optarg, 1, 10000, &o->connections)) goto bad;
            break;
        case OPT_PIPE:
            if (!fb_parse_long(optarg, 1, 1000, &o->pipeline)) goto bad;
            break;
        case OPT_REQS:
            if (!fb_parse_long(optarg, 1, LONG_MAX, &v)) goto bad;
            o->requests = v;
            o->requests_set = true;
            break;
        case OPT_DUR:
            if (!fb_parse_seconds(optarg, 0.001, &o->duration_s)) goto bad;
            break;
        case OPT_MAXT:
            if (!fb_parse_seconds(optarg, 0.001, &o->max_time_s)) goto bad;
            max_time_set = true;
            break;
        case OPT_TIMEOUT:
            if (!fb_parse_seconds(optarg, 0.001, &o->timeout_s)) goto bad;
            break;
        case OPT_DATA:
            o->data = optarg;
            data_set = true;
            break;
        case OPT_CACERT: o->cacert = optarg; break;
        case OPT_PG: o->pg = optarg; break;
        case OPT_DRAIN:
            if (!fb_parse_seconds(optarg, 0, &o->drain_timeout_s)) goto bad;
            break;
        case OPT_IDS: o->ids_out = optarg; break;
        case OPT_JSON: o->json = true; break;
        case OPT_OPENROSA: o->openrosa = optarg; break;
        case OPT_ATTACH: o->attach = optarg; break;
        case OPT_AUTH:
            if (strcmp(optarg, "bearer") == 0) o->auth = FB_AUTH_BEARER;
            else if (strcmp(optarg, "basic") == 0) o->auth = FB_AUTH_BASIC;
            else if (strcmp(optarg, "token") == 0) o->auth = FB_AUTH_TOKEN;
            else goto bad;
            auth_set = true;
            break;
        case OPT_HELP: fb_usage(stdout); exit(FB_EXIT_OK);
        default: fb_usage(stderr); return false;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "fv-bench: unexpected argument \"%s\"\n", argv[optind]);
        return false;
    }
    if (o->duration_s == 0) o->requests_set = true; /* the default request count bounds the run */
    if (!max_time_set) o->max_time_s = o->duration_s > 0 ? o->duration_s + 30 : 300;
    o->url = url;
    if (!fb_parse_url(o, url)) return false;
    if (!o->key || !*o->key || strpbrk(o->key, "\r\n")) {
        fprintf(stderr, "fv-bench: no key: set FV_BENCH_KEY (or --key)\n");
        return false;
    }
    if (!auth_set) o->auth = o->openrosa ? FB_AUTH_TOKEN : FB_AUTH_BEARER;
    if (!o->openrosa && (o->attach || o->auth != FB_AUTH_BEARER)) {
        fprintf(stderr, "fv-bench: --attach and --auth basic|token need --openrosa (the JSON API "
                        "takes bearer credentials)\n");
        return false;
    }
    if (o->openrosa && o->pipeline > 1)
        fprintf(stderr, "fv-bench: warning: the OpenRosa envelope names no instance: with --pipeline "
                        "above 1 a response cannot be checked against its request\n");
    if (o->openrosa && data_set) {
        fprintf(stderr, "fv-bench: --data is for JSON submissions; --openrosa takes an XML file\n");
        return false;
    }
    if (o->auth == FB_AUTH_TOKEN && strspn(o->key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                   "0123456789_-") != strlen(o->key)) {
        fprintf(stderr, "fv-bench: an app user's token is base64url text (--auth token)\n");
        return false;
    }
    if (o->auth == FB_AUTH_BASIC && (!strchr(o->key, ':') || o->key[0] == ':')) {
        fprintf(stderr, "fv-bench: --auth basic takes email:password as the key\n");
        return false;
    }
    uuid_t dep;
    if (!o->deployment || uuid_parse(o->deployment, dep) != 0) {
        fprintf(stderr, "fv-bench: --deployment must be a UUID\n");
        return false;
    }
    const char *d = o->data + strspn(o->data, " \t\r\n");
    size_t dl = strlen(d);
    while (dl > 0 && strchr(" \t\r\n", d[dl - 1])) dl--;
    if (dl < 2 || d[0] != '{' || d[dl - 1] != '}') {
        fprintf(stderr, "fv-bench: --data must be a JSON object\n");
        return false;
    }
    return true;
bad:
    fprintf(stderr, "fv-bench: bad value \"%s\" for an option\n", optarg);
    return false;
}

/* ---- the request template ---- */

/* A growable byte string; the builder's scratch. */
struct fb_str {
    char *p; /* owned */
    size_t len, cap;
};

static void fb_str_add(struct fb_str *s, const void *d, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n + 1) cap *= 2;
        char *p = realloc(s->p, cap);
        if (!p) fb_oom();
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void fb_str_adds(struct fb_str *s, const char *text)
{
    fb_str_add(s, text, strlen(text));
}

/* A patch while building: an offset, since the buffers still move. */
struct fb_patch_at {
    size_t off;
    bool in_tail; /* into b->tail, else into b->req */
    enum fb_patch_kind kind;
};

struct fb_patches {
    struct fb_patch_at *v; /* owned */
    size_t n, cap;
};

static void fb_patch_add(struct fb_patches *ps, size_t off, bool in_tail, enum fb_patch_kind kind)
{
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 16;
        struct fb_patch_at *v = realloc(ps->v, cap * sizeof *v);
        if (!v) fb_oom();
        ps->v = v;
        ps->cap = cap;
    }
    ps->v[ps->n++] = (struct fb_patch_at){off, in_tail, kind};
}

/* Turns the offsets into pointers once req and tail are final; frees ps's array. */
static void fb_patches_fix(struct fb_bench *b, struct fb_patches *ps)
{
    b->patches = calloc(ps->n ? ps->n : 1, sizeof *b->patches);
    if (!b->patches) fb_oom();
    for (size_t i = 0; i < ps->n; i++)
        b->patches[i] = (struct fb_patch){(ps->v[i].in_tail ? b->tail : b->req) + ps->v[i].off,
                                          ps->v[i].kind};
    b->npatches = ps->n;
    free(ps->v);
    ps->v = NULL;
}

/* Reads at most max bytes of path into a new buffer with a NUL after them; caller frees. */
static unsigned char *fb_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n = 0;

    if (!f) {
        fprintf(stderr, "fv-bench: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    buf = malloc(max + 2);
    if (!buf) fb_oom();
    n = fread(buf, 1, max + 1, f);
    if (ferror(f)) {
        fprintf(stderr, "fv-bench: cannot read %s: %s\n", path, strerror(errno));
        goto failed;
    }
    if (n > max) {
        fprintf(stderr, "fv-bench: %s is larger than %zu bytes\n", path, max);
        goto failed;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
failed:
    fclose(f);
    free(buf);
    return NULL;
}

/* The request head (method, path, credentials, Content-Length) before body_len bytes of body. */
static void fb_head(const struct fb_bench *b, struct fb_str *h, const char *content_type,
                    size_t body_len)
{
    const struct fb_opts *o = &b->o;
    char line[512];

    if (!o->openrosa)
        snprintf(line, sizeof line, "POST /v1/deployments/%s/responses HTTP/1.1\r\n", o->deployment);
    else if (o->auth == FB_AUTH_TOKEN)
        snprintf(line, sizeof line, "POST /v1/key/%s/openrosa/deployments/%s/submission HTTP/1.1\r\n",
                 o->key, o->deployment);
    else
        snprintf(line, sizeof line, "POST /v1/openrosa/deployments/%s/submission HTTP/1.1\r\n",
                 o->deployment);
    fb_str_adds(h, line);
    fb_str_adds(h, "Host: ");
    fb_str_adds(h, o->authority);
    fb_str_adds(h, "\r\n");
    if (o->auth == FB_AUTH_BEARER) {
        fb_str_adds(h, "Authorization: Bearer ");
        fb_str_adds(h, o->key);
        fb_str_adds(h, "\r\n");
    } else if (o->auth == FB_AUTH_BASIC) {
        size_t kl = strlen(o->key);
        unsigned char *enc = malloc(4 * ((kl + 2) / 3) + 1);
        if (!enc) fb_oom();
        EVP_EncodeBlock(enc, (const unsigned char *)o->key, (int)kl);
        fb_str_adds(h, "Authorization: Basic ");
        fb_str_adds(h, (const char *)enc);
        fb_str_adds(h, "\r\n");
        OPENSSL_cleanse(enc, strlen((const char *)enc));
        free(enc);
    }
    if (o->openrosa) fb_str_adds(h, "X-OpenRosa-Version: 1.0\r\n"); /* as ODK Collect sends it */
    snprintf(line, sizeof line,
             "Content-Type: %s\r\n"
             "Accept: %s\r\n"
             "Content-Length: %zu\r\n"
             "\r\n",
             content_type, o->openrosa ? "text/xml" : "application/json", body_len);
    fb_str_adds(h, line);
}

/* JSON mode: {"id":"<id>","data":<--data>}, the id patched. */
static void fb_build_json(struct fb_bench *b)
{
    static const char body_pre[] = "{\"id\":\"";
    static const char body_mid[] = "\",\"data\":";
    struct fb_str h = {0};
    struct fb_patches ps = {0};
    size_t body_len = strlen(body_pre) + FB_UUID_LEN + strlen(body_mid) + strlen(b->o.data) + 1;

    fb_head(b, &h, "application/json", body_len);
    fb_patch_add(&ps, h.len + strlen(body_pre), false, FB_PATCH_UUID);
    fb_str_adds(&h, body_pre);
    fb_str_adds(&h, "000000000000000000000000000000000000");
    fb_str_adds(&h, body_mid);
    fb_str_adds(&h, b->o.data);
    fb_str_adds(&h, "}");
    b->req = h.p;
    b->req_len = h.len;
    fb_patches_fix(b, &ps);
}

/* The XML template with every placeholder zero-filled at its fixed width into x, the patches'
 * offsets relative to x's start; false (after a message) on a template we cannot use. */
static bool fb_template(const char *path, const char *t, size_t tlen, struct fb_str *x,
                        struct fb_patches *ps)
{
    static const char uuid_ph[] = "{{uuid}}", rand_ph[] = "{{randInt}}";
    const char *p = t;

    if (strlen(t) != tlen) {
        fprintf(stderr, "fv-bench: %s holds a NUL byte\n", path);
        return false;
    }
    if (!strstr(t, "uuid:{{uuid}}")) {
        fprintf(stderr,
                "fv-bench: %s has no uuid:{{uuid}} (the instanceID as ODK Collect writes it: the "
                "request's id, which the drain looks for)\n",
                path);
        return false;
    }
    for (;;) {
        const char *q = strstr(p, "{{");
        if (!q) break;
        fb_str_add(x, p, (size_t)(q - p));
        if (strncmp(q, uuid_ph, strlen(uuid_ph)) == 0) {
            fb_patch_add(ps, x->len, false, FB_PATCH_UUID);
            fb_str_adds(x, "000000000000000000000000000000000000");
            p = q + strlen(uuid_ph);
        } else if (strncmp(q, rand_ph, strlen(rand_ph)) == 0) {
            fb_patch_add(ps, x->len, false, FB_PATCH_RANDINT);
            fb_str_adds(x, "000000");
            p = q + strlen(rand_ph);
        } else {
            fprintf(stderr,
                    "fv-bench: %s: unknown placeholder at \"%.20s\" (only {{uuid}} and {{randInt}})\n",
                    path, q);
            return false;
        }
    }
    fb_str_adds(x, p);
    return true;
}

static const char *fb_content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return "application/octet-stream";
    if (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0) return "image/jpeg";
    if (strcasecmp(dot, ".png") == 0) return "image/png";
    if (strcasecmp(dot, ".mp4") == 0) return "video/mp4";
    if (strcasecmp(dot, ".m4a") == 0) return "audio/mp4";
    return "application/octet-stream";
}

/*
 * OpenRosa mode: ODK Collect's multipart body, the XML in xml_submission_file, then the
 * attachment part (its bytes referenced, then the request's id and the closing boundary in
 * the tail). False (after a message) on bad input.
 */
static bool fb_build_openrosa(struct fb_bench *b)
{
    const struct fb_opts *o = &b->o;
    struct fb_str x = {0}, body = {0}, h = {0}, tail = {0};
    struct fb_patches ps = {0};
    unsigned char rnd[FB_BOUNDARY_HEX / 2];
    char boundary[8 + FB_BOUNDARY_HEX + 1] = "fvbench-";
    char line[512];
    const char *name = NULL;
    size_t tlen = 0;
    bool ok = false;
    unsigned char *t = fb_read_file(o->openrosa, FB_TEMPLATE_MAX, &tlen);

    if (!t || !fb_template(o->openrosa, (const char *)t, tlen, &x, &ps)) goto done;
    if (o->attach) {
        name = strrchr(o->attach, '/') ? strrchr(o->attach, '/') + 1 : o->attach;
        if (!*name || strpbrk(name, "\"\\\r\n;") || strlen(name) > 255) {
            fprintf(stderr,
                    "fv-bench: --attach %s: the base name must be 1-255 bytes without "
                    "quotes, backslashes, semicolons or line breaks\n",
                    o->attach);
            goto done;
        }
        if (!strstr(x.p, name)) {
            fprintf(stderr,
                    "fv-bench: the XML does not name the attachment %s: the server ignores files "
                    "no answer names\n",
                    name);
            goto done;
        }
        b->att = fb_read_file(o->attach, FB_ATTACH_MAX, &b->att_len);
        if (!b->att) goto done;
    }
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        fprintf(stderr, "fv-bench: RAND_bytes failed\n");
        goto done;
    }
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(boundary + 8 + 2 * i, 3, "%02x", rnd[i]);
    if (memmem(x.p, x.len, boundary, strlen(boundary)) ||
        (b->att && memmem(b->att, b->att_len, boundary, strlen(boundary)))) {
        fprintf(stderr, "fv-bench: the random boundary occurs in the body; run again\n");
        goto done;
    }

    snprintf(
        line, sizeof line,
        "--%s\r\n"
        "Content-Disposition: form-data; name=\"xml_submission_file\"; filename=\"submission.xml\"\r\n"
        "Content-Type: text/xml\r\n"
        "\r\n",
        boundary);
    fb_str_adds(&body, line);
    size_t xml_off = body.len;
    fb_str_add(&body, x.p, x.len);
    if (b->att) {
        fb_str_adds(&body, "\r\n--");
        fb_str_adds(&body, boundary);
        fb_str_adds(&body, "\r\nContent-Disposition: form-data; name=\"");
        fb_str_adds(&body, name);
        fb_str_adds(&body, "\"; filename=\"");
        fb_str_adds(&body, name);
        fb_str_adds(&body, "\"\r\nContent-Type: ");
        fb_str_adds(&body, fb_content_type(name));
        fb_str_adds(&body, "\r\n\r\n");
        /* the attachment's bytes go here, by reference; then the tail */
        fb_patch_add(&ps, 0, true, FB_PATCH_UUID);
        fb_str_adds(&tail, "000000000000000000000000000000000000");
        fb_str_adds(&tail, "\r\n--");
        fb_str_adds(&tail, boundary);
        fb_str_adds(&tail, "--\r\n");
    } else {
        fb_str_adds(&body, "\r\n--");
        fb_str_adds(&body, boundary);
        fb_str_adds(&body, "--\r\n");
    }

    snprintf(line, sizeof line, "multipart/form-data; boundary=%s", boundary);
    fb_head(b, &h, line, body.len + b->att_len + tail.len);
    for (size_t i = 0; i < ps.n; i++)
        if (!ps.v[i].in_tail) ps.v[i].off += h.len + xml_off;
    fb_str_add(&h, body.p, body.len);
    b->req = h.p;
    b->req_len = h.len;
    h.p = NULL;
    if (b->att) {
        b->tail = tail.p;
        b->tail_len = tail.len;
        tail.p = NULL;
    }
    fb_patches_fix(b, &ps);
    ok = true;
done:
    free(t);
    free(x.p);
    free(body.p);
    free(h.p);
    free(tail.p);
    free(ps.v);
    return ok;
}

/* Builds the request template (b->req, and b->att and b->tail with an attachment). */
static bool fb_build_request(struct fb_bench *b)
{
    if (!b->o.openrosa) {
        fb_build_json(b);
        return true;
    }
    return fb_build_openrosa(b);
}

static bool fb_tls_setup(struct fb_bench *b)
{
    b->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!b->ssl_ctx || !SSL_CTX_set_min_proto_version(b->ssl_ctx, TLS1_2_VERSION)) goto failed;
    /* a peer closing without close_notify is an ordinary EOF here, not an SSL error */
    SSL_CTX_set_options(b->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (b->o.cacert) {
        if (SSL_CTX_load_verify_locations(b->ssl_ctx, b->o.cacert, NULL) != 1) goto failed;
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(b->ssl_ctx), b->o.host) != 1) goto failed;
        SSL_CTX_set_verify(b->ssl_ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(b->ssl_ctx, SSL_VERIFY_NONE, NULL);
    }
    return true;
failed:
    fprintf(stderr, "fv-bench: TLS setup failed%s%s: ", b->o.cacert ? " with --cacert " : "",
            b->o.cacert ? b->o.cacert : "");
    ERR_print_errors_fp(stderr);
    fputc('\n', stderr);
    return false;
}

/* ---- end-to-end: PostgreSQL drain ---- */

static int fb_uuid_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(uuid_t));
}

/* Runs one parameterised query without blocking past deadline_us; caller PQclear()s. */
static PGresult *fb_pg_query(PGconn *pg, const char *sql, int n, const char *const *params,
                             uint64_t deadline_us, bool *timed_out)
{
    PGresult *res, *last = NULL;

    *timed_out = false;
    if (!PQsendQueryParams(pg, sql, n, NULL, params, NULL, NULL, 0)) return NULL;
    for (;;) {
        while (PQisBusy(pg)) {
            uint64_t now = fb_now_us();
            if (now >= deadline_us) {
                *timed_out = true;
                PQclear(last);
                return NULL;
            }
            struct pollfd pfd = {PQsocket(pg), POLLIN, 0};
            int ms = (int)((deadline_us - now) / 1000) + 1;
            if (poll(&pfd, 1, ms) == -1 && errno != EINTR) return NULL;
            if (!PQconsumeInput(pg)) {
                PQclear(last);
                return NULL;
            }
        }
        res = PQgetResult(pg);
        if (!res) return last;
        PQclear(last);
        last = res;
    }
}

/* Polls PostgreSQL until every accepted id is in responses, or the drain timeout. */
static void fb_pg_drain(struct fb_bench *b, struct fb_drain *d)
{
    static const char *sql = "SELECT id::text FROM responses "
                             "WHERE deployment_id = $1::uuid AND id = ANY($2::uuid[])";
    const char *keywords[] = {"connect_timeout", "dbname", NULL};
    const char *values[] = {"10", b->o.pg, NULL};
    uint64_t deadline = fb_now_us() + (uint64_t)(b->o.drain_timeout_s * 1e6);
    uint64_t last_report = fb_now_us();
    size_t n = b->acked_n;
    uuid_t *pending = NULL;
    unsigned char *hit = NULL;
    char *arr = NULL;
    PGconn *pg;

    memset(d, 0, sizeof *d);
    d->ran = true;
    if (n == 0) {
        d->ok = true;
        return;
    }
    pg = PQconnectdbParams(keywords, values, 1); /* the DSN may override connect_timeout */
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "fv-bench: PostgreSQL connect failed: %s", PQerrorMessage(pg));
        d->failed = true;
        goto done;
    }
    pending = malloc(n * sizeof *pending);
    hit = malloc(FB_PG_CHUNK);
    arr = malloc((size_t)FB_PG_CHUNK * (FB_UUID_LEN + 1) + 3);
    if (!pending || !hit || !arr) fb_oom();
    memcpy(pending, b->acked, n * sizeof *pending);

    while (n > 0) {
        uint64_t t_query = fb_now_us();
        if (t_query >= deadline) {
            d->timed_out = true;
            break;
        }
        size_t m = n < FB_PG_CHUNK ? n : FB_PG_CHUNK;
        qsort(pending, m, sizeof *pending, fb_uuid_cmp);
        size_t used = 0;
        arr[used++] = '{';
        for (size_t i = 0; i < m; i++) {
            if (i) arr[used++] = ',';
            uuid_unparse_lower(pending[i], arr + used);
            used += FB_UUID_LEN;
        }
        arr[used++] = '}';
        arr[used] = '\0';

        const char *params[2] = {b->o.deployment, arr};
        bool qtimeout;
        PGresult *res = fb_pg_query(pg, sql, 2, params, deadline, &qtimeout);
        if (qtimeout) {
            d->timed_out = true;
            break;
        }
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
            fprintf(stderr, "fv-bench: PostgreSQL query failed: %s",
                    res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
            PQclear(res);
            d->failed = true;
            break;
        }
        memset(hit, 0, m);
        size_t found = 0;
        for (int r = 0; r < PQntuples(res); r++) {
            uuid_t u;
            if (uuid_parse(PQgetvalue(res, r, 0), u) != 0) continue;
            uuid_t *p = bsearch(u, pending, m, sizeof *pending, fb_uuid_cmp);
            if (p && !hit[p - pending]) {
                hit[p - pending] = 1;
                found++;
            }
        }
        PQclear(res);
        if (found > 0) {
            size_t w = 0;
            for (size_t i = 0; i < m; i++)
                if (!hit[i]) uuid_copy(pending[w++], pending[i]);
            memmove(pending + w, pending + m, (n - m) * sizeof *pending);
            n = w + (n - m);
            d->stored += found;
            d->t_visible_us = t_query; /* the rows were visible at this poll's snapshot */
        }
        if (fb_now_us() - last_report >= 1000000) {
            last_report = fb_now_us();
            fprintf(stderr, "fv-bench: drain: %zu of %zu accepted ids stored\n", d->stored, b->acked_n);
        }
        if (n > 0 && found < m) {
            uint64_t spent = fb_now_us() - t_query;
            if (spent < FB_PG_POLL_US) usleep((useconds_t)(FB_PG_POLL_US - spent));
        }
    }
    d->ok = n == 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        char text[FB_UUID_LEN + 1];
        uuid_unparse_lower(pending[i], text);
        fprintf(stderr, "fv-bench: drain: accepted id not stored: %s%s\n", text,
                i == 9 && n > 10 ? " (and more)" : "");
    }
done:
    free(pending);
    free(hit);
    free(arr);
    PQfinish(pg);
}

/* ---- results ---- */

static int fb_u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the sorted latencies, in ms. */
static double fb_pct_ms(const struct fb_bench *b, double p)
{
    if (b->lat_n == 0) return 0;
    double exact = p / 100.0 * (double)b->lat_n;
    size_t rank = (size_t)exact;
    if ((double)rank < exact) rank++;
    if (rank < 1) rank = 1;
    if (rank > b->lat_n) rank = b->lat_n;
    return (double)b->lat_us[rank - 1] / 1000.0;
}

static bool fb_write_ids(const struct fb_bench *b, const char *path)
{
    FILE *f = fopen(path, "w");
    char text[FB_UUID_LEN + 1];

    if (!f) {
        fprintf(stderr, "fv-bench: cannot write --ids-out %s: %s\n", path, strerror(errno));
        return false;
    }
    for (size_t i = 0; i < b->acked_n; i++) {
        uuid_unparse_lower(b->acked[i], text);
        fprintf(f, "%s\n", text);
    }
    if (ferror(f) | (fclose(f) != 0)) {
        fprintf(stderr, "fv-bench: writing --ids-out %s failed: %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

static void fb_report(const struct fb_bench *b, const struct fb_drain *d, bool ids_ok)
{
    const struct fb_opts *o = &b->o;
    long long non202 = 0;
    double elapsed = 0, rate = 0;

    for (int s = 0; s < FB_STATUS_MAX; s++) non202 += b->status[s];
    if (b->t_first_send_us && b->t_load_end_us > b->t_first_send_us)
        elapsed = (double)(b->t_load_end_us - b->t_first_send_us) / 1e6;
    if (elapsed > 0) rate = (double)b->accepted / elapsed;

    static const char *auth_names[] = {"bearer", "basic", "app-user token"};
    size_t req_bytes = b->req_len + b->att_len + b->tail_len;

    printf("fv-bench: %s deployment %s, %ld connections x pipeline %ld\n", o->url, o->deployment,
           o->connections, o->pipeline);
    if (o->openrosa)
        printf("  OpenRosa            %s%s%s, %s auth, %zu bytes per request\n", o->openrosa,
               o->attach ? " + " : "", o->attach ? o->attach : "", auth_names[o->auth], req_bytes);
    printf("  requests sent       %lld\n", b->sent);
    if (o->openrosa) {
        printf("  accepted (201/202)  %lld  (201 stored: %lld, 202 queued: %lld)\n", b->accepted,
               b->stored_201, b->queued_202);
        printf("  not accepted        %lld", non202);
    } else {
        printf("  202 accepted        %lld\n", b->accepted);
        printf("  non-202             %lld", non202);
    }
    for (int s = 0, first = 1; s < FB_STATUS_MAX; s++) {
        if (b->status[s]) {
            printf("%s%d: %lld", first ? "  (" : ", ", s, b->status[s]);
            first = 0;
        }
    }
    printf("%s\n", non202 ? ")" : "");
    if (b->bad_ack)
        printf("  %s  %lld\n", o->openrosa ? "no OK envelope     " : "202 without our id", b->bad_ack);
    printf("  no response         %lld", b->no_response);
    if (b->timed_out) printf("  (%lld abandoned at the hard deadline)", b->timed_out);
    printf("\n  connection errors   %lld  (TLS connections opened: %lld)\n", b->conn_errors,
           b->connects);
    printf("  elapsed             %.3f s  (first send to last response or give-up)%s\n", elapsed,
           b->deadline_hit ? "  HARD DEADLINE HIT" : "");
    printf("  accepted/s          %.1f\n", rate);
    printf("  latency ms          p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  (%zu responses)\n",
           fb_pct_ms(b, 50), fb_pct_ms(b, 90), fb_pct_ms(b, 99), fb_pct_ms(b, 100), b->lat_n);

    double e2e_rate = 0, drain_s = 0, e2e_s = 0;
    if (d->ran) {
        if (d->ok && b->acked_n > 0) {
            e2e_s = (double)(d->t_visible_us - b->t_first_send_us) / 1e6;
            drain_s = d->t_visible_us > b->t_load_end_us
                          ? (double)(d->t_visible_us - b->t_load_end_us) / 1e6
                          : 0;
            e2e_rate = e2e_s > 0 ? (double)b->acked_n / e2e_s : 0;
            printf("  stored (PostgreSQL) %zu of %zu\n", d->stored, b->acked_n);
            printf("  end-to-end/s        %.1f  (%.3f s from first send to last row visible)\n",
                   e2e_rate, e2e_s);
            printf("  drain after load    %.3f s\n", drain_s);
        } else if (d->ok) {
            printf("  stored (PostgreSQL) nothing to check: no submission accepted\n");
        } else {
            printf("  stored (PostgreSQL) %zu of %zu  DRAIN %s\n", d->stored, b->acked_n,
                   d->timed_out ? "TIMED OUT" : "FAILED");
        }
    }
    fflush(stdout);

    if (!o->json) return;
    printf("{\"sent\":%lld,\"accepted\":%lld,\"non_202\":%lld,\"status\":{", b->sent, b->accepted,
           non202);
    for (int s = 0, first = 1; s < FB_STATUS_MAX; s++) {
        if (b->status[s]) {
            printf("%s\"%d\":%lld", first ? "" : ",", s, b->status[s]);
            first = 0;
        }
    }
    printf("},\"bad_ack\":%lld,\"no_response\":%lld,\"timed_out\":%lld,"
           "\"connection_errors\":%lld,\"connections_opened\":%lld,"
           "\"connections\":%ld,\"pipeline\":%ld,\"elapsed_s\":%.6f,\"accepted_per_s\":%.1f,"
           "\"deadline_hit\":%s,\"ids_out_ok\":%s,"
           "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"n\":%zu},"
           "\"mode\":\"%s\",\"request_bytes\":%zu,\"stored_201\":%lld,\"queued_202\":%lld,",
           b->bad_ack, b->no_response, b->timed_out, b->conn_errors, b->connects, o->connections,
           o->pipeline, elapsed, rate, b->deadline_hit ? "true" : "false", ids_ok ? "true" : "false",
           fb_pct_ms(b, 50), fb_pct_ms(b, 90), fb_pct_ms(b, 99), fb_pct_ms(b, 100), b->lat_n,
           o->openrosa ? "openrosa" : "json", req_bytes, b->stored_201, b->queued_202);
    if (!d->ran) printf("\"e2e\":null}\n");
    else
        printf("\"e2e\":{\"ok\":%s,\"timed_out\":%s,\"failed\":%s,\"stored\":%zu,"
               "\"accepted\":%zu,\"e2e_per_s\":%.1f,\"e2e_s\":%.3f,\"drain_s\":%.3f}}\n",
               d->ok ? "true" : "false", d->timed_out ? "true" : "false", d->failed ? "true" : "false",
               d->stored, b->acked_n, e2e_rate, e2e_s, drain_s);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct fb_bench *b = &fb;
    struct fb_drain drain = {0};
    bool ids_ok = true;

    signal(SIGPIPE, SIG_IGN);
    if (!fb_parse_args(&b->o, argc, argv)) return FB_EXIT_USAGE;
    if (!fb_tls_setup(b)) return FB_EXIT_USAGE;
    if (!fb_build_request(b)) return FB_EXIT_USAGE;
    if (RAND_bytes((unsigned char *)&b->rng, sizeof b->rng) != 1 || b->rng == 0)
        b->rng = 0x9E3779B97F4A7C15ULL;

    b->base = event_base_new();
    if (!b->base) fb_oom();
    b->conns = calloc((size_t)b->o.connections, sizeof *b->conns);
    if (!b->conns) fb_oom();
    b->t_start_us = fb_now_us();
    b->t_issue_end_us = b->t_start_us + (uint64_t)(b->o.duration_s * 1e6);
    b->live = b->o.connections;

    struct timeval tv = fb_tv(b->o.max_time_s);
    b->deadline_ev = evtimer_new(b->base, fb_deadlinecb, b);
    b->sigint_ev = evsignal_new(b->base, SIGINT, fb_signalcb, b);
    b->sigterm_ev = evsignal_new(b->base, SIGTERM, fb_signalcb, b);
    if (!b->deadline_ev || !b->sigint_ev || !b->sigterm_ev) fb_oom();
    evtimer_add(b->deadline_ev, &tv);
    evsignal_add(b->sigint_ev, NULL);
    evsignal_add(b->sigterm_ev, NULL);
    if (isatty(STDERR_FILENO)) {
        struct timeval sec = {1, 0};
        b->progress_ev = event_new(b->base, -1, EV_PERSIST, fb_progresscb, b);
        if (!b->progress_ev) fb_oom();
        event_add(b->progress_ev, &sec);
    }

    for (long i = 0; i < b->o.connections; i++) {
        struct fb_conn *c = &b->conns[i];
        c->b = b;
        c->index = (int)i;
        c->state = FB_CONN_IDLE;
        c->backoff_ms = FB_BACKOFF_MIN_MS;
        c->ring = calloc((size_t)b->o.pipeline, sizeof *c->ring);
        c->timer = evtimer_new(b->base, fb_conn_timercb, c);
        if (!c->ring || !c->timer) fb_oom();
    }
    for (long i = 0; i < b->o.connections; i++)
        if (b->conns[i].state == FB_CONN_IDLE) fb_conn_open(&b->conns[i]);

    if (b->live > 0) event_base_dispatch(b->base);

    for (long i = 0; i < b->o.connections; i++) {
        fb_conn_release(&b->conns[i]);
        event_free(b->conns[i].timer);
        free(b->conns[i].ring);
    }
    free(b->conns);
    b->conns = NULL;

    if (b->lat_n > 0) qsort(b->lat_us, b->lat_n, sizeof *b->lat_us, fb_u32_cmp);
    if (b->o.ids_out) ids_ok = fb_write_ids(b, b->o.ids_out);
    if (b->o.pg) fb_pg_drain(b, &drain);
    fb_report(b, &drain, ids_ok);

    long long non202 = 0;
    for (int s = 0; s < FB_STATUS_MAX; s++) non202 += b->status[s];
    bool failed = non202 || b->bad_ack || b->no_response || b->conn_errors || !ids_ok ||
                  b->deadline_hit || b->unreachable || b->sent == 0 || (drain.ran && !drain.ok);

    if (b->progress_ev) event_free(b->progress_ev);
    event_free(b->deadline_ev);
    event_free(b->sigint_ev);
    event_free(b->sigterm_ev);
    event_base_free(b->base);
    SSL_CTX_free(b->ssl_ctx);
    free(b->req);
    free(b->att);
    free(b->tail);
    free(b->patches);
    free(b->lat_us);
    free(b->acked);
    return failed ? FB_EXIT_FAILED : FB_EXIT_OK;
}

/* Client connections of a child: deadlines, connection caps and request framing, between the
 * TLS bufferevent and libevent's HTTP parser.
 *
 * Why. libevent 2.1 has no hook when it creates a connection or a request (2.2's
 * evhttp_set_newreqcb does not exist here), only an idle timeout per read, and it answers what
 * its parser refuses itself: evhttp_connection_fail_() -> evhttp_connection_incoming_fail()
 * drops the URI and calls evhttp_handle_request(), which sends evhttp_send_error()'s HTML page
 * (400 for a bad request line or headers, 413 for a body over the limit) without our headers.
 * Its parser is also lenient where that is a smuggling risk (fe_framing.h).
 *
 * How. Each connection's bufferevent is the TLS one (fe_conn_make_bev, given to evhttp with
 * evhttp_set_bevcb), with a callback on its input buffer (input_cb): OpenSSL's read adds the
 * decrypted bytes there, the callback runs at once, before the bufferevent's read callback
 * (libevent's parser), and takes the new bytes out into the connection's own `hold` buffer;
 * conn_filter() then puts back only what libevent may see. (A bufferevent_filter would do the
 * same on the input side, but 2.1's filter reports a reply written once it is handed to TLS,
 * and evhttp then closes the socket with the reply possibly unsent.)
 *
 * - A request head is held until it is complete (at most max_header_bytes), checked whole
 *   (fe_head_check), and only then handed to libevent. A Content-Length body is passed through
 *   as it comes. A chunked request is held whole (at most max_body_bytes of data), its chunk
 *   lines checked and rewritten to their canonical form (libevent 2.1 cannot parse chunk
 *   extensions), and handed over after its last chunk.
 * - A refused head never reaches libevent: in its place libevent gets
 *   "GET / HTTP/1.1", FE_REJECT_HEADER: <fe_reject>, "Connection: close", and everything the
 *   client sends afterwards is dropped. (libevent 2.1 drops trailer fields, so a refusal cannot
 *   ride in one: hence chunked requests are held whole.) A body too large is read
 *   and dropped first (bounded by request_timeout_s), then refused: closing a socket with unread
 *   data resets it, and the client would never read the 413. Either way the request reaches
 *   the dispatcher (fe_http_dispatch), which sees the header first and answers the project's
 *   JSON error with X-Request-Id and Connection: close; libevent then closes the connection. A
 *   client cannot forge the header: a head that has it is refused. libevent's own limits
 *   (evhttp_set_max_headers_size, evhttp_set_max_body_size) stay set, above ours, as a
 *   backstop no request reaches.
 * - Deadlines run on one timer per connection: the TLS handshake (tls_handshake_timeout_s from
 *   accept), the head (header_timeout_s from accept, or from the first byte of a later request),
 *   the whole request (request_timeout_s). A late head gets 408 the way a refused one does; a
 *   late handshake or body closes the connection (nothing can be answered there).
 * - Caps: max_connections per child (at the cap the listener is disabled until one closes) and
 *   max_connections_per_address (checked on the next loop turn after accept, when libevent has
 *   set the socket; the connection is closed). Accept errors (EMFILE) pause the listener for a
 *   moment instead of spinning on them, and every repeated log line is rate-limited.
 *
 * Closing a connection: conn_kill() triggers libevent's own event callback on the bufferevent
 * with BEV_EVENT_TIMEOUT, the path of its idle timeout, which detaches a request still held by a
 * handler (its later reply is dropped by libevent) and frees the connection.
 *
 * Ownership: evhttp owns the bufferevent, which owns the SSL and the socket (CLOSE_ON_FREE).
 * The fe_conn hangs on the SSL as ex_data: SSL_free, whichever path frees the connection, calls
 * conn_free, which frees the fe_conn (timer, hold buffer) and counts the connection off. */
#include "fe_conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/crypto.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "fe_config.h"
#include "fe_framing.h"
#include "fv_log.h"
#include "fv_lograte.h"

typedef enum {
    ST_HEAD,       /* waiting for a complete request head */
    ST_BODY,       /* passing `remaining` bytes of a Content-Length body */
    ST_CHUNK_SIZE, /* waiting for a chunk-size line */
    ST_CHUNK_DATA, /* passing `remaining` bytes of a chunk */
    ST_CHUNK_CRLF, /* waiting for the CRLF after a chunk */
    ST_TRAILER,    /* after the last chunk: waiting for the empty line */
    ST_REFUSED,    /* refused: everything else is dropped until the connection closes */
} conn_state;

#define ADDR_KEY_LEN 17 /* address family byte + 16 address bytes */
#define ADDR_BUCKETS 1024
#define CHUNK_LINE_MAX 1024
#define TRIM_MIN_DROP 32 /* connections closed since the peak before memory is handed back */

/* Connections of one client address (a node exists while count > 0). */
typedef struct addr_slot {
    struct addr_slot *next;
    unsigned char key[ADDR_KEY_LEN];
    int count;
} addr_slot;

typedef struct fe_conn {
    struct bufferevent *bev;      /* TLS; evhttp owns it (and it owns ssl) */
    SSL *ssl;                     /* carries this fe_conn as ex_data */
    struct event *timer;          /* owned: setup, then the next deadline */
    struct evbuffer *hold;        /* owned: decrypted bytes libevent may not see yet */
    struct evbuffer *pend;        /* owned: a chunked request checked so far, not yet handed over */
    struct evbuffer_cb_entry *cb; /* input_cb on bev's input buffer */
    bool busy;                    /* input_cb is moving bytes: ignore its own changes */
    bool unfiltered;              /* input_cb could not be installed: closed at setup */
    addr_slot *slot;              /* the per-address count this connection holds, or NULL */
    conn_state st;
    bool set_up;     /* the per-address check ran */
    bool hs_done;    /* TLS handshake finished */
    bool in_request; /* a request has begun (from accept for the first one) */
    bool head_done;  /* ... and its head was passed to libevent */
    int64_t accepted_ms, req_start_ms, refused_ms;
    fe_reject pending;  /* a refusal waiting for the body to be read and dropped */
    size_t scanned;     /* bytes of the current head already scanned for its end */
    uint64_t remaining; /* of the body or of the current chunk */
    uint64_t body_total;
    uint64_t
        body_max; /* the current request's body limit (max_body_bytes, or openrosa_max_body_bytes) */
} fe_conn;

static struct {
    int ex_index;                    /* SSL ex_data index of the fe_conn */
    struct evbuffer *scratch;        /* input_cb's, empty between calls */
    struct evconnlistener *listener; /* borrowed from evhttp's bound socket */
    struct event *resume_timer;      /* ends an accept-error pause */
    struct event *trim_timer;        /* hands freed memory back after a flood */
    bool paused, backoff, trim_pending, down;
    int conns, peak;
    addr_slot *slots[ADDR_BUCKETS];
    fv_lograte lr_cap, lr_addr, lr_accept, lr_setup, lr_libevent;
} g = {
    .lr_cap = FV_LOGRATE_INIT(10.0, 1),
    .lr_addr = FV_LOGRATE_INIT(10.0, 3),
    .lr_accept = FV_LOGRATE_INIT(10.0, 1),
    .lr_setup = FV_LOGRATE_INIT(10.0, 3),
    .lr_libevent = FV_LOGRATE_INIT(10.0, 5),
};


static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- per-address counts */

static unsigned addr_hash(const unsigned char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < ADDR_KEY_LEN; i++) h = (h ^ key[i]) * 16777619u;
    return h % ADDR_BUCKETS;
}

static bool addr_key(int fd, unsigned char key[ADDR_KEY_LEN], char *text, size_t textlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(key, 0, ADDR_KEY_LEN);
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) return false;
    key[0] = (unsigned char)ss.ss_family;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        memcpy(key + 1, &a->sin_addr, 4);
        const unsigned char *b = key + 1;
        snprintf(text, textlen, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
        return true;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        memcpy(key + 1, &a->sin6_addr, 16);
        snprintf(text, textlen, "an IPv6 address");
        return true;
    }
    return false;
}

/* The slot of key with one more connection, or NULL when that would pass the cap (or no
 * memory: the connection is refused, which is the safe side). */
static addr_slot *slot_take(const unsigned char *key, int cap)
{
    addr_slot **head = &g.slots[addr_hash(key)];
    for (addr_slot *s = *head; s; s = s->next) {
        if (memcmp(s->key, key, ADDR_KEY_LEN) != 0) continue;
        if (s->count >= cap) return NULL;
        s->count++;
        return s;
    }
    addr_slot *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    memcpy(s->key, key, ADDR_KEY_LEN);
    s->count = 1;
    s->next = *head;
    *head = s;
    return s;
}

static void slot_release(addr_slot *s)
{
    if (--s->count > 0) return;
    addr_slot **pp = &g.slots[addr_hash(s->key)];
    while (*pp && *pp != s) pp = &(*pp)->next;
    if (*pp) *pp = s->next;
    free(s);
}

/* ---------------------------------------------------------------- listener and memory */

static void listener_update(void)
{
    if (!g.listener || g.down) return;
    bool pause = g.backoff || g.conns >= fe_cfg.max_connections;
    if (pause == g.paused) return;
    g.paused = pause;
    if (pause) {
        evconnlistener_disable(g.listener);
        if (!g.backoff)
            fv_log_limited(&g.lr_cap, FV_LOG_WARN,
                           "%d open connections (max_connections): not accepting until one closes",
                           g.conns);
    } else {
        evconnlistener_enable(g.listener);
    }
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    g.backoff = false;
    listener_update();
}

/* accept() failed with something other than EAGAIN/EINTR (EMFILE, ENFILE, ENOBUFS...). Without
 * this callback libevent logs and retries at once, forever, while the socket stays readable. */
static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    fv_log_limited(&g.lr_accept, FV_LOG_ERROR,
                   "accept failed with %d open connections: %s; pausing accepts for 250 ms", g.conns,
                   evutil_socket_error_to_string(err));
    g.backoff = true;
    listener_update();
    struct timeval pause = {0, 250000};
    if (g.resume_timer) evtimer_add(g.resume_timer, &pause);
}

static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
    g.trim_pending = false;
    /* The buffers and TLS state of closed connections go back to the system, so a flood's
     * peak does not stay as the child's size. */
    malloc_trim(0);
    g.peak = g.conns;
}

static void maybe_trim(void)
{
    if (g.trim_pending || !g.trim_timer) return;
    if (g.peak - g.conns < TRIM_MIN_DROP || g.conns > g.peak / 2) return;
    g.trim_pending = true;
    struct timeval later = {1, 0};
    evtimer_add(g.trim_timer, &later);
}

/* ---------------------------------------------------------------- one connection */

/* SSL_free's ex_data callback: the connection is gone (see the top of this file). */
static void conn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    fe_conn *c = ptr;
    if (!c) return;
    if (c->cb) evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->cb);
    if (c->timer) event_free(c->timer);
    if (c->hold) evbuffer_free(c->hold);
    if (c->pend) evbuffer_free(c->pend);
    if (c->slot) slot_release(c->slot);
    free(c);
    g.conns--;
    if (g.down) return;
    listener_update();
    maybe_trim();
}

/* Closes the connection through libevent's own timeout path (see the top of this file). c may
 * be freed on return. */
static void conn_kill(fe_conn *c)
{
    bufferevent_trigger_event(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, 0);
}

static int64_t secs_ms(int s)
{
    return (int64_t)s * 1000;
}

/* Arms the timer for the earliest deadline that still applies. */
static void conn_arm(fe_conn *c)
{
    int64_t next = INT64_MAX;
    if (!c->hs_done) next = c->accepted_ms + secs_ms(fe_cfg.tls_handshake_timeout_s);
    if (c->st == ST_REFUSED) {
        int64_t t = c->refused_ms + secs_ms(fe_cfg.header_timeout_s);
        if (t < next) next = t;
    } else if (c->in_request) {
        int64_t t = c->req_start_ms + secs_ms(fe_cfg.request_timeout_s);
        if (!c->head_done) {
            int64_t h = c->req_start_ms + secs_ms(fe_cfg.header_timeout_s);
            if (h < t) t = h;
        }
        if (t < next) next = t;
    }
    if (next == INT64_MAX) {
        evtimer_del(c->timer);
        return;
    }
    int64_t wait = next - now_ms();
    if (wait < 0) wait = 0;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)((wait % 1000) * 1000)};
    evtimer_add(c->timer, &tv);
}

static void refused(fe_conn *c)
{
    c->st = ST_REFUSED;
    c->refused_ms = now_ms();
    conn_arm(c);
}

/* A refusal at a request boundary: libevent gets a request that says why in its place. */
static void refuse_head(fe_conn *c, struct evbuffer *dst, fe_reject why)
{
    evbuffer_add_printf(dst, "GET / HTTP/1.1\r\n" FE_REJECT_HEADER ": %d\r\nConnection: close\r\n\r\n",
                        (int)why);
    refused(c);
}

/* A refusal inside a chunked request, held whole in c->pend until now: dropped, refused. */
static void refuse_chunked(fe_conn *c, struct evbuffer *dst, fe_reject why)
{
    evbuffer_drain(c->pend, evbuffer_get_length(c->pend));
    refuse_head(c, dst, why);
}

static void request_done(fe_conn *c)
{
    c->st = ST_HEAD;
    c->pending = FE_REJECT_NONE;
    c->in_request = false;
    c->head_done = false;
    conn_arm(c);
}

/* Moves what libevent may see from src (c->hold: decrypted bytes) to dst (libevent's input),
 * as the top of this file says. */
static void conn_filter(struct evbuffer *src, struct evbuffer *dst, fe_conn *c)
{
    if (!c->hs_done) {
        c->hs_done = true; /* decrypted bytes: the handshake is over */
        conn_arm(c);
    }
    for (;;) {
        size_t avail = evbuffer_get_length(src);
        if (avail == 0) break;
        if (c->st == ST_REFUSED) {
            evbuffer_drain(src, avail);
            break;
        }
        if (c->st == ST_HEAD) {
            if (!c->in_request) {
                c->in_request = true;
                c->head_done = false;
                c->req_start_ms = now_ms();
                conn_arm(c);
            }
            if (c->scanned == 0) {
                /* RFC 9112 2.2: empty lines before a request line are ignored. */
                const char *p = (const char *)evbuffer_pullup(src, avail < 2 ? (ev_ssize_t)avail : 2);
                if (avail >= 2 && p[0] == '\r' && p[1] == '\n') {
                    evbuffer_drain(src, 2);
                    continue;
                }
                if (avail == 1 && p[0] == '\r') break;
            }
            size_t max = (size_t)fe_cfg.max_header_bytes;
            size_t look = avail < max + 1 ? avail : max + 1;
            const char *p = (const char *)evbuffer_pullup(src, (ev_ssize_t)look);
            if (!p) break; /* out of memory: try again on the next read */
            size_t end = fe_head_end(p, look, c->scanned);
            fe_reject why = FE_REJECT_NONE;
            fe_head h = {0};
            if (end == FE_HEAD_BARE_LF) {
                why = FE_REJECT_BARE_LF;
            } else if (end == 0) {
                if (look <= max) {
                    c->scanned = look;
                    break; /* more to come */
                }
                why = FE_REJECT_HEADERS_TOO_LARGE;
            } else if (end > max) {
                why = FE_REJECT_HEADERS_TOO_LARGE;
            } else {
                c->body_max = (uint64_t)(fe_head_is_submission(p, end) ? fe_cfg.openrosa_max_body_bytes
                                                                       : fe_cfg.max_body_bytes);
                why = fe_head_check(p, end, (size_t)fe_cfg.max_headers, c->body_max, &h);
            }
            if (why == FE_REJECT_BODY_TOO_LARGE && !h.expect_continue) {
                /* Read and drop the body first, then answer: closing a socket with unread data
                 * resets it, and the client would see a reset instead of the 413. A client that
                 * asked for 100-continue has sent no body: it is answered at once. */
                evbuffer_drain(src, end);
                c->scanned = 0;
                c->head_done = true;
                c->pending = why;
                c->st = ST_BODY;
                c->remaining = h.length;
                conn_arm(c);
                continue;
            }
            if (why != FE_REJECT_NONE) {
                evbuffer_drain(src, evbuffer_get_length(src));
                refuse_head(c, dst, why);
                break;
            }
            /* A chunked request is held whole (at most max_body_bytes of data) and handed over
             * once its last chunk came: a refusal midway can then still replace all of it. */
            evbuffer_remove_buffer(src, h.body == FE_BODY_CHUNKED ? c->pend : dst, end);
            c->scanned = 0;
            c->head_done = true;
            if (h.body == FE_BODY_NONE) {
                request_done(c);
            } else if (h.body == FE_BODY_LENGTH) {
                c->st = ST_BODY;
                c->remaining = h.length;
                conn_arm(c);
            } else {
                c->st = ST_CHUNK_SIZE;
                c->body_total = 0;
                conn_arm(c);
            }
            continue;
        }
        if (c->st == ST_BODY || c->st == ST_CHUNK_DATA) {
            size_t n = avail < c->remaining ? avail : (size_t)c->remaining;
            if (c->pending) evbuffer_drain(src, n); /* a refused body: read and dropped */
            else evbuffer_remove_buffer(src, c->st == ST_BODY ? dst : c->pend, n);
            c->remaining -= n;
            if (c->remaining == 0) {
                if (c->st == ST_CHUNK_DATA) {
                    c->st = ST_CHUNK_CRLF;
                } else if (c->pending) {
                    refuse_head(c, dst, c->pending); /* libevent has seen nothing of it */
                    break;
                } else {
                    request_done(c);
                }
            }
            continue;
        }
        if (c->st == ST_CHUNK_SIZE) {
            size_t look = avail < CHUNK_LINE_MAX ? avail : CHUNK_LINE_MAX;
            const char *p = (const char *)evbuffer_pullup(src, (ev_ssize_t)look);
            if (!p) break;
            const char *lf = memchr(p, '\n', look);
            uint64_t size = 0;
            fe_reject why = FE_REJECT_NONE;
            if (!lf) {
                if (look < CHUNK_LINE_MAX) break; /* more to come */
                why = FE_REJECT_CHUNK;
            } else if (lf == p || lf[-1] != '\r') {
                why = FE_REJECT_CHUNK;
            } else {
                why = fe_chunk_size(p, (size_t)(lf - p) - 1, &size);
            }
            if (why != FE_REJECT_NONE) {
                evbuffer_drain(src, evbuffer_get_length(src));
                refuse_chunked(c, dst, c->pending ? c->pending : why);
                break;
            }
            evbuffer_drain(src, (size_t)(lf - p) + 1);
            if (size == 0) {
                c->st = ST_TRAILER;
                continue;
            }
            /* Too large: the rest of the body is read and dropped, then the refusal answered
             * (as for a Content-Length body, a reset would hide the answer). */
            if (!c->pending && size > c->body_max - c->body_total) c->pending = FE_REJECT_BODY_TOO_LARGE;
            if (!c->pending) {
                /* Canonical: libevent 2.1 refuses chunk extensions, which RFC 9112 allows. */
                evbuffer_add_printf(c->pend, "%llx\r\n", (unsigned long long)size);
                c->body_total += size;
            }
            c->remaining = size;
            c->st = ST_CHUNK_DATA;
            continue;
        }
        /* ST_CHUNK_CRLF, ST_TRAILER: exactly CRLF expected */
        if (avail < 2) {
            const char *p = (const char *)evbuffer_pullup(src, 1);
            if (p && p[0] == '\r') break;
        } else {
            const char *p = (const char *)evbuffer_pullup(src, 2);
            if (p && p[0] == '\r' && p[1] == '\n') {
                evbuffer_drain(src, 2);
                if (c->st == ST_CHUNK_CRLF) {
                    if (!c->pending) evbuffer_add(c->pend, "\r\n", 2);
                    c->st = ST_CHUNK_SIZE;
                } else if (c->pending) {
                    refuse_chunked(c, dst, c->pending);
                    break;
                } else {
                    evbuffer_add(c->pend, "0\r\n\r\n", 5);
                    evbuffer_add_buffer(dst, c->pend);
                    request_done(c);
                }
                continue;
            }
        }
        fe_reject why = c->pending               ? c->pending
                        : c->st == ST_CHUNK_CRLF ? FE_REJECT_CHUNK
                                                 : FE_REJECT_TRAILER;
        evbuffer_drain(src, evbuffer_get_length(src));
        refuse_chunked(c, dst, why);
        break;
    }
}

/* The first turn of the loop after accept: libevent has set the socket; count its address. */
static bool conn_setup(fe_conn *c)
{
    if (c->unfiltered) {
        fv_log_limited(&g.lr_setup, FV_LOG_ERROR, "out of memory for a new connection: closed");
        return false;
    }
    int cap = fe_cfg.max_connections_per_address;
    if (cap <= 0) return true;
    unsigned char key[ADDR_KEY_LEN];
    char text[64] = "";
    if (!addr_key(bufferevent_getfd(c->bev), key, text, sizeof text)) return true;
    c->slot = slot_take(key, cap);
    if (c->slot) return true;
    fv_log_limited(&g.lr_addr, FV_LOG_WARN,
                   "connection from %s closed: it has max_connections_per_address (%d) open", text, cap);
    return false;
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    fe_conn *c = arg;
    if (!c->set_up) {
        c->set_up = true;
        if (!conn_setup(c)) {
            conn_kill(c);
            return;
        }
    }
    int64_t now = now_ms();
    if (!c->hs_done && c->ssl && SSL_is_init_finished(c->ssl)) c->hs_done = true;
    if (!c->hs_done && now >= c->accepted_ms + secs_ms(fe_cfg.tls_handshake_timeout_s)) {
        conn_kill(c);
        return;
    }
    if (c->st == ST_REFUSED) {
        if (now >= c->refused_ms + secs_ms(fe_cfg.header_timeout_s)) {
            /* The refusal's answer was not taken (a client that does not read): close. */
            conn_kill(c);
            return;
        }
    } else if (c->in_request) {
        bool head_late = !c->head_done && now >= c->req_start_ms + secs_ms(fe_cfg.header_timeout_s);
        bool req_late = now >= c->req_start_ms + secs_ms(fe_cfg.request_timeout_s);
        if ((head_late || req_late) && c->st == ST_HEAD && c->hs_done) {
            /* Nothing of this request reached libevent: it can be answered 408. */
            struct evbuffer *in = bufferevent_get_input(c->bev);
            evbuffer_drain(c->hold, evbuffer_get_length(c->hold)); /* the partial head */
            c->busy = true;
            refuse_head(c, in, FE_REJECT_TIMEOUT);
            c->busy = false;
            /* libevent reads it now if it is waiting for a request; if it is still busy with
             * the previous one, it finds it when it starts reading again. */
            bufferevent_data_cb readcb = NULL;
            bufferevent_getcb(c->bev, &readcb, NULL, NULL, NULL);
            if (readcb && (bufferevent_get_enabled(c->bev) & EV_READ))
                bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
            return;
        }
        if (head_late || req_late) {
            conn_kill(c);
            return;
        }
    }
    conn_arm(c);
}

/* Takes the bytes OpenSSL just added to buf (its last info->n_added) into c->hold and puts
 * back what conn_filter lets through. Runs before the bufferevent's read callback. */
static void input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    fe_conn *c = arg;
    if (c->busy || info->n_added == 0) return;
    c->busy = true;
    size_t len = evbuffer_get_length(buf);
    size_t fresh = info->n_added < len ? info->n_added : len;
    /* buf = [bytes already let through][fresh]: move all out, the first part back. */
    evbuffer_add_buffer(g.scratch, buf);
    evbuffer_remove_buffer(g.scratch, buf, len - fresh);
    evbuffer_add_buffer(c->hold, g.scratch);
    conn_filter(c->hold, buf, c);
    c->busy = false;
}

/* A socket we cannot serve (out of memory, no SSL): returning NULL would make libevent serve
 * plain HTTP on it, so it gets a bufferevent that drops every byte; evhttp's idle timeout
 * (keepalive_timeout_s) closes it. Not counted. */
static void doomed_drop(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    if (info->n_added) evbuffer_drain(buf, evbuffer_get_length(buf));
}

static struct bufferevent *doomed_bev(struct event_base *base)
{
    fv_log_limited(&g.lr_setup, FV_LOG_ERROR, "cannot set up TLS for a new connection: closed");
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) return NULL;
    if (!evbuffer_add_cb(bufferevent_get_input(bev), doomed_drop, NULL)) {
        bufferevent_free(bev);
        return NULL;
    }
    return bev;
}

struct bufferevent *fe_conn_make_bev(struct event_base *base, void *arg)
{
    SSL_CTX *ctx = *(SSL_CTX **)arg;
    fe_conn *c = calloc(1, sizeof *c);
    if (c) {
        c->timer = evtimer_new(base, conn_timer_cb, c);
        c->hold = evbuffer_new();
        c->pend = evbuffer_new();
    }
    SSL *ssl = c && c->timer && c->hold && c->pend ? SSL_new(ctx) : NULL;
    /* On failure it frees ssl (BEV_OPT_CLOSE_ON_FREE). */
    struct bufferevent *bev = ssl ? bufferevent_openssl_socket_new(base, -1, ssl,
                                                                   BUFFEREVENT_SSL_ACCEPTING,
                                                                   BEV_OPT_CLOSE_ON_FREE)
                                  : NULL;
    if (bev && SSL_set_ex_data(ssl, g.ex_index, c) != 1) {
        bufferevent_free(bev);
        bev = NULL;
    }
    if (!bev) {
        if (c && c->timer) event_free(c->timer);
        if (c && c->hold) evbuffer_free(c->hold);
        if (c && c->pend) evbuffer_free(c->pend);
        free(c);
        return doomed_bev(base);
    }
    /* From here SSL_free (with bev) frees c. */
    c->bev = bev;
    c->ssl = ssl;
    c->accepted_ms = c->req_start_ms = now_ms();
    c->in_request = true;
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    g.conns++;
    if (g.conns > g.peak) g.peak = g.conns;
    c->cb = evbuffer_add_cb(bufferevent_get_input(bev), input_cb, c);
    struct timeval zero = {0, 0};
    evtimer_add(c->timer, &zero);     /* conn_setup, once libevent has set the socket */
    if (!c->cb) c->unfiltered = true; /* closed by conn_setup, before any request can come */
    listener_update();
    return bev;
}

/* ---------------------------------------------------------------- the module */

static void libevent_log(int severity, const char *msg)
{
    fv_log_level level = severity >= EVENT_LOG_ERR    ? FV_LOG_ERROR
                         : severity == EVENT_LOG_WARN ? FV_LOG_WARN
                                                      : FV_LOG_DEBUG;
    fv_log_limited(&g.lr_libevent, level, "libevent: %s", msg);
}

int fe_conn_init(struct event_base *base, int reserve)
{
    event_set_log_callback(libevent_log);
    g.ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_free);
    g.scratch = evbuffer_new();
    if (g.ex_index < 0 || !g.scratch) return -1;
    g.resume_timer = evtimer_new(base, resume_cb, NULL);
    g.trim_timer = evtimer_new(base, trim_cb, NULL);
    if (!g.resume_timer || !g.trim_timer) return -1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
    rlim_t need = (rlim_t)fe_cfg.max_connections + (rlim_t)reserve;
    if (need > rl.rlim_cur && rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = rl;
        raised.rlim_cur = (rl.rlim_max == RLIM_INFINITY || need < rl.rlim_max) ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
    }
    if (need <= rl.rlim_cur) return 0;
    if (rl.rlim_cur <= (rlim_t)reserve + 1) {
        fv_error("the descriptor limit (RLIMIT_NOFILE %llu) leaves no room for client connections "
                 "(%d reserved); raise LimitNOFILE",
                 (unsigned long long)rl.rlim_cur, reserve);
        return -1;
    }
    int clamped = (int)(rl.rlim_cur - (rlim_t)reserve);
    fv_warn("max_connections %d is more than the descriptor limit (RLIMIT_NOFILE %llu) less %d "
            "reserved: clamped to %d",
            fe_cfg.max_connections, (unsigned long long)rl.rlim_cur, reserve, clamped);
    fe_cfg.max_connections = clamped;
    return 0;
}

void fe_conn_set_listener(struct evconnlistener *lev)
{
    g.listener = lev;
    g.paused = false;
    if (lev) {
        evconnlistener_set_error_cb(lev, accept_error_cb);
        listener_update();
    }
}

int fe_conn_count(void)
{
    return g.conns;
}

void fe_conn_shutdown(void)
{
    g.down = true;
    g.listener = NULL;
    if (g.resume_timer) event_free(g.resume_timer);
    if (g.trim_timer) event_free(g.trim_timer);
    g.resume_timer = g.trim_timer = NULL;
    /* g.scratch stays: connections freed by evhttp_free still pass through conn_free, not
     * input_cb; it is freed with the process. */
}

/* HTTP/1.1 request framing, checked before libevent's parser sees a byte (fe_conn.c feeds it).
 *
 * libevent 2.1 is lenient where a lenient parser is a smuggling risk (the first of two
 * Content-Length headers wins, "Transfer-Encoding : chunked" is a header named
 * "Transfer-Encoding ", folded lines are joined, a value is cut at %00) and answers its own
 * errors with HTML pages. Every request head is therefore checked here whole first; a refused
 * one never reaches libevent as written (fe_conn.c explains what it gets instead).
 * Pure functions: no libevent, no allocation. */
#ifndef FE_FRAMING_H
#define FE_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a request was refused. The values travel in the FE_REJECT_HEADER header of the request
 * fe_conn.c puts in a refused one's place: keep them stable within a build only. */
typedef enum {
    FE_REJECT_NONE = 0,
    FE_REJECT_REQUEST_LINE,        /* 400 bad_request */
    FE_REJECT_VERSION,             /* 400 bad_request: not HTTP/1.0 or HTTP/1.1 */
    FE_REJECT_TARGET,              /* 400 bad_request: not an origin-form target */
    FE_REJECT_ENCODING,            /* 400 bad_request: bad percent-encoding, or %00 */
    FE_REJECT_QUERY,               /* 400 bad_request: a query parameter twice, or too many */
    FE_REJECT_METHOD,              /* 501 not_implemented */
    FE_REJECT_BARE_LF,             /* 400 bad_header: a line not ended by CRLF */
    FE_REJECT_HEADER_SYNTAX,       /* 400 bad_header: no colon, empty name */
    FE_REJECT_HEADER_NAME,         /* 400 bad_header: whitespace or another non-token byte */
    FE_REJECT_OBS_FOLD,            /* 400 bad_header: a folded (continuation) line */
    FE_REJECT_HEADER_VALUE,        /* 400 bad_header: a control byte in a value */
    FE_REJECT_RESERVED_HEADER,     /* 400 bad_header: the client sent FE_REJECT_HEADER */
    FE_REJECT_CONTENT_LENGTH,      /* 400 bad_framing: not 1*DIGIT */
    FE_REJECT_DUPLICATE_LENGTH,    /* 400 bad_framing: Content-Length twice */
    FE_REJECT_TRANSFER_ENCODING,   /* 400 bad_framing: not exactly one "chunked" (HTTP/1.1) */
    FE_REJECT_LENGTH_AND_ENCODING, /* 400 bad_framing: both Content-Length and Transfer-Encoding */
    FE_REJECT_CHUNK,               /* 400 bad_framing: a malformed chunk-size line or chunk end */
    FE_REJECT_TRAILER,             /* 400 bad_framing: trailer fields */
    FE_REJECT_EXPECT,              /* 417 expectation_failed: an Expect other than 100-continue */
    FE_REJECT_BODY_TOO_LARGE,      /* 413 body_too_large */
    FE_REJECT_TOO_MANY_HEADERS,    /* 431 headers_too_large */
    FE_REJECT_HEADERS_TOO_LARGE,   /* 431 headers_too_large */
    FE_REJECT_TIMEOUT,             /* 408 request_timeout */
    FE_REJECT_COUNT
} fe_reject;

/* The header that carries a refusal from fe_conn.c to the dispatcher. Clients may not send it:
 * a head with it is refused (FE_REJECT_RESERVED_HEADER), so its presence proves its origin. */
#define FE_REJECT_HEADER "X-Fv-Refused"

typedef struct fe_reject_info {
    int status;
    const char *code;
    const char *message;
} fe_reject_info;

/* The answer for why, or NULL for FE_REJECT_NONE and values out of range. */
const fe_reject_info *fe_reject_get(int why);

typedef enum { FE_BODY_NONE, FE_BODY_LENGTH, FE_BODY_CHUNKED } fe_body_kind;

typedef struct fe_head {
    fe_body_kind body;
    uint64_t length;      /* FE_BODY_LENGTH: the Content-Length (also on FE_REJECT_BODY_TOO_LARGE) */
    size_t headers;       /* header fields counted */
    bool expect_continue; /* Expect: 100-continue (also on FE_REJECT_BODY_TOO_LARGE) */
} fe_head;

/* Where the request head in buf[0..len) ends: its length with the blank line ("\r\n\r\n"), or
 * 0 when it has not ended yet, or FE_HEAD_BARE_LF when a LF without its CR shows it malformed.
 * from: bytes already scanned by an earlier call on the same head (0 the first time). */
#define FE_HEAD_BARE_LF ((size_t)-1)
size_t fe_head_end(const char *buf, size_t len, size_t from);

/* Checks the head head[0..len) (as fe_head_end delimits it): the request line, every header
 * line, the framing headers, at most max_headers fields and a Content-Length of at most
 * max_body. FE_REJECT_NONE and *out filled, or why it is refused (on FE_REJECT_BODY_TOO_LARGE,
 * out->length and out->expect_continue are filled: the caller may read and drop the body). */
fe_reject fe_head_check(const char *head, size_t len, size_t max_headers, uint64_t max_body,
                        fe_head *out);

/* Whether the request line at head (up to its CR) targets an OpenRosa submission
 * (/v1/openrosa/... or /v1/key/{token}/..., "/submission" the path's last segment, before any query): such a body may be up to
 * openrosa_max_body_bytes instead of max_body_bytes. */
bool fe_head_is_submission(const char *head, size_t len);

/* A chunk-size line without its CRLF: 1*HEXDIG (at most 15 digits), then optionally
 * extensions after ';' (printable bytes, dropped). FE_REJECT_NONE and *size, or FE_REJECT_CHUNK. */
fe_reject fe_chunk_size(const char *line, size_t len, uint64_t *size);

/* Whether a request target's percent-encoding is valid: every '%' starts "%XX" (hex) and none
 * decodes to NUL. */
bool fe_target_encoding_ok(const char *target, size_t len);

#endif

/* HTTP/1.1 request framing checks (fe_framing.h): RFC 9112 sections 2-7, strictly. */
#include "fe_framing.h"

#include <string.h>
#include <strings.h>

static const fe_reject_info infos[FE_REJECT_COUNT] = {
    [FE_REJECT_REQUEST_LINE] = {400, "bad_request", "malformed request line"},
    [FE_REJECT_VERSION] = {400, "bad_request", "only HTTP/1.0 and HTTP/1.1 are served"},
    [FE_REJECT_TARGET] = {400, "bad_request", "malformed request target"},
    [FE_REJECT_ENCODING] = {400, "bad_request",
                            "invalid percent-encoding in the request target (or an encoded NUL)"},
    [FE_REJECT_QUERY] = {400, "bad_request",
                         "a query parameter is given more than once (or more than 64 are given)"},
    [FE_REJECT_METHOD] = {501, "not_implemented", "this method is not implemented"},
    [FE_REJECT_BARE_LF] = {400, "bad_header", "every line of the request head must end in CRLF"},
    [FE_REJECT_HEADER_SYNTAX] = {400, "bad_header", "malformed header line"},
    [FE_REJECT_HEADER_NAME] = {400, "bad_header",
                               "a header name contains whitespace or another invalid character"},
    [FE_REJECT_OBS_FOLD] = {400, "bad_header", "folded header lines are not accepted"},
    [FE_REJECT_HEADER_VALUE] = {400, "bad_header", "a header value contains a control character"},
    [FE_REJECT_RESERVED_HEADER] = {400, "bad_header", "a reserved header name was sent"},
    [FE_REJECT_CONTENT_LENGTH] = {400, "bad_framing", "invalid Content-Length"},
    [FE_REJECT_DUPLICATE_LENGTH] = {400, "bad_framing", "more than one Content-Length"},
    [FE_REJECT_TRANSFER_ENCODING] =
        {400, "bad_framing", "the only Transfer-Encoding accepted is chunked, once, on HTTP/1.1"},
    [FE_REJECT_LENGTH_AND_ENCODING] = {400, "bad_framing",
                                       "both Content-Length and Transfer-Encoding were sent"},
    [FE_REJECT_CHUNK] = {400, "bad_framing", "malformed chunked body"},
    [FE_REJECT_TRAILER] = {400, "bad_framing", "trailer fields are not accepted"},
    [FE_REJECT_EXPECT] = {417, "expectation_failed", "the only expectation served is 100-continue"},
    [FE_REJECT_BODY_TOO_LARGE] = {413, "body_too_large", "the request body is too large"},
    [FE_REJECT_TOO_MANY_HEADERS] = {431, "headers_too_large", "too many header fields"},
    [FE_REJECT_HEADERS_TOO_LARGE] = {431, "headers_too_large", "the request head is too large"},
    [FE_REJECT_TIMEOUT] = {408, "request_timeout", "the request was not received in time"},
};

const fe_reject_info *fe_reject_get(int why)
{
    if (why <= FE_REJECT_NONE || why >= FE_REJECT_COUNT) return NULL;
    return &infos[why];
}

size_t fe_head_end(const char *buf, size_t len, size_t from)
{
    /* Resume a little before where the last scan stopped: the blank line may straddle reads. */
    size_t i = from > 3 ? from - 3 : 0;
    for (; i < len; i++) {
        if (buf[i] != '\n') continue;
        if (i == 0 || buf[i - 1] != '\r') return FE_HEAD_BARE_LF;
        if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r') return i + 1;
    }
    return 0;
}

/* RFC 9110 5.6.2 token characters. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool fe_target_encoding_ok(const char *target, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (target[i] != '%') continue;
        if (i + 2 >= len) return false;
        int hi = hexval((unsigned char)target[i + 1]), lo = hexval((unsigned char)target[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
        i += 2;
    }
    return true;
}

static bool name_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* value[0..n) with OWS (SP, HTAB) trimmed on both sides. */
static void trim_ows(const char **v, size_t *n)
{
    while (*n && ((*v)[0] == ' ' || (*v)[0] == '\t')) (*v)++, (*n)--;
    while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t')) (*n)--;
}

#define FE_QUERY_MAX_PARAMS 64
#define FE_QUERY_NAME_MAX 64

/* The name of query parameter q[0..n) (up to '=') percent-decoded into out (a '+' is a space, as
 * evhttp decodes it); false when longer than FE_QUERY_NAME_MAX. Encoding is already checked. */
static bool query_name(const char *q, size_t n, char out[FE_QUERY_NAME_MAX + 1], size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n && q[i] != '='; i++) {
        if (o == FE_QUERY_NAME_MAX) return false;
        if (q[i] == '%' && i + 2 < n) {
            out[o++] = (char)(hexval((unsigned char)q[i + 1]) * 16 + hexval((unsigned char)q[i + 2]));
            i += 2;
        } else {
            out[o++] = q[i] == '+' ? ' ' : q[i];
        }
    }
    out[o] = '\0';
    *outlen = o;
    return true;
}

/* HTTP parameter pollution (OWASP ASVS 5.1.1): which copy of a repeated parameter counts would
 * depend on the parser, so a query that names one twice (after decoding), or has more parameters
 * than any route reads, is refused. */
static bool query_names_unique(const char *q, size_t n)
{
    char names[FE_QUERY_MAX_PARAMS][FE_QUERY_NAME_MAX + 1];
    size_t lens[FE_QUERY_MAX_PARAMS];
    int count = 0;
    const char *end = q + n;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        size_t len = amp ? (size_t)(amp - q) : (size_t)(end - q);
        if (len > 0) {
            if (count == FE_QUERY_MAX_PARAMS) return false;
            size_t nl;
            if (!query_name(q, len, names[count], &nl)) nl = FE_QUERY_NAME_MAX + 1; /* never equal */
            for (int i = 0; i < count && nl <= FE_QUERY_NAME_MAX; i++)
                if (lens[i] == nl && memcmp(names[i], names[count], nl) == 0) return false;
            lens[count++] = nl;
        }
        q += len + (amp ? 1 : 0);
    }
    return true;
}

static fe_reject check_request_line(const char *p, size_t n)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    const char *sp1 = memchr(p, ' ', n);
    if (!sp1 || sp1 == p) return FE_REJECT_REQUEST_LINE;
    size_t mlen = (size_t)(sp1 - p);
    for (size_t i = 0; i < mlen; i++)
        if (!is_tchar((unsigned char)p[i])) return FE_REJECT_REQUEST_LINE;
    const char *target = sp1 + 1;
    const char *end = p + n;
    const char *sp2 = memchr(target, ' ', (size_t)(end - target));
    if (!sp2 || sp2 == target) return FE_REJECT_REQUEST_LINE;
    size_t tlen = (size_t)(sp2 - target);
    const char *version = sp2 + 1;
    size_t vlen = (size_t)(end - version);
    if (memchr(version, ' ', vlen)) return FE_REJECT_REQUEST_LINE;
    if (vlen < 5 || memcmp(version, "HTTP/", 5) != 0) return FE_REJECT_REQUEST_LINE;
    if (!(vlen == 8 && (memcmp(version, "HTTP/1.1", 8) == 0 || memcmp(version, "HTTP/1.0", 8) == 0)))
        return FE_REJECT_VERSION;
    bool known = false;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strlen(methods[i]) == mlen && memcmp(methods[i], p, mlen) == 0) known = true;
    if (!known) return FE_REJECT_METHOD;
    if (target[0] != '/') return FE_REJECT_TARGET;
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c <= 0x20 || c >= 0x7f) return FE_REJECT_TARGET;
    }
    if (!fe_target_encoding_ok(target, tlen)) return FE_REJECT_ENCODING;
    const char *q = memchr(target, '?', tlen);
    if (q && !query_names_unique(q + 1, (size_t)(target + tlen - (q + 1)))) return FE_REJECT_QUERY;
    return FE_REJECT_NONE;
}

fe_reject fe_head_check(const char *head, size_t len, size_t max_headers, uint64_t max_body,
                        fe_head *out)
{
    memset(out, 0, sizeof *out);
    /* Every line ends in CRLF; the head ends with an empty line. */
    if (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0) return FE_REJECT_REQUEST_LINE;
    const char *p = head, *end = head + len - 2; /* end: the final empty line's CRLF */
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    if (!eol || eol[1] != '\n') return FE_REJECT_BARE_LF;
    bool http10 = eol - p >= 8 && memcmp(eol - 8, "HTTP/1.0", 8) == 0;
    fe_reject why = check_request_line(p, (size_t)(eol - p));
    if (why) return why;
    p = eol + 2;
    int n_cl = 0, n_te = 0;
    uint64_t length = 0;
    bool chunked = false;
    while (p < end) {
        eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol) return FE_REJECT_BARE_LF;
        if (eol[1] != '\n') return FE_REJECT_HEADER_VALUE; /* a bare CR inside the line */
        size_t n = (size_t)(eol - p);
        if (++out->headers > max_headers) return FE_REJECT_TOO_MANY_HEADERS;
        if (n == 0) return FE_REJECT_HEADER_SYNTAX;
        if (p[0] == ' ' || p[0] == '\t') return FE_REJECT_OBS_FOLD;
        const char *colon = memchr(p, ':', n);
        if (!colon) return FE_REJECT_HEADER_SYNTAX;
        size_t nlen = (size_t)(colon - p);
        if (nlen == 0) return FE_REJECT_HEADER_SYNTAX;
        for (size_t i = 0; i < nlen; i++)
            if (!is_tchar((unsigned char)p[i])) return FE_REJECT_HEADER_NAME;
        const char *v = colon + 1;
        size_t vlen = (size_t)(eol - v);
        for (size_t i = 0; i < vlen; i++) {
            unsigned char c = (unsigned char)v[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) return FE_REJECT_HEADER_VALUE;
        }
        trim_ows(&v, &vlen);
        if (name_is(p, nlen, FE_REJECT_HEADER)) return FE_REJECT_RESERVED_HEADER;
        if (name_is(p, nlen, "Content-Length")) {
            if (++n_cl > 1) return FE_REJECT_DUPLICATE_LENGTH;
            if (vlen == 0 || vlen > 18) return FE_REJECT_CONTENT_LENGTH;
            length = 0;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9') return FE_REJECT_CONTENT_LENGTH;
                length = length * 10 + (uint64_t)(v[i] - '0');
            }
        } else if (name_is(p, nlen, "Transfer-Encoding")) {
            if (++n_te > 1 || http10) return FE_REJECT_TRANSFER_ENCODING;
            if (!(vlen == 7 && strncasecmp(v, "chunked", 7) == 0)) return FE_REJECT_TRANSFER_ENCODING;
            chunked = true;
        } else if (name_is(p, nlen, "Expect")) {
            if (!(vlen == 12 && strncasecmp(v, "100-continue", 12) == 0)) return FE_REJECT_EXPECT;
            out->expect_continue = true;
        }
        p = eol + 2;
    }
    if (n_cl && n_te) return FE_REJECT_LENGTH_AND_ENCODING;
    if (chunked) {
        out->body = FE_BODY_CHUNKED;
    } else if (n_cl) {
        out->length = length;
        if (length > max_body) return FE_REJECT_BODY_TOO_LARGE;
        out->body = length ? FE_BODY_LENGTH : FE_BODY_NONE;
        out->length = length;
    }
    return FE_REJECT_NONE;
}

bool fe_head_is_submission(const char *head, size_t len)
{
    const char *eol = memchr(head, '\r', len);
    const char *sp = memchr(head, ' ', eol ? (size_t)(eol - head) : len);
    if (!sp) return false;
    const char *t = sp + 1, *end = memchr(t, ' ', (size_t)((eol ? eol : head + len) - t));
    if (!end) return false;
    const char *q = memchr(t, '?', (size_t)(end - t));
    if (q) end = q;
    static const char seg[] = "/submission";
    size_t n = sizeof seg - 1;
    /* /v1/openrosa/... or an app user's /v1/key/{token}/openrosa/... (fe_dispatch.c) */
    return (size_t)(end - t) > n && memcmp(end - n, seg, n) == 0 &&
           (strncmp(t, "/v1/openrosa/", 13) == 0 || strncmp(t, "/v1/key/", 8) == 0);
}

fe_reject fe_chunk_size(const char *line, size_t len, uint64_t *size)
{
    size_t i = 0;
    uint64_t v = 0;
    for (; i < len; i++) {
        int h = hexval((unsigned char)line[i]);
        if (h < 0) break;
        if (i >= 15) return FE_REJECT_CHUNK;
        v = v * 16 + (uint64_t)h;
    }
    if (i == 0) return FE_REJECT_CHUNK;
    size_t j = i;
    while (j < len && (line[j] == ' ' || line[j] == '\t')) j++;
    if (j < len) {
        if (line[j] != ';') return FE_REJECT_CHUNK;
        for (; j < len; j++) {
            unsigned char c = (unsigned char)line[j];
            if ((c < 0x20 && c != '\t') || c == 0x7f) return FE_REJECT_CHUNK;
        }
    } else if (j != i) {
        return FE_REJECT_CHUNK; /* trailing whitespace without an extension */
    }
    *size = v;
    return FE_REJECT_NONE;
}

/* A streaming multipart/form-data parser: a byte-driven state machine (fv_multipart.h). */
#include "fv_multipart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum {
    MP_PREAMBLE,    /* before the first delimiter: skipped */
    MP_AFTER_DELIM, /* a delimiter just matched: "--" (close), padding, or CRLF (a part) follows */
    MP_CLOSE,       /* "-" of "--" seen after a delimiter */
    MP_AFTER_CR,    /* CR after a delimiter: LF expected, then a part head */
    MP_HEAD,        /* a part's header lines, up to the empty line */
    MP_DATA,        /* a part's data, up to the next delimiter */
    MP_EPILOGUE,    /* after the closing delimiter: ignored */
    MP_FAILED,      /* malformed or stopped: every call fails */
} mp_state;

struct fv_multipart {
    mp_state st;
    char delim[FV_MULTIPART_MAX_BOUNDARY + 5]; /* "\r\n--" boundary */
    size_t dlen;
    size_t match; /* bytes of delim matched so far (MP_PREAMBLE, MP_DATA) */
    char head[FV_MULTIPART_MAX_HEAD + 1];
    size_t hlen, line_start, nlines;
    size_t parts, max_parts;
    const fv_multipart_cbs *cbs;
    void *arg;
    char error[96];
    char name[FV_MULTIPART_MAX_NAME + 1], filename[FV_MULTIPART_MAX_NAME + 1],
        ctype[FV_MULTIPART_MAX_NAME + 1];
    bool has_name, has_filename, has_ctype;
};

static bool bchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           strchr("'()+_,-./:=? ", c) != NULL;
}

bool fv_multipart_boundary(const char *ct, char *out, size_t outlen)
{
    if (!ct || outlen < FV_MULTIPART_MAX_BOUNDARY + 1) return false;
    while (*ct == ' ' || *ct == '\t') ct++;
    static const char type[] = "multipart/form-data";
    if (strncasecmp(ct, type, sizeof type - 1) != 0) return false;
    const char *p = ct + sizeof type - 1;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        if (*p != ';') return false;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ';' && *p != ' ') p++;
        size_t klen = (size_t)(p - k);
        if (*p != '=') return false;
        p++;
        char val[FV_MULTIPART_MAX_BOUNDARY + 2];
        size_t vlen = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) p++;
                if (vlen > FV_MULTIPART_MAX_BOUNDARY) return false;
                val[vlen++] = *p++;
            }
            if (*p != '"') return false;
            p++;
        } else {
            while (*p && *p != ';' && *p != ' ' && *p != '\t') {
                if (vlen > FV_MULTIPART_MAX_BOUNDARY) return false;
                val[vlen++] = *p++;
            }
        }
        if (klen == 8 && strncasecmp(k, "boundary", 8) == 0) {
            if (vlen == 0 || vlen > FV_MULTIPART_MAX_BOUNDARY || val[vlen - 1] == ' ') return false;
            for (size_t i = 0; i < vlen; i++)
                if (!bchar((unsigned char)val[i])) return false;
            memcpy(out, val, vlen);
            out[vlen] = '\0';
            return true;
        }
    }
    return false;
}

fv_multipart *fv_multipart_new(const char *boundary, const fv_multipart_cbs *cbs, void *arg,
                               size_t max_parts)
{
    size_t blen = boundary ? strlen(boundary) : 0;
    if (blen == 0 || blen > FV_MULTIPART_MAX_BOUNDARY) return NULL;
    for (size_t i = 0; i < blen; i++)
        if (!bchar((unsigned char)boundary[i])) return NULL;
    fv_multipart *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, boundary, blen);
    m->dlen = blen + 4;
    m->match = 2; /* the body may start with the delimiter itself: a virtual CRLF before it */
    m->st = MP_PREAMBLE;
    m->cbs = cbs;
    m->arg = arg;
    m->max_parts = max_parts;
    return m;
}

void fv_multipart_free(fv_multipart *m)
{
    free(m);
}

const char *fv_multipart_error(const fv_multipart *m)
{
    return m->error;
}

size_t fv_multipart_parts(const fv_multipart *m)
{
    return m->parts;
}

static int fail(fv_multipart *m, const char *why)
{
    if (m->st != MP_FAILED) snprintf(m->error, sizeof m->error, "%s", why);
    m->st = MP_FAILED;
    return -1;
}

#define NOT_FORM_DATA "a part's Content-Disposition is not form-data with a name"
#define TOO_LONG \
    "a part's name or filename is longer than " FV_MULTIPART_STR(FV_MULTIPART_MAX_NAME) " bytes"

/* Copies a parameter value (quoted-string or token) at *pp into out. NULL, or why not: too long
 * (TOO_LONG), unterminated. */
static const char *param_value(const char **pp, const char *end, char *out)
{
    const char *p = *pp;
    size_t n = 0;
    if (p < end && *p == '"') {
        p++;
        while (p < end && *p != '"') {
            if (*p == '\\' && p + 1 < end) p++;
            if (n >= FV_MULTIPART_MAX_NAME) return TOO_LONG;
            out[n++] = *p++;
        }
        if (p >= end) return NOT_FORM_DATA;
        p++;
    } else {
        while (p < end && *p != ';' && *p != ' ' && *p != '\t') {
            if (n >= FV_MULTIPART_MAX_NAME) return TOO_LONG;
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    *pp = p;
    return NULL;
}

/* Content-Disposition: form-data; name="x"; filename="y". NULL, or why not. */
static const char *parse_disposition(fv_multipart *m, const char *v, const char *end)
{
    static const char fd[] = "form-data";
    if ((size_t)(end - v) < sizeof fd - 1 || strncasecmp(v, fd, sizeof fd - 1) != 0)
        return NOT_FORM_DATA;
    const char *p = v + sizeof fd - 1;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p >= end) break;
        if (*p != ';') return NOT_FORM_DATA;
        p++;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        const char *k = p;
        while (p < end && *p != '=' && *p != ';') p++;
        size_t klen = (size_t)(p - k);
        if (p >= end || *p != '=') return NOT_FORM_DATA;
        p++;
        char tmp[FV_MULTIPART_MAX_NAME + 1];
        char *dst = tmp;
        if (klen == 4 && strncasecmp(k, "name", 4) == 0) dst = m->name, m->has_name = true;
        else if (klen == 8 && strncasecmp(k, "filename", 8) == 0)
            dst = m->filename, m->has_filename = true;
        const char *why = param_value(&p, end, dst);
        if (why) return why;
    }
    return m->has_name ? NULL : NOT_FORM_DATA;
}

/* The head m->head[0..hlen) (lines ending in CRLF, the empty line not included). */
static int parse_head(fv_multipart *m)
{
    m->has_name = m->has_filename = m->has_ctype = false;
    bool disposition = false;
    const char *p = m->head, *end = m->head + m->hlen;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p)); /* every line ends in CRLF */
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p) return fail(m, "a part header line has no name");
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t')) v++;
        const char *ve = eol;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        size_t nlen = (size_t)(colon - p);
        if (nlen == 19 && strncasecmp(p, "Content-Disposition", 19) == 0) {
            const char *why = disposition ? NOT_FORM_DATA : parse_disposition(m, v, ve);
            if (why) return fail(m, why);
            disposition = true;
        } else if (nlen == 12 && strncasecmp(p, "Content-Type", 12) == 0) {
            size_t n = (size_t)(ve - v);
            if (m->has_ctype || n > FV_MULTIPART_MAX_NAME)
                return fail(m, "a part's Content-Type is malformed");
            memcpy(m->ctype, v, n);
            m->ctype[n] = '\0';
            m->has_ctype = true;
        }
        p = eol + 2;
    }
    if (!disposition) return fail(m, "a part has no Content-Disposition");
    fv_multipart_part part = {m->name, m->has_filename ? m->filename : NULL,
                              m->has_ctype ? m->ctype : NULL};
    if (m->cbs->part_begin && !m->cbs->part_begin(m->arg, &part))
        return fail(m, "refused by the caller");
    return 0;
}

static int emit(fv_multipart *m, const char *p, size_t n)
{
    if (n == 0 || !m->cbs->part_data) return 0;
    return m->cbs->part_data(m->arg, p, n) ? 0 : fail(m, "refused by the caller");
}

int fv_multipart_feed(fv_multipart *m, const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        switch (m->st) {
        case MP_FAILED: return -1;
        case MP_EPILOGUE: return 0;
        case MP_PREAMBLE:
            if (c == (unsigned char)m->delim[m->match]) {
                if (++m->match == m->dlen) m->st = MP_AFTER_DELIM, m->match = 0;
            } else {
                m->match = c == '\r' ? 1 : 0;
            }
            i++;
            break;
        case MP_AFTER_DELIM:
            if (c == '-') m->st = MP_CLOSE;
            else if (c == '\r') m->st = MP_AFTER_CR;
            else if (c != ' ' && c != '\t')
                return fail(m, "a delimiter is followed by neither CRLF nor --");
            i++;
            break;
        case MP_CLOSE:
            if (c != '-') return fail(m, "a delimiter is followed by neither CRLF nor --");
            m->st = MP_EPILOGUE;
            return 0;
        case MP_AFTER_CR:
            if (c != '\n') return fail(m, "a delimiter line ends in a bare CR");
            if (m->parts >= m->max_parts) return fail(m, "too many parts");
            m->parts++;
            m->st = MP_HEAD;
            m->hlen = m->line_start = m->nlines = 0;
            i++;
            break;
        case MP_HEAD:
            if (c == '\n') {
                if (m->hlen == 0 || m->head[m->hlen - 1] != '\r')
                    return fail(m, "a part head has a bare LF");
                if (m->hlen - 1 == m->line_start) { /* the empty line: the head is complete */
                    m->hlen = m->line_start;
                    i++;
                    if (parse_head(m) != 0) return -1;
                    m->st = MP_DATA;
                    m->match = 0;
                    break;
                }
                if (++m->nlines > FV_MULTIPART_MAX_HEADERS)
                    return fail(m, "a part has too many header lines");
            } else if (m->hlen > 0 && m->head[m->hlen - 1] == '\r') {
                return fail(m, "a part head has a bare CR");
            } else if (c == '\0') {
                /* never in a header (RFC 9110 5.5); a name with one would be cut short at it */
                return fail(m, "a part head holds a NUL byte");
            }
            if (m->hlen >= FV_MULTIPART_MAX_HEAD) return fail(m, "a part head is too large");
            m->head[m->hlen++] = (char)c;
            if (c == '\n') m->line_start = m->hlen;
            i++;
            break;
        case MP_DATA: {
            size_t run = i; /* data bytes of buf from run to i are not yet emitted */
            bool ended = false;
            for (; i < len; i++) {
                c = (unsigned char)buf[i];
                if (m->match > 0) {
                    if (c == (unsigned char)m->delim[m->match]) {
                        if (++m->match == m->dlen) {
                            i++;
                            ended = true;
                            break;
                        }
                        continue;
                    }
                    /* Not the delimiter after all: what matched was data (it starts with the
                     * delimiter's only CR, so no later delimiter can start inside it). */
                    if (emit(m, m->delim, m->match) != 0) return -1;
                    m->match = 0;
                    run = i;
                }
                if (c == '\r') {
                    if (emit(m, buf + run, i - run) != 0) return -1;
                    m->match = 1;
                }
            }
            if (ended) {
                m->match = 0;
                m->st = MP_AFTER_DELIM;
                if (m->cbs->part_end && !m->cbs->part_end(m->arg))
                    return fail(m, "refused by the caller");
            } else if (m->match == 0 && emit(m, buf + run, i - run) != 0) {
                return -1;
            }
            break;
        }
        }
    }
    return m->st == MP_FAILED ? -1 : 0;
}

int fv_multipart_finish(fv_multipart *m)
{
    if (m->st == MP_EPILOGUE) return 0;
    if (m->st != MP_FAILED)
        fail(m, m->parts ? "the body ends before its closing delimiter" : "the body has no part");
    return -1;
}

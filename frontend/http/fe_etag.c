/* Entity tags and If-None-Match (fe_etag.h). */
#include "fe_etag.h"

#include <string.h>

#include <event2/http.h>

#include "fe_reply.h"

bool fe_etag_of_md5(const char *md5, char out[FE_ETAG_MAX])
{
    out[0] = '\0';
    if (!md5 || strlen(md5) != 32 || strspn(md5, "0123456789abcdef") != 32) return false;
    out[0] = '"';
    memcpy(out + 1, md5, 32);
    out[33] = '"';
    out[34] = '\0';
    return true;
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

bool fe_etag_none_match(const char *v, const char *etag)
{
    if (!v || !etag || etag[0] != '"') return false;
    size_t elen = strlen(etag);
    const char *p = v;
    while (ows(*p)) p++;
    if (*p == '*') {
        p++;
        while (ows(*p)) p++;
        return *p == '\0'; /* "*" alone: any current representation */
    }
    while (*p) {
        while (ows(*p) || *p == ',') p++;
        if (!*p) break;
        if (p[0] == 'W' && p[1] == '/') p += 2; /* the weak comparison: W/"x" is "x" */
        if (*p != '"') return false;
        const char *end = strchr(p + 1, '"');
        if (!end) return false;
        size_t n = (size_t)(end - p) + 1;
        bool same = n == elen && memcmp(p, etag, n) == 0;
        p = end + 1;
        while (ows(*p)) p++;
        if (*p && *p != ',') return false; /* "x" junk: malformed, even when "x" is ours */
        if (same) return true;
    }
    return false;
}

bool fe_etag_answer(fe_req *r, const char *etag)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "ETag", etag);
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "If-None-Match");
    if (!fe_etag_none_match(inm, etag)) return false;
    fe_reply_not_modified(r);
    return true;
}

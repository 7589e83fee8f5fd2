/* Unit tests of fv_multipart: a body parsed the same whatever its pieces (every split point, one
 * byte at a time), CR/LF and near-delimiters inside data kept, the boundary parameter, the
 * preamble and epilogue, and every refusal (no closing delimiter, bad heads, too many parts,
 * a callback stopping the parse). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fv_multipart.h"

typedef struct seen {
    char out[8192]; /* "[name|filename|type]data" per part */
    size_t n;
    int stop_at; /* part_begin returns false for this part index (-1: never) */
    int parts;
} seen;

static void put(seen *s, const char *p, size_t n)
{
    assert_true(s->n + n < sizeof s->out);
    memcpy(s->out + s->n, p, n);
    s->n += n;
    s->out[s->n] = '\0';
}

static bool begin(void *arg, const fv_multipart_part *p)
{
    seen *s = arg;
    if (s->parts++ == s->stop_at) return false;
    char h[800];
    int n = snprintf(h, sizeof h, "[%s|%s|%s]", p->name, p->filename ? p->filename : "-",
                     p->content_type ? p->content_type : "-");
    put(s, h, (size_t)n);
    return true;
}

static bool data(void *arg, const char *d, size_t n)
{
    put(arg, d, n);
    return true;
}

static bool end(void *arg)
{
    put(arg, "<end>", 5);
    return true;
}

static const fv_multipart_cbs cbs = {begin, data, end};

/* Parses body in pieces of `piece` bytes (0: whole); returns feed/finish's result. */
static int parse(const char *boundary, const char *body, size_t len, size_t piece, seen *s,
                 size_t max_parts)
{
    memset(s, 0, sizeof *s);
    s->stop_at = -1;
    fv_multipart *m = fv_multipart_new(boundary, &cbs, s, max_parts);
    assert_non_null(m);
    int rc = 0;
    if (piece == 0) piece = len ? len : 1;
    for (size_t i = 0; i < len && rc == 0; i += piece)
        rc = fv_multipart_feed(m, body + i, len - i < piece ? len - i : piece);
    if (rc == 0) rc = fv_multipart_finish(m);
    fv_multipart_free(m);
    return rc;
}

static const char BODY[] =
    "preamble to skip\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"xml_submission_file\"; filename=\"s.xml\"\r\n"
    "Content-Type: text/xml\r\n"
    "\r\n"
    "<data>\r\n--XY\r\n\r\n--XyY x--XyZ is not it\r</data>\r\n"
    "--XyZ\r\n"
    "content-disposition: form-data; name=photo.jpg; filename=\"a \\\"q\\\".jpg\"\r\n"
    "\r\n"
    "\r\n\r\r\n\xff\x00"
    "\r\n"
    "--XyZ--\r\n"
    "epilogue --XyZ junk";

static const char WANT[] =
    "[xml_submission_file|s.xml|text/xml]<data>\r\n--XY\r\n\r\n--XyY x--XyZ is not it\r</data><end>"
    "[photo.jpg|a \"q\".jpg|-]\r\n\r\r\n\xff";

static void same_whatever_the_pieces(void **st)
{
    (void)st;
    size_t len = sizeof BODY - 1;
    seen s;
    for (size_t piece = 0; piece <= len; piece++) {
        assert_int_equal(parse("XyZ", BODY, len, piece, &s, 10), 0);
        assert_int_equal(s.n, sizeof WANT - 1 + 1 + 5); /* the \0 byte, the second <end> */
        assert_memory_equal(s.out, WANT, sizeof WANT - 1);
    }
}

static void boundary_parameter(void **st)
{
    (void)st;
    char b[FV_MULTIPART_MAX_BOUNDARY + 1];
    assert_true(fv_multipart_boundary("multipart/form-data; boundary=abc", b, sizeof b));
    assert_string_equal(b, "abc");
    assert_true(
        fv_multipart_boundary("Multipart/Form-Data;charset=utf-8; boundary=\"a b:c\"", b, sizeof b));
    assert_string_equal(b, "a b:c");
    assert_false(fv_multipart_boundary("multipart/mixed; boundary=abc", b, sizeof b));
    assert_false(fv_multipart_boundary("multipart/form-data", b, sizeof b));
    assert_false(fv_multipart_boundary("multipart/form-data; boundary=", b, sizeof b));
    assert_false(fv_multipart_boundary("multipart/form-data; boundary=\"ab \"", b, sizeof b));
    assert_false(fv_multipart_boundary("multipart/form-data; boundary=a\x01", b, sizeof b));
    char longb[120] = "multipart/form-data; boundary=";
    memset(longb + strlen(longb), 'x', 71);
    assert_false(fv_multipart_boundary(longb, b, sizeof b));
    assert_false(fv_multipart_boundary(NULL, b, sizeof b));
    assert_null(fv_multipart_new("", &cbs, NULL, 1));
    assert_null(fv_multipart_new("a\rb", &cbs, NULL, 1));
}

static void refusals(void **st)
{
    /* the delimiter inside data followed by something else is malformed (RFC 2046) */
    {
        static const char b[] =
            "--b\r\nContent-Disposition: form-data; name=x\r\n\r\nx\r\n--bz\r\n--b--";
        seen s0;
        assert_int_equal(parse("b", b, sizeof b - 1, 0, &s0, 4), -1);
    }
    (void)st;
    seen s;
    static const struct {
        const char *body, *why;
    } bad[] = {
        {"--b\r\nContent-Disposition: form-data; name=x\r\n\r\ndata", "closing"},
        {"", "no part"},
        {"no delimiter at all", "no part"},
        {"--b\r\nno colon\r\n\r\nx\r\n--b--", "no name"},
        {"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", "no Content-Disposition"},
        {"--b\r\nContent-Disposition: attachment; name=x\r\n\r\nx\r\n--b--", "form-data"},
        {"--b\r\nContent-Disposition: form-data; filename=x\r\n\r\nx\r\n--b--", "form-data"},
        {"--b\r\nContent-Disposition: form-data; name=\"x\r\n\r\nx\r\n--b--", "form-data"},
        {"--b\nContent-Disposition: form-data; name=x\r\n\r\nx\r\n--b--", "neither"},
        {"--b\r\nContent-Disposition: form-data; name=x\n\r\nx\r\n--b--", "bare LF"},
        {"--b\r\nContent-Disposition: form-data; name=x\r\rx\r\n\r\nx\r\n--b--", "bare CR"},
        {"--bx\r\n", "neither"},
        {"--b\r\nContent-Disposition: form-data; name=x\r\n\r\nx\r\n--b-x", "neither"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fv_multipart *m = fv_multipart_new("b", &cbs, &s, 10);
        memset(&s, 0, sizeof s);
        s.stop_at = -1;
        int rc = fv_multipart_feed(m, bad[i].body, strlen(bad[i].body));
        if (rc == 0) rc = fv_multipart_finish(m);
        assert_int_equal(rc, -1);
        if (!strstr(fv_multipart_error(m), bad[i].why)) fail_msg("%zu: %s", i, fv_multipart_error(m));
        assert_int_equal(fv_multipart_feed(m, "x", 1), -1); /* failed stays failed */
        fv_multipart_free(m);
    }
    /* too many parts, too many header lines, a head too large */
    char body[16384];
    size_t n = 0;
    for (int i = 0; i < 4; i++)
        n += (size_t)snprintf(body + n, sizeof body - n,
                              "--b\r\nContent-Disposition: form-data; name=p%d\r\n\r\nx\r\n", i);
    n += (size_t)snprintf(body + n, sizeof body - n, "--b--");
    assert_int_equal(parse("b", body, n, 0, &s, 4), 0);
    assert_int_equal(parse("b", body, n, 0, &s, 3), -1);
    n = (size_t)snprintf(body, sizeof body, "--b\r\nContent-Disposition: form-data; name=x\r\n");
    for (int i = 0; i < FV_MULTIPART_MAX_HEADERS; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "X-A: b\r\n");
    n += (size_t)snprintf(body + n, sizeof body - n, "\r\nx\r\n--b--");
    assert_int_equal(parse("b", body, n, 0, &s, 4), -1);
    n = (size_t)snprintf(body, sizeof body, "--b\r\nX: ");
    memset(body + n, 'a', FV_MULTIPART_MAX_HEAD);
    n += FV_MULTIPART_MAX_HEAD;
    n += (size_t)snprintf(body + n, sizeof body - n, "\r\n\r\nx\r\n--b--");
    assert_int_equal(parse("b", body, n, 0, &s, 4), -1);
}

/* A NUL byte in a part head is refused, never read as the end of a name ("a\0b" cut to "a");
 * a name or filename over FV_MULTIPART_MAX_NAME bytes is refused saying so, one of exactly that
 * length is taken whole. */
static void nul_and_long_names(void **st)
{
    (void)st;
    seen s;
    static const char nul[] = "--b\r\nContent-Disposition: form-data; name=\"a\0b\"\r\n\r\nx\r\n--b--";
    for (size_t piece = 0; piece < 4; piece++) {
        memset(&s, 0, sizeof s);
        s.stop_at = -1;
        fv_multipart *m = fv_multipart_new("b", &cbs, &s, 4);
        int rc = 0;
        size_t step = piece ? piece : sizeof nul - 1;
        for (size_t i = 0; i < sizeof nul - 1 && rc == 0; i += step)
            rc = fv_multipart_feed(m, nul + i, sizeof nul - 1 - i < step ? sizeof nul - 1 - i : step);
        assert_int_equal(rc, -1);
        assert_string_equal(fv_multipart_error(m), "a part head holds a NUL byte");
        assert_int_equal(s.parts, 0); /* no callback ever saw the cut name */
        fv_multipart_free(m);
    }
    char body[4096], name[FV_MULTIPART_MAX_NAME + 2];
    for (int which = 0; which < 2; which++) {
        for (size_t len = FV_MULTIPART_MAX_NAME; len <= FV_MULTIPART_MAX_NAME + 1; len++) {
            memset(name, 'n', len);
            name[len] = '\0';
            int n = snprintf(
                body, sizeof body,
                "--b\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n\r\n"
                "x\r\n--b--",
                which ? "f" : name, which ? name : "f");
            fv_multipart *m = fv_multipart_new("b", &cbs, &s, 4);
            memset(&s, 0, sizeof s);
            s.stop_at = -1;
            int rc = fv_multipart_feed(m, body, (size_t)n);
            if (rc == 0) rc = fv_multipart_finish(m);
            if (len == FV_MULTIPART_MAX_NAME) {
                assert_int_equal(rc, 0);
                assert_non_null(strstr(s.out, name));
            } else {
                assert_int_equal(rc, -1);
                assert_string_equal(fv_multipart_error(m),
                                    "a part's name or filename is longer than 256 bytes");
            }
            fv_multipart_free(m);
        }
    }
}

static void caller_stops(void **st)
{
    (void)st;
    seen s = {0};
    s.stop_at = 1;
    fv_multipart *m = fv_multipart_new("XyZ", &cbs, &s, 10);
    assert_int_equal(fv_multipart_feed(m, BODY, sizeof BODY - 1), -1);
    assert_string_equal(fv_multipart_error(m), "refused by the caller");
    assert_int_equal(fv_multipart_parts(m), 2);
    fv_multipart_free(m);
}

static void empty_part_and_padding(void **st)
{
    (void)st;
    static const char body[] = "--b  \t\r\nContent-Disposition: form-data; name=e\r\n\r\n\r\n--b--";
    seen s;
    assert_int_equal(parse("b", body, sizeof body - 1, 1, &s, 2), 0);
    assert_string_equal(s.out, "[e|-|-]<end>");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_whatever_the_pieces),
        cmocka_unit_test(boundary_parameter),
        cmocka_unit_test(refusals),
        cmocka_unit_test(nul_and_long_names),
        cmocka_unit_test(caller_stops),
        cmocka_unit_test(empty_part_and_padding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

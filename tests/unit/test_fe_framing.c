/* Unit tests of the request framing checks (frontend/http/fe_framing.c, linked from fvfrontend):
 * the end of a head, request lines, header lines, Content-Length / Transfer-Encoding rules,
 * percent-encoding of the target and chunk-size lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fe_framing.h"

static fe_reject check(const char *head, fe_head *h)
{
    fe_head tmp;
    return fe_head_check(head, strlen(head), 100, 1000, h ? h : &tmp);
}

static void test_head_end(void **state)
{
    (void)state;
    const char *h = "GET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
    size_t len = strlen(h);
    assert_int_equal(fe_head_end(h, len, 0), len - 4);
    /* Resumed scans find a blank line split across reads. */
    assert_int_equal(fe_head_end(h, 25, 0), 0);
    assert_int_equal(fe_head_end(h, len, 25), len - 4);
    assert_int_equal(fe_head_end("GET / HTTP/1.1\n\n", 16, 0), FE_HEAD_BARE_LF);
    assert_int_equal(fe_head_end("GET / HTTP/1.1\r\nA: b\n", 21, 0), FE_HEAD_BARE_LF);
    assert_int_equal(fe_head_end("", 0, 0), 0);
}

static void test_good_heads(void **state)
{
    (void)state;
    fe_head h;
    assert_int_equal(check("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &h), FE_REJECT_NONE);
    assert_int_equal(h.body, FE_BODY_NONE);
    assert_int_equal(h.headers, 1);
    assert_int_equal(check("POST /v1/x?a=%41&b=c+d HTTP/1.1\r\nContent-Length:  12 \r\n\r\n", &h),
                     FE_REJECT_NONE);
    assert_int_equal(h.body, FE_BODY_LENGTH);
    assert_int_equal(h.length, 12);
    assert_int_equal(check("POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n", &h), FE_REJECT_NONE);
    assert_int_equal(h.body, FE_BODY_CHUNKED);
    assert_int_equal(check("POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n", &h), FE_REJECT_NONE);
    assert_int_equal(h.body, FE_BODY_NONE);
    assert_int_equal(
        check("PUT / HTTP/1.1\r\nExpect: 100-continue\r\nX-Empty:\r\nUA: \xc3\xa9\t\r\n\r\n", &h),
        FE_REJECT_NONE);
}

static void test_request_line(void **state)
{
    (void)state;
    assert_int_equal(check("GET /\r\n\r\n", NULL), FE_REJECT_REQUEST_LINE);
    assert_int_equal(check("GET  / HTTP/1.1\r\n\r\n", NULL), FE_REJECT_REQUEST_LINE);
    assert_int_equal(check("GET / HTTP/1.1 \r\n\r\n", NULL), FE_REJECT_REQUEST_LINE);
    assert_int_equal(check("G(T / HTTP/1.1\r\n\r\n", NULL), FE_REJECT_REQUEST_LINE);
    assert_int_equal(check("GET / HTTP/2.0\r\n\r\n", NULL), FE_REJECT_VERSION);
    assert_int_equal(check("GET / HTTP/1.10\r\n\r\n", NULL), FE_REJECT_VERSION);
    assert_int_equal(check("GET / FTP/1.1\r\n\r\n", NULL), FE_REJECT_REQUEST_LINE);
    assert_int_equal(check("TRACE / HTTP/1.1\r\n\r\n", NULL), FE_REJECT_METHOD);
    assert_int_equal(check("get / HTTP/1.1\r\n\r\n", NULL), FE_REJECT_METHOD);
    assert_int_equal(check("GET http://x/ HTTP/1.1\r\n\r\n", NULL), FE_REJECT_TARGET);
    assert_int_equal(check("GET /\x7f HTTP/1.1\r\n\r\n", NULL), FE_REJECT_TARGET);
    assert_int_equal(check("GET /\xc3\xa9 HTTP/1.1\r\n\r\n", NULL), FE_REJECT_TARGET);
    assert_int_equal(check("GET /?q=a%00b HTTP/1.1\r\n\r\n", NULL), FE_REJECT_ENCODING);
    assert_int_equal(check("GET /?q=%zz HTTP/1.1\r\n\r\n", NULL), FE_REJECT_ENCODING);
    assert_int_equal(check("GET /?q=%4 HTTP/1.1\r\n\r\n", NULL), FE_REJECT_ENCODING);
    assert_int_equal(check("GET /%00/x HTTP/1.1\r\n\r\n", NULL), FE_REJECT_ENCODING);
    /* a parameter named twice, also once encoded; more than 64 parameters */
    assert_int_equal(check("GET /?limit=1&limit=2 HTTP/1.1\r\n\r\n", NULL), FE_REJECT_QUERY);
    assert_int_equal(check("GET /?limit=1&%6cimit=2 HTTP/1.1\r\n\r\n", NULL), FE_REJECT_QUERY);
    assert_int_equal(check("GET /?a&a HTTP/1.1\r\n\r\n", NULL), FE_REJECT_QUERY);
    assert_int_equal(check("GET /?a=1&b=2&&c=3&ab=4 HTTP/1.1\r\n\r\n", NULL), FE_REJECT_NONE);
    char many[1024] = "GET /?";
    for (int i = 0; i < 65; i++) snprintf(many + strlen(many), sizeof many - strlen(many), "p%d=1&", i);
    strcat(many, " HTTP/1.1\r\n\r\n");
    assert_int_equal(check(many, NULL), FE_REJECT_QUERY);
    many[0] = '\0';
    strcpy(many, "GET /?");
    for (int i = 0; i < 64; i++) snprintf(many + strlen(many), sizeof many - strlen(many), "p%d=1&", i);
    strcat(many, " HTTP/1.1\r\n\r\n");
    assert_int_equal(check(many, NULL), FE_REJECT_NONE);
}

static void test_header_lines(void **state)
{
    (void)state;
    assert_int_equal(check("GET / HTTP/1.1\r\nHost : x\r\n\r\n", NULL), FE_REJECT_HEADER_NAME);
    assert_int_equal(check("GET / HTTP/1.1\r\nX Y: x\r\n\r\n", NULL), FE_REJECT_HEADER_NAME);
    assert_int_equal(check("GET / HTTP/1.1\r\nNoColon\r\n\r\n", NULL), FE_REJECT_HEADER_SYNTAX);
    assert_int_equal(check("GET / HTTP/1.1\r\n: empty\r\n\r\n", NULL), FE_REJECT_HEADER_SYNTAX);
    assert_int_equal(check("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", NULL), FE_REJECT_OBS_FOLD);
    assert_int_equal(check("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", NULL), FE_REJECT_OBS_FOLD);
    assert_int_equal(check("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", NULL), FE_REJECT_HEADER_VALUE);
    assert_int_equal(check("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", NULL), FE_REJECT_HEADER_VALUE);
    assert_int_equal(check("GET / HTTP/1.1\r\n" FE_REJECT_HEADER ": 1\r\n\r\n", NULL),
                     FE_REJECT_RESERVED_HEADER);
    assert_int_equal(check("GET / HTTP/1.1\r\nx-fv-refused: 1\r\n\r\n", NULL),
                     FE_REJECT_RESERVED_HEADER);
    assert_int_equal(check("PUT / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", NULL), FE_REJECT_EXPECT);
    /* Header count: 100 allowed, 101 not. */
    char head[4096] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 100; i++) strcat(head, "A: b\r\n");
    strcat(head, "\r\n");
    assert_int_equal(check(head, NULL), FE_REJECT_NONE);
    head[strlen(head) - 2] = '\0';
    strcat(head, "A: b\r\n\r\n");
    assert_int_equal(check(head, NULL), FE_REJECT_TOO_MANY_HEADERS);
}

static void test_framing_headers(void **state)
{
    (void)state;
    assert_int_equal(check("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", NULL),
                     FE_REJECT_DUPLICATE_LENGTH);
    assert_int_equal(check("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n", NULL),
                     FE_REJECT_DUPLICATE_LENGTH);
    assert_int_equal(check("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", NULL),
                     FE_REJECT_CONTENT_LENGTH);
    assert_int_equal(check("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", NULL),
                     FE_REJECT_CONTENT_LENGTH);
    assert_int_equal(check("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", NULL),
                     FE_REJECT_CONTENT_LENGTH);
    assert_int_equal(check("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", NULL),
                     FE_REJECT_CONTENT_LENGTH);
    assert_int_equal(check("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", NULL),
                     FE_REJECT_CONTENT_LENGTH);
    assert_int_equal(check("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", NULL),
                     FE_REJECT_CONTENT_LENGTH);
    assert_int_equal(check("POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", NULL),
                     FE_REJECT_BODY_TOO_LARGE);
    assert_int_equal(check("POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\n", NULL), FE_REJECT_NONE);
    assert_int_equal(check("POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n", NULL),
                     FE_REJECT_HEADER_NAME);
    assert_int_equal(check("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", NULL),
                     FE_REJECT_TRANSFER_ENCODING);
    assert_int_equal(check("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", NULL),
                     FE_REJECT_TRANSFER_ENCODING);
    assert_int_equal(
        check("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
              NULL),
        FE_REJECT_TRANSFER_ENCODING);
    assert_int_equal(check("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", NULL),
                     FE_REJECT_TRANSFER_ENCODING);
    assert_int_equal(check("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                           NULL),
                     FE_REJECT_LENGTH_AND_ENCODING);
    assert_int_equal(check("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                           NULL),
                     FE_REJECT_LENGTH_AND_ENCODING);
}

static void test_chunk_size(void **state)
{
    (void)state;
    uint64_t n = 0;
    assert_int_equal(fe_chunk_size("1a", 2, &n), FE_REJECT_NONE);
    assert_int_equal(n, 26);
    assert_int_equal(fe_chunk_size("0", 1, &n), FE_REJECT_NONE);
    assert_int_equal(n, 0);
    assert_int_equal(fe_chunk_size("5;name=value", 12, &n), FE_REJECT_NONE);
    assert_int_equal(n, 5);
    assert_int_equal(fe_chunk_size("5 ;x", 4, &n), FE_REJECT_NONE);
    assert_int_equal(fe_chunk_size("", 0, &n), FE_REJECT_CHUNK);
    assert_int_equal(fe_chunk_size("-5", 2, &n), FE_REJECT_CHUNK);
    assert_int_equal(fe_chunk_size("5 ", 2, &n), FE_REJECT_CHUNK);
    assert_int_equal(fe_chunk_size("5x", 2, &n), FE_REJECT_CHUNK);
    assert_int_equal(fe_chunk_size("0x5", 3, &n), FE_REJECT_CHUNK);
    assert_int_equal(fe_chunk_size("1111111111111111", 16, &n), FE_REJECT_CHUNK);
    assert_int_equal(fe_chunk_size("5;\x01", 3, &n), FE_REJECT_CHUNK);
}

static void test_submission_target(void **state)
{
    (void)state;
    static const char *yes[] = {"POST /v1/openrosa/deployments/x/submission HTTP/1.1\r\n",
                                "HEAD /v1/openrosa/deployments/x/submission?deviceID=1 HTTP/1.1\r\n",
                                "POST /v1/key/fva_t/openrosa/deployments/x/submission HTTP/1.1\r\n"};
    static const char *no[] = {"POST /v1/deployments/x/responses HTTP/1.1\r\n",
                               "POST /v1/openrosa/deployments/x/submission/more HTTP/1.1\r\n",
                               "POST /v1/surveys/submission HTTP/1.1\r\n",
                               "POST /submission HTTP/1.1\r\n", "garbage"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(fe_head_is_submission(yes[i], strlen(yes[i])));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(fe_head_is_submission(no[i], strlen(no[i])));
}

static void test_reject_table(void **state)
{
    (void)state;
    assert_null(fe_reject_get(FE_REJECT_NONE));
    assert_null(fe_reject_get(FE_REJECT_COUNT));
    assert_null(fe_reject_get(-1));
    for (int i = 1; i < FE_REJECT_COUNT; i++) {
        const fe_reject_info *info = fe_reject_get(i);
        assert_non_null(info);
        assert_true(info->status >= 400 && info->status < 600);
        assert_non_null(info->code);
        assert_non_null(info->message);
    }
    assert_int_equal(fe_reject_get(FE_REJECT_TOO_MANY_HEADERS)->status, 431);
    assert_int_equal(fe_reject_get(FE_REJECT_BODY_TOO_LARGE)->status, 413);
    assert_int_equal(fe_reject_get(FE_REJECT_TIMEOUT)->status, 408);
    assert_true(fe_target_encoding_ok("/a%20b", 6));
    assert_false(fe_target_encoding_ok("/a%2", 4));
    assert_false(fe_target_encoding_ok("%00", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_end),        cmocka_unit_test(test_good_heads),
        cmocka_unit_test(test_request_line),    cmocka_unit_test(test_header_lines),
        cmocka_unit_test(test_framing_headers), cmocka_unit_test(test_chunk_size),
        cmocka_unit_test(test_reject_table),    cmocka_unit_test(test_submission_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

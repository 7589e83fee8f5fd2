/* Unit tests of the balancer's /readyz answer parser (balancer/lb_check.c lb_check_parse, links
 * fvbalancer): the verdicts, waiting for more, what EOF decides, and the inputs the fuzz target
 * (tests/fuzz/fuzz_lbcheck.c) feeds it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "lb_check.h"

static bool parse(const char *s, bool eof, lb_check_answer *a)
{
    return lb_check_parse(s, strlen(s), eof, a);
}

static void test_ready_and_degraded(void **state)
{
    (void)state;
    lb_check_answer a;
    assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{\"status\":\"ready\"}", false, &a));
    assert_int_equal(a.result, LB_RES_READY);
    assert_int_equal(a.http_status, 200);
    assert_string_equal(a.error, "");
    assert_true(parse("HTTP/1.0 200 OK\r\n\r\n{\"status\":\"degraded\"}", true, &a));
    assert_int_equal(a.result, LB_RES_DEGRADED);
    /* Content-Length counts: what follows the body is not read. */
    assert_true(
        parse("HTTP/1.1 200 OK\r\ncontent-length: 18\r\n\r\n{\"status\":\"ready\"}trailing", false, &a));
    assert_int_equal(a.result, LB_RES_READY);
}

static void test_failures_say_why(void **state)
{
    (void)state;
    lb_check_answer a;
    assert_true(parse("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", false, &a));
    assert_int_equal(a.result, LB_RES_FAILED);
    assert_int_equal(a.http_status, 503);
    assert_string_equal(a.error, "/readyz answered 503");
    assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"status\":\"down\"}", false, &a));
    assert_int_equal(a.result, LB_RES_FAILED);
    assert_int_equal(a.http_status, 200);
    assert_string_equal(a.error, "/readyz status is neither ready nor degraded");
    assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]", false, &a));
    assert_string_equal(a.error, "/readyz body has no status");
    assert_true(parse("SSH-2.0-OpenSSH_9.2\r\n\r\n", false, &a));
    assert_string_equal(a.error, "not an HTTP response");
    assert_int_equal(a.http_status, 0);
}

static void test_waits_for_more_until_eof(void **state)
{
    (void)state;
    lb_check_answer a;
    assert_false(parse("", false, &a));
    assert_false(parse("HTTP/1.1 200 OK\r\nContent-Le", false, &a));
    assert_false(parse("HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{\"sta", false, &a));
    assert_false(
        parse("HTTP/1.1 200 OK\r\n\r\n{\"status\":\"ready\"}", false, &a)); /* no length: to EOF */
    assert_true(parse("", true, &a));
    assert_string_equal(a.error, "connection closed without a response");
    assert_true(parse("HTTP/1.1 200 OK\r\n", true, &a));
    assert_string_equal(a.error, "truncated HTTP response");
    assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{\"sta", true, &a));
    assert_string_equal(a.error, "truncated body");
    assert_int_equal(a.http_status, 200);
}

static void test_too_large(void **state)
{
    (void)state;
    size_t n = 16385;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, 'x', n);
    lb_check_answer a;
    assert_true(lb_check_parse(big, n, false, &a));
    assert_int_equal(a.result, LB_RES_FAILED);
    assert_string_equal(a.error, "response larger than 16 KiB");
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_and_degraded),
        cmocka_unit_test(test_failures_say_why),
        cmocka_unit_test(test_waits_for_more_until_eof),
        cmocka_unit_test(test_too_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of common/fv_log.c: every line, the access log's preformatted ones too, starts with
 * "ts" and "pid". Links fvcommon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fv_log.h"

/* Runs fn with stderr on a pipe; returns what it wrote (caller frees). */
static char *captured(void (*fn)(void))
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
    fn();
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(fds[1]);
    char *out = calloc(1, 16384);
    assert_non_null(out);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out + n, 16383 - n)) > 0) n += (size_t)r;
    close(fds[0]);
    return out;
}

static void assert_matches(const char *text, const char *pattern)
{
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    if (rc != 0) fail_msg("%s does not match %s", text, pattern);
}

#define TS_PID \
    "^\\{\"ts\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z\",\"pid\":[0-9]+"

static void write_access(void)
{
    fv_log_raw_json("{\"level\":\"info\",\"msg\":\"access\",\"status\":200}");
}

static void write_empty(void)
{
    fv_log_raw_json("{}");
}

static void write_not_an_object(void)
{
    fv_log_raw_json("[1]");
}

static void write_line(void)
{
    fv_log_init("test", FV_LOG_INFO);
    fv_info("hello %d", 7);
}

static void test_raw_lines_get_ts_and_pid_first(void **state)
{
    (void)state;
    char *out = captured(write_access);
    assert_matches(out, TS_PID ",\"level\":\"info\",\"msg\":\"access\",\"status\":200\\}\n$");
    free(out);
    out = captured(write_empty);
    assert_matches(out, TS_PID "\\}\n$");
    free(out);
    out = captured(write_not_an_object);
    assert_string_equal(out, "");
    free(out);
}

static void test_log_lines_have_ts_first(void **state)
{
    (void)state;
    char *out = captured(write_line);
    assert_matches(out,
                   "^\\{\"ts\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z\","
                   "\"level\":\"info\",\"proc\":\"test\",\"pid\":[0-9]+,\"msg\":\"hello 7\"\\}\n$");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_lines_get_ts_and_pid_first),
        cmocka_unit_test(test_log_lines_have_ts_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

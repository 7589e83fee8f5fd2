/* Unit tests for common/fv_bearer.c (bearer tokens read from a file, compared in constant time). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fv_bearer.h"

#define TOKEN "3f9a0c1e5b7d2468ace013579bdf0246"

/* Writes text to a new temporary file with mode; returns its path (static buffer). */
static const char *tokenfile(const char *text, mode_t mode)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/fv-test-bearer-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    fchmod(fd, mode);
    close(fd);
    return path;
}

static void test_load_and_match(void **state)
{
    (void)state;
    char err[256];
    fv_bearer b;
    const char *p = tokenfile("  " TOKEN " \n# the rest is ignored\n", 0600);
    assert_true(fv_bearer_load(p, &b, err, sizeof err));
    unlink(p);
    assert_true(b.set);
    assert_true(fv_bearer_matches(&b, "Bearer " TOKEN));
    assert_true(fv_bearer_matches(&b, "bearer  " TOKEN " "));
    assert_false(fv_bearer_matches(&b, NULL));
    assert_false(fv_bearer_matches(&b, ""));
    assert_false(fv_bearer_matches(&b, TOKEN));
    assert_false(fv_bearer_matches(&b, "Basic " TOKEN));
    assert_false(fv_bearer_matches(&b, "Bearer " TOKEN "0"));
    assert_false(fv_bearer_matches(&b, "Bearer 3f9a0c1e5b7d2468ace013579bdf024"));
    assert_false(fv_bearer_matches(&b, "Bearer "));
    fv_bearer none = {0};
    assert_false(fv_bearer_matches(&none, "Bearer " TOKEN));
    assert_false(fv_bearer_matches(&none, "Bearer "));
}

static void test_refusals(void **state)
{
    (void)state;
    char err[256];
    fv_bearer b;
    static const struct {
        const char *text;
        mode_t mode;
        const char *why;
    } bad[] = {
        {TOKEN "\n", 0640, "readable by group"},
        {TOKEN "\n", 0604, "readable by group"},
        {"short\n", 0600, "16 to 512"},
        {"\n" TOKEN "\n", 0600, "16 to 512"}, /* the first line is the token */
        {"3f9a0c1e5b7d 2468ace013579bdf0246\n", 0600, "white space"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = tokenfile(bad[i].text, bad[i].mode);
        err[0] = '\0';
        assert_false(fv_bearer_load(p, &b, err, sizeof err));
        unlink(p);
        assert_false(b.set);
        assert_non_null(strstr(err, bad[i].why));
        assert_null(strstr(err, "2468ace")); /* the token never appears in the message */
    }
    assert_false(fv_bearer_load("/nonexistent/fv-token", &b, err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_match),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for common/fv_cli.c: the command line the daemons share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "fv_cli.h"

#include <getopt.h>

static int usage_calls;
static void usage(FILE *out)
{
    (void)out;
    usage_calls++;
}

static int parse(int argc, char **argv, fv_cli *cli)
{
    usage_calls = 0;
    return fv_cli_parse(argc, argv, cli, usage);
}

static void test_options(void **state)
{
    (void)state;
    fv_cli cli;
    char *a[] = {"prog", "-c", "/etc/fv.conf", "--check-config", NULL};
    assert_int_equal(parse(4, a, &cli), -1);
    assert_string_equal(cli.config_path, "/etc/fv.conf");
    assert_true(cli.check_only);
    assert_false(cli.print_defaults);
    char *b[] = {"prog", "--config=/x.conf", "--print-defaults", NULL};
    assert_int_equal(parse(3, b, &cli), -1);
    assert_string_equal(cli.config_path, "/x.conf");
    assert_true(cli.print_defaults);
    char *c[] = {"prog", NULL};
    assert_int_equal(parse(1, c, &cli), -1);
    assert_null(cli.config_path);
}

static void test_help_and_mistakes(void **state)
{
    (void)state;
    fv_cli cli;
    char *h[] = {"prog", "--help", NULL};
    assert_int_equal(parse(2, h, &cli), 0);
    assert_int_equal(usage_calls, 1);
    char *bad[] = {"prog", "--bogus", NULL};
    assert_int_equal(parse(2, bad, &cli), 2);
    char *missing[] = {"prog", "-c", NULL};
    assert_int_equal(parse(2, missing, &cli), 2);
    char *extra[] = {"prog", "stray", NULL};
    assert_int_equal(parse(2, extra, &cli), 2);
}

int main(void)
{
    opterr = 0; /* keep getopt's own messages out of the test output */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_help_and_mistakes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for common/fv_cli.c: the start every program shares (options, the configuration
 * file, exit codes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fv_cli.h"

#include <getopt.h>

static int t_port;
static const fv_cfg_entry table[] = {
    FV_CFG_INT_KEY("worker", "t_port", &t_port, "80", 1, 65535, FV_CFG_RESTART, "a port"),
    FV_CFG_END,
};

static const fv_program daemon_prog = {.name = "fv-test", .purpose = "a test", .table = table};
static const fv_program command_prog = {.name = "fvtest",
                                        .purpose = "a test",
                                        .command_usage = "COMMAND [ARGS]",
                                        .table = table};

static int setup(void **state)
{
    (void)state;
    setenv("FV_CONFIG", "", 1); /* never the machine's /etc/fieldvault/fieldvault.conf */
    unsetenv("FV_T_PORT");
    return 0;
}

static void test_options(void **state)
{
    (void)state;
    fv_cli cli;
    char *a[] = {"prog", "-c", "/etc/fv.conf", "--check-config", NULL};
    assert_int_equal(fv_cli_parse(&daemon_prog, 4, a, &cli), -1);
    assert_string_equal(cli.config_path, "/etc/fv.conf");
    assert_true(cli.check_only);
    assert_false(cli.print_defaults);
    char *b[] = {"prog", "--config=/x.conf", "--print-defaults", NULL};
    assert_int_equal(fv_cli_parse(&daemon_prog, 3, b, &cli), -1);
    assert_string_equal(cli.config_path, "/x.conf");
    assert_true(cli.print_defaults);
    char *c[] = {"prog", NULL};
    assert_int_equal(fv_cli_parse(&daemon_prog, 1, c, &cli), -1);
    assert_null(cli.config_path); /* FV_CONFIG is empty: no file */
}

static void test_help_version_and_mistakes(void **state)
{
    (void)state;
    fv_cli cli;
    char *h[] = {"prog", "--help", NULL};
    assert_int_equal(fv_cli_parse(&daemon_prog, 2, h, &cli), FV_EXIT_OK);
    char *v[] = {"prog", "--version", NULL};
    assert_int_equal(fv_cli_parse(&daemon_prog, 2, v, &cli), FV_EXIT_OK);
    char *bad[] = {"prog", "--bogus", NULL};
    assert_int_equal(fv_cli_parse(&daemon_prog, 2, bad, &cli), FV_EXIT_CONFIG);
    char *missing[] = {"prog", "-c", NULL};
    assert_int_equal(fv_cli_parse(&daemon_prog, 2, missing, &cli), FV_EXIT_CONFIG);
    char *extra[] = {"prog", "stray", NULL};
    assert_int_equal(fv_cli_parse(&daemon_prog, 2, extra, &cli), FV_EXIT_CONFIG);
    assert_string_not_equal(fv_version, "unknown"); /* CMake passed project(VERSION) in */
}

static void test_commands_stop_the_options(void **state)
{
    (void)state;
    fv_cli cli;
    char *a[] = {"fvtest", "-c", "/x.conf", "requeue", "--all", NULL};
    assert_int_equal(fv_cli_parse(&command_prog, 5, a, &cli), -1);
    assert_int_equal(cli.command, 3);
    assert_string_equal(cli.config_path, "/x.conf");
    char *none[] = {"fvtest", NULL};
    assert_int_equal(fv_cli_parse(&command_prog, 1, none, &cli), FV_EXIT_CONFIG);
    char *check[] = {"fvtest", "--check-config", NULL};
    assert_int_equal(fv_cli_parse(&command_prog, 2, check, &cli), -1);
}

static void test_default_config_path(void **state)
{
    (void)state;
    fv_cli cli;
    char *a[] = {"prog", NULL};
    setenv("FV_CONFIG", "/srv/fv.conf", 1);
    assert_int_equal(fv_cli_parse(&daemon_prog, 1, a, &cli), -1);
    assert_string_equal(cli.config_path, "/srv/fv.conf");
    unsetenv("FV_CONFIG");
    assert_int_equal(fv_cli_parse(&daemon_prog, 1, a, &cli), -1);
    if (access(FV_CONFIG_DEFAULT_PATH, F_OK) == 0)
        assert_string_equal(cli.config_path, FV_CONFIG_DEFAULT_PATH);
    else assert_null(cli.config_path);
    char *b[] = {"prog", "-c", "/given.conf", NULL};
    setenv("FV_CONFIG", "/srv/fv.conf", 1);
    assert_int_equal(fv_cli_parse(&daemon_prog, 3, b, &cli), -1);
    assert_string_equal(cli.config_path, "/given.conf"); /* -c wins */
}

static void test_start_exit_codes(void **state)
{
    (void)state;
    fv_cli cli;
    char *go[] = {"prog", NULL};
    assert_int_equal(fv_cli_start(&daemon_prog, 1, go, &cli), -1);
    assert_int_equal(t_port, 80);
    char *check[] = {"prog", "--check-config", NULL};
    assert_int_equal(fv_cli_start(&daemon_prog, 2, check, &cli), FV_EXIT_OK);
    setenv("FV_T_PORT", "0", 1);
    assert_int_equal(fv_cli_start(&daemon_prog, 2, check, &cli), FV_EXIT_CONFIG);
    assert_int_equal(fv_cli_start(&daemon_prog, 1, go, &cli), FV_EXIT_CONFIG);
    unsetenv("FV_T_PORT");
    setenv("FV_CONFIG", "/nonexistent/fieldvault.conf", 1);
    assert_int_equal(fv_cli_start(&daemon_prog, 1, go, &cli), FV_EXIT_CONFIG);
}

int main(void)
{
    opterr = 0; /* keep getopt's own messages out of the test output */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_options, setup),
        cmocka_unit_test_setup(test_help_version_and_mistakes, setup),
        cmocka_unit_test_setup(test_commands_stop_the_options, setup),
        cmocka_unit_test_setup(test_default_config_path, setup),
        cmocka_unit_test_setup(test_start_exit_codes, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

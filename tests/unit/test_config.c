/* Unit tests of fv_config: defaults, file values, FV_* overrides, errors naming file:line, and
 * the printed configuration parsing back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fv_config.h"

static char *t_str;
static char *t_secret;
static int t_int;
static int t_port;
static bool t_bool;

static const fv_cfg_entry table[] = {
    FV_CFG_STR_KEY("common", "t_str", &t_str, "hello world", FV_CFG_RESTART, "a string"),
    FV_CFG_STR_KEY("common", "redis_password", &t_secret, "", FV_CFG_RESTART, "a secret"),
    FV_CFG_INT_KEY("worker", "t_int", &t_int, "42", -100, 100, FV_CFG_RESTART, "an integer"),
    FV_CFG_INT_KEY("worker", "t_port", &t_port, "80", 1, 65535, FV_CFG_RELOAD, "a port"),
    FV_CFG_BOOL_KEY("worker", "t_bool", &t_bool, "yes", FV_CFG_RESTART, "a boolean"),
    FV_CFG_END,
};

static char path[64];

/* Writes text to a fresh temporary file whose name is left in path. */
static void write_conf(const char *text)
{
    snprintf(path, sizeof path, "/tmp/fv_test_config.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    unsetenv("FV_T_STR");
    unsetenv("FV_T_INT");
    unsetenv("FV_T_BOOL");
    unsetenv("FV_T_PORT");
    unsetenv("FV_REDIS_PASSWORD");
    path[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (path[0]) unlink(path);
    fv_config_free(table);
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(fv_config_load(table, NULL, err, sizeof err), 0);
    assert_string_equal(t_str, "hello world");
    assert_string_equal(t_secret, "");
    assert_int_equal(t_int, 42);
    assert_true(t_bool);
}

static void test_file_values(void **state)
{
    (void)state;
    write_conf("# comment\n"
               "[common]\n"
               "t_str = \"  padded # not a comment \"\n"
               "\n"
               "[worker]\n"
               "  t_int =   -7  \n"
               "t_bool = off\n"
               "[frontend]\n"
               "listen_port = 1\n"); /* a section this table does not use: skipped */
    char err[256] = "";
    assert_int_equal(fv_config_load(table, path, err, sizeof err), 0);
    assert_string_equal(t_str, "  padded # not a comment ");
    assert_int_equal(t_int, -7);
    assert_false(t_bool);
}

static void test_env_overrides_file(void **state)
{
    (void)state;
    write_conf("[worker]\nt_int = 5\n");
    setenv("FV_T_INT", "99", 1);
    setenv("FV_T_STR", "from env", 1);
    char err[256] = "";
    assert_int_equal(fv_config_load(table, path, err, sizeof err), 0);
    assert_int_equal(t_int, 99);
    assert_string_equal(t_str, "from env");
    setenv("FV_T_INT", "nine", 1);
    assert_int_equal(fv_config_load(table, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "FV_T_INT"));
}

static void test_unknown_key_names_file_line(void **state)
{
    (void)state;
    write_conf("[common]\nt_str = a\n\n[worker]\nt_int = 1\nno_such_key = 3\n");
    char err[256] = "", want[128];
    assert_int_equal(fv_config_load(table, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:6:", path);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "no_such_key"));
}

static void test_bad_values_name_file_line(void **state)
{
    (void)state;
    char err[256] = "", want[128];
    write_conf("[worker]\nt_int = 12abc\n");
    assert_int_equal(fv_config_load(table, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:2:", path);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "t_int"));
    unlink(path);

    write_conf("[worker]\nt_int = 99999999999\n");
    assert_int_equal(fv_config_load(table, path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":2:"));
    unlink(path);

    write_conf("[worker]\n\nt_bool = maybe\n");
    assert_int_equal(fv_config_load(table, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:3:", path);
    assert_non_null(strstr(err, want));
    unlink(path);

    write_conf("[nowhere]\n");
    assert_int_equal(fv_config_load(table, path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1: unknown section"));
    unlink(path);

    write_conf("t_int = 1\n");
    assert_int_equal(fv_config_load(table, path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1:"));
}

static void test_missing_file(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(fv_config_load(table, "/nonexistent/fv.conf", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/fv.conf"));
}

static void test_print_parses_back(void **state)
{
    (void)state;
    char err[256] = "";
    setenv("FV_T_STR", "spaces  and # hash", 1);
    setenv("FV_T_INT", "-12", 1);
    setenv("FV_T_BOOL", "no", 1);
    assert_int_equal(fv_config_load(table, NULL, err, sizeof err), 0);
    snprintf(path, sizeof path, "/tmp/fv_test_print.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fv_config_print(table, f);
    fclose(f);
    unsetenv("FV_T_STR");
    unsetenv("FV_T_INT");
    unsetenv("FV_T_BOOL");
    assert_int_equal(fv_config_load(table, path, err, sizeof err), 0);
    assert_string_equal(t_str, "spaces  and # hash");
    assert_int_equal(t_int, -12);
    assert_false(t_bool);
}

static void test_print_hides_password(void **state)
{
    (void)state;
    char err[256] = "", buf[4096];
    setenv("FV_REDIS_PASSWORD", "hunter2", 1);
    assert_int_equal(fv_config_load(table, NULL, err, sizeof err), 0);
    assert_string_equal(t_secret, "hunter2");
    FILE *f = fmemopen(buf, sizeof buf, "w");
    fv_config_print(table, f);
    fclose(f);
    assert_null(strstr(buf, "hunter2"));
    assert_non_null(strstr(buf, "# a secret\n"));
}

/* The lines of err (joined by '\n') into lines[]; returns how many. */
static int split_lines(char *err, char **lines, int max)
{
    int n = 0;
    for (char *save = NULL, *l = strtok_r(err, "\n", &save); l && n < max;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    return n;
}

/* Every bad key is reported in one run, one line each with file:line and the key. */
static void test_three_bad_keys_three_lines(void **state)
{
    (void)state;
    write_conf("[common]\n"
               "t_str = fine\n"
               "[worker]\n"
               "t_int = 101\n" /* line 4: out of range */
               "t_port = 80\n"
               "t_bool = maybe\n" /* line 6: not a boolean */
               "\n"
               "t_port = 70000\n"); /* line 8: out of range */
    char err[2048] = "", *lines[8], want[128];
    assert_int_equal(fv_config_load(table, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "t_int: must be between -100 and 100, not 101"));
    assert_non_null(strstr(err, "t_port: must be between 1 and 65535, not 70000"));
    assert_int_equal(split_lines(err, lines, 8), 3);
    static const struct {
        int line;
        const char *key;
    } bad[] = {{4, "t_int"}, {6, "t_bool"}, {8, "t_port"}};
    for (int i = 0; i < 3; i++) {
        snprintf(want, sizeof want, "%s:%d: %s: ", path, bad[i].line, bad[i].key);
        int found = 0;
        for (int k = 0; k < 3; k++) found += strncmp(lines[k], want, strlen(want)) == 0;
        if (found != 1) fail_msg("no line '%s...' in:\n%s\n%s\n%s", want, lines[0], lines[1], lines[2]);
    }
}

/* A value from the environment names its variable; the file's line no longer counts. */
static void test_range_from_environment_names_the_variable(void **state)
{
    (void)state;
    write_conf("[worker]\nt_port = 0\n");
    setenv("FV_T_PORT", "65536", 1);
    char err[1024] = "";
    assert_int_equal(fv_config_load(table, path, err, sizeof err), -1);
    assert_null(strchr(err, '\n'));
    assert_non_null(
        strstr(err, "environment FV_T_PORT: t_port: must be between 1 and 65535, not 65536"));
    setenv("FV_T_PORT", "443", 1);
    assert_int_equal(fv_config_load(table, path, err, sizeof err), 0); /* the variable wins */
    assert_int_equal(t_port, 443);
}

static void check_port_below_int(fv_cfg_load *ld)
{
    if (!fv_config_is_bad(ld, "t_port") && t_port <= t_int)
        fv_config_problem(ld, "t_port", "must be above t_int (%d)", t_int);
}

/* A check past the ranges is collected with the rest and says where the value came from, also
 * when it is the default. */
static void test_checks_collected_with_the_rest(void **state)
{
    (void)state;
    write_conf("[worker]\nt_int = 90\nt_bool = perhaps\n");
    char err[1024] = "", *lines[8];
    assert_int_equal(fv_config_load_checked(table, path, check_port_below_int, err, sizeof err), -1);
    assert_int_equal(split_lines(err, lines, 8), 2);
    assert_non_null(strstr(lines[0], ":3: t_bool: "));
    assert_string_equal(lines[1], "default: t_port: must be above t_int (90)");
    unlink(path);
    write_conf("[worker]\nt_int = 90\nt_port = 91\n");
    assert_int_equal(fv_config_load_checked(table, path, check_port_below_int, err, sizeof err), 0);
}

/* --print-defaults shows the range and whether a reload applies a key. */
static void test_print_shows_range_and_reload(void **state)
{
    (void)state;
    char err[256] = "", buf[4096];
    assert_int_equal(fv_config_load(table, NULL, err, sizeof err), 0);
    FILE *f = fmemopen(buf, sizeof buf, "w");
    fv_config_print(table, f);
    fclose(f);
    assert_non_null(strstr(buf, "# an integer\n# between -100 and 100\nt_int = 42\n"));
    assert_non_null(
        strstr(buf, "# a port\n# between 1 and 65535; SIGHUP applies a change\nt_port = 80\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_overrides_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_names_file_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values_name_file_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print_parses_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print_hides_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_three_bad_keys_three_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_from_environment_names_the_variable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checks_collected_with_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print_shows_range_and_reload, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

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
static bool t_bool;

static const fv_cfg_entry table[] = {
    {"common", "t_str", FV_CFG_STR, &t_str, "hello world", "a string"},
    {"common", "redis_password", FV_CFG_STR, &t_secret, "", "a secret"},
    {"worker", "t_int", FV_CFG_INT, &t_int, "42", "an integer"},
    {"worker", "t_bool", FV_CFG_BOOL, &t_bool, "yes", "a boolean"},
    {NULL, NULL, 0, NULL, NULL, NULL},
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

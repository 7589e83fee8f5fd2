/* Unit tests of fv-frontend's configuration table (frontend/fe_config.c, linked from fvfrontend):
 * the sample documents every key with its default, and environment overrides apply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "fe_config.h"
#include "sample_check.h"

static void test_sample_documents_every_key(void **state)
{
    (void)state;
    fv_test_sample_documents(fe_config_table);
}

static void test_env_overrides(void **state)
{
    (void)state;
    char err[256] = "";
    setenv("FV_LISTEN_PORT", "9443", 1);
    setenv("FV_ACCESS_LOG", "no", 1);
    setenv("FV_PG_DSN", "host=/tmp dbname=x", 1);
    assert_int_equal(fv_config_load(fe_config_table, NULL, err, sizeof err), 0);
    assert_int_equal(fe_cfg.listen_port, 9443);
    assert_false(fe_cfg.access_log);
    assert_string_equal(fv_common.pg_dsn, "host=/tmp dbname=x");
    unsetenv("FV_LISTEN_PORT");
    unsetenv("FV_ACCESS_LOG");
    unsetenv("FV_PG_DSN");
    setenv("FV_MAX_BODY_BYTES", "lots", 1);
    assert_int_equal(fv_config_load(fe_config_table, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "FV_MAX_BODY_BYTES"));
    unsetenv("FV_MAX_BODY_BYTES");
    fv_config_free(fe_config_table);
}

/* The ranges the start used to check in one message for eleven keys: now one line per bad key. */
static void test_each_bad_key_its_own_line(void **state)
{
    (void)state;
    static const char *bad[][2] = {{"FV_MAX_BODY_BYTES", "1023"},
                                   {"FV_LISTEN_PORT", "0"},
                                   {"FV_PG_POOL_SIZE", "0"},
                                   {"FV_PROCESSES", "-1"},
                                   {"FV_PASSWORD_ITERATIONS", "100000"},
                                   {"FV_PASSWORD_THREADS", "65"},
                                   {"FV_SESSION_TTL_S", "59"},
                                   {"FV_MIN_PASSWORD_SCORE", "5"},
                                   {"FV_LOGIN_MAX_FAILURES_ACCOUNT", "0"},
                                   {"FV_LOGIN_MAX_FAILURES_ADDRESS", "-1"},
                                   {"FV_LOGIN_WINDOW_S", "0"},
                                   {"FV_API_KEY_RATE_WINDOW_S", "0"},
                                   {"FV_LOG_LEVEL", "chatty"}};
    size_t n = sizeof bad / sizeof bad[0];
    for (size_t i = 0; i < n; i++) setenv(bad[i][0], bad[i][1], 1);
    char err[8192] = "";
    assert_int_equal(fv_config_load_checked(fe_config_table, NULL, fe_config_check, err, sizeof err),
                     -1);
    for (size_t i = 0; i < n; i++) {
        char want[128];
        snprintf(want, sizeof want, "environment %s: ", bad[i][0]);
        if (!strstr(err, want)) fail_msg("no line for %s in:\n%s", bad[i][0], err);
        unsetenv(bad[i][0]);
    }
    size_t lines = 1;
    for (const char *p = err; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, n);
    fv_config_free(fe_config_table);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_documents_every_key),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_each_bad_key_its_own_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

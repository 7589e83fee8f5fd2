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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_documents_every_key),
        cmocka_unit_test(test_env_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

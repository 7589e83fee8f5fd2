/* Unit tests of fvctl's configuration table (tools/fvctl/fvctl_config.c, compiled in alone): the
 * sample documents every key, and sql_dir must name a directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "../../tools/fvctl/fvctl_config.c"
#include "sample_check.h"

static void test_sample_documents_every_key(void **state)
{
    (void)state;
    fv_test_sample_documents(fvctl_config_table);
}

static void test_sql_dir(void **state)
{
    (void)state;
    char err[512] = "";
    assert_int_equal(fv_config_load_checked(fvctl_config_table, NULL, fvctl_config_check_files, err,
                                            sizeof err),
                     0);
    assert_string_equal(fvctl_cfg.sql_dir, "");
    setenv("FV_SQL_DIR", "/nonexistent/sql", 1);
    assert_int_equal(fv_config_load_checked(fvctl_config_table, NULL, fvctl_config_check_files, err,
                                            sizeof err),
                     -1);
    assert_string_equal(err, "environment FV_SQL_DIR: sql_dir: '/nonexistent/sql' is not a directory");
    setenv("FV_SQL_DIR", "/", 1);
    assert_int_equal(fv_config_load_checked(fvctl_config_table, NULL, fvctl_config_check_files, err,
                                            sizeof err),
                     0);
    unsetenv("FV_SQL_DIR");
    fv_config_free(fvctl_config_table);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_documents_every_key),
        cmocka_unit_test(test_sql_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of fv_migrate's file listing (no database): numeric order, naming rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fv_migrate.h"

static char dir[64];

static void touch(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("SELECT 1;\n", f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/fv_test_migrate.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_numeric_order(void **state)
{
    (void)state;
    touch("010_ten.sql");
    touch("002_two.sql");
    touch("1_one.sql");
    touch("README.md");
    fv_migration *m = NULL;
    size_t n = 0;
    char err[256] = "";
    assert_int_equal(fv_migrate_list(dir, &m, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(m[0].version, 1);
    assert_string_equal(m[0].name, "1_one");
    assert_int_equal(m[1].version, 2);
    assert_int_equal(m[2].version, 10);
    assert_string_equal(m[2].name, "010_ten");
    assert_non_null(strstr(m[2].path, "/010_ten.sql"));
    fv_migrate_list_free(m, n);
}

static void test_duplicate_version(void **state)
{
    (void)state;
    touch("002_a.sql");
    touch("2_b.sql");
    fv_migration *m = NULL;
    size_t n = 0;
    char err[256] = "";
    assert_int_equal(fv_migrate_list(dir, &m, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "same version"));
}

static void test_bad_name(void **state)
{
    (void)state;
    touch("003-dash.sql");
    fv_migration *m = NULL;
    size_t n = 0;
    char err[256] = "";
    assert_int_equal(fv_migrate_list(dir, &m, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "003-dash.sql"));
}

static void test_missing_dir(void **state)
{
    (void)state;
    fv_migration *m = NULL;
    size_t n = 0;
    char err[256] = "";
    assert_int_equal(fv_migrate_list("/nonexistent/sql", &m, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/sql"));
}

static void test_project_migrations(void **state)
{
    (void)state;
    const char *src = getenv("FV_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/common/sql", src ? src : ".");
    fv_migration *m = NULL;
    size_t n = 0;
    char err[256] = "";
    assert_int_equal(fv_migrate_list(path, &m, &n, err, sizeof err), 0);
    assert_true(n >= 1);
    assert_int_equal(m[0].version, 1);
    assert_string_equal(m[0].name, "001_initial");
    fv_migrate_list_free(m, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_numeric_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_project_migrations, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

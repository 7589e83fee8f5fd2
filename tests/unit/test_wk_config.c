/* Unit tests of fv-worker's configuration table (worker/wk_config.c, linked from fvworker):
 * defaults, range checks, and the sample deploy/fieldvault.conf documenting every key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wk_config.h"
#include "sample_check.h"

static int setup(void **state)
{
    (void)state;
    for (const fv_cfg_entry *e = wk_config_table; e->name; e++) {
        char env[128] = "FV_";
        size_t i = 3;
        for (const char *p = e->name; *p; p++) env[i++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        env[i] = '\0';
        unsetenv(env);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fv_config_free(wk_config_table);
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(fv_config_load(wk_config_table, NULL, err, sizeof err), 0);
    assert_int_equal(wk_cfg.batch_size, 500);
    assert_int_equal(wk_cfg.block_ms, 1000);
    assert_int_equal(wk_cfg.claim_idle_ms, 30000);
    assert_int_equal(wk_cfg.max_deliveries, 5);
    assert_string_equal(wk_cfg.consumer_name, "");
    assert_int_equal(wk_cfg.pg_retry_max_ms, 5000);
    assert_string_equal(fv_common.group, "workers");
    assert_int_equal(fv_config_load_checked(wk_config_table, NULL, wk_config_check, err, sizeof err), 0);
}

static void test_validate_rejects(void **state)
{
    (void)state;
    static const char *bad[][2] = {
        {"FV_BATCH_SIZE", "0"},     {"FV_BLOCK_MS", "0"},        {"FV_CLAIM_IDLE_MS", "-1"},
        {"FV_MAX_DELIVERIES", "0"}, {"FV_PG_RETRY_MAX_MS", "0"}, {"FV_IO_TIMEOUT_MS", "0"},
        {"FV_REDIS_PORT", "70000"}, {"FV_BATCH_SIZE", "100001"}, {"FV_PG_STATEMENT_TIMEOUT_MS", "-1"},
        {"FV_LOG_LEVEL", "loud"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "", want[128];
        setenv(bad[i][0], bad[i][1], 1);
        if (fv_config_load_checked(wk_config_table, NULL, wk_config_check, err, sizeof err) != -1)
            fail_msg("%s=%s accepted", bad[i][0], bad[i][1]);
        snprintf(want, sizeof want, "environment %s: ", bad[i][0]);
        if (strncmp(err, want, strlen(want)) != 0 || strchr(err, '\n')) fail_msg("%s", err);
        unsetenv(bad[i][0]);
    }
    setenv("FV_CONSUMER_NAME", "w7", 1);
    char err[256] = "";
    assert_int_equal(fv_config_load(wk_config_table, NULL, err, sizeof err), 0);
    assert_string_equal(wk_cfg.consumer_name, "w7");
    unsetenv("FV_CONSUMER_NAME");
}

/* The sample documents every key: a "key = default" line in the key's section, in a block of
 * lines that a comment opens (a comment may cover a few related keys); and loading the sample gives the table's defaults for the worker's keys. */
static void test_sample_documents_every_key(void **state)
{
    (void)state;
    fv_test_sample_documents(wk_config_table);
    const char *src = getenv("FV_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/deploy/fieldvault.conf", src ? src : ".");
    char err[512] = "";
    assert_int_equal(fv_config_load(wk_config_table, path, err, sizeof err), 0);
    assert_int_equal(wk_cfg.batch_size, 500);
    assert_int_equal(wk_cfg.claim_idle_ms, 30000);
    assert_int_equal(wk_cfg.max_deliveries, 5);
    assert_int_equal(wk_cfg.pg_retry_max_ms, 5000);
    assert_int_equal(wk_cfg.pg_statement_timeout_ms, 60000);
    assert_int_equal(wk_cfg.io_timeout_ms, 5000);
    assert_string_equal(wk_cfg.consumer_name, "");
}

/* What --print-defaults writes loads back to the same values. */
static void test_print_defaults_parses_back(void **state)
{
    (void)state;
    char err[256] = "", path[64] = "/tmp/fv_test_wkcfg.XXXXXX";
    setenv("FV_BATCH_SIZE", "123", 1);
    setenv("FV_CONSUMER_NAME", "host:1 with space", 1);
    assert_int_equal(fv_config_load(wk_config_table, NULL, err, sizeof err), 0);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fv_config_print(wk_config_table, f);
    fclose(f);
    unsetenv("FV_BATCH_SIZE");
    unsetenv("FV_CONSUMER_NAME");
    assert_int_equal(fv_config_load(wk_config_table, path, err, sizeof err), 0);
    unlink(path);
    assert_int_equal(wk_cfg.batch_size, 123);
    assert_string_equal(wk_cfg.consumer_name, "host:1 with space");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validate_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_documents_every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print_defaults_parses_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of fv-balancer's configuration table (balancer/lb_config.c, compiled in alone with
 * lb_addr.c): the sample documents every key with its default, overrides apply, and the checks
 * refuse what the balancer must not run with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "lb_addr.h"
#include "lb_config.h"
#include "sample_check.h"

static void test_sample_documents_every_key(void **state)
{
    (void)state;
    fv_test_sample_documents(lb_config_table);
}

static void test_defaults_validate(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(fv_config_load_checked(lb_config_table, NULL, lb_config_check, err, sizeof err), 0);
    assert_string_equal(lb_cfg.spawn_command, ""); /* no spawning unless asked */
    fv_config_free(lb_config_table);
}

static void test_env_overrides(void **state)
{
    (void)state;
    char err[256] = "";
    setenv("FV_PROXY_PORT", "9443", 1);
    setenv("FV_BACKENDS", "127.0.0.1:1, [::1]:2", 1);
    assert_int_equal(fv_config_load_checked(lb_config_table, NULL, lb_config_check, err, sizeof err), 0);
    assert_int_equal(lb_cfg.proxy_port, 9443);
    assert_string_equal(lb_cfg.backends, "127.0.0.1:1, [::1]:2");
    unsetenv("FV_PROXY_PORT");
    unsetenv("FV_BACKENDS");
    /* The front end's key does not reach the balancer: names are unique across sections. */
    setenv("FV_LISTEN_PORT", "1234", 1);
    assert_int_equal(fv_config_load(lb_config_table, NULL, err, sizeof err), 0);
    assert_int_equal(lb_cfg.proxy_port, 443);
    unsetenv("FV_LISTEN_PORT");
    fv_config_free(lb_config_table);
}

/* Loads the defaults with one override and checks them; returns the result. */
static int validate_with(const char *env, const char *value, char *err, size_t errlen)
{
    setenv(env, value, 1);
    int rc = fv_config_load_checked(lb_config_table, NULL, lb_config_check, err, errlen);
    unsetenv(env);
    fv_config_free(lb_config_table);
    return rc;
}

static void test_validation_refuses(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(validate_with("FV_ADMIN_ADDR", "0.0.0.0", err, sizeof err), -1);
    assert_non_null(strstr(err, "admin_addr"));
    assert_int_equal(validate_with("FV_ADMIN_ADDR", "10.1.2.3", err, sizeof err), -1);
    assert_int_equal(validate_with("FV_ADMIN_ADDR", "::1", err, sizeof err), 0);
    assert_int_equal(validate_with("FV_ADMIN_ADDR", "localhost", err, sizeof err), -1);
    assert_int_equal(validate_with("FV_BACKENDS", "frontend1:8443", err, sizeof err), -1);
    assert_non_null(strstr(err, "frontend1:8443"));
    assert_int_equal(validate_with("FV_BACKENDS", "127.0.0.1:1,127.0.0.1:1", err, sizeof err), -1);
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(validate_with("FV_RISE", "0", err, sizeof err), -1);
    assert_int_equal(validate_with("FV_FALL", "0", err, sizeof err), -1);
    assert_int_equal(validate_with("FV_MIN_BACKENDS", "9", err, sizeof err), -1); /* > max_backends */
    assert_string_equal(err,
                        "environment FV_MIN_BACKENDS: min_backends: 9 is more than max_backends (8)");
    assert_int_equal(validate_with("FV_HIGH_WATER_BYTES", "100", err, sizeof err), -1);
    assert_int_equal(validate_with("FV_SPAWN_COMMAND", "start-frontend", err, sizeof err), -1);
    assert_non_null(strstr(err, "{port}"));
    assert_int_equal(validate_with("FV_SPAWN_COMMAND", "start-frontend {port}", err, sizeof err), 0);
    assert_int_equal(validate_with("FV_PROXY_ADDR", "example.org", err, sizeof err), -1);
    /* more backends than max_backends */
    setenv("FV_MAX_BACKENDS", "2", 1);
    assert_int_equal(validate_with("FV_BACKENDS", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", err,
                                   sizeof err),
                     -1);
    unsetenv("FV_MAX_BACKENDS");
    /* Every problem at once, each on its key. */
    setenv("FV_RISE", "0", 1);
    setenv("FV_ADMIN_ADDR", "0.0.0.0", 1);
    assert_int_equal(validate_with("FV_HIGH_WATER_BYTES", "100", err, sizeof err), -1);
    unsetenv("FV_RISE");
    unsetenv("FV_ADMIN_ADDR");
    assert_non_null(strstr(err, "environment FV_RISE: rise: must be between 1 and 1000, not 0\n"));
    assert_non_null(
        strstr(err,
               "environment FV_HIGH_WATER_BYTES: high_water_bytes: must be at least 4096, not 100"));
    assert_non_null(
        strstr(err, "environment FV_ADMIN_ADDR: admin_addr: 0.0.0.0 is not a loopback address"));
}

/* Only backends and log_level are marked as applied by SIGHUP: lb_server_reload keeps the rest. */
static void test_reloadable_keys(void **state)
{
    (void)state;
    for (const fv_cfg_entry *e = lb_config_table; e->name; e++) {
        bool want = strcmp(e->name, "backends") == 0 || strcmp(e->name, "log_level") == 0;
        if ((e->reload == FV_CFG_RELOAD) != want)
            fail_msg("%s: reload flag %d", e->name, (int)e->reload);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_documents_every_key),
        cmocka_unit_test(test_defaults_validate),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_validation_refuses),
        cmocka_unit_test(test_reloadable_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

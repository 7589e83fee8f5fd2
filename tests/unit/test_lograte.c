/* Unit tests of the log-line rate limiter (common/fv_lograte.c, linked from fvcommon): a burst
 * per window goes through, the rest is counted and reported with the next line let through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fv_lograte.h"

static void test_burst_then_held_then_reported(void **state)
{
    (void)state;
    fv_lograte lr = FV_LOGRATE_INIT(1.0, 3);
    unsigned long held = 99;
    for (int i = 0; i < 3; i++) {
        assert_true(fv_lograte_allow(&lr, 100.0 + i * 0.1, &held));
        assert_int_equal(held, 0);
    }
    /* 21 million lines in the same window: none written, all counted. */
    for (int i = 0; i < 1000000; i++) assert_false(fv_lograte_allow(&lr, 100.5, &held));
    /* The next window lets a line through and names what was held back, once. */
    assert_true(fv_lograte_allow(&lr, 101.0, &held));
    assert_int_equal(held, 1000000);
    assert_true(fv_lograte_allow(&lr, 101.1, &held));
    assert_int_equal(held, 0);
}

static void test_defaults_and_clock_going_back(void **state)
{
    (void)state;
    fv_lograte lr = FV_LOGRATE_INIT(0, 0); /* 1 line per 1 s */
    unsigned long held = 0;
    assert_true(fv_lograte_allow(&lr, 5.0, &held));
    assert_false(fv_lograte_allow(&lr, 5.9, &held));
    assert_true(fv_lograte_allow(&lr, 6.0, &held));
    assert_int_equal(held, 1);
    /* A clock that went backwards starts a new window rather than muting for ever. */
    assert_true(fv_lograte_allow(&lr, 1.0, &held));
    assert_int_equal(held, 0);
}

static void test_macro_compiles_and_clock_moves(void **state)
{
    (void)state;
    fv_lograte lr = FV_LOGRATE_INIT(60.0, 1);
    fv_log_init("test", FV_LOG_ERROR);
    fv_log_limited(&lr, FV_LOG_DEBUG, "not written: below the level %d", 1);
    fv_log_limited(&lr, FV_LOG_ERROR, "written once");
    fv_log_limited(&lr, FV_LOG_ERROR, "held %s", "back");
    assert_int_equal(lr.held, 1);
    double a = fv_lograte_now(), b = fv_lograte_now();
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_held_then_reported),
        cmocka_unit_test(test_defaults_and_clock_going_back),
        cmocka_unit_test(test_macro_compiles_and_clock_moves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

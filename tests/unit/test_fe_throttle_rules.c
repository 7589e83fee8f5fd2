/* Unit tests of the login throttling arithmetic (frontend/auth/fe_throttle_rules.c, linked from fvfrontend). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fe_throttle_rules.h"

static void test_refused_counts_failures_and_running_attempts(void **state)
{
    (void)state;
    /* limit 5: four failures and this attempt pass; five failures refuse the sixth */
    assert_false(fe_tr_refused(4, 1, 5));
    assert_true(fe_tr_refused(5, 1, 5));
    /* a burst: no failure yet, but this attempt is the sixth running */
    assert_false(fe_tr_refused(0, 5, 5));
    assert_true(fe_tr_refused(0, 6, 5));
    /* a pending count below 1 (a DECR that outlived its key) still counts this attempt */
    assert_false(fe_tr_refused(4, -1, 5));
    assert_true(fe_tr_refused(5, 0, 5));
    assert_true(fe_tr_refused(5, -3, 5));
    /* no limit */
    assert_false(fe_tr_refused(1000000, 1000, 0));
    assert_false(fe_tr_refused(-2, 1, 1));
}

static void test_delay_doubles_up_to_the_cap_and_never_refuses(void **state)
{
    (void)state;
    assert_int_equal(fe_tr_delay_ms(0, 10, 250, 3000), 0);
    assert_int_equal(fe_tr_delay_ms(9, 10, 250, 3000), 0);
    assert_int_equal(fe_tr_delay_ms(10, 10, 250, 3000), 250);
    assert_int_equal(fe_tr_delay_ms(11, 10, 250, 3000), 500);
    assert_int_equal(fe_tr_delay_ms(12, 10, 250, 3000), 1000);
    assert_int_equal(fe_tr_delay_ms(13, 10, 250, 3000), 2000);
    assert_int_equal(fe_tr_delay_ms(14, 10, 250, 3000), 3000);
    /* however many failures a stranger adds, the owner waits at most the cap */
    assert_int_equal(fe_tr_delay_ms(1000000000LL, 10, 250, 3000), 3000);
    assert_int_equal(fe_tr_delay_ms(1000000000LL, 1, 60000, 60000), 60000);
    /* off */
    assert_int_equal(fe_tr_delay_ms(50, 10, 0, 3000), 0);
    assert_int_equal(fe_tr_delay_ms(50, 10, 250, 0), 0);
    /* a cap below the first delay is the cap */
    assert_int_equal(fe_tr_delay_ms(10, 10, 500, 100), 100);
}

static void test_retry_after(void **state)
{
    (void)state;
    /* the failures alone reach the limit: the window's rest */
    assert_int_equal(fe_tr_retry_after(5, 5, 300, 900), 300);
    assert_int_equal(fe_tr_retry_after(9, 5, 1, 900), 1);
    /* a TTL above the window (clock change) is the window */
    assert_int_equal(fe_tr_retry_after(5, 5, 5000, 900), 900);
    /* no expiry known (-1) or no key (-2): a whole window */
    assert_int_equal(fe_tr_retry_after(5, 5, -1, 900), 900);
    assert_int_equal(fe_tr_retry_after(5, 5, -2, 900), 900);
    /* only running attempts made the count: they end within seconds */
    assert_int_equal(fe_tr_retry_after(2, 5, 300, 900), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_counts_failures_and_running_attempts),
        cmocka_unit_test(test_delay_doubles_up_to_the_cap_and_never_refuses),
        cmocka_unit_test(test_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

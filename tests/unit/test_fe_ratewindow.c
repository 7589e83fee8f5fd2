/* Unit tests of the API-key rate-limit window arithmetic (frontend/auth/fe_ratewindow.c, linked from fvfrontend). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include <cmocka.h>

#include "fe_ratewindow.h"

static void test_index_and_retry_after(void **state)
{
    (void)state;
    assert_int_equal(fe_rw_index(0, 60), 0);
    assert_int_equal(fe_rw_index(59, 60), 0);
    assert_int_equal(fe_rw_index(60, 60), 1);
    assert_int_equal(fe_rw_index(1700000000, 60), 1700000000 / 60);
    /* Retry-After is the time to the window's end: never 0, never more than the window. */
    assert_int_equal(fe_rw_retry_after(0, 60), 60);
    assert_int_equal(fe_rw_retry_after(59, 60), 1);
    assert_int_equal(fe_rw_retry_after(60, 60), 60);
    assert_int_equal(fe_rw_retry_after(1700000001, 10), 9);
    for (int64_t t = 1700000000; t < 1700000200; t++) {
        int ra = fe_rw_retry_after(t, 7);
        assert_true(ra >= 1 && ra <= 7);
        assert_int_equal(fe_rw_index(t + ra, 7), fe_rw_index(t, 7) + 1);
    }
}

static void test_bad_window_length_is_one_second(void **state)
{
    (void)state;
    assert_int_equal(fe_rw_index(5, 0), 5);
    assert_int_equal(fe_rw_index(5, -3), 5);
    assert_int_equal(fe_rw_retry_after(5, 0), 1);
    assert_int_equal(fe_rw_retry_after(-1, 60), 60);
}

static void test_verdicts(void **state)
{
    (void)state;
    assert_int_equal(fe_rw_verdict_for(1, 3), FE_RW_ALLOW);
    assert_int_equal(fe_rw_verdict_for(3, 3), FE_RW_ALLOW);
    assert_int_equal(fe_rw_verdict_for(4, 3), FE_RW_REFUSE_STRIKE);
    assert_int_equal(fe_rw_verdict_for(5, 3), FE_RW_REFUSE);
    assert_int_equal(fe_rw_verdict_for(1000000, 3), FE_RW_REFUSE);
    /* a limit of 0 (or below) is off */
    assert_int_equal(fe_rw_verdict_for(1000000, 0), FE_RW_ALLOW);
    assert_int_equal(fe_rw_verdict_for(1000000, -1), FE_RW_ALLOW);
    /* no overflow at the top of int */
    assert_int_equal(fe_rw_verdict_for(2147483648LL, 2147483647), FE_RW_REFUSE_STRIKE);
}

static void test_suspension_threshold(void **state)
{
    (void)state;
    assert_false(fe_rw_suspends(4, 5));
    assert_true(fe_rw_suspends(5, 5));
    assert_true(fe_rw_suspends(9, 5)); /* PostgreSQL was down at the 5th: the next strike retries */
    assert_false(fe_rw_suspends(1000, 0));
    assert_true(fe_rw_suspends(1, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_and_retry_after),
        cmocka_unit_test(test_bad_window_length_is_one_second),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_suspension_threshold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

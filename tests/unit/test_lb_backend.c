/* Unit tests of fv-balancer's pool (balancer/lb_backend.c and lb_addr.c, compiled in alone):
 * address parsing, the rise/fall health state machine, and the least-connections choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "lb_addr.h"
#include "lb_backend.h"

static void test_addr_parse(void **state)
{
    (void)state;
    lb_addr a;
    assert_true(lb_addr_parse("127.0.0.1:9443", &a));
    assert_string_equal(a.text, "127.0.0.1:9443");
    assert_int_equal(lb_addr_port(&a), 9443);
    assert_true(lb_addr_is_loopback(&a));
    assert_true(lb_addr_parse("[::1]:1", &a));
    assert_string_equal(a.text, "[::1]:1");
    assert_true(lb_addr_is_loopback(&a));
    assert_true(lb_addr_parse("[0:0::1]:65535", &a)); /* canonicalised */
    assert_string_equal(a.text, "[::1]:65535");
    assert_true(lb_addr_parse("10.0.0.7:80", &a));
    assert_false(lb_addr_is_loopback(&a));
    const char *bad[] = {"",
                         "127.0.0.1",
                         "127.0.0.1:",
                         "127.0.0.1:0",
                         "127.0.0.1:65536",
                         "127.0.0.1:+80",
                         "127.0.0.1:80x",
                         "localhost:80",
                         "::1:80",
                         "[127.0.0.1]:80",
                         "[::1]80",
                         "[::1",
                         "1.2.3.4.5:80",
                         "127.0.0.1:123456",
                         NULL};
    for (int i = 0; bad[i]; i++)
        if (lb_addr_parse(bad[i], &a)) fail_msg("'%s' parsed as %s", bad[i], a.text);
}

static void test_addr_list(void **state)
{
    (void)state;
    lb_addr v[4];
    char err[200];
    assert_int_equal(lb_addr_parse_list("", v, 4, err, sizeof err), 0);
    assert_int_equal(lb_addr_parse_list(" 127.0.0.1:1 ,, [::1]:2,", v, 4, err, sizeof err), 2);
    assert_string_equal(v[1].text, "[::1]:2");
    assert_int_equal(lb_addr_parse_list("127.0.0.1:1,host:2", v, 4, err, sizeof err), -1);
    assert_non_null(strstr(err, "host:2"));
    assert_int_equal(lb_addr_parse_list("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", v, 2, err, sizeof err),
                     -1);
    assert_int_equal(lb_addr_parse_list("127.0.0.1:1,127.000.0.1:1", v, 4, err, sizeof err), -1);
}

static lb_backend *add(lb_pool *p, const char *text)
{
    lb_addr a;
    assert_true(lb_addr_parse(text, &a));
    lb_backend *b = lb_pool_add(p, &a, LB_SRC_CONFIG);
    assert_non_null(b);
    return b;
}

static void test_rise_fall(void **state)
{
    (void)state;
    lb_pool p = {0};
    lb_backend *b = add(&p, "127.0.0.1:1");
    const int rise = 2, fall = 3;
    assert_int_equal(b->state, LB_CHECKING);
    assert_false(lb_backend_in_rotation(b));
    /* rise good checks in a row put it in rotation */
    assert_false(lb_backend_record(b, LB_RES_READY, rise, fall, "ok"));
    assert_int_equal(b->state, LB_CHECKING);
    assert_true(lb_backend_record(b, LB_RES_READY, rise, fall, "ok"));
    assert_int_equal(b->state, LB_UP);
    /* fall - 1 failures keep it up; a success in between restores one step */
    assert_false(lb_backend_record(b, LB_RES_FAILED, rise, fall, "x"));
    assert_false(lb_backend_record(b, LB_RES_FAILED, rise, fall, "x"));
    assert_false(lb_backend_record(b, LB_RES_READY, rise, fall, "ok"));
    assert_false(lb_backend_record(b, LB_RES_FAILED, rise, fall, "x"));
    assert_int_equal(b->state, LB_UP);
    assert_true(lb_backend_record(b, LB_RES_FAILED, rise, fall, "x"));
    assert_int_equal(b->state, LB_DOWN);
    /* down: a success then a failure starts over; rise in a row bring it back */
    assert_false(lb_backend_record(b, LB_RES_READY, rise, fall, "ok"));
    assert_false(lb_backend_record(b, LB_RES_FAILED, rise, fall, "x"));
    assert_false(lb_backend_record(b, LB_RES_READY, rise, fall, "ok"));
    assert_int_equal(b->state, LB_DOWN);
    assert_true(lb_backend_record(b, LB_RES_DEGRADED, rise, fall, "degraded"));
    assert_int_equal(b->state, LB_DEGRADED);
    assert_true(lb_backend_in_rotation(b));
    /* degraded <-> up at once, with no counting */
    assert_true(lb_backend_record(b, LB_RES_READY, rise, fall, "ok"));
    assert_int_equal(b->state, LB_UP);
    assert_true(lb_backend_record(b, LB_RES_DEGRADED, rise, fall, "degraded"));
    assert_int_equal(b->state, LB_DEGRADED);
    /* from full health, exactly fall failures take it down */
    assert_false(lb_backend_record(b, LB_RES_FAILED, rise, fall, "x"));
    assert_false(lb_backend_record(b, LB_RES_FAILED, rise, fall, "x"));
    assert_true(lb_backend_record(b, LB_RES_FAILED, rise, fall, "x"));
    assert_int_equal(b->state, LB_DOWN);
    /* a draining backend ignores checks */
    lb_backend_set_state(b, LB_DRAINING, "removed");
    assert_false(lb_backend_record(b, LB_RES_READY, rise, fall, "ok"));
    assert_false(lb_backend_record(b, LB_RES_READY, rise, fall, "ok"));
    assert_int_equal(b->state, LB_DRAINING);
    lb_pool_free(&p);
}

static void test_checking_goes_down_after_fall(void **state)
{
    (void)state;
    lb_pool p = {0};
    lb_backend *b = add(&p, "127.0.0.1:1");
    assert_false(lb_backend_record(b, LB_RES_FAILED, 2, 2, "refused"));
    assert_false(lb_backend_record(b, LB_RES_READY, 2, 2, "ok")); /* resets the failures */
    assert_false(lb_backend_record(b, LB_RES_FAILED, 2, 2, "refused"));
    assert_int_equal(b->state, LB_CHECKING);
    assert_true(lb_backend_record(b, LB_RES_FAILED, 2, 2, "refused"));
    assert_int_equal(b->state, LB_DOWN);
    /* rise = fall = 1: every check decides */
    lb_backend *c = add(&p, "127.0.0.1:2");
    assert_true(lb_backend_record(c, LB_RES_READY, 1, 1, "ok"));
    assert_int_equal(c->state, LB_UP);
    assert_true(lb_backend_record(c, LB_RES_FAILED, 1, 1, "x"));
    assert_int_equal(c->state, LB_DOWN);
    assert_true(lb_backend_record(c, LB_RES_READY, 1, 1, "ok"));
    assert_int_equal(c->state, LB_UP);
    lb_pool_free(&p);
}

static void test_least_connections(void **state)
{
    (void)state;
    lb_pool p = {0};
    lb_backend *a = add(&p, "127.0.0.1:1"), *b = add(&p, "127.0.0.1:2"), *c = add(&p, "127.0.0.1:3");
    /* nothing in rotation: falls back to the ones still being checked */
    assert_non_null(lb_pool_pick(&p, NULL, 0));
    a->state = LB_UP;
    b->state = LB_DEGRADED;
    c->state = LB_DOWN;
    /* never the down one; with equal load both in-rotation ones get turns */
    int seen_a = 0, seen_b = 0;
    for (int i = 0; i < 10; i++) {
        lb_backend *x = lb_pool_pick(&p, NULL, 0);
        assert_true(x == a || x == b);
        seen_a += x == a;
        seen_b += x == b;
    }
    assert_true(seen_a > 0 && seen_b > 0);
    /* the least loaded wins */
    a->active = 5;
    b->active = 2;
    for (int i = 0; i < 5; i++) assert_ptr_equal(lb_pool_pick(&p, NULL, 0), b);
    b->active = 7;
    for (int i = 0; i < 5; i++) assert_ptr_equal(lb_pool_pick(&p, NULL, 0), a);
    /* a retry skips what was tried; when all were tried there is none (no fallback to down) */
    uint64_t tried[2] = {a->id, 0};
    assert_ptr_equal(lb_pool_pick(&p, tried, 1), b);
    tried[1] = b->id;
    assert_null(lb_pool_pick(&p, tried, 2));
    /* a checking backend is not used while something is in rotation */
    c->state = LB_CHECKING;
    assert_null(lb_pool_pick(&p, tried, 2));
    /* draining never */
    a->state = LB_DRAINING;
    b->state = LB_DRAINING;
    c->state = LB_DOWN;
    assert_null(lb_pool_pick(&p, NULL, 0));
    assert_int_equal(lb_pool_count(&p, LB_NSTATES), 1);
    assert_null(lb_pool_find(&p, "127.0.0.1:1")); /* draining ones are not found */
    assert_ptr_equal(lb_pool_find(&p, "127.0.0.1:3"), c);
    lb_pool_remove(&p, a);
    assert_int_equal(p.n, 2);
    lb_pool_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse),        cmocka_unit_test(test_addr_list),
        cmocka_unit_test(test_rise_fall),         cmocka_unit_test(test_checking_goes_down_after_fall),
        cmocka_unit_test(test_least_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

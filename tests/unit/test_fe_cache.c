/* Unit tests of the per-child cache (frontend/io/fe_cache.c, linked from fvfrontend): fresh and
 * usable lifetimes on a clock the test sets (get and put take `now`: no sleeps), replacement,
 * deletion by key and by prefix, the size cap, and that every value is freed exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "fe_cache.h"

/* Values are counted allocations: the destructor counts what it frees. */
static int freed;
static int live;

static void *val(int n)
{
    int *v = malloc(sizeof *v);
    assert_non_null(v);
    *v = n;
    live++;
    return v;
}

static void val_free(void *v)
{
    freed++;
    live--;
    free(v);
}

static int setup(void **state)
{
    freed = 0;
    live = 0;
    *state = fe_cache_new(1000, val_free);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    fe_cache_free(*state);
    assert_int_equal(live, 0); /* the cache freed every value it held */
    return 0;
}

static int get(fe_cache *c, const char *key, time_t now, bool *fresh)
{
    int *v = fe_cache_get(c, key, now, fresh);
    return v ? *v : -1;
}

static void test_fresh_then_usable_then_gone(void **state)
{
    fe_cache *c = *state;
    const time_t t = 1000;
    bool fresh = false;
    fe_cache_put(c, "k", val(7), t, 10, 60);
    assert_int_equal(get(c, "k", t, &fresh), 7);
    assert_true(fresh);
    assert_int_equal(get(c, "k", t + 9, &fresh), 7);
    assert_true(fresh);
    /* fresh for 10 s: at t+10 it is stale but still usable (PostgreSQL down) */
    assert_int_equal(get(c, "k", t + 10, &fresh), 7);
    assert_false(fresh);
    assert_int_equal(get(c, "k", t + 59, &fresh), 7);
    assert_false(fresh);
    assert_int_equal(freed, 0);
    /* usable for 60 s: gone at t+60, freed on that lookup */
    fresh = true;
    assert_null(fe_cache_get(c, "k", t + 60, &fresh));
    assert_int_equal(freed, 1);
    assert_int_equal(fe_cache_count(c), 0);
    assert_null(fe_cache_get(c, "k", t, NULL)); /* and not back when asked about the past */
}

static void test_fresh_may_be_null_and_usable_at_least_fresh(void **state)
{
    fe_cache *c = *state;
    /* usable_ttl shorter than fresh_ttl: usable as long as fresh */
    fe_cache_put(c, "a", val(1), 0, 30, 5);
    assert_int_equal(get(c, "a", 29, NULL), 1);
    assert_null(fe_cache_get(c, "a", 30, NULL));
    /* zero lifetimes: expired at once */
    fe_cache_put(c, "z", val(2), 100, 0, 0);
    assert_null(fe_cache_get(c, "z", 100, NULL));
    assert_int_equal(freed, 2);
}

static void test_replace_frees_the_old_value(void **state)
{
    fe_cache *c = *state;
    bool fresh;
    fe_cache_put(c, "k", val(1), 0, 10, 10);
    fe_cache_put(c, "k", val(2), 5, 100, 100); /* replaces, with the new lifetimes */
    assert_int_equal(freed, 1);
    assert_int_equal(fe_cache_count(c), 1);
    assert_int_equal(get(c, "k", 50, &fresh), 2);
    assert_true(fresh);
    /* a NULL value is a value (a cached "no such thing") and replaces too */
    fe_cache_put(c, "k", NULL, 60, 10, 10);
    assert_int_equal(freed, 2);
    assert_null(fe_cache_get(c, "k", 60, NULL));
    assert_int_equal(fe_cache_count(c), 1);
}

static void test_keys_are_strings_not_pointers(void **state)
{
    fe_cache *c = *state;
    char key[32];
    snprintf(key, sizeof key, "apikey:%d", 42);
    fe_cache_put(c, key, val(42), 0, 10, 10);
    memset(key, 0, sizeof key); /* the cache copied the key */
    assert_int_equal(get(c, "apikey:42", 1, NULL), 42);
    assert_int_equal(get(c, "apikey:4", 1, NULL), -1);
    assert_int_equal(get(c, "apikey:420", 1, NULL), -1);
    assert_int_equal(get(c, "", 1, NULL), -1);
}

static void test_del_and_del_prefix(void **state)
{
    fe_cache *c = *state;
    fe_cache_put(c, "apikey:1", val(1), 0, 10, 10);
    fe_cache_put(c, "apikey:2", val(2), 0, 10, 10);
    fe_cache_put(c, "apikey", val(3), 0, 10, 10);
    fe_cache_put(c, "deployment:1", val(4), 0, 10, 10);
    fe_cache_put(c, "xapikey:1", val(5), 0, 10, 10);
    fe_cache_del(c, "nothing-here"); /* absent: no-op */
    assert_int_equal(fe_cache_count(c), 5);
    fe_cache_del(c, "apikey:2");
    assert_int_equal(freed, 1);
    assert_int_equal(get(c, "apikey:2", 1, NULL), -1);

    fe_cache_del_prefix(c, "apikey:");
    assert_int_equal(get(c, "apikey:1", 1, NULL), -1);
    assert_int_equal(get(c, "apikey", 1, NULL), 3);    /* shorter than the prefix: kept */
    assert_int_equal(get(c, "xapikey:1", 1, NULL), 5); /* the prefix is a prefix, not a substring */
    assert_int_equal(get(c, "deployment:1", 1, NULL), 4);
    assert_int_equal(freed, 2);
    assert_int_equal(fe_cache_count(c), 3);

    fe_cache_del_prefix(c, "no-such-prefix");
    assert_int_equal(fe_cache_count(c), 3);
    fe_cache_del_prefix(c, ""); /* everything */
    assert_int_equal(fe_cache_count(c), 0);
    assert_int_equal(freed, 5);
}

static void test_size_cap_evicts_expired_first(void **state)
{
    (void)state;
    fe_cache *c = fe_cache_new(4, val_free);
    assert_non_null(c);
    fe_cache_put(c, "old1", val(1), 0, 5, 5); /* expired by t=10 */
    fe_cache_put(c, "old2", val(2), 0, 5, 5);
    fe_cache_put(c, "live1", val(3), 0, 100, 100);
    fe_cache_put(c, "live2", val(4), 0, 100, 100);
    assert_int_equal(fe_cache_count(c), 4);
    /* full: a put at t=10 sweeps the expired ones and keeps the live */
    fe_cache_put(c, "new", val(5), 10, 100, 100);
    assert_int_equal(fe_cache_count(c), 3);
    assert_int_equal(freed, 2);
    assert_int_equal(get(c, "live1", 10, NULL), 3);
    assert_int_equal(get(c, "live2", 10, NULL), 4);
    assert_int_equal(get(c, "new", 10, NULL), 5);
    fe_cache_free(c);
    assert_int_equal(live, 0);
}

static void test_size_cap_full_of_live_entries(void **state)
{
    (void)state;
    fe_cache *c = fe_cache_new(3, val_free);
    assert_non_null(c);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        fe_cache_put(c, key, val(i), 0, 100 + i, 100 + i);
    }
    assert_int_equal(fe_cache_evicted_until(c), 0);
    /* nothing expired: the entry nearest its end (k0) makes room; the others stay */
    fe_cache_put(c, "k3", val(3), 1, 100, 100);
    assert_int_equal(fe_cache_count(c), 3);
    assert_int_equal(get(c, "k3", 1, NULL), 3);
    assert_int_equal(get(c, "k0", 1, NULL), -1);
    assert_int_equal(get(c, "k1", 1, NULL), 1);
    assert_int_equal(get(c, "k2", 1, NULL), 2);
    assert_int_equal(freed, 1);
    assert_int_equal(fe_cache_evicted_until(c), 100);
    /* replacing a key of a full cache evicts nothing else */
    fe_cache_put(c, "k3", val(33), 1, 100, 100);
    assert_int_equal(fe_cache_count(c), 3);
    assert_int_equal(get(c, "k1", 1, NULL), 1);
    assert_int_equal(get(c, "k2", 1, NULL), 2);
    assert_int_equal(get(c, "k3", 1, NULL), 33);
    fe_cache_free(c);
    assert_int_equal(live, 0);
}

/* The evicted keys, as the eviction hook reports them. */
static char evicted_keys[4096];
static void on_evict(const char *key, void *value, time_t expires)
{
    (void)value;
    (void)expires;
    size_t o = strlen(evicted_keys);
    snprintf(evicted_keys + o, sizeof evicted_keys - o, "%s,", key);
}

/* A revocation cache full of live entries (review finding: it was wiped whole, so every revoked
 * token came back): only the entries nearest their end are forgotten, an eighth at a time, the
 * hook hears of each, and evicted_until says until when an entry may be missing. */
static void test_full_cache_forgets_only_the_nearest_to_expiry(void **state)
{
    (void)state;
    const size_t cap = 64;
    fe_cache *c = fe_cache_new(cap, val_free);
    assert_non_null(c);
    evicted_keys[0] = '\0';
    fe_cache_on_evict(c, on_evict);
    /* inserted in an order unrelated to their lives: key i lives 1000 + (i * 37) % 64 s */
    for (int i = 0; i < (int)cap; i++) {
        char key[16];
        snprintf(key, sizeof key, "r%d", i);
        int life = 1000 + (i * 37) % 64;
        fe_cache_put(c, key, val(life), 0, life, life);
    }
    assert_int_equal(fe_cache_count(c), cap);
    fe_cache_put(c, "new", val(5000), 1, 5000, 5000);
    /* 64 / 8 = 8 evicted: exactly those living 1000..1007 */
    assert_int_equal(fe_cache_count(c), cap - 8 + 1);
    assert_int_equal(fe_cache_evicted_until(c), 1007);
    int gone = 0;
    for (int i = 0; i < (int)cap; i++) {
        char key[16];
        snprintf(key, sizeof key, "r%d", i);
        int life = 1000 + (i * 37) % 64, v = get(c, key, 1, NULL);
        if (life <= 1007) {
            assert_int_equal(v, -1);
            assert_non_null(strstr(evicted_keys, key));
            gone++;
        } else {
            assert_int_equal(v, life);
        }
    }
    assert_int_equal(gone, 8);
    assert_int_equal(get(c, "new", 1, NULL), 5000);
    /* many more puts: the count never passes the cap, the longest-lived always survive */
    fe_cache_on_evict(c, NULL);
    for (int i = 0; i < 1000; i++) {
        char key[16];
        snprintf(key, sizeof key, "s%d", i);
        fe_cache_put(c, key, val(2000 + i), 2, 2000 + i, 2000 + i);
        assert_true(fe_cache_count(c) <= cap);
    }
    assert_int_equal(get(c, "new", 2, NULL), 5000);
    assert_int_equal(get(c, "s999", 2, NULL), 2999);
    fe_cache_free(c);
    assert_int_equal(live, 0);
}

static void test_many_keys_never_exceed_the_cap(void **state)
{
    (void)state;
    const size_t cap = 500;
    fe_cache *c = fe_cache_new(cap, val_free);
    assert_non_null(c);
    for (int i = 0; i < 20000; i++) {
        char key[32];
        snprintf(key, sizeof key, "user:%d", i);
        /* a third expire quickly, the rest live long */
        fe_cache_put(c, key, val(i), i / 100, i % 3 == 0 ? 1 : 1000, i % 3 == 0 ? 1 : 1000);
        assert_true(fe_cache_count(c) <= cap);
        assert_int_equal(get(c, key, i / 100, NULL), i); /* the newest entry is always there */
    }
    assert_int_equal((size_t)live, fe_cache_count(c));
    fe_cache_free(c);
    assert_int_equal(live, 0);
}

static void test_no_destructor(void **state)
{
    (void)state;
    static int a = 1, b = 2;
    fe_cache *c = fe_cache_new(10, NULL); /* values not owned */
    assert_non_null(c);
    fe_cache_put(c, "a", &a, 0, 10, 10);
    fe_cache_put(c, "a", &b, 0, 10, 10);
    assert_ptr_equal(fe_cache_get(c, "a", 0, NULL), &b);
    fe_cache_free(c);
    fe_cache_free(NULL);
}

static void test_clock_is_monotonic(void **state)
{
    (void)state;
    time_t a = fe_cache_now(), b = fe_cache_now();
    assert_true(a >= 0);
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_then_usable_then_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_may_be_null_and_usable_at_least_fresh, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replace_frees_the_old_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_are_strings_not_pointers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_del_and_del_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_cap_evicts_expired_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_cap_full_of_live_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_cache_forgets_only_the_nearest_to_expiry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_many_keys_never_exceed_the_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_destructor, setup, teardown),
        cmocka_unit_test(test_clock_is_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of the MACed values shared through Redis (common/fv_shared.c, linked from
 * fvcommon): a round trip, and that a change to any bound part (Redis key name, field, version,
 * expiry, payload, MAC), an unknown key, an expired or malformed entry, is refused; rotation
 * (an entry MACed under the previous key still opens while that key is in the file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_shared.h"

static void keyset(fv_keyset *ks, int n, const unsigned char *fill, const char *const *ids)
{
    memset(ks, 0, sizeof *ks);
    for (int i = 0; i < n; i++) {
        memset(ks->keys[i].key, fill[i], FV_KEY_BYTES);
        snprintf(ks->keys[i].id, sizeof ks->keys[i].id, "%s", ids[i]);
    }
    ks->n = n;
}

static fv_shared_result open_(const fv_shared_keys *sk, const char *name, const char *field,
                              const char *text, int64_t now, long long *v, char *out)
{
    const char *p = NULL;
    size_t plen = 0;
    fv_shared_result r = fv_shared_open(sk, name, field, text, strlen(text), now, v, &p, &plen);
    if (r == FV_SHARED_OK) {
        memcpy(out, p, plen);
        out[plen] = '\0';
    }
    return r;
}

static void test_round_trip_and_every_bound_part(void **state)
{
    (void)state;
    fv_keyset ks;
    const unsigned char fill[] = {1};
    const char *ids[] = {"aaaaaaaa"};
    keyset(&ks, 1, fill, ids);
    fv_shared_keys sk;
    assert_int_equal(fv_shared_keys_init(&sk, &ks), 0);
    char *t = fv_shared_wrap(&sk, "fv:cache:enumerator:u", "d", 42, 1000, "1", 1);
    assert_non_null(t);
    assert_int_equal(strncmp(t, "m1.aaaaaaaa.42.1000.", 20), 0);
    long long v = -1;
    char out[256];
    assert_int_equal(open_(&sk, "fv:cache:enumerator:u", "d", t, 999, &v, out), FV_SHARED_OK);
    assert_int_equal(v, 42);
    assert_string_equal(out, "1");
    /* another key name, another field: the MAC does not verify */
    assert_int_equal(open_(&sk, "fv:cache:enumerator:x", "d", t, 999, &v, out), FV_SHARED_BAD_MAC);
    assert_int_equal(open_(&sk, "fv:cache:enumerator:u", "e", t, 999, &v, out), FV_SHARED_BAD_MAC);
    /* expired by its own expiry */
    assert_int_equal(open_(&sk, "fv:cache:enumerator:u", "d", t, 1000, &v, out), FV_SHARED_EXPIRED);
    /* the payload, the version, the expiry altered */
    char alt[512];
    snprintf(alt, sizeof alt, "%s", t);
    alt[strlen(alt) - 1] = '0';
    assert_int_equal(open_(&sk, "fv:cache:enumerator:u", "d", alt, 999, &v, out), FV_SHARED_BAD_MAC);
    snprintf(alt, sizeof alt, "m1.aaaaaaaa.43.%s", t + strlen("m1.aaaaaaaa.42."));
    assert_int_equal(open_(&sk, "fv:cache:enumerator:u", "d", alt, 999, &v, out), FV_SHARED_BAD_MAC);
    snprintf(alt, sizeof alt, "m1.aaaaaaaa.42.9000.%s", t + strlen("m1.aaaaaaaa.42.1000."));
    assert_int_equal(open_(&sk, "fv:cache:enumerator:u", "d", alt, 999, &v, out), FV_SHARED_BAD_MAC);
    /* unMACed values, as older versions (or an attacker with Redis access) wrote them */
    assert_int_equal(open_(&sk, "fv:cache:enumerator:u", "d", "1", 999, &v, out), FV_SHARED_MALFORMED);
    assert_int_equal(open_(&sk, "k", "", "{\"id\":\"x\"}", 999, &v, out), FV_SHARED_MALFORMED);
    assert_int_equal(open_(&sk, "k", "", "m1.aaaaaaaa.1.2.short.1", 999, &v, out), FV_SHARED_MALFORMED);
    assert_int_equal(open_(&sk, "k", "", "m1.bbbbbbbb.1.2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.1",
                           0, &v, out),
                     FV_SHARED_UNKNOWN_KEY);
    free(t);
    /* an empty payload and a payload with dots */
    t = fv_shared_wrap(&sk, "k", "", 0, 50, "a.b.c", 5);
    assert_int_equal(open_(&sk, "k", "", t, 1, &v, out), FV_SHARED_OK);
    assert_string_equal(out, "a.b.c");
    assert_int_equal(v, 0);
    free(t);
    assert_null(fv_shared_wrap(&sk, "k", "", -1, 50, "x", 1)); /* no version: nothing shared */
    fv_shared_keys_clear(&sk);
}

static void test_rotation(void **state)
{
    (void)state;
    fv_keyset old, both, fresh;
    const unsigned char f1[] = {1}, f21[] = {2, 1}, f2[] = {2};
    const char *i1[] = {"11111111"}, *i21[] = {"22222222", "11111111"}, *i2[] = {"22222222"};
    keyset(&old, 1, f1, i1);
    keyset(&both, 2, f21, i21);
    keyset(&fresh, 1, f2, i2);
    fv_shared_keys a, b, c;
    assert_int_equal(fv_shared_keys_init(&a, &old), 0);
    assert_int_equal(fv_shared_keys_init(&b, &both), 0);
    assert_int_equal(fv_shared_keys_init(&c, &fresh), 0);
    char *t = fv_shared_wrap(&a, "k", "", 7, 100, "p", 1);
    long long v;
    char out[16];
    assert_int_equal(open_(&b, "k", "", t, 1, &v, out), FV_SHARED_OK);
    assert_int_equal(open_(&c, "k", "", t, 1, &v, out), FV_SHARED_UNKNOWN_KEY);
    free(t);
    /* a key of the same id but other bytes does not verify */
    fv_keyset fake;
    const unsigned char f9[] = {9};
    keyset(&fake, 1, f9, i1);
    fv_shared_keys d;
    assert_int_equal(fv_shared_keys_init(&d, &fake), 0);
    t = fv_shared_wrap(&d, "k", "", 7, 100, "p", 1);
    assert_int_equal(open_(&a, "k", "", t, 1, &v, out), FV_SHARED_BAD_MAC);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_every_bound_part),
        cmocka_unit_test(test_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

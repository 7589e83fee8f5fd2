/* Unit tests for common/fv_datakey.c: wrapping data keys under the master key (bound to scope and
 * version), master-key rotation, values sealed under a data key (bound to their place), and the
 * bounded ring of unwrapped keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_datakey.h"

static void keyset(fv_keyset *ks, int n, const unsigned char *first_bytes)
{
    memset(ks, 0, sizeof *ks);
    ks->n = n;
    for (int i = 0; i < n; i++) {
        memset(ks->keys[i].key, first_bytes[i], FV_KEY_BYTES);
        snprintf(ks->keys[i].id, sizeof ks->keys[i].id, "%08x", 0x11111111u * (unsigned)first_bytes[i]);
    }
}

static void test_wrap_unwrap_bound_to_scope_and_version(void **state)
{
    (void)state;
    fv_keyset ks;
    keyset(&ks, 1, (const unsigned char[]){1});
    unsigned char dk[32], back[32];
    char err[256];
    assert_int_equal(fv_datakey_new(dk), 0);
    char *w = fv_datakey_wrap(&ks, "org:0b2f5c4e-0000-4000-8000-000000000001", 1, dk);
    assert_non_null(w);
    char id[FV_KEY_IDLEN + 1];
    assert_true(fv_datakey_master_id(w, id));
    assert_string_equal(id, ks.keys[0].id);
    /* the key bytes never appear in the wrapped text (hex or raw) */
    assert_null(memmem(w, strlen(w), dk, sizeof dk));
    assert_int_equal(fv_datakey_unwrap(&ks, "org:0b2f5c4e-0000-4000-8000-000000000001", 1, w, back, err,
                                       sizeof err),
                     0);
    assert_memory_equal(back, dk, 32);
    /* another scope or another version: does not open */
    assert_int_equal(fv_datakey_unwrap(&ks, "org:0b2f5c4e-0000-4000-8000-000000000002", 1, w, back, err,
                                       sizeof err),
                     -1);
    assert_non_null(strstr(err, "does not open"));
    assert_int_equal(fv_datakey_unwrap(&ks, "org:0b2f5c4e-0000-4000-8000-000000000001", 2, w, back, err,
                                       sizeof err),
                     -1);
    /* a flipped character: an error, never another key */
    size_t n = strlen(w);
    w[n - 5] = w[n - 5] == 'A' ? 'B' : 'A';
    assert_int_equal(fv_datakey_unwrap(&ks, "org:0b2f5c4e-0000-4000-8000-000000000001", 1, w, back, err,
                                       sizeof err),
                     -1);
    free(w);
    /* malformed */
    assert_int_equal(fv_datakey_unwrap(&ks, "global", 1, "nonsense", back, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a wrapped key"));
    assert_int_equal(fv_datakey_unwrap(&ks, "global", 1, NULL, back, err, sizeof err), -1);
    /* a scope too long or a version below 1 is refused before any crypto */
    char longscope[200];
    memset(longscope, 'x', sizeof longscope - 1);
    longscope[sizeof longscope - 1] = '\0';
    assert_null(fv_datakey_wrap(&ks, longscope, 1, dk));
    assert_null(fv_datakey_wrap(&ks, "global", 0, dk));
}

static void test_master_rotation(void **state)
{
    (void)state;
    fv_keyset old, both, fresh;
    keyset(&old, 1, (const unsigned char[]){1});
    keyset(&both, 2, (const unsigned char[]){2, 1}); /* new key first, old kept */
    keyset(&fresh, 1, (const unsigned char[]){2});   /* the old key removed */
    unsigned char dk[32], back[32];
    char err[256], id[FV_KEY_IDLEN + 1];
    assert_int_equal(fv_datakey_new(dk), 0);
    char *w1 = fv_datakey_wrap(&old, "global", 3, dk);
    assert_non_null(w1);
    /* after the new key is prepended, the old wrapping still opens */
    assert_int_equal(fv_datakey_unwrap(&both, "global", 3, w1, back, err, sizeof err), 0);
    /* re-wrapped under the current key, it names that key and opens without the old one */
    char *w2 = fv_datakey_wrap(&both, "global", 3, back);
    assert_non_null(w2);
    assert_true(fv_datakey_master_id(w2, id));
    assert_string_equal(id, both.keys[0].id);
    assert_int_equal(fv_datakey_unwrap(&fresh, "global", 3, w2, back, err, sizeof err), 0);
    assert_memory_equal(back, dk, 32);
    /* the old wrapping without the old key: the error names the missing master key */
    assert_int_equal(fv_datakey_unwrap(&fresh, "global", 3, w1, back, err, sizeof err), -1);
    assert_non_null(strstr(err, old.keys[0].id));
    assert_non_null(strstr(err, "not in the key file"));
    free(w1);
    free(w2);
}

static void test_seal_open_bound_to_place(void **state)
{
    (void)state;
    unsigned char dk[32], other[32];
    assert_int_equal(fv_datakey_new(dk), 0);
    assert_int_equal(fv_datakey_new(other), 0);
    const char pt[] = "{\"name\":\"marker-7Qx\"}";
    size_t len = sizeof pt - 1;
    unsigned char *s = malloc(len + FV_DK_OVERHEAD), *out = malloc(len + 1);
    assert_int_equal(fv_dk_seal(dk, 7, "responses:abc:data", pt, len, s), 0);
    assert_int_equal(fv_dk_version(s, len + FV_DK_OVERHEAD), 7);
    assert_null(memmem(s, len + FV_DK_OVERHEAD, "marker", 6));
    assert_int_equal(fv_dk_open(dk, "responses:abc:data", s, len + FV_DK_OVERHEAD, out), (long)len);
    assert_memory_equal(out, pt, len);
    /* another row, another column, another key: no */
    assert_int_equal(fv_dk_open(dk, "responses:abd:data", s, len + FV_DK_OVERHEAD, out), -1);
    assert_int_equal(fv_dk_open(dk, "responses:abc:xml", s, len + FV_DK_OVERHEAD, out), -1);
    assert_int_equal(fv_dk_open(other, "responses:abc:data", s, len + FV_DK_OVERHEAD, out), -1);
    /* every single flipped bit of the value is refused */
    for (size_t i = 8; i < len + FV_DK_OVERHEAD; i++) {
        s[i] ^= 0x01;
        assert_int_equal(fv_dk_open(dk, "responses:abc:data", s, len + FV_DK_OVERHEAD, out), -1);
        s[i] ^= 0x01;
    }
    /* truncated, or not a sealed value at all */
    assert_int_equal(fv_dk_open(dk, "responses:abc:data", s, FV_DK_OVERHEAD - 1, out), -1);
    assert_int_equal(fv_dk_version((const unsigned char *)"plain text, not sealed at all", 29), -1);
    assert_int_equal(fv_dk_version(NULL, 0), -1);
    /* an empty value seals and opens */
    assert_int_equal(fv_dk_seal(dk, 1, "x", "", 0, s), 0);
    assert_int_equal(fv_dk_open(dk, "x", s, FV_DK_OVERHEAD, out), 0);
    /* version 0 is refused */
    assert_int_equal(fv_dk_seal(dk, 0, "x", pt, len, s), -1);
    free(s);
    free(out);
}

static void test_ring_bounded(void **state)
{
    (void)state;
    fv_keyset ks;
    keyset(&ks, 1, (const unsigned char[]){9});
    assert_null(fv_dkring_new(&ks, 0));
    fv_keyset none = {0};
    assert_null(fv_dkring_new(&none, 4));
    fv_dkring *r = fv_dkring_new(&ks, 2);
    assert_non_null(r);
    memset(&ks, 0, sizeof ks); /* the ring keeps its own copy */
    char err[256];
    unsigned char k[3][32];
    char *w[3];
    const char *scopes[] = {"org:a", "org:b", "org:c"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fv_datakey_new(k[i]), 0);
        w[i] = fv_datakey_wrap(fv_dkring_keys(r), scopes[i], 1, k[i]);
        assert_non_null(w[i]);
    }
    assert_null(fv_dkring_get(r, "org:a", 1));
    const unsigned char *p = fv_dkring_put(r, "org:a", 1, w[0], err, sizeof err);
    assert_non_null(p);
    assert_memory_equal(p, k[0], 32);
    assert_non_null(fv_dkring_put(r, "org:b", 1, w[1], err, sizeof err));
    assert_memory_equal(fv_dkring_get(r, "org:a", 1), k[0], 32);
    assert_null(fv_dkring_get(r, "org:a", 2));
    /* a third key replaces the oldest (org:a): the ring never holds more than cap */
    assert_non_null(fv_dkring_put(r, "org:c", 1, w[2], err, sizeof err));
    assert_null(fv_dkring_get(r, "org:a", 1));
    assert_memory_equal(fv_dkring_get(r, "org:b", 1), k[1], 32);
    assert_memory_equal(fv_dkring_get(r, "org:c", 1), k[2], 32);
    /* a wrapped key of another scope is refused, and nothing is kept */
    assert_null(fv_dkring_put(r, "org:a", 1, w[1], err, sizeof err));
    assert_null(fv_dkring_get(r, "org:a", 1));
    for (int i = 0; i < 3; i++) free(w[i]);
    fv_dkring_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrap_unwrap_bound_to_scope_and_version),
        cmocka_unit_test(test_master_rotation),
        cmocka_unit_test(test_seal_open_bound_to_place),
        cmocka_unit_test(test_ring_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

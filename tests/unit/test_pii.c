/* Unit tests for common/fv_pii.c: the emails' lookup HMAC (case-insensitive in ASCII, one per
 * master key, as a bytea[] literal) and sealed fields bound to their row and column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_pii.h"

static void keyset(fv_keyset *ks, int n)
{
    memset(ks, 0, sizeof *ks);
    ks->n = n;
    for (int i = 0; i < n; i++) {
        memset(ks->keys[i].key, i + 1, FV_KEY_BYTES);
        fv_keys_id(ks->keys[i].key, ks->keys[i].id);
    }
}

static void test_hmac_case_insensitive_and_per_key(void **state)
{
    (void)state;
    fv_keyset ks;
    keyset(&ks, 2);
    char a[FV_PII_HMAC_HEXLEN + 1], b[FV_PII_HMAC_HEXLEN + 1], c[FV_PII_HMAC_HEXLEN + 1];
    assert_int_equal(fv_pii_email_hmac(&ks.keys[0], "Alice.Marker@Example.ORG", a), 0);
    assert_int_equal(fv_pii_email_hmac(&ks.keys[0], "alice.marker@example.org", b), 0);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), FV_PII_HMAC_HEXLEN);
    assert_memory_equal(a, "\\x", 2);
    /* another key, another hash; another email, another hash */
    assert_int_equal(fv_pii_email_hmac(&ks.keys[1], "alice.marker@example.org", c), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(fv_pii_email_hmac(&ks.keys[0], "alice.markex@example.org", c), 0);
    assert_string_not_equal(a, c);
    /* never the email itself, in any case */
    assert_null(strstr(a, "alice"));
    /* too long: refused */
    char longe[300];
    memset(longe, 'a', sizeof longe - 1);
    longe[sizeof longe - 1] = '\0';
    assert_int_equal(fv_pii_email_hmac(&ks.keys[0], longe, c), -1);
    assert_null(fv_pii_email_hmacs(&ks, longe));
}

static void test_hmacs_literal(void **state)
{
    (void)state;
    fv_keyset ks;
    keyset(&ks, 2);
    char a[FV_PII_HMAC_HEXLEN + 1], b[FV_PII_HMAC_HEXLEN + 1], want[200];
    fv_pii_email_hmac(&ks.keys[0], "x@y.z", a);
    fv_pii_email_hmac(&ks.keys[1], "x@y.z", b);
    snprintf(want, sizeof want, "{\"\\\\%s\",\"\\\\%s\"}", a + 1, b + 1);
    char *lit = fv_pii_email_hmacs(&ks, "X@Y.Z");
    assert_non_null(lit);
    assert_string_equal(lit, want);
    free(lit);
    ks.n = 0;
    assert_null(fv_pii_email_hmacs(&ks, "x@y.z"));
}

static void test_seal_open_bound_to_place(void **state)
{
    (void)state;
    unsigned char key[FV_DATAKEY_BYTES], other[FV_DATAKEY_BYTES];
    memset(key, 7, sizeof key);
    memset(other, 8, sizeof other);
    char aad[FV_DK_AAD_MAX], aad2[FV_DK_AAD_MAX], aad3[FV_DK_AAD_MAX], err[256];
    fv_pii_aad("users", "0b2f5c4e-0000-4000-8000-000000000001", "email", aad);
    assert_string_equal(aad, "fv:users:0b2f5c4e-0000-4000-8000-000000000001:email");
    fv_pii_aad("users", "0b2f5c4e-0000-4000-8000-000000000002", "email", aad2);
    fv_pii_aad("users", "0b2f5c4e-0000-4000-8000-000000000001", "name", aad3);
    char *hex = fv_pii_seal_hex(key, 3, aad, "Marker Person");
    assert_non_null(hex);
    assert_null(strstr(hex, "Marker"));
    size_t len;
    unsigned char *sealed = fv_pii_unhex(hex, &len);
    assert_non_null(sealed);
    assert_int_equal(len, strlen("Marker Person") + FV_DK_OVERHEAD);
    assert_int_equal(fv_dk_version(sealed, len), 3);
    char *pt = fv_pii_open(key, 3, aad, sealed, len, err, sizeof err);
    assert_non_null(pt);
    assert_string_equal(pt, "Marker Person");
    free(pt);
    /* another row, another column, another key: no */
    assert_null(fv_pii_open(key, 3, aad2, sealed, len, err, sizeof err));
    assert_non_null(strstr(err, "000000000002"));
    assert_null(fv_pii_open(key, 3, aad3, sealed, len, err, sizeof err));
    assert_null(fv_pii_open(other, 3, aad, sealed, len, err, sizeof err));
    /* every flipped byte is refused, with the row named, never garbage */
    for (size_t i = 0; i < len; i++) {
        sealed[i] ^= 0x01;
        err[0] = '\0';
        char *g = fv_pii_open(key, 3, aad, sealed, len, err, sizeof err);
        assert_null(g);
        assert_non_null(strstr(err, "0b2f5c4e-0000-4000-8000-000000000001"));
        assert_null(strstr(err, "Marker"));
        sealed[i] ^= 0x01;
    }
    /* truncated: not a sealed value */
    assert_null(fv_pii_open(key, 3, aad, sealed, 10, err, sizeof err));
    free(sealed);
    free(hex);
    /* an empty string seals and opens */
    hex = fv_pii_seal_hex(key, 1, aad, "");
    sealed = fv_pii_unhex(hex, &len);
    assert_null(fv_pii_open(key, 3, aad, sealed, len, err, sizeof err)); /* another version */
    pt = fv_pii_open(key, 1, aad, sealed, len, err, sizeof err);
    assert_non_null(pt);
    assert_string_equal(pt, "");
    free(pt);
    free(sealed);
    free(hex);
}

static void test_unhex_refuses_bad_text(void **state)
{
    (void)state;
    size_t len;
    assert_null(fv_pii_unhex("abcd", &len));
    assert_null(fv_pii_unhex("\\xabc", &len));
    assert_null(fv_pii_unhex("\\xzz", &len));
    assert_null(fv_pii_unhex(NULL, &len));
    unsigned char *b = fv_pii_unhex("\\x00Ff", &len);
    assert_non_null(b);
    assert_int_equal(len, 2);
    assert_int_equal(b[0], 0);
    assert_int_equal(b[1], 0xff);
    free(b);
}

/* A cell as migration 028's fv_pii_cell gives it, for value sealed in place aad. */
static char *cell_of(const fv_keyset *ks, const unsigned char dk[32], const char *aad, const char *value)
{
    char *w = fv_datakey_wrap(ks, "global", 1, dk);
    char *hex = fv_pii_seal_hex(dk, 1, aad, value);
    char *c = malloc(strlen(w) + strlen(hex) + 8);
    sprintf(c, "s:1:%s:%s", w, hex + 2);
    free(w);
    free(hex);
    return c;
}

static void test_cells_and_json(void **state)
{
    (void)state;
    fv_keyset ks;
    keyset(&ks, 1);
    fv_dkring *ring = fv_dkring_new(&ks, 4);
    unsigned char dk[32];
    assert_int_equal(fv_datakey_new(dk), 0);
    char err[300];
    const char *aad = "fv:users:0b2f5c4e-0000-4000-8000-000000000001:name";
    char *c = cell_of(&ks, dk, aad, "Zoë \"Marker\"");
    char *v = fv_pii_cell_open(ring, c, aad, err, sizeof err);
    assert_non_null(v);
    assert_string_equal(v, "Zoë \"Marker\"");
    free(v);
    /* in clear (from before 028), NULL, and shapes that are not cells */
    v = fv_pii_cell_open(ring, "c:Plain Name", aad, err, sizeof err);
    assert_string_equal(v, "Plain Name");
    free(v);
    assert_null(fv_pii_cell_open(ring, NULL, aad, err, sizeof err));
    assert_string_equal(err, "");
    assert_null(fv_pii_cell_open(ring, "x:1", aad, err, sizeof err));
    assert_non_null(strstr(err, aad));
    assert_null(fv_pii_cell_open(ring, "s:1:nowrapped", aad, err, sizeof err));
    assert_null(fv_pii_cell_open(ring, "s:0:a:b", aad, err, sizeof err));
    /* moved to another row: refused, naming the row it was read as */
    assert_null(fv_pii_cell_open(ring, c, "fv:users:0b2f5c4e-0000-4000-8000-000000000002:name", err,
                                 sizeof err));
    assert_non_null(strstr(err, "000000000002"));

    /* JSON: top-level keys of an object, of an array's objects, and one level inside */
    char *json = malloc(strlen(c) * 3 + 600);
    sprintf(json,
            "[{\"id\":1,\"name\":{\"fv_sealed\":\"%s\",\"aad\":\"%s\"},\"email\":null},"
            "{\"account\":{\"name\":{\"fv_sealed\":\"%s\",\"aad\":\"%s\"}},\"n\":2.5},"
            "{\"data\":{\"x\":{\"name\":{\"fv_sealed\":\"%s\",\"aad\":\"%s\"}}}}]",
            c, aad, c, aad, c, aad);
    const char *keys[] = {"name", "email", NULL};
    char *out = fv_pii_json_open(ring, json, strlen(json), keys, err, sizeof err);
    assert_non_null(out);
    assert_non_null(strstr(out, "{\"id\":1,\"name\":\"Zo\xc3\xab \\\"Marker\\\"\",\"email\":null}"));
    assert_non_null(strstr(out, "{\"account\":{\"name\":\"Zo\xc3\xab \\\"Marker\\\"\"}"));
    /* two levels down (users' answers): left alone */
    assert_non_null(strstr(out, "\"data\":{\"x\":{\"name\":{\"fv_sealed\""));
    free(out);
    /* one flipped hex digit of a field: the whole answer is refused, naming the row */
    char *p = strstr(json, c) + strlen(c) - 3;
    *p = *p == '0' ? '1' : '0';
    out = fv_pii_json_open(ring, json, strlen(json), keys, err, sizeof err);
    assert_null(out);
    assert_non_null(strstr(err, "0b2f5c4e-0000-4000-8000-000000000001"));
    assert_null(fv_pii_json_open(ring, "{", 1, keys, err, sizeof err));
    free(json);
    free(c);
    fv_dkring_free(ring);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_case_insensitive_and_per_key),
        cmocka_unit_test(test_hmacs_literal),
        cmocka_unit_test(test_seal_open_bound_to_place),
        cmocka_unit_test(test_unhex_refuses_bad_text),
        cmocka_unit_test(test_cells_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

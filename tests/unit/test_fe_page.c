/* Unit tests of the list pager: ?limit= and the cursor codec of every kind, with hostile cursors
 * (frontend/api/fe_page.c, linked from fvfrontend). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fe_page.h"

static const char UUID[] = "01a235c1-025b-7bc6-bd4a-b342a2054283";
static const char TS_KEY[] = "2026-12-02T07:45:51.123456Z|01a235c1-025b-7bc6-bd4a-b342a2054283";

static void test_limit(void **state)
{
    (void)state;
    assert_int_equal(fe_page_limit(NULL), FE_PAGE_DEFAULT);
    assert_int_equal(fe_page_limit("1"), 1);
    assert_int_equal(fe_page_limit("500"), 500);
    const char *bad[] = {"",    "0", "-1", "501", "12x", " 5", "5 ", "+5", "1e2", "99999999999999999999",
                         "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(fe_page_limit(bad[i]), -1);
}

static void test_uuid_round_trip(void **state)
{
    (void)state;
    char out[FE_PAGE_CURSOR_MAX + 1];
    fe_page pg;
    assert_true(fe_page_encode(FE_PAGE_UUID, UUID, out, sizeof out));
    assert_string_equal(out, UUID);
    assert_true(fe_page_decode(FE_PAGE_UUID, out, &pg));
    assert_true(pg.has_after);
    assert_string_equal(fe_page_after(&pg), UUID);
    assert_null(fe_page_after_id(&pg));
}

static void test_int_round_trip(void **state)
{
    (void)state;
    char out[FE_PAGE_CURSOR_MAX + 1];
    fe_page pg;
    assert_true(fe_page_encode(FE_PAGE_INT, "123456789012345678", out, sizeof out));
    assert_true(fe_page_decode(FE_PAGE_INT, out, &pg));
    assert_string_equal(fe_page_after(&pg), "123456789012345678");
    const char *bad[] = {"", "0", "012", "-5", "1234567890123456789", "12a", "1 ", "+1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(fe_page_decode(FE_PAGE_INT, bad[i], &pg));
        assert_false(pg.has_after);
        assert_null(fe_page_after(&pg));
    }
}

static void test_ts_uuid_round_trip(void **state)
{
    (void)state;
    char out[FE_PAGE_CURSOR_MAX + 1];
    fe_page pg;
    assert_true(fe_page_encode(FE_PAGE_TS_UUID, TS_KEY, out, sizeof out));
    assert_int_equal(strlen(out), 2 * strlen(TS_KEY));
    assert_null(strchr(out, '|')); /* opaque: hex */
    assert_true(fe_page_decode(FE_PAGE_TS_UUID, out, &pg));
    assert_string_equal(fe_page_after(&pg), "2026-12-02T07:45:51.123456Z");
    assert_string_equal(fe_page_after_id(&pg), UUID);
    /* upper-case hex decodes too */
    for (char *p = out; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 'a' + 'A');
    assert_true(fe_page_decode(FE_PAGE_TS_UUID, out, &pg));
    assert_string_equal(fe_page_after_id(&pg), UUID);
}

/* The hex of raw (as a client could forge it) into out. */
static void hex(const char *raw, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", (unsigned char)raw[i]);
    out[2 * n] = '\0';
}

static void test_hostile_cursors(void **state)
{
    (void)state;
    fe_page pg;
    char c[1024];
    /* too long: more than any key a server returns */
    char longkey[200];
    memset(longkey, '1', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    hex(longkey, strlen(longkey), c);
    assert_false(fe_page_decode(FE_PAGE_TS_UUID, c, &pg));
    memset(c, 'a', sizeof c - 1);
    c[sizeof c - 1] = '\0';
    assert_false(fe_page_decode(FE_PAGE_TS_UUID, c, &pg));
    assert_false(fe_page_decode(FE_PAGE_UUID, c, &pg));
    assert_false(fe_page_decode(FE_PAGE_INT, c, &pg));
    /* bad encoding: odd length, not hex, empty */
    hex(TS_KEY, strlen(TS_KEY), c);
    c[strlen(c) - 1] = '\0';
    assert_false(fe_page_decode(FE_PAGE_TS_UUID, c, &pg));
    hex(TS_KEY, strlen(TS_KEY), c);
    c[4] = 'g';
    assert_false(fe_page_decode(FE_PAGE_TS_UUID, c, &pg));
    assert_false(fe_page_decode(FE_PAGE_TS_UUID, "", &pg));
    assert_false(fe_page_decode(FE_PAGE_TS_UUID, "%41%42", &pg));
    assert_false(fe_page_decode(FE_PAGE_TS_UUID, NULL, &pg));
    /* a NUL or a control byte inside */
    char nul[sizeof TS_KEY];
    memcpy(nul, TS_KEY, sizeof TS_KEY);
    nul[27] = '\0'; /* where the bar was */
    hex(nul, sizeof TS_KEY - 1, c);
    assert_false(fe_page_decode(FE_PAGE_TS_UUID, c, &pg));
    memcpy(nul, TS_KEY, sizeof TS_KEY);
    nul[5] = '\n';
    hex(nul, sizeof TS_KEY - 1, c);
    assert_false(fe_page_decode(FE_PAGE_TS_UUID, c, &pg));
    /* bad timestamps */
    const char *bad_ts[] = {"2026-13-02T07:45:51Z",
                            "2026-02-30T07:45:51Z",
                            "2026-12-02 07:45:51Z",
                            "2026-12-02T25:00:00Z",
                            "yesterday",
                            "",
                            "2026-12-02T07:45:51+15:00"};
    for (size_t i = 0; i < sizeof bad_ts / sizeof bad_ts[0]; i++) {
        char key[128];
        snprintf(key, sizeof key, "%s|%s", bad_ts[i], UUID);
        hex(key, strlen(key), c);
        assert_false(fe_page_decode(FE_PAGE_TS_UUID, c, &pg));
        assert_false(fe_page_encode(FE_PAGE_TS_UUID, key, c, sizeof c));
    }
    /* a bad id, no bar, two bars */
    const char *bad_keys[] = {"2026-12-02T07:45:51Z|not-a-uuid", "2026-12-02T07:45:51Z",
                              "2026-12-02T07:45:51Z|01a235c1-025b-7bc6-bd4a-b342a2054283|x"};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        hex(bad_keys[i], strlen(bad_keys[i]), c);
        assert_false(fe_page_decode(FE_PAGE_TS_UUID, c, &pg));
    }
    /* a UUID with trailing bytes, or not quite a UUID */
    assert_false(fe_page_decode(FE_PAGE_UUID, "01a235c1-025b-7bc6-bd4a-b342a2054283x", &pg));
    assert_false(fe_page_decode(FE_PAGE_UUID, "01a235c1x025b-7bc6-bd4a-b342a2054283", &pg));
    assert_false(fe_page_decode(FE_PAGE_UUID, "", &pg));
}

static void test_wrong_kind(void **state)
{
    (void)state;
    fe_page pg;
    char c[FE_PAGE_CURSOR_MAX + 1];
    assert_true(fe_page_encode(FE_PAGE_TS_UUID, TS_KEY, c, sizeof c));
    assert_false(fe_page_decode(FE_PAGE_UUID, c, &pg));
    assert_false(fe_page_decode(FE_PAGE_INT, c, &pg));
    assert_false(fe_page_decode(FE_PAGE_TS_UUID, UUID, &pg));
    assert_false(fe_page_decode(FE_PAGE_INT, UUID, &pg));
    assert_false(fe_page_decode(FE_PAGE_UUID, "42", &pg));
    assert_false(fe_page_decode(FE_PAGE_TS_UUID, "42", &pg));
    /* encode refuses a key of another kind, and an output too small */
    assert_false(fe_page_encode(FE_PAGE_UUID, "42", c, sizeof c));
    assert_false(fe_page_encode(FE_PAGE_INT, UUID, c, sizeof c));
    assert_false(fe_page_encode(FE_PAGE_TS_UUID, UUID, c, sizeof c));
    assert_false(fe_page_encode(FE_PAGE_UUID, UUID, c, FV_UUID_STRLEN));
    assert_false(fe_page_encode(FE_PAGE_TS_UUID, TS_KEY, c, 2 * strlen(TS_KEY)));
}

static void test_parse(void **state)
{
    (void)state;
    fe_page pg;
    const char *bad[2], *why[2];
    assert_int_equal(fe_page_parse(&pg, FE_PAGE_UUID, NULL, NULL, bad, why), 0);
    assert_int_equal(pg.limit, FE_PAGE_DEFAULT);
    assert_string_equal(pg.limit_text, "50");
    assert_null(fe_page_after(&pg));
    assert_int_equal(fe_page_parse(&pg, FE_PAGE_UUID, UUID, "7", bad, why), 0);
    assert_string_equal(pg.limit_text, "7");
    assert_string_equal(fe_page_after(&pg), UUID);
    assert_int_equal(fe_page_parse(&pg, FE_PAGE_INT, "x", "0", bad, why), 2);
    assert_string_equal(bad[0], "after");
    assert_string_equal(why[0], FE_PAGE_CURSOR_REASON);
    assert_string_equal(bad[1], "limit");
    assert_string_equal(why[1], FE_PAGE_LIMIT_REASON);
    assert_null(fe_page_after(&pg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit),           cmocka_unit_test(test_uuid_round_trip),
        cmocka_unit_test(test_int_round_trip),  cmocka_unit_test(test_ts_uuid_round_trip),
        cmocka_unit_test(test_hostile_cursors), cmocka_unit_test(test_wrong_kind),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

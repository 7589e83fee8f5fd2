/* Unit tests of fe_etag: strong tags from an MD5, and If-None-Match by the weak comparison, from
 * the attacker's side (garbage, half tags, huge lists, a tag that is a prefix of another). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fe_etag.h"

#define MD5 "0123456789abcdef0123456789abcdef"
#define TAG "\"" MD5 "\""

static void tags_of_md5(void **st)
{
    (void)st;
    char t[FE_ETAG_MAX];
    assert_true(fe_etag_of_md5(MD5, t));
    assert_string_equal(t, TAG);
    static const char *const bad[] = {NULL,
                                      "",
                                      "0123",
                                      MD5 "0",
                                      "0123456789ABCDEF0123456789abcdef",
                                      "0123456789abcdef0123456789abcde\"",
                                      "0123456789abcdef 123456789abcdef"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(fe_etag_of_md5(bad[i], t));
        assert_string_equal(t, "");
    }
}

static void if_none_match(void **st)
{
    (void)st;
    static const char *const match[] = {
        TAG,           "W/" TAG,       " " TAG " ",           "*",      " * ",
        "\"x\", " TAG, "\"x\",W/" TAG, "\"\", " TAG ",\"y\"", ",," TAG, "\t" TAG "\t,\"z\"",
    };
    for (size_t i = 0; i < sizeof match / sizeof match[0]; i++)
        if (!fe_etag_none_match(match[i], TAG)) fail_msg("%zu: %s did not match", i, match[i]);
    static const char *const no[] = {
        NULL,
        "",
        "   ",
        MD5,
        "\"" MD5,
        MD5 "\"",
        "\"0123456789abcdef0123456789abcde\"",
        "\"0123456789abcdef0123456789abcdef0\"",
        "w/" TAG,
        "W/ " TAG,
        "*, " TAG,
        "* x",
        "\"x\" " TAG,
        "\"x\"junk, " TAG,
        "\"x",
        "W/",
        "W/\"",
        ",",
        "\"\"",
        TAG " junk",
        TAG "x",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (fe_etag_none_match(no[i], TAG)) fail_msg("%zu: %s matched", i, no[i] ? no[i] : "(null)");
    assert_false(fe_etag_none_match(TAG, NULL));
    assert_false(fe_etag_none_match(TAG, "unquoted"));
    /* a long list of other tags, ours last: found; one byte wrong at the end: not */
    size_t n = 100000;
    char *v = malloc(n * 5 + sizeof TAG + 1);
    assert_non_null(v);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) memcpy(v + o, "\"a\", ", 5), o += 5;
    memcpy(v + o, TAG, sizeof TAG);
    assert_true(fe_etag_none_match(v, TAG));
    v[o + sizeof TAG - 3] = 'g';
    assert_false(fe_etag_none_match(v, TAG));
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tags_of_md5),
        cmocka_unit_test(if_none_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

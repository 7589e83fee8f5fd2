/* Unit tests of fv_attachment: the names an attachment may have (255 bytes of UTF-8 at most, no
 * path separators, "." and "..", control characters or broken UTF-8), from the attacker's side. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fv_attachment.h"

static void names_taken(void **st)
{
    (void)st;
    char n[FV_ATTACHMENT_NAME_MAX + 1];
    memset(n, 'p', FV_ATTACHMENT_NAME_MAX);
    n[FV_ATTACHMENT_NAME_MAX] = '\0';
    static const char *const ok[] = {
        "1712345678901.jpg",
        "a",
        ".hidden",
        "x.y.z",
        "a..b",
        "..a",
        "x..jpg", /* never a path: "/" and "\\" are refused, so ".." inside is harmless */
        "a b+c%d;e=f'g(h)i~j!k$l&m,n\"q",
        "f\xc3\xaele2",
        "f\xf0\x9f\x98\x82le3\xd8\xb5\xd8\xa7\xd8\xaf\xd9\x82", /* ODK Central's fixture names */
        "\xe2\x80\xae"
        "gpj.exe", /* U+202E is a format character, not a control one */
        "\xc2\xa0nbsp",
        "\xef\xbf\xbf",
        "\xf4\x8f\xbf\xbf", /* U+00A0, U+FFFF, U+10FFFF */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (fv_attachment_name_problem(ok[i])) fail_msg("%zu: %s", i, fv_attachment_name_problem(ok[i]));
    assert_null(fv_attachment_name_problem(n)); /* exactly 255 bytes */
    /* 255 bytes of two-byte characters and one ASCII byte */
    char u[FV_ATTACHMENT_NAME_MAX + 1];
    for (int i = 0; i < 127; i++) u[2 * i] = '\xc3', u[2 * i + 1] = '\xa9';
    u[254] = 'x';
    u[255] = '\0';
    assert_null(fv_attachment_name_problem(u));
}

static void names_refused(void **st)
{
    (void)st;
    char n[FV_ATTACHMENT_NAME_MAX + 2];
    memset(n, 'p', FV_ATTACHMENT_NAME_MAX + 1);
    n[FV_ATTACHMENT_NAME_MAX + 1] = '\0';
    assert_string_equal(fv_attachment_name_problem(n), "an attachment's name is longer than 255 bytes");
    /* 256 bytes made of multi-byte characters: bytes are counted, not characters */
    char u[FV_ATTACHMENT_NAME_MAX + 2];
    for (int i = 0; i < 128; i++) u[2 * i] = '\xc3', u[2 * i + 1] = '\xa9';
    u[256] = '\0';
    assert_string_equal(fv_attachment_name_problem(u), "an attachment's name is longer than 255 bytes");
    static const struct {
        const char *name, *why;
    } bad[] = {
        {"", "empty"},
        {"..", "\"..\""},
        {".", "\".\""},
        {"a/b", "/"},
        {"/", "/"},
        {"a\\b", "/"},
        {"tab\tx", "control"},
        {"\x01", "control"},
        {"\x1f", "control"},
        {"\x7f", "control"},
        {"c1\xc2\x80", "control"},
        {"c1\xc2\x9f", "control"},
        {"\xc3\x28", "UTF-8"},         /* a lead byte without its continuation */
        {"\xc3", "UTF-8"},             /* cut at the end */
        {"\xc0\xaf", "UTF-8"},         /* overlong "/" */
        {"\xe0\x80\xaf", "UTF-8"},     /* overlong "/" in three bytes */
        {"\xed\xa0\x80", "UTF-8"},     /* a surrogate */
        {"\xf4\x90\x80\x80", "UTF-8"}, /* above U+10FFFF */
        {"\xf8\x88\x80\x80\x80", "UTF-8"},
        {"\x80", "UTF-8"},
        {"\xff\xfe.jpg", "UTF-8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = fv_attachment_name_problem(bad[i].name);
        if (!why || !strstr(why, bad[i].why)) fail_msg("%zu: %s", i, why ? why : "(taken)");
        assert_int_equal(strncmp(why, "an attachment's name ", 21), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_taken),
        cmocka_unit_test(names_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

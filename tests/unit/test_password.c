/* Unit tests of fv_password (PBKDF2-HMAC-SHA256 in Django's format) and fv_strength (zxcvbn). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "fv_password.h"
#include "fv_strength.h"

/* Made by Django itself: django/django tests/auth_tests/test_hashers.py, test_pbkdf2
 * (commit 02dbf1667c6da61ea9346f7c9f174a158b896811):
 *     make_password("lètmein", "seasalt", "pbkdf2_sha256") ==
 *     "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="
 * The password is UTF-8 ("l\xc3\xa8tmein"). */
static const char DJANGO_HASH[] =
    "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=";
static const char DJANGO_PW[] = "l\xc3\xa8tmein";

static void test_django_hash_verifies(void **st)
{
    bool rehash = true;
    assert_true(fv_password_verify(DJANGO_PW, strlen(DJANGO_PW), DJANGO_HASH, 390000, &rehash));
    assert_false(rehash);
    /* fewer iterations than configured: still verifies, asks for a rehash */
    assert_true(fv_password_verify(DJANGO_PW, strlen(DJANGO_PW), DJANGO_HASH, 600000, &rehash));
    assert_true(rehash);
    assert_false(fv_password_verify("l\xc3\xa8tmeinz", 9, DJANGO_HASH, 390000, NULL));
    assert_false(fv_password_verify("letmein", 7, DJANGO_HASH, 390000, NULL));
    assert_int_equal(fv_password_iterations(DJANGO_HASH), 390000);
}

static void test_same_text_as_django(void **st)
{
    char out[FV_PASSWORD_HASH_MAX + 1];
    assert_int_equal(fv_password_hash_salt(DJANGO_PW, strlen(DJANGO_PW), 390000, "seasalt", out), 0);
    assert_string_equal(out, DJANGO_HASH);
}

static void test_round_trip(void **st)
{
    char a[FV_PASSWORD_HASH_MAX + 1], b[FV_PASSWORD_HASH_MAX + 1];
    const char *pw = "correct horse battery staple";
    assert_int_equal(fv_password_hash(pw, strlen(pw), 1000, a), 0);
    assert_int_equal(fv_password_hash(pw, strlen(pw), 1000, b), 0);
    assert_string_not_equal(a, b); /* random salts */
    assert_memory_equal(a, "pbkdf2_sha256$1000$", 19);
    /* salt: 16 bytes as unpadded base64 = 22 characters, no '$' */
    const char *salt = a + 19, *d = strchr(salt, '$');
    assert_non_null(d);
    assert_int_equal(d - salt, 22);
    bool rehash = true;
    assert_true(fv_password_verify(pw, strlen(pw), a, 1000, &rehash));
    assert_false(rehash);
    assert_false(fv_password_verify("correct horse battery stapler", 29, a, 1000, NULL));
    assert_false(fv_password_verify("", 0, a, 1000, NULL));
}

static void test_tampered_and_malformed(void **st)
{
    char h[FV_PASSWORD_HASH_MAX + 1], t[FV_PASSWORD_HASH_MAX + 1];
    const char *pw = "pw";
    assert_int_equal(fv_password_hash(pw, 2, 500, h), 0);
    /* flip one character of the hash, of the salt, change the count */
    size_t n = strlen(h);
    strcpy(t, h);
    t[n - 3] = t[n - 3] == 'A' ? 'B' : 'A';
    assert_false(fv_password_verify(pw, 2, t, 500, NULL));
    strcpy(t, h);
    t[20] = t[20] == 'A' ? 'B' : 'A';
    assert_false(fv_password_verify(pw, 2, t, 500, NULL));
    strcpy(t, h);
    t[14] = '6'; /* 500 -> 600 */
    assert_false(fv_password_verify(pw, 2, t, 500, NULL));
    const char *bad[] = {
        "",
        "pbkdf2_sha1$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
        "pbkdf2_sha256$0$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
        "pbkdf2_sha256$10000001$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
        "pbkdf2_sha256$99999999999$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
        "pbkdf2_sha256$-5$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
        "pbkdf2_sha256$$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
        "pbkdf2_sha256$390000$$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
        "pbkdf2_sha256$390000$seasalt$",
        "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c",
        "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c==",
        "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=$",
        "pbkdf2_sha256$390000$seasalt$!xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
        "pbkdf2_sha256$390000",
        "pbkdf2_sha256$390000$seasalt",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(fv_password_verify(DJANGO_PW, strlen(DJANGO_PW), bad[i], 1, NULL));
        assert_int_equal(fv_password_iterations(bad[i]), -1);
    }
    assert_false(fv_password_verify("x", 1, NULL, 1, NULL));
    char longsalt[300];
    memset(longsalt, 'a', sizeof longsalt - 1);
    longsalt[sizeof longsalt - 1] = '\0';
    assert_int_equal(fv_password_hash_salt("x", 1, 10, longsalt, t), -1);
    assert_int_equal(fv_password_hash_salt("x", 1, 10, "a$b", t), -1);
    assert_int_equal(fv_password_hash("x", 1, 0, t), -1);
    assert_int_equal(fv_password_hash("x", 1, 10000001, t), -1);
}

static void test_strength_scores(void **st)
{
    fv_strength s;
    assert_int_equal(fv_strength_estimate("password", 8, NULL, NULL, &s), 0);
    assert_true(s.score <= 1);
    assert_true(s.warning[0] != '\0');
    assert_true(s.nsuggestions >= 1);
    assert_int_equal(fv_strength_estimate("qwertyuiop", 10, "", "", &s), 0);
    assert_true(s.score <= 1);
    const char *strong = "vivid-otter-cactus-91-lagoon";
    assert_int_equal(fv_strength_estimate(strong, strlen(strong), "a@b.org", "A B", &s), 0);
    assert_int_equal(s.score, 4);
    assert_true(s.guesses_log10 >= 10);
    assert_string_equal(s.warning, "");
    assert_int_equal(s.nsuggestions, 0);
    /* made of the user's own name and email: weak despite its length */
    const char *mine = "gwendolyn.harrington";
    assert_int_equal(fv_strength_estimate(mine, strlen(mine), "gwendolyn.harrington@example.org",
                                          "Gwendolyn Harrington", &s),
                     0);
    assert_true(s.score < 3);
    assert_non_null(strstr(s.warning, "name or email"));
    /* a very long password is evaluated on its first bytes only, and fast */
    static char lng[1025];
    memset(lng, 'a', 1024);
    assert_int_equal(fv_strength_estimate(lng, 1024, NULL, NULL, &s), 0);
    assert_true(s.score <= 2);
}

static bool has_suggestion(const fv_strength *s, const char *part)
{
    for (int i = 0; i < s->nsuggestions; i++)
        if (strstr(s->suggestions[i], part)) return true;
    return false;
}

/* Each warning names the pattern that made the password weak (zxcvbn's feedback: the longest
 * match decides), and no suggestion is about a pattern that is not there. */
static void test_strength_feedback(void **st)
{
    static const struct {
        const char *pw;
        const char *warning; /* a part of the expected warning */
        const char *hint;    /* a part of an expected suggestion, or NULL */
    } cases[] = {
        {"password1", "similar to a commonly used password", NULL},
        {"aaaaaaaa", "Repeats like \"aaa\"", "Avoid repeated"},
        {"abcabcabc", "Repeats like \"abcabcabc\"", "Avoid repeated"},
        {"qwerty", "very common password, word or name", NULL},
        {"1234567890", "Sequences like abc", "Avoid sequences"},
        {"p@ssw0rd", "similar to a commonly used password", "Predictable substitutions"},
        {"1984-04-19", "Dates are often easy to guess", "Avoid dates"},
        {"2019", "Years are easy to guess", "Avoid dates"},
        {"jennifer", "very common password, word or name", NULL},
        {"Jennifer", "very common password, word or name", "Capitalization"},
        {"PASSWORD", "very common password, word or name", "All-uppercase"},
    };
    static const char *const unrelated[] = {"Predictable substitutions",
                                            "Avoid repeated",
                                            "Avoid sequences",
                                            "Avoid dates",
                                            "keyboard",
                                            "Capitalization",
                                            "All-uppercase",
                                            "your name"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fv_strength s;
        assert_int_equal(fv_strength_estimate(cases[i].pw, strlen(cases[i].pw), "", "", &s), 0);
        assert_true(s.score < 3);
        if (!strstr(s.warning, cases[i].warning)) fail_msg("%s: warning '%s'", cases[i].pw, s.warning);
        assert_true(has_suggestion(&s, "Add another word"));
        if (cases[i].hint && !has_suggestion(&s, cases[i].hint))
            fail_msg("%s: no suggestion '%s'", cases[i].pw, cases[i].hint);
        for (size_t k = 0; k < sizeof unrelated / sizeof unrelated[0]; k++)
            if ((!cases[i].hint || strcmp(cases[i].hint, unrelated[k]) != 0) &&
                has_suggestion(&s, unrelated[k]))
                fail_msg("%s: suggestion '%s' does not match what was found", cases[i].pw, unrelated[k]);
    }
    /* the user's own name: that warning, and its suggestion */
    fv_strength s;
    assert_int_equal(fv_strength_estimate("harrington1", 11, "g.harrington@example.org",
                                          "Gwen Harrington", &s),
                     0);
    assert_non_null(strstr(s.warning, "name or email"));
    assert_true(has_suggestion(&s, "Avoid your name"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_django_hash_verifies), cmocka_unit_test(test_same_text_as_django),
        cmocka_unit_test(test_round_trip),           cmocka_unit_test(test_tampered_and_malformed),
        cmocka_unit_test(test_strength_scores),      cmocka_unit_test(test_strength_feedback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

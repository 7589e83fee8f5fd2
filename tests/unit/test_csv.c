/* Unit tests of common/fv_csv.c: quoting, UTF-8 kept as it is, and formula neutralisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "fv_csv.h"

/* The row of cells vals (n of them, NULL: empty) as a NUL-terminated string in b. */
static const char *row(fv_csv_buf *b, const char *const *vals, size_t n)
{
    fv_csv_buf_reset(b);
    for (size_t i = 0; i < n; i++)
        assert_true(fv_csv_cell(b, vals[i], vals[i] ? strlen(vals[i]) : 0, i == 0));
    assert_true(fv_csv_end_row(b));
    assert_true(fv_csv_cell(b, "", 0, true)); /* room for the NUL below */
    b->len -= 2;
    b->p[b->len] = '\0';
    return b->p;
}

static void test_quoting(void **state)
{
    (void)state;
    fv_csv_buf b = {0};
    const char *v1[] = {"plain", "with,comma", "with \"quotes\"", "line\nbreak", NULL};
    assert_string_equal(row(&b, v1, 5),
                        "\"plain\",\"with,comma\",\"with \"\"quotes\"\"\",\"line\nbreak\",\"\"\r\n");
    const char *v2[] = {"Zürich", "北京", "\xf0\x9f\x98\x80"};
    assert_string_equal(row(&b, v2, 3), "\"Zürich\",\"北京\",\"\xf0\x9f\x98\x80\"\r\n");
    fv_csv_buf_free(&b);
}

static void test_formulas_neutralised(void **state)
{
    (void)state;
    fv_csv_buf b = {0};
    const char *v[] = {"=1+1", "+cmd|' /C calc'!A0",      "-2+3", "@SUM(A1:A2)", "\t=1",
                       "\r=1", "=HYPERLINK(\"http://x\")"};
    assert_string_equal(row(&b, v, 7), "\"'=1+1\",\"'+cmd|' /C calc'!A0\",\"'-2+3\",\"'@SUM(A1:A2)\","
                                       "\"'\t=1\",\"'\r=1\",\"'=HYPERLINK(\"\"http://x\"\")\"\r\n");
    fv_csv_buf_free(&b);
}

static void test_numbers_and_inner_signs_kept(void **state)
{
    (void)state;
    fv_csv_buf b = {0};
    const char *v[] = {"-12", "-0.5", "12", "a=b", "x+1", "-", "-.5", "--1", "-1e5", "user@example.org"};
    assert_string_equal(row(&b, v, 10), "\"-12\",\"-0.5\",\"12\",\"a=b\",\"x+1\",\"'-\",\"'-.5\","
                                        "\"'--1\",\"'-1e5\",\"user@example.org\"\r\n");
    assert_false(fv_csv_needs_neutralising(NULL, 0));
    assert_false(fv_csv_needs_neutralising("", 0));
    assert_true(fv_csv_needs_neutralising("=", 1));
    fv_csv_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_formulas_neutralised),
        cmocka_unit_test(test_numbers_and_inner_signs_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

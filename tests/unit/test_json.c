/* Unit tests for common/fv_json.c: escaping, escape checks, generator round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "fv_json.h"

static const char *check(const char *s)
{
    return fv_json_check_escapes(s, strlen(s));
}

static void test_check_escapes(void **state)
{
    (void)state;
    assert_null(check("{\"a\":\"plain\"}"));
    assert_null(check("{\"a\":\"tab\\t quote\\\" slash\\\\ \\u00e9\"}"));
    assert_null(check("{\"a\":\"\\ud83d\\ude00\"}")); /* a proper surrogate pair */
    assert_null(check("{\"a\":\"\\\\u0000\"}"));      /* an escaped backslash, then text */
    assert_non_null(check("{\"a\":\"x\\u0000y\"}"));
    assert_non_null(check("{\"a\":\"\\ud800 alone\"}"));
    assert_non_null(check("{\"a\":\"\\udc00\"}"));
    assert_non_null(check("{\"a\":\"\\ud800\\u0041\"}")); /* high surrogate, then no low one */
    assert_non_null(check("{\"a\":\"\\ud800\"}"));
}

static void test_escape_output(void **state)
{
    (void)state;
    char out[64];
    size_t n = fv_json_escape("a\"b\\c\n\x01", 7, out, sizeof out);
    assert_string_equal(out, "a\\\"b\\\\c\\n\\u0001");
    assert_int_equal(n, strlen(out));
    /* truncation never splits an escape and always terminates */
    n = fv_json_escape("\"\"\"\"", 4, out, 6);
    assert_string_equal(out, "\\\"\\\"");
}

static void test_gen_tree_round_trip(void **state)
{
    (void)state;
    char err[128];
    yajl_val v = fv_json_parse("{\"a\":[1,2.5,\"x\",true,null],\"b\":{\"c\":-3}}", err, sizeof err);
    assert_non_null(v);
    fv_jgen *j = fv_jgen_new();
    fv_jgen_tree(j, v);
    assert_string_equal(fv_jgen_buf(j, NULL), "{\"a\":[1,2.5,\"x\",true,null],\"b\":{\"c\":-3}}");
    fv_jgen_free(j);
    yajl_tree_free(v);
    assert_null(fv_json_parse("{\"a\":1} trailing", err, sizeof err));
    assert_non_null(strstr(err, "trailing") ? err : strstr(err, "garbage"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_escapes),
        cmocka_unit_test(test_escape_output),
        cmocka_unit_test(test_gen_tree_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

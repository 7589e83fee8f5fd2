/* Unit tests for common/fv_json.c: escaping, escape checks, generator round trips. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The strict reader's verdict on a NUL-terminated text (and the same through fv_json_parse_n on
 * an exactly-sized copy, which must not read past its end: the sanitizer build checks). */
static fv_json_status verdict_n(const char *s, size_t len)
{
    fv_json_error e;
    fv_json_status scan = fv_json_scan(s, len, &e);
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    fv_json_error e2;
    yajl_val v = fv_json_parse_n(copy, len, &e2);
    free(copy);
    fv_json_status parsed = v ? FV_JSON_OK : e2.status;
    if (v) yajl_tree_free(v);
    /* the pre-scan and the parse agree, except that only the parse sees duplicate keys */
    if (parsed != FV_JSON_DUPLICATE_KEY) assert_int_equal(scan, parsed);
    return parsed;
}

static fv_json_status verdict(const char *s)
{
    return verdict_n(s, strlen(s));
}

/* "[...]" nested n deep (arrays) or {"a":{"a":...}} (objects); caller frees. */
static char *nested(size_t n, bool objects)
{
    char *s = malloc(n * 6 + 16);
    assert_non_null(s);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (objects) {
            memcpy(s + o, "{\"a\":", 5);
            o += 5;
        } else {
            s[o++] = '[';
        }
    }
    s[o++] = '1';
    for (size_t i = 0; i < n; i++) s[o++] = objects ? '}' : ']';
    s[o] = '\0';
    return s;
}

static void test_depth_limit(void **state)
{
    (void)state;
    for (int objects = 0; objects <= 1; objects++) {
        char *s = nested(FV_JSON_MAX_DEPTH, objects);
        assert_int_equal(verdict(s), FV_JSON_OK); /* the limit itself is accepted */
        char err[160];
        yajl_val v = fv_json_parse(s, err, sizeof err);
        assert_non_null(v);
        fv_jgen *j = fv_jgen_new(); /* and a tree at the limit can be written back */
        fv_jgen_tree(j, v);
        assert_string_equal(fv_jgen_buf(j, NULL), s);
        fv_jgen_free(j);
        yajl_tree_free(v);
        free(s);
        s = nested(FV_JSON_MAX_DEPTH + 1, objects);
        assert_int_equal(verdict(s), FV_JSON_DEPTH);
        free(s);
    }
    /* 100,000 levels (the crash: yajl_tree_free recursed that deep): refused where the 65th
     * level opens, before anything is allocated, so it costs 65 bytes of reading. */
    char *s = nested(100000, false);
    fv_json_error e;
    assert_int_equal(fv_json_scan(s, strlen(s), &e), FV_JSON_DEPTH);
    assert_int_equal(e.offset, FV_JSON_MAX_DEPTH);
    assert_non_null(strstr(e.msg, "64"));
    char err[160];
    assert_null(fv_json_parse(s, err, sizeof err));
    free(s);
    /* Depth counts arrays and objects together; closing brings it back down. */
    char *wide = malloc(200 * (FV_JSON_MAX_DEPTH * 2 + 1) + 3);
    size_t o = 0;
    wide[o++] = '[';
    for (int k = 0; k < 200; k++) {
        if (k) wide[o++] = ',';
        for (int i = 0; i < FV_JSON_MAX_DEPTH - 1; i++) wide[o++] = '[';
        for (int i = 0; i < FV_JSON_MAX_DEPTH - 1; i++) wide[o++] = ']';
    }
    wide[o++] = ']';
    wide[o] = '\0';
    assert_int_equal(verdict(wide), FV_JSON_OK);
    free(wide);
}

static void test_utf8(void **state)
{
    (void)state;
    /* the sequences yajl let through, which PostgreSQL refuses: overlong '/', overlong NUL,
     * a surrogate (U+D800), beyond U+10FFFF (U+110000) */
    assert_int_equal(verdict("{\"a\":\"a\xc0\xaf"
                             "b\"}"),
                     FV_JSON_UTF8);
    assert_int_equal(verdict("{\"a\":\"\xc0\x80\"}"), FV_JSON_UTF8);
    assert_int_equal(verdict("{\"a\":\"\xed\xa0\x80\"}"), FV_JSON_UTF8);
    assert_int_equal(verdict("{\"a\":\"\xf4\x90\x80\x80\"}"), FV_JSON_UTF8);
    /* more of the same class */
    const char *bad[] = {
        "\xc1\xbf",         /* overlong 2-byte */
        "\xe0\x80\xaf",     /* overlong 3-byte */
        "\xe0\x9f\xbf",     /* overlong 3-byte, the largest */
        "\xf0\x80\x80\xaf", /* overlong 4-byte */
        "\xf0\x8f\xbf\xbf", /* overlong 4-byte, the largest */
        "\xed\xbf\xbf",     /* U+DFFF */
        "\xf5\x80\x80\x80", /* beyond */
        "\xf8\x88\x80\x80\x80",
        "\xfe",
        "\xff",
        "\x80",
        "\xbf",         /* never a first byte */
        "\xc3",         /* truncated at the quote */
        "\xe2\x82",     /* truncated */
        "\xf0\x9f\x98", /* truncated */
        "\xc3\x28",     /* a bad continuation */
        "\xe2\x28\xa1",
        "\xf0\x9f\x28\x80",
    };
    char buf[64];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(buf, sizeof buf, "[\"%s\"]", bad[i]);
        if (verdict(buf) != FV_JSON_UTF8) fail_msg("accepted or misjudged #%zu", i);
        /* in a key too */
        snprintf(buf, sizeof buf, "{\"%s\":1}", bad[i]);
        if (verdict(buf) != FV_JSON_UTF8) fail_msg("accepted or misjudged key #%zu", i);
    }
    /* outside a string, any non-ASCII byte is refused: as bad UTF-8 or as bad JSON */
    assert_int_equal(verdict("[1,\xc0\xaf]"), FV_JSON_UTF8);
    assert_int_equal(verdict("[1,\xc3\xa9]"), FV_JSON_SYNTAX);
    assert_int_equal(verdict("\xef\xbb\xbf{}"), FV_JSON_SYNTAX); /* a BOM is no JSON */
    const char *good[] = {
        "\xc2\x80",         /* U+0080 */
        "\xc3\xa9",         /* é */
        "\xdf\xbf",         /* U+07FF */
        "\xe0\xa0\x80",     /* U+0800 */
        "\xe2\x82\xac",     /* € */
        "\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",     /* U+E000, just above */
        "\xef\xbf\xbf",     /* U+FFFF (a noncharacter, still UTF-8) */
        "\xf0\x90\x80\x80", /* U+10000 */
        "\xf0\x9f\x98\x80", /* 😀 */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF */
        "\x7f",             /* DEL */
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        snprintf(buf, sizeof buf, "{\"k%s\":\"a%sb\"}", good[i], good[i]);
        if (verdict(buf) != FV_JSON_OK) fail_msg("refused #%zu", i);
    }
}

static void test_escapes_and_controls(void **state)
{
    (void)state;
    assert_int_equal(verdict("[\"x\\u0000y\"]"), FV_JSON_CHARACTER);
    assert_int_equal(verdict("{\"\\u0000\":1}"), FV_JSON_CHARACTER);
    assert_int_equal(verdict("[\"\\ud800\"]"), FV_JSON_CHARACTER);
    assert_int_equal(verdict("[\"\\udfff\"]"), FV_JSON_CHARACTER);
    assert_int_equal(verdict("[\"\\ud800\\u0041\"]"), FV_JSON_CHARACTER);
    assert_int_equal(verdict("[\"\\ud83d\\ude00 \\u00e9 \\uFFFF \\\\u0000 \\/\\b\\f\\n\\r\\t\\\"\"]"),
                     FV_JSON_OK);
    assert_int_equal(verdict("[\"\\x41\"]"), FV_JSON_SYNTAX);
    assert_int_equal(verdict("[\"\\u12\"]"), FV_JSON_SYNTAX);
    assert_int_equal(verdict("[\"\\u12G4\"]"), FV_JSON_SYNTAX);
    assert_int_equal(verdict("[\"a\tb\"]"), FV_JSON_SYNTAX); /* a raw tab in a string */
    assert_int_equal(verdict("[\"a\nb\"]"), FV_JSON_SYNTAX);
    assert_int_equal(verdict_n("[\"a\0b\"]", 7), FV_JSON_SYNTAX); /* a raw NUL */
    assert_int_equal(verdict_n("{}\0", 3), FV_JSON_SYNTAX);
    assert_int_equal(verdict("[\"abc"), FV_JSON_SYNTAX);
    assert_int_equal(verdict("[\"abc\\"), FV_JSON_SYNTAX);
}

static void test_grammar(void **state)
{
    (void)state;
    const char *bad[] = {
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{,}", "[,1]", "{\"a\"}", "{\"a\":}", "{1:2}",
        "{'a':1}", "[01]", "[1.]", "[.5]", "[-]", "[1e]", "[1e+]", "[+1]", "[0x10]", "[NaN]",
        "[Infinity]", "[-Infinity]", "[tru]", "[nul]", "[True]", "{}{}", "{} x", "[1 2]",
        "[\"a\" \"b\"]", "{\"a\" 1}",
        /* yajl_tree_parse allows comments; JSON has none */
        "/* c */{}", "{}// c", "{\"a\":1 /* c */}", "[1,// c\n2]", "{\"a\"/**/:1}", "\f{}", "\v{}",
        "{}\xc2\xa0", /* only space, tab, CR, LF are blanks */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (verdict(bad[i]) == FV_JSON_OK) fail_msg("accepted %s", bad[i]);
    const char *good[] = {
        "{}",
        "[]",
        "1",
        "-0",
        "\"s\"",
        "true",
        "false",
        "null",
        " \t\r\n{ \"a\" : [ 1 , 2 ] }\n ",
        "[0,-1,1.5,-1.5e3,1E+2,1e-2,0.0,123456789012345678901234567890]",
        "{\"\":\"\"}",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (verdict(good[i]) != FV_JSON_OK) fail_msg("refused %s", good[i]);
    char err[160];
    assert_null(fv_json_parse("/* c */{}", err, sizeof err));
    assert_non_null(strstr(err, "comment"));
}

/* "[<s>]" through the reader. */
static fv_json_status number(const char *s)
{
    size_t n = strlen(s);
    char *t = malloc(n + 3);
    assert_non_null(t);
    t[0] = '[';
    memcpy(t + 1, s, n);
    t[n + 1] = ']';
    t[n + 2] = '\0';
    fv_json_status st = verdict(t);
    free(t);
    return st;
}

/* c repeated n times, then tail; caller frees. */
static char *rep(const char *head, char c, size_t n, const char *tail)
{
    size_t h = strlen(head), t = strlen(tail);
    char *s = malloc(h + n + t + 1);
    assert_non_null(s);
    memcpy(s, head, h);
    memset(s + h, c, n);
    memcpy(s + h + n, tail, t + 1);
    return s;
}

static void test_numbers(void **state)
{
    (void)state;
    /* The edges PostgreSQL 15's numeric holds (checked against it: test_stored_inputs.py). */
    const char *good[] = {"1e131071",         "-1e131071",   "1e-16383",   "0e999999",
                          "0e-16383",         "1.5e-16382",  "0.1e-16382", "0.00001e131076",
                          "123456789e131063", "9.99e131071", "-0",         "1E+2",
                          "0e1073741822"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (number(good[i]) != FV_JSON_OK) fail_msg("refused %s", good[i]);
    const char *bad[] = {"1e131072",
                         "1e999999",
                         "1e-999999",
                         "1e-16384",
                         "0e-16384",
                         "12345e-16387",
                         "1.5e-16383",
                         "10e131071",
                         "0e1073741823",
                         "0e-99999999999999999999",
                         "1e99999999999999999999",
                         "-1e131072"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (number(bad[i]) != FV_JSON_NUMBER) fail_msg("not refused as a number: %s", bad[i]);
    char *s = rep("", '9', FV_JSON_MAX_INT_DIGITS, "");
    assert_int_equal(number(s), FV_JSON_OK);
    free(s);
    s = rep("", '9', FV_JSON_MAX_INT_DIGITS + 1, "");
    assert_int_equal(number(s), FV_JSON_NUMBER);
    free(s);
    s = rep("1", '0', 200000 - 1, ""); /* 200,000 digits */
    assert_int_equal(number(s), FV_JSON_NUMBER);
    free(s);
    s = rep("0.", '0', FV_JSON_MAX_FRAC_DIGITS, "");
    assert_int_equal(number(s), FV_JSON_OK);
    free(s);
    s = rep("0.", '0', FV_JSON_MAX_FRAC_DIGITS + 1, "");
    assert_int_equal(number(s), FV_JSON_NUMBER);
    free(s);
    s = rep("0.", '0', FV_JSON_MAX_FRAC_DIGITS, "1e5"); /* 16384 digits after the point, then * 10^5 */
    assert_int_equal(number(s), FV_JSON_OK);
    free(s);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    assert_int_equal(verdict("{\"a\":1,\"a\":2}"), FV_JSON_DUPLICATE_KEY);
    assert_int_equal(verdict("{\"a\":1,\"\\u0061\":2}"), FV_JSON_DUPLICATE_KEY); /* the same key */
    assert_int_equal(verdict("{\"d\":{\"g\":{\"lat\":1,\"lat\":99}}}"), FV_JSON_DUPLICATE_KEY);
    assert_int_equal(verdict("[{},{\"x\":[{\"k\":1,\"j\":2,\"k\":3}]}]"), FV_JSON_DUPLICATE_KEY);
    assert_int_equal(verdict("{\"a\":1,\"A\":2,\"a \":3,\"\":4}"), FV_JSON_OK);
    /* a wide object goes through the sorted path */
    size_t n = 20000;
    char *s = malloc(n * 16 + 16);
    assert_non_null(s);
    size_t o = 0;
    s[o++] = '{';
    for (size_t i = 0; i < n; i++) o += (size_t)sprintf(s + o, "%s\"k%zu\":%zu", i ? "," : "", i, i);
    s[o++] = '}';
    s[o] = '\0';
    assert_int_equal(verdict(s), FV_JSON_OK);
    o--;
    o += (size_t)sprintf(s + o, ",\"k%zu\":0}", n / 2);
    assert_int_equal(verdict(s), FV_JSON_DUPLICATE_KEY);
    char err[160];
    assert_null(fv_json_parse(s, err, sizeof err));
    assert_non_null(strstr(err, "\"k10000\" twice"));
    free(s);
    /* a long key named in the message is cut at a character boundary: the message stays UTF-8 */
    char key[200] = "", doc[500];
    for (int i = 0; i < 60; i++) strcat(key, "\xc3\xa9");
    snprintf(doc, sizeof doc, "{\"%s\":1,\"%s\":2}", key, key);
    assert_null(fv_json_parse(doc, err, sizeof err));
    assert_non_null(strstr(err, "\xc3\xa9\" twice"));
    char quoted[400];
    quoted[0] = '"';
    size_t qn = fv_json_escape(err, strlen(err), quoted + 1, sizeof quoted - 2);
    quoted[qn + 1] = '"';
    quoted[qn + 2] = '\0';
    assert_int_equal(fv_json_scan(quoted, strlen(quoted), NULL), FV_JSON_OK);
}

static void test_jgen_failures(void **state)
{
    (void)state;
    /* a NaN: yajl refuses it and would go on to write {"a":} */
    fv_jgen *j = fv_jgen_new();
    fv_jgen_map_open(j);
    fv_jgen_key(j, "a");
    fv_jgen_double(j, NAN);
    fv_jgen_key(j, "b");
    fv_jgen_int(j, 1);
    fv_jgen_map_close(j);
    assert_false(fv_jgen_ok(j));
    size_t len = 99;
    assert_null(fv_jgen_buf(j, &len));
    assert_int_equal(len, 0);
    assert_non_null(strstr(fv_jgen_error(j), "NaN"));
    fv_jgen_free(j);
    /* a key that is not a string */
    j = fv_jgen_new();
    fv_jgen_map_open(j);
    fv_jgen_int(j, 1);
    fv_jgen_map_close(j);
    assert_null(fv_jgen_buf(j, NULL));
    fv_jgen_free(j);
    /* a container left open */
    j = fv_jgen_new();
    fv_jgen_array_open(j);
    fv_jgen_int(j, 1);
    assert_true(fv_jgen_ok(j));
    assert_null(fv_jgen_buf(j, NULL));
    fv_jgen_array_close(j);
    assert_string_equal(fv_jgen_buf(j, NULL), "[1]");
    /* a second value after a complete one */
    fv_jgen_int(j, 2);
    assert_null(fv_jgen_buf(j, NULL));
    fv_jgen_free(j);
    /* yajl's own depth limit (128): the result was invalid JSON before */
    j = fv_jgen_new();
    for (int i = 0; i < 200; i++) fv_jgen_array_open(j);
    for (int i = 0; i < 200; i++) fv_jgen_array_close(j);
    assert_null(fv_jgen_buf(j, NULL));
    assert_non_null(strstr(fv_jgen_error(j), "deep"));
    fv_jgen_free(j);
    /* nothing generated is no JSON text either */
    j = fv_jgen_new();
    assert_null(fv_jgen_buf(j, NULL));
    fv_jgen_free(j);
}

/* A tree made by hand, deeper than the reader would ever build: written, it fails the generator
 * instead of recursing (fv_jgen_tree) without bound. */
static void test_jgen_tree_bounded(void **state)
{
    (void)state;
    char err[64];
    yajl_val root = yajl_tree_parse("[1]", err, sizeof err);
    assert_non_null(root);
    yajl_val cur = root;
    for (int i = 0; i < 1000; i++) { /* cur's only element becomes another array */
        yajl_val inner = yajl_tree_parse("[1]", err, sizeof err);
        assert_non_null(inner);
        yajl_tree_free(cur->u.array.values[0]);
        cur->u.array.values[0] = inner;
        cur = inner;
    }
    fv_jgen *j = fv_jgen_new();
    fv_jgen_tree(j, root);
    assert_false(fv_jgen_ok(j));
    assert_null(fv_jgen_buf(j, NULL));
    fv_jgen_free(j);
    assert_null(fv_json_text(root));
    /* freed level by level from the top: yajl_tree_free would recurse 1000 deep */
    while (root) {
        yajl_val next = root->u.array.values[0];
        bool more = YAJL_IS_ARRAY(next);
        root->u.array.len = more ? 0 : 1; /* the innermost goes with its number */
        yajl_tree_free(root);
        root = more ? next : NULL;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_escapes),
        cmocka_unit_test(test_escape_output),
        cmocka_unit_test(test_gen_tree_round_trip),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_escapes_and_controls),
        cmocka_unit_test(test_grammar),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_jgen_failures),
        cmocka_unit_test(test_jgen_tree_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

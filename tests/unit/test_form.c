/* Unit tests of fv_form: compiling definitions and validating answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fv_form.h"
#include "fv_json.h"

/* Parses text or fails the test. Caller frees with yajl_tree_free. */
static yajl_val parse(const char *text)
{
    char err[256];
    yajl_val v = fv_json_parse(text, err, sizeof err);
    if (v == NULL) fail_msg("bad JSON in test: %s: %s", err, text);
    return v;
}

/* Compiles a definition given as JSON text; errors go to errs. Caller frees the form. */
static fv_form *compile_text(const char *text, fv_form_errors *errs)
{
    yajl_val d = parse(text);
    fv_form *f = fv_form_compile(d, errs);
    yajl_tree_free(d); /* the form must not point into the tree */
    return f;
}

/* Compiles a definition that must be valid. */
static fv_form *compile_ok(const char *text)
{
    fv_form_errors e;
    fv_form_errors_init(&e);
    fv_form *f = compile_text(text, &e);
    if (f == NULL)
        fail_msg("definition refused: %s: %s", e.n ? e.items[0].field : "?",
                 e.n ? e.items[0].reason : "?");
    assert_int_equal(e.n, 0);
    fv_form_errors_free(&e);
    return f;
}

/* Compiles a definition that must be refused with exactly one error; returns its reason in
 * reason (copied) and its field in field. */
static void compile_bad1(const char *text, const char *field, const char *reason)
{
    fv_form_errors e;
    fv_form_errors_init(&e);
    fv_form *f = compile_text(text, &e);
    if (f != NULL) fail_msg("definition accepted: %s", text);
    if (e.n != 1) fail_msg("%zu errors for %s", e.n, text);
    assert_string_equal(e.items[0].field, field);
    if (reason) assert_string_equal(e.items[0].reason, reason);
    fv_form_errors_free(&e);
}

/* Validates data (JSON text) against f; returns the error count, errors in e. */
static size_t check(const fv_form *f, const char *data, fv_form_errors *e)
{
    yajl_val d = parse(data);
    size_t had = e->n;
    size_t n = fv_form_validate(f, d, e);
    yajl_tree_free(d);
    assert_int_equal(n, e->n - had);
    assert_int_equal(e->dropped, 0);
    return n;
}

/* check() on a tree with duplicate keys, which the strict reader refuses (fv_json.h) before any
 * validator sees it: built by yajl directly, to show the validator copes with one anyway. */
static size_t check_dups(const fv_form *f, const char *data, fv_form_errors *e)
{
    char err[256];
    assert_null(fv_json_parse(data, err, sizeof err));
    assert_non_null(strstr(err, "twice"));
    yajl_val d = yajl_tree_parse(data, err, sizeof err);
    assert_non_null(d);
    size_t n = fv_form_validate(f, d, e);
    yajl_tree_free(d);
    return n;
}

/* Asserts that {"<q>": <value>} validates. */
static void accept(const fv_form *f, const char *q, const char *value)
{
    char buf[1024];
    fv_form_errors e;
    fv_form_errors_init(&e);
    snprintf(buf, sizeof buf, "{\"%s\": %s}", q, value);
    if (check(f, buf, &e) != 0) fail_msg("%s refused: %s", buf, e.items[0].reason);
    fv_form_errors_free(&e);
}

/* Asserts that {"<q>": <value>} gives exactly one error, on q, with reason (if not NULL). */
static void reject(const fv_form *f, const char *q, const char *value, const char *reason)
{
    char buf[1024];
    fv_form_errors e;
    fv_form_errors_init(&e);
    snprintf(buf, sizeof buf, "{\"%s\": %s}", q, value);
    if (check(f, buf, &e) != 1) fail_msg("%s: %zu errors, expected 1", buf, e.n);
    assert_string_equal(e.items[0].field, q);
    if (reason && strcmp(e.items[0].reason, reason) != 0)
        fail_msg("%s: reason \"%s\", expected \"%s\"", buf, e.items[0].reason, reason);
    fv_form_errors_free(&e);
}

/* ---- compile --------------------------------------------------------------------------------- */

static void test_compile_ok_and_accessors(void **state)
{
    (void)state;
    fv_form *f = compile_ok(
        "{\"questions\":["
        "{\"name\":\"full_name\",\"type\":\"text\",\"label\":\"Name\",\"required\":true,"
        " \"confidential\":true, \"hint\":\"unknown keys are fine\"},"
        "{\"name\":\"colour\",\"type\":\"select_one\",\"choices\":[\"red\",{\"name\":\"blue\"}]},"
        "{\"name\":\"intro\",\"type\":\"note\",\"label\":null,\"constraint\":null},"
        "{\"name\":\"_x9\",\"type\":\"geopoint\"}]}");
    assert_int_equal(fv_form_question_count(f), 4);
    assert_int_equal(fv_form_find(f, "full_name"), 0);
    assert_int_equal(fv_form_find(f, "intro"), 2);
    assert_int_equal(fv_form_find(f, "_x9"), 3);
    assert_int_equal(fv_form_find(f, "nope"), -1);
    assert_string_equal(fv_form_question_name(f, 1), "colour");
    assert_null(fv_form_question_name(f, 4));
    assert_true(fv_form_question_confidential(f, 0));
    assert_false(fv_form_question_confidential(f, 1));
    fv_form_errors e;
    fv_form_errors_init(&e);
    assert_int_equal(check(f, "{\"full_name\":\"Ann\",\"colour\":\"blue\"}", &e), 0);
    assert_int_equal(check(f, "{\"colour\":\"red\"}", &e), 1); /* required was read */
    assert_string_equal(fv_form_errors_get(&e, "full_name"), "required");
    fv_form_errors_free(&e);
    fv_form_free(f);
}

static void test_compile_errors_all_at_once(void **state)
{
    (void)state;
    fv_form_errors e;
    fv_form_errors_init(&e);
    fv_form *f = compile_text(
        "{\"questions\":["
        "{\"name\":\"a\",\"type\":\"text\",\"constraint\":{\"pattern\":\"x+\"}},"  /* 0 ok */
        "{\"name\":\"a\",\"type\":\"integer\"},"                                   /* 1 dup */
        "{\"name\":\"b\",\"type\":\"colour\"},"                                    /* 2 type */
        "{\"name\":\"c\",\"type\":\"select_one\"},"                                /* 3 choices */
        "{\"name\":\"d\",\"type\":\"text\",\"constraint\":{\"pattern\":\"a(b\"}}," /* 4 regex */
        /* 5: min > max */
        "{\"name\":\"e\",\"type\":\"integer\",\"constraint\":{\"min\":5,\"max\":4}},"
        "{\"type\":\"text\"},"                                    /* 6 no name */
        "{\"name\":\"1x\",\"type\":\"text\"},"                    /* 7 bad name */
        "{\"name\":\"g\",\"type\":\"text\",\"required\":\"yes\"}" /* 8 bool */
        "]}",
        &e);
    assert_null(f);
    assert_int_equal(e.n, 8);
    assert_string_equal(fv_form_errors_get(&e, "questions[1]"), "duplicate name");
    assert_null(fv_form_errors_get(&e, "a")); /* the first "a" is fine */
    assert_string_equal(fv_form_errors_get(&e, "b"), "unknown type");
    assert_string_equal(fv_form_errors_get(&e, "c"), "choices are required");
    assert_string_equal(fv_form_errors_get(&e, "d"), "invalid pattern");
    assert_string_equal(fv_form_errors_get(&e, "e"), "constraint min is greater than max");
    assert_string_equal(fv_form_errors_get(&e, "questions[6]"), "name is required");
    assert_non_null(fv_form_errors_get(&e, "questions[7]"));
    assert_string_equal(fv_form_errors_get(&e, "g"), "required must be true or false");
    /* in definition order */
    assert_string_equal(e.items[0].field, "questions[1]");
    assert_string_equal(e.items[7].field, "g");
    fv_form_errors_free(&e);
    assert_int_equal(e.n, 0);
    assert_null(e.items);
}

static void test_compile_duplicate_with_other_error(void **state)
{
    (void)state;
    /* Both "a" are bad: the second must not reuse the field "a" (fields are unique). */
    fv_form_errors e;
    fv_form_errors_init(&e);
    fv_form *f = compile_text("{\"questions\":[{\"name\":\"a\",\"type\":\"x\"},"
                              "{\"name\":\"a\",\"type\":\"y\"},"
                              "{\"name\":\"a\",\"type\":\"text\"}]}",
                              &e);
    assert_null(f);
    assert_int_equal(e.n, 3);
    assert_string_equal(fv_form_errors_get(&e, "a"), "unknown type");
    assert_string_equal(fv_form_errors_get(&e, "questions[1]"), "unknown type");
    assert_string_equal(fv_form_errors_get(&e, "questions[2]"), "duplicate name");
    fv_form_errors_free(&e);
}

static void test_compile_top_level(void **state)
{
    (void)state;
    compile_bad1("[]", "", "definition must be an object");
    compile_bad1("{}", "questions", "must be a non-empty list");
    compile_bad1("{\"questions\":[]}", "questions", "must be a non-empty list");
    compile_bad1("{\"questions\":{}}", "questions", "must be a non-empty list");
    compile_bad1("{\"questions\":[1]}", "questions[0]", "expected an object");

    /* The cap: FV_FORM_MAX_QUESTIONS compiles, one more does not. */
    size_t cap = (size_t)(FV_FORM_MAX_QUESTIONS + 1) * 40 + 32;
    char *big = malloc(cap);
    assert_non_null(big);
    for (int extra = 0; extra <= 1; extra++) {
        size_t o = (size_t)snprintf(big, cap, "{\"questions\":[");
        for (int i = 0; i < FV_FORM_MAX_QUESTIONS + extra; i++)
            o += (size_t)snprintf(big + o, cap - o, "%s{\"name\":\"q%d\",\"type\":\"text\"}",
                                  i ? "," : "", i);
        snprintf(big + o, cap - o, "]}");
        if (extra == 0) {
            fv_form *f = compile_ok(big);
            assert_int_equal(fv_form_question_count(f), FV_FORM_MAX_QUESTIONS);
            assert_int_equal(fv_form_find(f, "q1999"), 1999);
            fv_form_free(f);
        } else {
            compile_bad1(big, "questions", NULL);
        }
    }
    free(big);
}

/* Confidential mode's survey-level keys (migration 024): a boolean flag and a radius in range. */
static void test_compile_confidential_mode(void **state)
{
    (void)state;
#define QS "\"questions\":[{\"name\":\"a\",\"type\":\"geopoint\"}]"
    fv_form_free(compile_ok("{\"confidential_mode\":true,\"confidential_gps_radius_m\":250," QS "}"));
    fv_form_free(
        compile_ok("{\"confidential_mode\":false,\"confidential_gps_radius_m\":100000," QS "}"));
    fv_form_free(compile_ok("{\"confidential_gps_radius_m\":1," QS "}"));
    fv_form_free(compile_ok("{\"confidential_gps_radius_m\":null," QS "}"));
    compile_bad1("{\"confidential_mode\":1," QS "}", "confidential_mode", "must be true or false");
    compile_bad1("{\"confidential_mode\":\"true\"," QS "}", "confidential_mode", NULL);
    compile_bad1("{\"confidential_gps_radius_m\":0," QS "}", "confidential_gps_radius_m", NULL);
    compile_bad1("{\"confidential_gps_radius_m\":0.5," QS "}", "confidential_gps_radius_m", NULL);
    compile_bad1("{\"confidential_gps_radius_m\":100000.5," QS "}", "confidential_gps_radius_m", NULL);
    compile_bad1("{\"confidential_gps_radius_m\":-5," QS "}", "confidential_gps_radius_m", NULL);
    compile_bad1("{\"confidential_gps_radius_m\":1e400," QS "}", "confidential_gps_radius_m", NULL);
    compile_bad1("{\"confidential_gps_radius_m\":\"1000\"," QS "}", "confidential_gps_radius_m", NULL);
    /* both at once, with a bad question: every error reported */
    fv_form_errors e;
    fv_form_errors_init(&e);
    assert_null(compile_text("{\"confidential_mode\":[],\"confidential_gps_radius_m\":{},"
                             "\"questions\":[{\"name\":\"a\"}]}",
                             &e));
    assert_non_null(fv_form_errors_get(&e, "confidential_mode"));
    assert_non_null(fv_form_errors_get(&e, "confidential_gps_radius_m"));
    assert_non_null(fv_form_errors_get(&e, "a"));
    fv_form_errors_free(&e);
#undef QS
}

static void test_compile_question_checks(void **state)
{
    (void)state;
#define Q(body) "{\"questions\":[" body "]}"
    /* names */
    compile_bad1(Q("{\"name\":\"a-b\",\"type\":\"text\"}"), "questions[0]", NULL);
    compile_bad1(Q("{\"name\":\"\",\"type\":\"text\"}"), "questions[0]", NULL);
    compile_bad1(Q("{\"name\":5,\"type\":\"text\"}"), "questions[0]", NULL);
    compile_bad1(Q("{\"name\":\"a\"}"), "a", "type is required");
    char def[512];
    const char *n64 = "a123456789012345678901234567890123456789012345678901234567890123";
    assert_int_equal(strlen(n64), 64);
    snprintf(def, sizeof def, Q("{\"name\":\"%s\",\"type\":\"text\"}"), n64);
    fv_form_free(compile_ok(def));
    snprintf(def, sizeof def, Q("{\"name\":\"%sx\",\"type\":\"text\"}"), n64);
    compile_bad1(def, "questions[0]", NULL);
    /* booleans and label */
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"text\",\"confidential\":1}"), "a",
                 "confidential must be true or false");
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"text\",\"label\":[]}"), "a", "label must be a string");
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"note\",\"required\":true}"), "a", NULL);
    /* choices */
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"select_multiple\",\"choices\":[]}"), "a",
                 "choices must be a non-empty list");
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"select_one\",\"choices\":[\"x\",{\"name\":\"x\"}]}"), "a",
                 "duplicate choice");
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"select_one\","
                   "\"choices\":[\"x\",{\"label\":\"y\"}]}"),
                 "a", "invalid choice");
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"select_one\",\"choices\":[\"x\",3]}"), "a",
                 "invalid choice");
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"text\",\"choices\":[\"x\"]}"), "a",
                 "choices are only for select questions");
    /* constraints */
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"text\",\"constraint\":[]}"), "a",
                 "constraint must be an object");
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"integer\",\"constraint\":{\"min\":\"1\"}}"), "a",
                 "constraint min must be a number");
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"decimal\",\"constraint\":{\"max\":1e400}}"), "a",
                 "constraint max must be a number");
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"text\",\"constraint\":{\"min\":-1}}"), "a",
                 "constraint min must be a non-negative integer");
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"text\",\"constraint\":{\"max\":2.5}}"), "a",
                 "constraint max must be a non-negative integer");
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"date\",\"constraint\":{\"min\":1}}"), "a", NULL);
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"integer\",\"constraint\":{\"pattern\":\"x\"}}"), "a",
                 "constraint pattern is only for text questions");
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"text\",\"constraint\":{\"pattern\":1}}"), "a",
                 "constraint pattern must be a string");
    /* back-references can make matching exponential: refused; an escaped backslash is fine */
    compile_bad1(Q("{\"name\":\"a\",\"type\":\"text\",\"constraint\":{\"pattern\":\"(a*)*\\\\1\"}}"),
                 "a", "back-references are not allowed in a pattern");
    fv_form_free(
        compile_ok(Q("{\"name\":\"a\",\"type\":\"text\",\"constraint\":{\"pattern\":\"a\\\\\\\\1\"}}")));
    /* equal bounds are fine, unknown constraint keys too */
    fv_form_free(compile_ok(Q("{\"name\":\"a\",\"type\":\"decimal\","
                              "\"constraint\":{\"min\":1.5,\"max\":1.5,\"step\":1}}")));
#undef Q
}

/* ---- validate -------------------------------------------------------------------------------- */

static void test_validate_data_not_object(void **state)
{
    (void)state;
    fv_form *f = compile_ok("{\"questions\":[{\"name\":\"a\",\"type\":\"text\",\"required\":true}]}");
    fv_form_errors e;
    fv_form_errors_init(&e);
    assert_int_equal(check(f, "[1]", &e), 1);
    assert_string_equal(e.items[0].field, "");
    fv_form_errors_free(&e);
    assert_int_equal(fv_form_validate(f, NULL, &e), 1);
    fv_form_errors_free(&e);
    fv_form_free(f);
}

static void test_validate_text(void **state)
{
    (void)state;
    fv_form *f = compile_ok(
        "{\"questions\":["
        "{\"name\":\"t\",\"type\":\"text\"},"
        "{\"name\":\"len\",\"type\":\"text\",\"constraint\":{\"min\":3,\"max\":4}},"
        "{\"name\":\"code\",\"type\":\"text\",\"constraint\":{\"pattern\":\"[A-Z][0-9]+\"}},"
        "{\"name\":\"alt\",\"type\":\"text\",\"constraint\":{\"pattern\":\"a|ab\"}}]}");
    accept(f, "t", "\"anything\"");
    reject(f, "t", "5", "expected text");
    reject(f, "t", "true", "expected text");
    reject(f, "t", "[\"x\"]", "expected text");
    /* lengths count characters, not bytes: "\u00e9" is 2 bytes, 1 character */
    accept(f, "len", "\"abc\"");
    accept(f, "len", "\"\u00e9\u00e9\u00e9\"");
    accept(f, "len", "\"\u00e9\u00e9\u00e9\u00e9\"");
    accept(f, "len", "\"\\u00e9\\u00e9\\u00e9\\u00e9\"");
    reject(f, "len", "\"ab\"", "must be at least 3 characters");
    reject(f, "len", "\"\u00e9\u00e9\"", "must be at least 3 characters");
    reject(f, "len", "\"abcde\"", "must be at most 4 characters");
    reject(f, "len", "\"\u00e9\u00e9\u00e9\u00e9\u00e9\"", "must be at most 4 characters");
    /* the pattern must match the whole string */
    accept(f, "code", "\"A123\"");
    reject(f, "code", "\"A12b\"", "does not match pattern");
    reject(f, "code", "\"xA12\"", "does not match pattern");
    reject(f, "code", "\"a12\"", "does not match pattern");
    accept(f, "alt", "\"ab\"");
    accept(f, "alt", "\"a\"");
    reject(f, "alt", "\"abb\"", "does not match pattern");
    fv_form_free(f);
}

static void test_validate_integer(void **state)
{
    (void)state;
    fv_form *f = compile_ok(
        "{\"questions\":["
        "{\"name\":\"i\",\"type\":\"integer\"},"
        "{\"name\":\"r\",\"type\":\"integer\",\"constraint\":{\"min\":1,\"max\":10}},"
        "{\"name\":\"h\",\"type\":\"integer\",\"constraint\":{\"min\":1.5,\"max\":3.5}}]}");
    accept(f, "i", "0");
    accept(f, "i", "-0");
    accept(f, "i", "-42");
    accept(f, "i", "1.0");   /* integral value */
    accept(f, "i", "1.5e1"); /* 15 */
    accept(f, "i", "100e-2");
    accept(f, "i", "9223372036854775807");
    accept(f, "i", "-9223372036854775808");
    reject(f, "i", "1.5", "expected integer");
    reject(f, "i", "15e-1", "expected integer");
    reject(f, "i", "1.0000000000000000000001", "expected integer"); /* == 1.0 as a double */
    reject(f, "i", "1e-400", "expected integer");
    reject(f, "i", "9223372036854775808", "integer out of range");
    reject(f, "i", "-9223372036854775809", "integer out of range");
    reject(f, "i", "1e19", "integer out of range");
    reject(f, "i", "1e400", "integer out of range");
    reject(f, "i", "\"5\"", "expected integer");
    reject(f, "i", "true", "expected integer");
    reject(f, "i", "{}", "expected integer");
    /* inclusive bounds */
    accept(f, "r", "1");
    accept(f, "r", "10");
    accept(f, "r", "1e1");
    reject(f, "r", "0", "must be at least 1");
    reject(f, "r", "11", "must be at most 10");
    reject(f, "r", "-9223372036854775808", "must be at least 1");
    /* fractional bounds on an integer: 2 and 3 only */
    reject(f, "h", "1", "must be at least 1.5");
    accept(f, "h", "2");
    accept(f, "h", "3");
    reject(f, "h", "4", "must be at most 3.5");
    fv_form_free(f);
}

static void test_validate_decimal(void **state)
{
    (void)state;
    fv_form *f = compile_ok(
        "{\"questions\":["
        "{\"name\":\"d\",\"type\":\"decimal\"},"
        "{\"name\":\"r\",\"type\":\"decimal\",\"constraint\":{\"min\":-1.5,\"max\":2.5}}]}");
    accept(f, "d", "3");
    accept(f, "d", "-3.25e-5");
    accept(f, "d", "1e-400"); /* underflows to 0: still a finite number */
    reject(f, "d", "1e400", "number out of range");
    reject(f, "d", "\"2.5\"", "expected number");
    reject(f, "d", "false", "expected number");
    accept(f, "r", "-1.5");
    accept(f, "r", "2.5");
    accept(f, "r", "0");
    reject(f, "r", "2.5000001", "must be at most 2.5");
    reject(f, "r", "-1.51", "must be at least -1.5");
    fv_form_free(f);
}

static void test_validate_select(void **state)
{
    (void)state;
    fv_form *f = compile_ok("{\"questions\":["
                            "{\"name\":\"one\",\"type\":\"select_one\","
                            " \"choices\":[\"yes\",\"no\",{\"name\":\"maybe\"}]},"
                            "{\"name\":\"many\",\"type\":\"select_multiple\","
                            " \"choices\":[\"a\",\"b\",\"c\",\"d\",\"e\"]},"
                            "{\"name\":\"cnt\",\"type\":\"select_multiple\","
                            " \"choices\":[\"a\",\"b\",\"c\",\"d\",\"e\"],"
                            " \"constraint\":{\"min\":2,\"max\":3}}]}");
    accept(f, "one", "\"yes\"");
    accept(f, "one", "\"maybe\"");
    reject(f, "one", "\"YES\"", "not one of the choices");
    reject(f, "one", "\"perhaps\"", "not one of the choices");
    reject(f, "one", "1", "expected a choice");
    reject(f, "one", "[\"yes\"]", "expected a choice");

    accept(f, "many", "[\"a\"]");
    accept(f, "many", "[\"e\",\"a\",\"c\"]");
    accept(f, "many", "[\"a\",\"b\",\"c\",\"d\",\"e\"]");
    accept(f, "many", "[]"); /* optional: nothing selected */
    reject(f, "many", "[\"a\",\"a\"]", "duplicate choice");
    reject(f, "many", "[\"a\",\"z\"]", "not one of the choices");
    reject(f, "many", "[\"a\",1]", "expected a list of choices");
    reject(f, "many", "\"a\"", "expected a list of choices");
    reject(f, "many", "[\"a\",\"b\",\"c\",\"d\",\"e\",\"a\"]", "too many selections");

    reject(f, "cnt", "[\"a\"]", "must select at least 2");
    accept(f, "cnt", "[\"a\",\"b\"]");
    accept(f, "cnt", "[\"a\",\"b\",\"c\"]");
    reject(f, "cnt", "[\"a\",\"b\",\"c\",\"d\"]", "must select at most 3");

    fv_form_free(f);

    f = compile_ok("{\"questions\":[{\"name\":\"req\",\"type\":\"select_multiple\","
                   "\"choices\":[\"a\"],\"required\":true}]}");
    reject(f, "req", "[]", "required");
    reject(f, "req", "null", "required");
    accept(f, "req", "[\"a\"]");
    fv_form_free(f);
}

static void test_validate_date(void **state)
{
    (void)state;
    fv_form *f = compile_ok("{\"questions\":[{\"name\":\"d\",\"type\":\"date\"}]}");
    accept(f, "d", "\"2024-05-01\"");
    accept(f, "d", "\"2024-02-29\"");
    accept(f, "d", "\"2000-02-29\"");
    accept(f, "d", "\"2023-12-31\"");
    accept(f, "d", "\"2023-01-31\"");
    reject(f, "d", "\"2023-02-29\"", "invalid date");
    reject(f, "d", "\"1900-02-29\"", "invalid date");
    reject(f, "d", "\"2023-02-30\"", "invalid date");
    reject(f, "d", "\"2023-04-31\"", "invalid date");
    reject(f, "d", "\"2023-13-01\"", "invalid date");
    reject(f, "d", "\"2023-00-10\"", "invalid date");
    reject(f, "d", "\"2023-01-00\"", "invalid date");
    reject(f, "d", "\"2023-4-01\"", "invalid date");
    reject(f, "d", "\"2023-04-01x\"", "invalid date");
    reject(f, "d", "\"2023-04-01T00:00:00Z\"", "invalid date");
    reject(f, "d", "\"20230401\"", "invalid date");
    reject(f, "d", "20230401", "invalid date");
    fv_form_free(f);
}

static void test_validate_datetime(void **state)
{
    (void)state;
    fv_form *f = compile_ok("{\"questions\":[{\"name\":\"t\",\"type\":\"datetime\"}]}");
    accept(f, "t", "\"2024-05-01T10:20:30Z\"");
    accept(f, "t", "\"2024-05-01T10:20:30.123Z\"");
    accept(f, "t", "\"2024-05-01T10:20:30.123456789+02:00\"");
    accept(f, "t", "\"2024-05-01T23:59:59-05:30\"");
    accept(f, "t", "\"2024-02-29T00:00:00+00:00\"");
    reject(f, "t", "\"2024-05-01T10:20:30\"", "invalid datetime"); /* offset is required */
    reject(f, "t", "\"2024-05-01\"", "invalid datetime");
    reject(f, "t", "\"2024-05-01T24:00:00Z\"", "invalid datetime");
    reject(f, "t", "\"2024-05-01T10:60:00Z\"", "invalid datetime");
    reject(f, "t", "\"2024-05-01T10:20:61Z\"", "invalid datetime");
    reject(f, "t", "\"2016-12-31T23:59:60Z\"", "invalid datetime"); /* no leap seconds */
    reject(f, "t", "\"2024-05-01T10:20:30+24:00\"", "invalid datetime");
    reject(f, "t", "\"2023-02-29T10:20:30Z\"", "invalid datetime");
    reject(f, "t", "\"2024-05-01T10:20:30.Z\"", "invalid datetime");
    reject(f, "t", "\"2024-05-01T10:20:30.1234567890Z\"", "invalid datetime");
    reject(f, "t", "\"2024-05-01T10:20:30+02:60\"", "invalid datetime");
    reject(f, "t", "\"2024-05-01T10:20:30+0200\"", "invalid datetime");
    reject(f, "t", "\"2024-05-01T10:20:30Zx\"", "invalid datetime");
    reject(f, "t", "\"2024-05-01X10:20:30Z\"", "invalid datetime");
    reject(f, "t", "1714558830", "invalid datetime");
    fv_form_free(f);
}

static void test_validate_geopoint(void **state)
{
    (void)state;
    fv_form *f = compile_ok("{\"questions\":[{\"name\":\"g\",\"type\":\"geopoint\"}]}");
    accept(f, "g", "{\"lat\":51.5,\"lon\":-0.12}");
    accept(f, "g", "{\"lat\":90,\"lon\":180,\"altitude\":-10.5,\"accuracy\":0}");
    accept(f, "g", "{\"lat\":-90,\"lon\":-180,\"accuracy\":null}");
    reject(f, "g", "{\"lat\":90.0001,\"lon\":0}", "invalid latitude");
    reject(f, "g", "{\"lat\":-91,\"lon\":0}", "invalid latitude");
    reject(f, "g", "{\"lat\":\"1\",\"lon\":0}", "invalid latitude");
    reject(f, "g", "{\"lat\":0,\"lon\":-180.5}", "invalid longitude");
    reject(f, "g", "{\"lat\":0,\"lon\":181}", "invalid longitude");
    reject(f, "g", "{\"lat\":0}", "expected geopoint");
    reject(f, "g", "{\"lat\":0,\"lon\":0,\"accuracy\":-1}", "invalid accuracy");
    reject(f, "g", "{\"lat\":0,\"lon\":0,\"altitude\":\"high\"}", "invalid altitude");
    reject(f, "g", "{\"lat\":0,\"lon\":0,\"speed\":3}", "invalid geopoint");
    reject(f, "g", "[51.5,-0.12]", "expected geopoint");
    reject(f, "g", "\"51.5 -0.12\"", "expected geopoint");
    fv_form_free(f);
}

static const char *const mixed_def = "{\"questions\":["
                                     "{\"name\":\"name\",\"type\":\"text\",\"required\":true},"
                                     "{\"name\":\"age\",\"type\":\"integer\",\"required\":true},"
                                     "{\"name\":\"note1\",\"type\":\"note\",\"label\":\"Thanks\"},"
                                     "{\"name\":\"comment\",\"type\":\"text\"},"
                                     "{\"name\":\"when\",\"type\":\"date\"}]}";

static void test_validate_several_errors_at_once(void **state)
{
    (void)state;
    fv_form *f = compile_ok(mixed_def);
    fv_form_errors e;
    fv_form_errors_init(&e);
    /* wrong type + missing required */
    assert_int_equal(check(f, "{\"age\":\"ten\"}", &e), 2);
    assert_string_equal(fv_form_errors_get(&e, "name"), "required");
    assert_string_equal(fv_form_errors_get(&e, "age"), "expected integer");
    fv_form_errors_free(&e);
    /* everything wrong together: definition order, then unknown keys */
    assert_int_equal(check(f,
                           "{\"zzz\":1,\"when\":\"2023-02-30\",\"note1\":\"x\",\"age\":1.5,"
                           "\"name\":null}",
                           &e),
                     5);
    assert_string_equal(e.items[0].field, "name");
    assert_string_equal(e.items[0].reason, "required");
    assert_string_equal(e.items[1].field, "age");
    assert_string_equal(e.items[2].field, "note1");
    assert_string_equal(e.items[2].reason, "a note cannot be answered");
    assert_string_equal(e.items[3].field, "when");
    assert_string_equal(e.items[3].reason, "invalid date");
    assert_string_equal(e.items[4].field, "zzz");
    assert_string_equal(e.items[4].reason, "unknown question");
    /* validate appends and counts only what it added */
    assert_int_equal(check(f, "{\"name\":\"x\",\"age\":1,\"bogus\":2}", &e), 1);
    assert_int_equal(e.n, 6);
    assert_string_equal(e.items[5].field, "bogus");
    fv_form_errors_free(&e);
    yajl_val d = parse("{\"name\":\"x\"}");
    fv_form_errors_add(&e, "other", "earlier");
    assert_int_equal(fv_form_validate(f, d, &e), 1);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.items[1].field, "age");
    yajl_tree_free(d);
    fv_form_errors_free(&e);
    fv_form_free(f);
}

static void test_validate_optional_null_and_note(void **state)
{
    (void)state;
    fv_form *f = compile_ok(mixed_def);
    fv_form_errors e;
    fv_form_errors_init(&e);
    assert_int_equal(check(f, "{\"name\":\"Ann\",\"age\":30}", &e), 0);
    assert_int_equal(check(f,
                           "{\"name\":\"Ann\",\"age\":30,\"comment\":null,\"when\":null,"
                           "\"note1\":null}",
                           &e),
                     0);
    assert_int_equal(check(f, "{\"name\":\"\",\"age\":null}", &e), 2); /* "" and null: unanswered */
    assert_string_equal(fv_form_errors_get(&e, "name"), "required");
    assert_string_equal(fv_form_errors_get(&e, "age"), "required");
    fv_form_errors_free(&e);
    assert_int_equal(check(f, "{\"name\":\"Ann\",\"age\":30,\"note1\":\"hello\"}", &e), 1);
    assert_string_equal(fv_form_errors_get(&e, "note1"), "a note cannot be answered");
    fv_form_errors_free(&e);
    assert_int_equal(check(f, "{\"name\":\"Ann\",\"age\":30,\"note1\":false}", &e), 1);
    fv_form_errors_free(&e);
    fv_form_free(f);
}

static void test_validate_unknown_and_duplicate_keys(void **state)
{
    (void)state;
    fv_form *f = compile_ok(mixed_def);
    fv_form_errors e;
    fv_form_errors_init(&e);
    assert_int_equal(check(f, "{\"name\":\"A\",\"age\":1,\"Name\":\"x\"}", &e), 1);
    assert_string_equal(fv_form_errors_get(&e, "Name"), "unknown question");
    fv_form_errors_free(&e);
    /* an unknown key given twice is one error (fields are unique) */
    assert_int_equal(check_dups(f, "{\"name\":\"A\",\"age\":1,\"x\":1,\"x\":2,\"\":3}", &e), 2);
    assert_string_equal(fv_form_errors_get(&e, "x"), "unknown question");
    assert_string_equal(fv_form_errors_get(&e, ""), "unknown question");
    fv_form_errors_free(&e);
    /* a known key given twice */
    assert_int_equal(check_dups(f, "{\"name\":\"A\",\"age\":1,\"age\":2}", &e), 1);
    assert_string_equal(fv_form_errors_get(&e, "age"), "duplicate answer");
    fv_form_errors_free(&e);

    /* many unknown keys: listed up to the limit, then one summary under "" */
    size_t cap = 64 * 1024;
    char *big = malloc(cap);
    assert_non_null(big);
    size_t o = (size_t)snprintf(big, cap, "{\"name\":\"A\",\"age\":1");
    for (int i = 0; i < FV_FORM_MAX_UNKNOWN_REPORTED + 50; i++)
        o += (size_t)snprintf(big + o, cap - o, ",\"u%d\":1", i);
    snprintf(big + o, cap - o, "}");
    assert_int_equal(check(f, big, &e), FV_FORM_MAX_UNKNOWN_REPORTED + 1);
    assert_string_equal(fv_form_errors_get(&e, ""), "too many unknown questions");
    assert_non_null(fv_form_errors_get(&e, "u0"));
    assert_null(fv_form_errors_get(&e, "u149"));
    fv_form_errors_free(&e);
    free(big);
    fv_form_free(f);
}

/* ---- repeats (an XForm's derived definition: xform.repeat) ---------------------------------- */

#define REPEATS                                                                                                    \
    "{\"questions\": ["                                                                                            \
    "{\"name\": \"hh\", \"type\": \"text\", \"required\": true},"                                                  \
    "{\"name\": \"m/name\", \"type\": \"text\", \"required\": true, \"xform\": {\"repeat\": \"m\"}},"              \
    "{\"name\": \"m/age\", \"type\": \"integer\", \"constraint\": {\"min\": 0},"                                   \
    " \"xform\": {\"repeat\": \"m\"}},"                                                                            \
    "{\"name\": \"m/ok\", \"type\": \"select_one\", \"choices\": [\"y\", \"n\"], \"xform\": {\"repeat\": \"m\"}}," \
    "{\"name\": \"m/p/pet\", \"type\": \"text\", \"required\": true, \"constraint\": {\"pattern\": \"[a-z]+\"},"   \
    " \"xform\": {\"repeat\": \"m/p\"}},"                                                                          \
    "{\"name\": \"g/x\", \"type\": \"integer\", \"xform\": {\"repeat\": 7}}"                                       \
    "]}"

/* Validates data against REPEATS: the number of errors; e holds them. */
static size_t check_repeats(const char *data, fv_form_errors *e)
{
    fv_form *f = compile_ok(REPEATS);
    fv_form_errors_init(e);
    size_t n = check(f, data, e);
    fv_form_free(f);
    return n;
}

static void expect_one(const char *data, const char *field, const char *reason)
{
    fv_form_errors e;
    size_t n = check_repeats(data, &e);
    if (n != 1)
        fail_msg("%s: %zu errors, expected 1 (%s: %s)", data, n, n ? e.items[0].field : "",
                 n ? e.items[0].reason : "");
    assert_string_equal(e.items[0].field, field);
    if (strcmp(e.items[0].reason, reason) != 0)
        fail_msg("%s: reason \"%s\", expected \"%s\"", data, e.items[0].reason, reason);
    fv_form_errors_free(&e);
}

static void expect_valid(const char *data)
{
    fv_form_errors e;
    if (check_repeats(data, &e) != 0)
        fail_msg("%s refused: %s: %s", data, e.items[0].field, e.items[0].reason);
    fv_form_errors_free(&e);
}

static void test_validate_repeats(void **state)
{
    (void)state;
    /* lists, one item per instance; nested lists for the nested repeat; null items unanswered */
    expect_valid("{\"hh\": \"h\"}");
    expect_valid("{\"hh\": \"h\", \"m/name\": [], \"m/p/pet\": []}");
    expect_valid(
        "{\"hh\": \"h\", \"m/name\": [\"a\", \"b\"], \"m/age\": [3, null], \"m/ok\": [null, \"y\"],"
        " \"m/p/pet\": [[\"rex\"], []]}");
    expect_valid("{\"hh\": \"h\", \"m/name\": [\"a\"], \"m/p/pet\": [null]}"); /* no inner instance */
    /* a question outside every repeat is unchanged; xform.repeat that is not a string is ignored */
    expect_valid("{\"hh\": \"h\", \"g/x\": 5}");
    expect_one("{\"hh\": \"h\", \"g/x\": [5]}", "g/x", "expected integer");
    /* items checked one by one, the first bad one reported by position */
    expect_one("{\"hh\": \"h\", \"m/name\": [\"a\", \"b\"], \"m/age\": [3, \"x\"]}", "m/age",
               "#2: expected integer");
    expect_one("{\"hh\": \"h\", \"m/name\": [\"a\", \"b\"], \"m/age\": [3, -1]}", "m/age",
               "#2: must be at least 0");
    expect_one("{\"hh\": \"h\", \"m/name\": [\"a\"], \"m/ok\": [\"q\"]}", "m/ok",
               "#1: not one of the choices");
    expect_one(
        "{\"hh\": \"h\", \"m/name\": [\"a\", \"b\"], \"m/p/pet\": [[\"rex\"], [\"ok\", \"BAD\"]]}",
        "m/p/pet", "#2.2: does not match pattern");
    /* required in every instance */
    expect_one("{\"hh\": \"h\", \"m/name\": [\"a\", null]}", "m/name", "#2: required");
    expect_one("{\"hh\": \"h\", \"m/name\": [\"a\", \"\"]}", "m/name", "#2: required");
    expect_one("{\"hh\": \"h\", \"m/name\": [\"a\", \"b\"], \"m/p/pet\": [[], [\"rex\", null]]}",
               "m/p/pet", "#2.2: required");
    /* left out while its repeat has instances: required in the first */
    expect_one("{\"hh\": \"h\", \"m/age\": [1, 2]}", "m/name", "#1: required");
    expect_one("{\"hh\": \"h\", \"m/name\": [\"a\"], \"m/age\": [1], \"m/p/pet\": [[null]]}", "m/p/pet",
               "#1.1: required");
    /* shapes: not a list, a list where an item is expected, instances that disagree */
    expect_one("{\"hh\": \"h\", \"m/name\": \"a\"}", "m/name",
               "expected a list (one item per instance of its repeat)");
    expect_one("{\"hh\": \"h\", \"m/name\": [[\"a\"]]}", "m/name", "#1: expected text");
    expect_one("{\"hh\": \"h\", \"m/name\": [\"a\"], \"m/p/pet\": [\"rex\"]}", "m/p/pet",
               "#1: expected a list (one item per instance of its inner repeat)");
    expect_one("{\"hh\": \"h\", \"m/name\": [\"a\", \"b\"], \"m/age\": [1, 2, 3]}", "m/age",
               "3 instances of the repeat m here, 2 in m/name");
    expect_one("{\"hh\": \"h\", \"m/name\": [\"a\", \"b\"], \"m/p/pet\": [[\"rex\"]]}", "m/p/pet",
               "1 instances of the repeat m here, 2 in m/name");
    /* every error at once, in definition order */
    fv_form_errors e;
    assert_int_equal(check_repeats("{\"m/name\": [null], \"m/age\": [\"x\"], \"m/p/pet\": 1}", &e), 4);
    assert_string_equal(e.items[0].field, "hh");
    assert_string_equal(e.items[1].field, "m/name");
    assert_string_equal(e.items[2].field, "m/age");
    assert_string_equal(e.items[3].field, "m/p/pet");
    fv_form_errors_free(&e);
}

/* The definitions' repeats from the attacker's side: deep nesting of repeats, a repeat path that
 * is the question itself or no prefix of it, and thousands of items share the pattern budget. */
static void test_validate_repeats_hostile(void **state)
{
    (void)state;
    /* 40 nested repeats r/r/r/...; the question 40 levels down */
    char def[8192], path[256] = "r", data[4096];
    size_t n = (size_t)snprintf(def, sizeof def, "{\"questions\": [");
    for (int i = 0; i < 40; i++) {
        n += (size_t)snprintf(def + n, sizeof def - n,
                              "{\"name\": \"%s/x%d\", \"type\": \"text\","
                              " \"xform\": {\"repeat\": \"%s\"}},",
                              path, i, path);
        strcat(path, "/r");
    }
    n += (size_t)snprintf(
        def + n, sizeof def - n,
        "{\"name\": \"self\", \"type\": \"text\", \"xform\": {\"repeat\": "
        "\"self\"}}, {\"name\": \"a/b\", \"type\": \"text\", \"xform\": {\"repeat\": \"zz\"}}]}");
    fv_form *f = compile_ok(def);
    fv_form_errors e;
    fv_form_errors_init(&e);
    /* "self" is not inside its own repeat; "a/b" is inside no repeat of its own path */
    assert_int_equal(check(f, "{\"self\": \"t\", \"a/b\": \"t\"}", &e), 0);
    /* the deepest question: 40 levels of lists, a bad item at the bottom */
    char q[256];
    snprintf(q, sizeof q, "%.*s/x39", (int)(strlen(path) - 2), path);
    size_t d = (size_t)snprintf(data, sizeof data, "{\"%s\": ", q);
    for (int i = 0; i < 40; i++) data[d++] = '[';
    d += (size_t)snprintf(data + d, sizeof data - d, "1");
    for (int i = 0; i < 40; i++) data[d++] = ']';
    snprintf(data + d, sizeof data - d, "}");
    assert_int_equal(check(f, data, &e), 1);
    assert_non_null(strstr(e.items[0].reason, "#1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1"));
    assert_non_null(strstr(e.items[0].reason, ": expected text"));
    fv_form_errors_free(&e);
    fv_form_free(f);
    /* 3000 items of a pattern question: checked, never more PCRE2 work than the budget */
    f = compile_ok(REPEATS);
    static char big[40000];
    d = (size_t)snprintf(big, sizeof big, "{\"hh\": \"h\", \"m/name\": [");
    for (int i = 0; i < 3000; i++)
        d += (size_t)snprintf(big + d, sizeof big - d, "%s\"n\"", i ? "," : "");
    d += (size_t)snprintf(big + d, sizeof big - d, "], \"m/p/pet\": [");
    for (int i = 0; i < 3000; i++)
        d += (size_t)snprintf(big + d, sizeof big - d, "%s[\"rex\"]", i ? "," : "");
    snprintf(big + d, sizeof big - d, "]}");
    fv_form_errors_init(&e);
    assert_int_equal(check(f, big, &e), 0);
    fv_form_errors_free(&e);
    fv_form_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_ok_and_accessors),
        cmocka_unit_test(test_compile_confidential_mode),
        cmocka_unit_test(test_compile_errors_all_at_once),
        cmocka_unit_test(test_compile_duplicate_with_other_error),
        cmocka_unit_test(test_compile_top_level),
        cmocka_unit_test(test_compile_question_checks),
        cmocka_unit_test(test_validate_data_not_object),
        cmocka_unit_test(test_validate_text),
        cmocka_unit_test(test_validate_integer),
        cmocka_unit_test(test_validate_decimal),
        cmocka_unit_test(test_validate_select),
        cmocka_unit_test(test_validate_date),
        cmocka_unit_test(test_validate_datetime),
        cmocka_unit_test(test_validate_geopoint),
        cmocka_unit_test(test_validate_several_errors_at_once),
        cmocka_unit_test(test_validate_optional_null_and_note),
        cmocka_unit_test(test_validate_unknown_and_duplicate_keys),
        cmocka_unit_test(test_validate_repeats),
        cmocka_unit_test(test_validate_repeats_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

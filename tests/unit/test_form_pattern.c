/* Unit tests of fv_form's constraint patterns (PCRE2 with limits): the review's pathological
 * patterns are refused at definition time or checked within the limits, fast; whole-answer
 * semantics; stored forms whose pattern is refused today fail closed. Links fvcommon.
 *
 * The time bounds are generous (seconds, against microseconds measured) and say only that no
 * case takes the tens of seconds glibc's regcomp/regexec took; the measured worst cases are
 * printed for docs/security.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fv_form.h"
#include "fv_json.h"

#define GENEROUS_S 2.0 /* any one case; glibc took 13-29 s on these */

/* CPU time of this thread: the work done, without the time the (shared) machine gave to others. */
static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static yajl_val parse(const char *text)
{
    char err[256];
    yajl_val v = fv_json_parse(text, err, sizeof err);
    if (v == NULL) fail_msg("bad JSON in test: %s", err);
    return v;
}

/* A JSON string literal of s (escaping '"' and '\'). Caller frees. */
static char *json_str(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 3), *o = out;
    assert_non_null(out);
    *o++ = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') *o++ = '\\';
        if (*s == '\n') {
            *o++ = '\\';
            *o++ = 'n';
            continue;
        }
        *o++ = *s;
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

/* {"questions":[{"name":"q","type":"text","constraint":{"pattern":<pattern>}}]}. Caller frees. */
static char *one_pattern_def(const char *pattern)
{
    char *p = json_str(pattern);
    size_t n = strlen(p) + 128;
    char *d = malloc(n);
    assert_non_null(d);
    snprintf(d, n,
             "{\"questions\":[{\"name\":\"q\",\"type\":\"text\",\"constraint\":{\"pattern\":%s}}]}", p);
    free(p);
    return d;
}

/* Compiles a one-question form with pattern; stored selects fv_form_compile_stored. Returns the
 * form (or NULL) and the reason of its one error in *why (copied into why_buf). */
static fv_form *compile_pattern(const char *pattern, bool stored, char *why_buf, size_t why_len,
                                double *secs)
{
    char *text = one_pattern_def(pattern);
    yajl_val d = parse(text);
    free(text);
    fv_form_errors e;
    fv_form_errors_init(&e);
    double t0 = now_s();
    fv_form *f = stored ? fv_form_compile_stored(d, &e) : fv_form_compile(d, &e);
    if (secs) *secs = now_s() - t0;
    yajl_tree_free(d);
    if (why_buf) snprintf(why_buf, why_len, "%s", e.n ? e.items[0].reason : "");
    if (f == NULL) assert_int_equal(e.n, 1);
    if (f == NULL) assert_string_equal(e.items[0].field, "q");
    fv_form_errors_free(&e);
    return f;
}

/* Validates {"q": answer} (answer a C string) against f; returns the reason or NULL (copied into
 * buf). */
static const char *answer(const fv_form *f, const char *ans, char *buf, size_t len, double *secs)
{
    char *a = json_str(ans);
    size_t n = strlen(a) + 16;
    char *doc = malloc(n);
    assert_non_null(doc);
    snprintf(doc, n, "{\"q\":%s}", a);
    free(a);
    yajl_val d = parse(doc);
    free(doc);
    fv_form_errors e;
    fv_form_errors_init(&e);
    double t0 = now_s();
    size_t nerr = fv_form_validate(f, d, &e);
    if (secs) *secs = now_s() - t0;
    yajl_tree_free(d);
    const char *r = NULL;
    if (nerr) {
        assert_int_equal(e.n, 1);
        assert_string_equal(e.items[0].field, "q");
        snprintf(buf, len, "%s", e.items[0].reason);
        r = buf;
    }
    fv_form_errors_free(&e);
    return r;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static bool starts(const char *s, const char *prefix)
{
    return s && !strncmp(s, prefix, strlen(prefix));
}

/* The review's compile-time bombs and their relatives: each is refused as too complex quickly,
 * or compiles (small enough) and then checks long answers within the limits quickly. The
 * review's own two are refused. */
static void test_counted_repetition_refused_fast(void **state)
{
    (void)state;
    static const struct {
        const char *pattern;
        bool must_refuse;
    } bombs[] = {
        {"((a{1,100}){1,100}){1,100}", true}, /* review: 3-7 s and 1.8 GB per question (glibc) */
        {"((a{1,60}){1,60}){1,60}", true},    /* review: 42 s to match 400 characters (glibc) */
        {"(?:(?:a{1,60}){1,60}){1,60}", true},
        {"(a{0,65535}){0,65535}", true},
        {"((((a{9}){9}){9}){9}){9}", true},
        {"([\\x{100}-\\x{10ffff}]{1000}){1000}", true},
        {"(.{1,999}){999}", false},
        {"(a{1,100}){1,100}", false},
        {"(?i)(\\p{L}{1,200}){1,200}", false},
        {"(a{1,65535})", false},
    };
    char *as = repeat('a', FV_FORM_MAX_PATTERN_ANSWER);
    char *as_bang = repeat('a', FV_FORM_MAX_PATTERN_ANSWER);
    as_bang[FV_FORM_MAX_PATTERN_ANSWER - 1] = '!';
    double worst_compile = 0, worst_check = 0;
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        char why[256], buf[256];
        double secs;
        fv_form *f = compile_pattern(bombs[i].pattern, false, why, sizeof why, &secs);
        assert_true(secs < GENEROUS_S);
        if (secs > worst_compile) worst_compile = secs;
        if (f == NULL) {
            if (!starts(why, FV_FORM_PATTERN_TOO_COMPLEX)) fail_msg("%s: %s", bombs[i].pattern, why);
            continue;
        }
        if (bombs[i].must_refuse) fail_msg("accepted: %s", bombs[i].pattern);
        answer(f, as, buf, sizeof buf, &secs);
        assert_true(secs < GENEROUS_S);
        if (secs > worst_check) worst_check = secs;
        assert_non_null(answer(f, as_bang, buf, sizeof buf, &secs));
        assert_true(secs < GENEROUS_S);
        if (secs > worst_check) worst_check = secs;
        fv_form_free(f);
    }
    free(as);
    free(as_bang);
    print_message("counted repetition: worst compile %.3f ms, worst check of 4096 bytes %.3f ms\n",
                  worst_compile * 1e3, worst_check * 1e3);
}

static void test_nesting_and_length_limits(void **state)
{
    (void)state;
    char deep[2 * FV_FORM_MAX_PATTERN_NEST + 8], why[256];
    size_t o = 0;
    for (int i = 0; i < FV_FORM_MAX_PATTERN_NEST + 1; i++) deep[o++] = '(';
    deep[o++] = 'a';
    for (int i = 0; i < FV_FORM_MAX_PATTERN_NEST + 1; i++) deep[o++] = ')';
    deep[o] = '\0';
    assert_null(compile_pattern(deep, false, why, sizeof why, NULL));
    assert_true(starts(why, FV_FORM_PATTERN_TOO_COMPLEX));
    /* exactly the limit is fine */
    char *ok = malloc(2 * FV_FORM_MAX_PATTERN_NEST + 2);
    o = 0;
    for (int i = 0; i < FV_FORM_MAX_PATTERN_NEST; i++) ok[o++] = '(';
    ok[o++] = 'a';
    for (int i = 0; i < FV_FORM_MAX_PATTERN_NEST; i++) ok[o++] = ')';
    ok[o] = '\0';
    fv_form *f = compile_pattern(ok, false, why, sizeof why, NULL);
    if (f == NULL) fail_msg("nesting %d refused: %s", FV_FORM_MAX_PATTERN_NEST, why);
    fv_form_free(f);
    free(ok);
    char *longp = repeat('a', FV_FORM_MAX_PATTERN + 1);
    assert_null(compile_pattern(longp, false, why, sizeof why, NULL));
    assert_string_equal(why, "constraint pattern too long (max 512 bytes)");
    longp[FV_FORM_MAX_PATTERN] = '\0';
    f = compile_pattern(longp, false, why, sizeof why, NULL);
    assert_non_null(f);
    fv_form_free(f);
    free(longp);
    /* back-references stay refused (the dialect is regular); a syntax error is "invalid" */
    assert_null(compile_pattern("(a)\\1", false, why, sizeof why, NULL));
    assert_string_equal(why, "back-references are not allowed in a pattern");
    assert_null(compile_pattern("\\g{1}", false, why, sizeof why, NULL));
    assert_string_equal(why, "invalid pattern");
    assert_null(compile_pattern("a(b", false, why, sizeof why, NULL));
    assert_string_equal(why, "invalid pattern");
    assert_null(compile_pattern("\\C", false, why, sizeof why, NULL));
    assert_string_equal(why, "invalid pattern");
}

/* The match side: backtracking patterns against long answers are refused fast, never accepted. */
static void test_backtracking_refused_fast(void **state)
{
    (void)state;
    static const char *const slow[] = {
        "(x+x+)+y",                /* review: 13 s on 100,000 characters with glibc */
        "(*NO_START_OPT)(x+x+)+y", /* without PCRE2's "needs a y" shortcut */
        "(x+x+)+[yz]",             /* no required character either */
        "(?:x|xx)+(?:y|z)",
        "(*NO_START_OPT)(x*)*y",
        "(.{1,99}){99}[yz]",
        "(?:(?:x*)*)*[yz]",
        "(x|x?)+[yz]",
        "(?:.*){10}[yz]",
        "((a{1,60}){1,60}){1,3}[yz]", /* nested counting small enough to compile */
    };
    char *xs = repeat('x', FV_FORM_MAX_PATTERN_ANSWER);
    char *huge = repeat('x', 100000);
    double worst = 0;
    for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++) {
        char why[256], buf[256];
        fv_form *f = compile_pattern(slow[i], false, why, sizeof why, NULL);
        if (f == NULL) fail_msg("refused: %s: %s", slow[i], why);
        double secs;
        const char *r = answer(f, xs, buf, sizeof buf, &secs);
        if (r == NULL) fail_msg("accepted: %s", slow[i]);
        assert_true(secs < GENEROUS_S);
        if (secs > worst) worst = secs;
        print_message("  %-32s %.3f ms\n", slow[i], secs * 1e3);
        r = answer(f, huge, buf, sizeof buf, &secs);
        assert_string_equal(r, "too long to be checked against the pattern (max 4096 bytes)");
        assert_true(secs < GENEROUS_S);
        fv_form_free(f);
    }
    print_message("worst check of one 4096-byte answer: %.3f ms\n", worst * 1e3);
    /* one that certainly hits the limit says so */
    char why[256], buf[256];
    fv_form *f = compile_pattern("(*NO_START_OPT)(x+x+)+y", false, why, sizeof why, NULL);
    const char *r = answer(f, xs, buf, sizeof buf, NULL);
    assert_true(strstr(r, FV_FORM_PATTERN_TOO_COMPLEX) != NULL);
    assert_true(strstr(r, "refused") != NULL);
    /* and the same pattern accepts a real answer */
    assert_null(answer(f, "xxxy", buf, sizeof buf, NULL));
    fv_form_free(f);
    free(xs);
    free(huge);
}

/* Today's meaning: the whole answer must match (POSIX leftmost-longest at 0 spanning it all). */
static void test_whole_answer_semantics(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *answer;
        bool ok;
    } cases[] = {
        {"a|ab", "ab", true}, /* leftmost-first PCRE2 still finds the whole-answer alternative */
        {"a|ab", "a", true},
        {"a|ab", "abb", false},
        {"[A-Z][0-9]+", "A12", true},
        {"[A-Z][0-9]+", "A12b", false},
        {"[A-Z][0-9]+", "xA12", false},
        {"^[A-Za-z0-9 .'-]+$", "House 1", true},
        {"^[A-Za-z0-9 .'-]+$", "<script>", false},
        {"abc$", "abc\n", false}, /* $ is the very end, as in POSIX */
        {"abc", "abc\n", false},
        {"a.b", "a\nb", true}, /* . matches a newline, as in POSIX without REG_NEWLINE */
        {"^.{3}$", "\xc3\xa9\xc3\xa0\xc3\xbc", true}, /* code points, not bytes */
        {"[[:digit:]]{4}-[[:alpha:]]+", "2024-may", true},
        {"(ab)*c", "ababc", true},
        {"(ab)*c", "abac", false},
        {"x{2,3}", "xxxx", false},
        {"x?", "x", true},
        {"\\d+", "123", true}, /* PCRE2 syntax */
        {"\\p{L}+", "\xc3\xa9t\xc3\xa9", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[256], buf[256];
        fv_form *f = compile_pattern(cases[i].pattern, false, why, sizeof why, NULL);
        if (f == NULL) fail_msg("refused: %s: %s", cases[i].pattern, why);
        const char *r = answer(f, cases[i].answer, buf, sizeof buf, NULL);
        if (cases[i].ok && r != NULL)
            fail_msg("%s refused %s: %s", cases[i].pattern, cases[i].answer, r);
        if (!cases[i].ok && (r == NULL || strcmp(r, "does not match pattern")))
            fail_msg("%s: %s: %s", cases[i].pattern, cases[i].answer, r ? r : "accepted");
        fv_form_free(f);
    }
}

/* PCRE2 checks an answer's UTF-8 itself: a tree built by hand (not by the JSON reader) with a
 * malformed string is refused, not matched and not crashed on. */
static void test_invalid_utf8_answer_refused(void **state)
{
    (void)state;
    char why[256];
    fv_form *f = compile_pattern(".*", false, why, sizeof why, NULL);
    assert_non_null(f);
    char bad[] = "ab\xff\xfe";
    char key[] = "q";
    struct yajl_val_s str = {.type = yajl_t_string};
    str.u.string = bad;
    const char *keys[] = {key};
    yajl_val values[] = {&str};
    struct yajl_val_s obj = {.type = yajl_t_object};
    obj.u.object.keys = keys;
    obj.u.object.values = values;
    obj.u.object.len = 1;
    fv_form_errors e;
    fv_form_errors_init(&e);
    assert_int_equal(fv_form_validate(f, &obj, &e), 1);
    assert_string_equal(fv_form_errors_get(&e, "q"), "not valid UTF-8");
    fv_form_errors_free(&e);
    fv_form_free(f);
}

/* A stored form whose pattern is refused today still loads; its question refuses every answer. */
static void test_stored_form_fails_closed(void **state)
{
    (void)state;
    static const char *const refused[] = {"((a{1,100}){1,100}){1,100}", "a(b", "(a)\\1"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char why[256], buf[256];
        assert_null(compile_pattern(refused[i], false, why, sizeof why, NULL));
        fv_form *f = compile_pattern(refused[i], true, why, sizeof why, NULL);
        if (f == NULL) fail_msg("stored form refused: %s: %s", refused[i], why);
        const char *r = answer(f, "a", buf, sizeof buf, NULL);
        assert_non_null(r);
        assert_true(starts(r, "cannot be checked"));
        /* not answered is still fine (the question is not required) */
        fv_form_errors e;
        fv_form_errors_init(&e);
        yajl_val d = parse("{}");
        assert_int_equal(fv_form_validate(f, d, &e), 0);
        yajl_tree_free(d);
        fv_form_errors_free(&e);
        fv_form_free(f);
        char *text = one_pattern_def(refused[i]);
        f = fv_form_compile_text(text);
        free(text);
        assert_non_null(f);
        assert_non_null(answer(f, "a", buf, sizeof buf, NULL));
        fv_form_free(f);
    }
    /* other problems still refuse a stored form */
    fv_form_errors e;
    fv_form_errors_init(&e);
    yajl_val d = parse("{\"questions\":[{\"name\":\"q\",\"type\":\"nope\"}]}");
    assert_null(fv_form_compile_stored(d, &e));
    yajl_tree_free(d);
    fv_form_errors_free(&e);
}

/* Builds a definition of n text questions q0.. each with pattern. Caller frees. */
static char *many_patterns_def(size_t n, const char *pattern)
{
    char *p = json_str(pattern);
    size_t each = strlen(p) + 96, cap = n * each + 64, o = 0;
    char *d = malloc(cap);
    assert_non_null(d);
    o += (size_t)snprintf(d + o, cap - o, "{\"questions\":[");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(d + o, cap - o,
                              "%s{\"name\":\"q%zu\",\"type\":\"text\",\"constraint\":{\"pattern\":%s}}",
                              i ? "," : "", i, p);
    snprintf(d + o, cap - o, "]}");
    free(p);
    return d;
}

/* Patterns chosen for the most work per check PCRE2's limits allow: nested optional groups that
 * compile to just under FV_FORM_MAX_PATTERN_COMPILED, alternations, lookarounds. */
static const char *const heavy[] = {
    "(?:a?){1,400}",
    "(?:a{1,10}){1,400}",
    "(?:a|b?){1,300}",
    "(?:a?b?){1,300}",
    "(a{1,100}){1,100}",
    "(?:a{1,2}){1,300}",
    "(?=a*)*(a{1,100}){1,100}",
    "(?:(?:a?){1,20}){1,20}",
    "(*NO_START_OPT)(?:a+a+)+y",
    "(?:a|aa)+(?:y|z)",
    "(?:.*){10}[yz]",
    "(?:a+)+(?<=b)",
    /* a lookahead that scans to the end at every step: work per step grows with the answer,
     * which is why answers checked are at most 4096 bytes */
    "(*NO_START_OPT)(?:a(?=a*!))*b",
};

/* An answer of n bytes: n - 1 'a' and a final '!', which none of the heavy patterns accepts. */
static char *heavy_answer(size_t n)
{
    char *s = repeat('a', n);
    s[n - 1] = '!';
    return s;
}

/* The worst single check: every heavy pattern alone in its form (the full per-check limit),
 * against an answer of the longest length checked. Returns the slowest pattern's index. */
static size_t worst_single_check(double *worst_s)
{
    char *s = heavy_answer(FV_FORM_MAX_PATTERN_ANSWER);
    size_t worst_i = 0;
    *worst_s = 0;
    for (size_t i = 0; i < sizeof heavy / sizeof heavy[0]; i++) {
        char why[256], buf[256];
        fv_form *f = compile_pattern(heavy[i], false, why, sizeof why, NULL);
        if (f == NULL) fail_msg("refused: %s: %s", heavy[i], why);
        double best = 1e9;
        for (int k = 0; k < 5; k++) { /* the best of 5: the machine is shared */
            double secs;
            assert_non_null(answer(f, s, buf, sizeof buf, &secs));
            if (secs < best) best = secs;
        }
        print_message("  %-28s %.3f ms\n", heavy[i], best * 1e3);
        if (best > *worst_s) *worst_s = best, worst_i = i;
        fv_form_free(f);
    }
    free(s);
    return worst_i;
}

/* The whole form: FV_FORM_MAX_QUESTIONS patterns of the limit's length compile in bounded time
 * (refused as too complex together past the form's totals), and one submission's checks stay
 * within the shared budget however many questions it answers. */
static void test_form_worst_case_bounded(void **state)
{
    (void)state;
    /* 512 bytes that compile to most of the per-pattern limit */
    char pat[FV_FORM_MAX_PATTERN + 1];
    size_t o = 0;
    while (o + 16 <= FV_FORM_MAX_PATTERN)
        o += (size_t)snprintf(pat + o, sizeof pat - o, "(?:[a-z]{1,9}x)?");
    pat[o] = '\0';
    char *text = many_patterns_def(FV_FORM_MAX_QUESTIONS, pat);
    yajl_val d = parse(text);
    free(text);
    fv_form_errors e;
    fv_form_errors_init(&e);
    double t0 = now_s();
    fv_form *f = fv_form_compile(d, &e);
    double compile_s = now_s() - t0;
    yajl_tree_free(d);
    assert_null(f);
    assert_true(fv_form_errors_pattern_too_complex(&e));
    assert_true(starts(e.items[e.n - 1].reason, FV_FORM_PATTERN_TOO_COMPLEX));
    assert_string_equal(e.items[e.n - 1].field, "q1999");
    fv_form_errors_free(&e);
    assert_true(compile_s < GENEROUS_S);
    print_message("compile of %d questions with 512-byte patterns: %.1f ms\n", FV_FORM_MAX_QUESTIONS,
                  compile_s * 1e3);

    /* patterns each compiled, then refused for their size: the work still counts toward the
     * form's total, so the later ones are refused without being compiled */
    text = many_patterns_def(FV_FORM_MAX_QUESTIONS, "(?:a?){1,800}");
    d = parse(text);
    free(text);
    t0 = now_s();
    f = fv_form_compile(d, &e);
    double oversize_s = now_s() - t0;
    yajl_tree_free(d);
    assert_null(f);
    assert_int_equal(e.n, FV_FORM_MAX_QUESTIONS);
    for (size_t i = 0; i < e.n; i++) assert_true(starts(e.items[i].reason, FV_FORM_PATTERN_TOO_COMPLEX));
    fv_form_errors_free(&e);
    assert_true(oversize_s < GENEROUS_S);
    print_message("compile of %d questions with oversize patterns: %.1f ms\n", FV_FORM_MAX_QUESTIONS,
                  oversize_s * 1e3);
    if (oversize_s > compile_s) compile_s = oversize_s;

    double single_s;
    size_t w = worst_single_check(&single_s);
    assert_true(single_s < GENEROUS_S);
    print_message("worst single check (%s, 4096 bytes): %.3f ms\n", heavy[w], single_s * 1e3);

    /* the worst pattern on as many questions as the form's compiled total allows (32), then a
     * small heavy pattern on 1500 questions (as many as the total allows); answered k at a time
     * with answers that total 1 MiB (the default max_body_bytes) at most */
    double worst_sub = 0, worst_compile = compile_s;
    static const struct {
        size_t nq, k;
    } runs[] = {{32, 1}, {32, 2}, {32, 3}, {32, 10}, {32, 32}, {1500, 256}, {1500, 1500}};
    for (size_t run = 0; run < sizeof runs / sizeof runs[0]; run++) {
        const char *pattern = runs[run].nq == 32 ? heavy[w] : "(?:a|aa)+(?:y|z)";
        text = many_patterns_def(runs[run].nq, pattern);
        d = parse(text);
        free(text);
        t0 = now_s();
        f = fv_form_compile(d, &e);
        compile_s = now_s() - t0;
        yajl_tree_free(d);
        if (f == NULL) fail_msg("%s: %s", e.items[0].field, e.items[0].reason);
        size_t k = runs[run].k, len = (1024 * 1024) / k;
        if (len > FV_FORM_MAX_PATTERN_ANSWER) len = FV_FORM_MAX_PATTERN_ANSWER;
        char *s = heavy_answer(len);
        size_t cap = k * (len + 16) + 8;
        char *doc = malloc(cap);
        assert_non_null(doc);
        o = (size_t)snprintf(doc, cap, "{");
        for (size_t i = 0; i < k; i++)
            o += (size_t)snprintf(doc + o, cap - o, "%s\"q%zu\":\"%s\"", i ? "," : "", i, s);
        snprintf(doc + o, cap - o, "}");
        free(s);
        d = parse(doc);
        free(doc);
        double best = 1e9;
        for (int r = 0; r < 3; r++) {
            t0 = now_s();
            size_t nerr = fv_form_validate(f, d, &e);
            double secs = now_s() - t0;
            assert_int_equal(nerr, k);
            fv_form_errors_free(&e);
            if (secs < best) best = secs;
        }
        yajl_tree_free(d);
        fv_form_free(f);
        assert_true(best < GENEROUS_S);
        print_message("  %4zu questions of %s (compiled in %.1f ms); one submission answering %4zu "
                      "(%4zu bytes each): %.3f ms\n",
                      runs[run].nq, pattern, compile_s * 1e3, k, len, best * 1e3);
        if (best > worst_sub) worst_sub = best;
        if (compile_s > worst_compile) worst_compile = compile_s;
    }
    print_message("worst submission: %.3f ms; worst compile of a form: %.3f ms\n", worst_sub * 1e3,
                  worst_compile * 1e3);
}

/* Legitimate heavy checks pass within the per-check limit. */
static void test_single_pattern_full_limit(void **state)
{
    (void)state;
    char why[256], buf[256];
    fv_form *f = compile_pattern("([a-z]+ )*[a-z]+", false, why, sizeof why, NULL);
    assert_non_null(f);
    char *s = malloc(FV_FORM_MAX_PATTERN_ANSWER + 1);
    for (size_t i = 0; i < FV_FORM_MAX_PATTERN_ANSWER; i++) s[i] = "abcdefg "[i % 8];
    s[FV_FORM_MAX_PATTERN_ANSWER - 1] = 'z'; /* ends in a word */
    s[FV_FORM_MAX_PATTERN_ANSWER] = '\0';
    assert_null(answer(f, s, buf, sizeof buf, NULL));
    fv_form_free(f);
    f = compile_pattern("(?:[A-Z][a-z]+ ?)+", false, why, sizeof why, NULL);
    assert_non_null(f);
    for (size_t i = 0; i < 3000; i++) s[i] = "Abc "[i % 4];
    s[3000] = '\0';
    assert_null(answer(f, s, buf, sizeof buf, NULL));
    fv_form_free(f);
    f = compile_pattern("(a|b)*c", false, why, sizeof why, NULL);
    for (size_t i = 0; i < 1000; i++) s[i] = "ab"[i % 2];
    s[1000] = 'c';
    s[1001] = '\0';
    assert_null(answer(f, s, buf, sizeof buf, NULL));
    fv_form_free(f);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counted_repetition_refused_fast),
        cmocka_unit_test(test_nesting_and_length_limits),
        cmocka_unit_test(test_backtracking_refused_fast),
        cmocka_unit_test(test_whole_answer_semantics),
        cmocka_unit_test(test_invalid_utf8_answer_refused),
        cmocka_unit_test(test_stored_form_fails_closed),
        cmocka_unit_test(test_form_worst_case_bounded),
        cmocka_unit_test(test_single_pattern_full_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

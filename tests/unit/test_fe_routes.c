/* Unit tests of the route matcher and the route table (frontend/http/fe_routes.c, linked from
 * fvfrontend): literal and ':' segments, parameter limits, hostile paths, and a table in which
 * every route is reachable and well-formed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "fe_http.h"

typedef char params[FE_MAX_PARAMS][FE_PARAM_MAX];

/* Matches with the parameters filled with a marker first, so a test sees what was written. */
static bool match(const char *pattern, const char *path, params p)
{
    memset(p, '#', sizeof(params));
    return fe_route_match(pattern, path, p);
}

static void test_literal_paths(void **state)
{
    (void)state;
    params p;
    assert_true(match("/healthz", "/healthz", p));
    assert_true(match("/v1/me/totp/confirm", "/v1/me/totp/confirm", p));
    assert_false(match("/healthz", "/healthy", p));
    assert_false(match("/healthz", "/healthzz", p));
    assert_false(match("/healthz", "/health", p));
    assert_false(match("/v1/me", "/v1/me/totp", p)); /* longer path */
    assert_false(match("/v1/me/totp", "/v1/me", p)); /* shorter path */
    assert_false(match("/v1/me", "/V1/ME", p));      /* case matters */
    assert_false(match("/v1/me", "v1/me", p));       /* no leading slash */
    assert_false(match("/v1/me", "", p));
    assert_false(match("/v1/me", "/", p));
    assert_true(match("/", "/", p));
    assert_false(match("/", "/x", p));
}

static void test_parameters_are_copied(void **state)
{
    (void)state;
    params p;
    assert_true(match("/v1/surveys/:id", "/v1/surveys/5b0c3f0e-2f7b-4a55-9d43-6f1f7c1a0001", p));
    assert_string_equal(p[0], "5b0c3f0e-2f7b-4a55-9d43-6f1f7c1a0001");
    assert_true(match("/v1/orgs/:org/members/:user", "/v1/orgs/o-1/members/u-2", p));
    assert_string_equal(p[0], "o-1");
    assert_string_equal(p[1], "u-2");
    /* A parameter is one segment: it never swallows a slash. */
    assert_false(match("/v1/surveys/:id", "/v1/surveys/a/b", p));
    assert_true(match("/v1/surveys/:id/responses", "/v1/surveys/a/responses", p));
    assert_string_equal(p[0], "a");
    assert_false(match("/v1/surveys/:id/responses", "/v1/surveys/a/deployments", p));
    /* No decoding: what evhttp gives is what the handler gets (ids are checked there). */
    assert_true(match("/v1/surveys/:id", "/v1/surveys/a%2Fb", p));
    assert_string_equal(p[0], "a%2Fb");
    /* Three parameters, the most a pattern may have. */
    assert_true(match("/:a/:b/:c", "/x/y/z", p));
    assert_string_equal(p[0], "x");
    assert_string_equal(p[1], "y");
    assert_string_equal(p[2], "z");
}

static void test_parameter_length_limit(void **state)
{
    (void)state;
    params p;
    char path[FE_PARAM_MAX + 64], longest[FE_PARAM_MAX], too_long[FE_PARAM_MAX + 1];
    memset(longest, 'a', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0'; /* FE_PARAM_MAX - 1 bytes: fits with its NUL */
    memset(too_long, 'b', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0'; /* FE_PARAM_MAX bytes: no room for the NUL */

    snprintf(path, sizeof path, "/v1/surveys/%s", longest);
    assert_true(match("/v1/surveys/:id", path, p));
    assert_int_equal(strlen(p[0]), FE_PARAM_MAX - 1);
    assert_string_equal(p[0], longest);

    snprintf(path, sizeof path, "/v1/surveys/%s", too_long);
    assert_false(match("/v1/surveys/:id", path, p));
    snprintf(path, sizeof path, "/v1/surveys/%s/responses", too_long);
    assert_false(match("/v1/surveys/:id/responses", path, p));
    /* An attachment's name of FV_ATTACHMENT_NAME_MAX bytes, percent-encoded, fits. */
    assert_true(FE_PARAM_MAX > 3 * FV_ATTACHMENT_NAME_MAX);
    /* Nothing was written past the parameter's buffer: the next one keeps its marker. */
    assert_int_equal(p[1][0], '#');
}

static void test_too_many_parameters(void **state)
{
    (void)state;
    params p;
    /* A pattern with more ':' segments than FE_MAX_PARAMS never matches (and writes no fourth). */
    assert_int_equal(FE_MAX_PARAMS, 3);
    assert_false(match("/:a/:b/:c/:d", "/w/x/y/z", p));
    assert_false(match("/:a/:b/:c/:d/e", "/w/x/y/z/e", p));
}

static void test_empty_segments_and_slashes(void **state)
{
    (void)state;
    params p;
    /* An empty parameter is not a parameter. */
    assert_false(match("/v1/surveys/:id", "/v1/surveys/", p));
    assert_false(match("/v1/surveys/:id/responses", "/v1/surveys//responses", p));
    /* Doubled slashes are not folded. */
    assert_false(match("/v1/me", "//v1/me", p));
    assert_false(match("/v1/me", "/v1//me", p));
    assert_false(match("/v1/me", "/v1/me//", p));
    /* A trailing slash is another path. */
    assert_false(match("/v1/me", "/v1/me/", p));
    assert_false(match("/v1/surveys/:id", "/v1/surveys/x/", p));
    assert_false(match("/v1/me/", "/v1/me", p));
    /* Only slashes. */
    assert_false(match("/:id", "//", p));
    assert_false(match("/:id", "/", p));
}

static void test_huge_path(void **state)
{
    (void)state;
    params p;
    /* A megabyte of segments, NUL-free: no match, no overrun, bounded work. */
    size_t n = 1 << 20;
    char *path = malloc(n + 1);
    assert_non_null(path);
    for (size_t i = 0; i < n; i++) path[i] = (i % 8 == 0) ? '/' : 'x';
    path[n] = '\0';
    assert_false(match("/v1/surveys/:id", path, p));
    assert_false(match("/:a/:b/:c", path, p));
    /* One huge segment after a literal prefix. */
    memcpy(path, "/v1/surveys/", 12);
    memset(path + 12, 'y', n - 12);
    assert_false(match("/v1/surveys/:id", path, p));
    assert_false(match("/v1/surveys", path, p));
    free(path);
}

/* A concrete path for a pattern: parameter k becomes "p<k>x". */
static void example_path(const char *pattern, char *out, size_t outlen)
{
    size_t o = 0;
    int k = 0;
    for (const char *s = pattern; *s && o + 8 < outlen;) {
        if (*s == ':' && s > pattern && s[-1] == '/') {
            o += (size_t)snprintf(out + o, outlen - o, "p%dx", k++);
            while (*s && *s != '/') s++;
        } else {
            out[o++] = *s++;
        }
    }
    out[o] = '\0';
}

static void test_route_table_is_well_formed(void **state)
{
    (void)state;
    assert_true(fe_nroutes > 0);
    for (int i = 0; i < fe_nroutes; i++) {
        const fe_route *r = &fe_routes[i];
        const char *pat = r->pattern;
        assert_non_null(r->handler);
        assert_non_null(r->name);
        assert_true(pat[0] == '/');
        size_t len = strlen(pat);
        assert_true(len == 1 || pat[len - 1] != '/');
        assert_null(strstr(pat, "//"));
        int nparams = 0;
        for (const char *s = pat; *s; s++)
            if (*s == ':') {
                assert_true(s[-1] == '/'); /* ':' only opens a segment */
                assert_true(s[1] != '/' && s[1] != '\0');
                nparams++;
            }
        assert_true(nparams <= FE_MAX_PARAMS);
        assert_string_equal(fe_route_name(i), r->name);
        for (int j = 0; j < i; j++) {
            /* one route per (method, pattern), one metrics name per route */
            assert_false(fe_routes[j].method == r->method && strcmp(fe_routes[j].pattern, pat) == 0);
            assert_string_not_equal(fe_routes[j].name, r->name);
        }
    }
    assert_string_equal(fe_route_name(fe_nroutes), "unmatched");
    assert_string_equal(fe_route_name(-1), "unmatched");
}

static void test_every_route_is_reachable(void **state)
{
    (void)state;
    /* The dispatcher takes the first route whose pattern and method match: no route may be
     * shadowed by an earlier one, and each gets its parameters in order. */
    for (int i = 0; i < fe_nroutes; i++) {
        char path[256];
        example_path(fe_routes[i].pattern, path, sizeof path);
        int first = -1;
        params p;
        for (int j = 0; j < fe_nroutes && first < 0; j++)
            if (fe_routes[j].method == fe_routes[i].method && match(fe_routes[j].pattern, path, p))
                first = j;
        if (first != i)
            fail_msg("%s %s is taken by route %d (%s)", fe_routes[i].name, path, first,
                     first >= 0 ? fe_routes[first].pattern : "none");
        assert_true(match(fe_routes[i].pattern, path, p));
        int k = 0;
        for (const char *s = fe_routes[i].pattern; *s; s++)
            if (*s == ':') {
                char want[16];
                snprintf(want, sizeof want, "p%dx", k);
                assert_string_equal(p[k], want);
                k++;
            }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_paths),
        cmocka_unit_test(test_parameters_are_copied),
        cmocka_unit_test(test_parameter_length_limit),
        cmocka_unit_test(test_too_many_parameters),
        cmocka_unit_test(test_empty_segments_and_slashes),
        cmocka_unit_test(test_huge_path),
        cmocka_unit_test(test_route_table_is_well_formed),
        cmocka_unit_test(test_every_route_is_reachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

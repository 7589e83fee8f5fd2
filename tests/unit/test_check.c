/* Unit tests of common/fv_check.c: the one rule for dates, date-times and geopoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "fv_check.h"
#include "fv_json.h"

static void test_dates(void **state)
{
    (void)state;
    assert_true(fv_check_date("2024-02-29"));
    assert_true(fv_check_date("0001-01-01"));
    assert_true(fv_check_date("9999-12-31"));
    assert_false(fv_check_date("0000-01-01"));
    assert_false(fv_check_date("2023-02-29"));
    assert_false(fv_check_date("1900-02-29"));
    assert_false(fv_check_date("2024-13-01"));
    assert_false(fv_check_date("2024-1-01"));
    assert_false(fv_check_date("2024-01-01 "));
    assert_false(fv_check_date(""));
}

static void test_date_times(void **state)
{
    (void)state;
    assert_true(fv_check_datetime("2024-05-01T10:20:30Z"));
    assert_true(fv_check_datetime("2024-05-01t10:20:30z"));
    assert_true(fv_check_datetime("2024-05-01T10:20:30.5+02:00"));
    assert_true(fv_check_datetime("2024-05-01T10:20:30.123456789-14:59"));
    assert_true(fv_check_datetime("0001-01-01T00:00:00Z"));
    assert_false(fv_check_datetime("0000-01-01T00:00:00Z"));
    assert_false(fv_check_datetime("2024-05-01T10:20:30+15:00"));
    assert_false(fv_check_datetime("2024-05-01T10:20:30+02:60"));
    assert_false(fv_check_datetime("2024-05-01T10:20:30"));
    assert_false(fv_check_datetime("2024-05-01T24:00:00Z"));
    assert_false(fv_check_datetime("2016-12-31T23:59:60Z"));
    assert_false(fv_check_datetime("2024-05-01T10:20:30.Z"));
    assert_false(fv_check_datetime("2024-05-01T10:20:30.1234567890Z"));
    assert_false(fv_check_datetime("2024-05-01T10:20:30+0200"));
    assert_false(fv_check_datetime("2024-05-01 10:20:30Z"));
    char long_one[64];
    memset(long_one, '0', sizeof long_one);
    memcpy(long_one, "2024-05-01T10:20:30.", 20);
    long_one[sizeof long_one - 2] = 'Z';
    long_one[sizeof long_one - 1] = '\0';
    assert_false(fv_check_datetime(long_one));
}

static const char *geo(const char *json, fv_geopoint *g)
{
    char err[64];
    yajl_val v = fv_json_parse(json, err, sizeof err);
    assert_non_null(v);
    const char *why = fv_check_geopoint(v, g);
    yajl_tree_free(v);
    return why;
}

static void test_geopoints(void **state)
{
    (void)state;
    fv_geopoint g;
    assert_null(geo("{\"lat\":-1.5,\"lon\":36.25,\"altitude\":-20,\"accuracy\":4}", &g));
    assert_true(g.has_altitude && g.has_accuracy);
    char *json = fv_geopoint_json(&g);
    assert_string_equal(json, "{\"lat\":-1.5,\"lon\":36.25,\"altitude\":-20,\"accuracy\":4}");
    free(json);
    assert_null(geo("{\"lat\":90,\"lon\":-180,\"accuracy\":null}", &g));
    assert_false(g.has_accuracy);
    assert_string_equal(geo("{\"lat\":90.0001,\"lon\":0}", NULL), "invalid latitude");
    assert_string_equal(geo("{\"lat\":0,\"lon\":180.1}", NULL), "invalid longitude");
    assert_string_equal(geo("{\"lat\":\"1\",\"lon\":0}", NULL), "invalid latitude");
    assert_string_equal(geo("{\"lat\":0,\"lon\":0,\"accuracy\":-1}", NULL), "invalid accuracy");
    assert_string_equal(geo("{\"lat\":0,\"lon\":0,\"accuracy\":1e8}", NULL), "invalid accuracy");
    assert_string_equal(geo("{\"lat\":0,\"lon\":0,\"altitude\":1e999}", NULL), "invalid altitude");
    assert_string_equal(geo("{\"lat\":0,\"lon\":0,\"speed\":1}", NULL), "invalid geopoint");
    assert_string_equal(geo("{\"lat\":0}", NULL), "expected geopoint");
    assert_string_equal(geo("[0,0]", NULL), "expected geopoint");
    assert_string_equal(fv_check_geopoint(NULL, NULL), "expected geopoint");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_date_times),
        cmocka_unit_test(test_geopoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

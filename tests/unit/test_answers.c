/* Unit tests for common/fv_answers.c: answers sealed value by value (deterministic, bound to their
 * submission and question), opened, the confidential-mode offset (migration 024's formula), and
 * the finishing of a reply that carries "_fv" hints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_answers.h"

#define RID "0b2f5c4e-0000-4000-8000-000000000001"
#define RID2 "0b2f5c4e-0000-4000-8000-000000000002"
#define ORG "9c1d0000-0000-4000-8000-0000000000aa"

static unsigned char dk[32];

static char *seal_text(const char *id, const char *data)
{
    yajl_val t = fv_json_parse(data, NULL, 0);
    assert_non_null(t);
    fv_jgen *j = fv_jgen_new();
    char err[256];
    assert_int_equal(fv_answers_seal(j, dk, 3, id, t, err, sizeof err), 0);
    size_t n;
    const char *s = fv_jgen_buf(j, &n);
    assert_non_null(s);
    char *out = strdup(s);
    fv_jgen_free(j);
    yajl_tree_free(t);
    return out;
}

static void test_seal_is_deterministic_and_hides_values(void **state)
{
    (void)state;
    char *a = seal_text(RID, "{\"name\":\"MARKER-Amina\",\"age\":37,\"g\":[{\"x\":1}]}");
    char *b = seal_text(RID, "{\"name\":\"MARKER-Amina\",\"age\":37,\"g\":[{\"x\":1}]}");
    char *c = seal_text(RID2, "{\"name\":\"MARKER-Amina\",\"age\":37,\"g\":[{\"x\":1}]}");
    assert_string_equal(a, b);               /* a retry compares equal without opening */
    assert_string_not_equal(a, c);           /* another submission: other ciphertexts */
    assert_null(strstr(a, "MARKER"));        /* the value is not in the text */
    assert_non_null(strstr(a, "\"name\":")); /* the question names stay */
    yajl_val t = fv_json_parse(a, NULL, 0);
    assert_true(YAJL_IS_STRING(fv_json_get(t, "age")));
    char err[256];
    const char *s = fv_json_get_str(t, "name");
    char *v = fv_answers_open_value(dk, 3, RID, "name", s, strlen(s), err, sizeof err);
    assert_non_null(v);
    assert_string_equal(v, "\"MARKER-Amina\"");
    fv_answers_free_text(v);
    /* bound to its question and submission, and to the key version the row names */
    assert_null(fv_answers_open_value(dk, 3, RID, "age", s, strlen(s), err, sizeof err));
    assert_non_null(strstr(err, "'age' does not open"));
    assert_null(fv_answers_open_value(dk, 3, RID2, "name", s, strlen(s), err, sizeof err));
    assert_non_null(strstr(err, RID2));
    assert_null(fv_answers_open_value(dk, 4, RID, "name", s, strlen(s), err, sizeof err));
    assert_non_null(strstr(err, "version 3, not 4"));
    /* a flipped byte is an error naming the row, never garbage */
    char *bad = strdup(s);
    bad[20] = bad[20] == 'A' ? 'B' : 'A';
    assert_null(fv_answers_open_value(dk, 3, RID, "name", bad, strlen(bad), err, sizeof err));
    assert_non_null(strstr(err, RID));
    assert_null(strstr(err, "MARKER"));
    free(bad);
    yajl_tree_free(t);
    free(a);
    free(b);
    free(c);
}

static void test_offset_matches_migration_024(void **state)
{
    (void)state;
    /* u = 0x80000000, v = 0x40000000: r = radius * sqrt((2^31 + 0.5) / 2^32), bearing pi/2 (east) */
    fv_gps_offset o;
    assert_true(fv_gps_offset_of("80000000-0000-4000-8000-000040000000", 1000, &o));
    assert_true(fabs(o.r - 1000 * sqrt((2147483648.0 + 0.5) / 4294967296.0)) < 1e-9);
    assert_true(fabs(o.a - M_PI / 2) < 1e-12);
    assert_false(fv_gps_offset_of("not-a-seed", 1000, &o));
    yajl_val p = fv_json_parse("{\"lat\":0,\"lon\":179.999,\"accuracy\":4}", NULL, 0);
    fv_jgen *j = fv_jgen_new();
    fv_gps_displace(j, p, &o);
    const char *s = fv_jgen_buf(j, NULL);
    yajl_val m = fv_json_parse(s, NULL, 0);
    double lat = strtod(YAJL_GET_NUMBER(fv_json_get(m, "lat")), NULL);
    double lon = strtod(YAJL_GET_NUMBER(fv_json_get(m, "lon")), NULL);
    assert_true(fabs(lat) < 1e-9);                                         /* due east */
    assert_true(lon < -179.99);                                            /* wrapped into [-180, 180) */
    assert_string_equal(YAJL_GET_NUMBER(fv_json_get(m, "accuracy")), "4"); /* kept */
    assert_true(fv_gps_is_moved(m, p, &o));
    assert_false(fv_gps_is_moved(p, p, &o));
    yajl_tree_free(m);
    fv_jgen_free(j);
    /* not a point: null, never the true value */
    yajl_val q = fv_json_parse("{\"lat\":\"1\",\"lon\":2}", NULL, 0);
    j = fv_jgen_new();
    fv_gps_displace(j, q, &o);
    assert_string_equal(fv_jgen_buf(j, NULL), "null");
    fv_jgen_free(j);
    yajl_tree_free(q);
    yajl_tree_free(p);
    char t[32];
    fv_double_text(0.1, t);
    assert_string_equal(t, "0.1");
    fv_double_text(-12.345678901234567, t);
    assert_true(strtod(t, NULL) == -12.345678901234567);
}

static fv_dkring *ring_with_key(char **wrapped)
{
    static fv_keyset ks;
    memset(&ks, 0, sizeof ks);
    ks.n = 1;
    memset(ks.keys[0].key, 7, FV_KEY_BYTES);
    snprintf(ks.keys[0].id, sizeof ks.keys[0].id, "%s", "77777777");
    *wrapped = fv_datakey_wrap(&ks, "org:" ORG, 3, dk);
    assert_non_null(*wrapped);
    return fv_dkring_new(&ks, 4);
}

static void test_finish_opens_masks_and_drops_the_hint(void **state)
{
    (void)state;
    char *wk = NULL;
    fv_dkring *ring = ring_with_key(&wk);
    char *data = seal_text(RID, "{\"name\":\"MARKER-Amina\",\"home\":{\"lat\":10,\"lon\":20}}");
    yajl_val loc = fv_json_parse("{\"lat\":1.5,\"lon\":2.5}", NULL, 0);
    fv_jgen *lj = fv_jgen_new();
    char err[256];
    assert_int_equal(fv_answers_seal_location(lj, dk, 3, RID, loc, err, sizeof err), 0);
    const char *sloc = fv_jgen_buf(lj, NULL);
    char reply[8192];
    snprintf(
        reply, sizeof reply,
        "{\"items\":[{\"id\":\"%s\",\"data\":%s,\"location\":%s,\"version\":2,"
        "\"_fv\":{\"id\":\"%s\",\"org\":\"%s\",\"kv\":3,\"wk\":\"%s\",\"mask\":null}},"
        "{\"state\":{\"id\":\"%s\",\"data\":%s,\"location\":%s,"
        "\"_fv\":{\"id\":\"%s\",\"org\":\"%s\",\"kv\":3,\"wk\":\"%s\",\"mask\":"
        "{\"seed\":\"80000000-0000-4000-8000-000040000000\",\"radius\":1000,\"geo\":[\"home\"]}}}}],"
        "\"next\":null}",
        RID, data, sloc, RID, ORG, wk, RID, data, sloc, RID, ORG, wk);
    size_t n;
    char *out = fv_answers_finish(reply, strlen(reply), ring, &n, err, sizeof err);
    assert_non_null(out);
    assert_null(strstr(out, "_fv"));
    yajl_val t = fv_json_parse(out, NULL, 0);
    assert_non_null(t);
    yajl_val items = fv_json_get(t, "items");
    yajl_val a = items->u.array.values[0], b = fv_json_get(items->u.array.values[1], "state");
    assert_string_equal(fv_json_get_str(fv_json_get(a, "data"), "name"), "MARKER-Amina");
    assert_string_equal(YAJL_GET_NUMBER(fv_json_get(fv_json_get(a, "location"), "lat")), "1.5");
    assert_string_equal(YAJL_GET_NUMBER(fv_json_get(a, "version")), "2");
    /* masked: the same answers, the points moved */
    assert_string_equal(fv_json_get_str(fv_json_get(b, "data"), "name"), "MARKER-Amina");
    assert_string_not_equal(YAJL_GET_NUMBER(
                                fv_json_get(fv_json_get(fv_json_get(b, "data"), "home"), "lon")),
                            "20");
    assert_string_not_equal(YAJL_GET_NUMBER(fv_json_get(fv_json_get(b, "location"), "lon")), "2.5");
    yajl_tree_free(t);
    fv_answers_free_text(out);
    /* a tampered answer fails the whole reply, naming the response */
    char *p = strstr(reply, "\"name\":\"") + 12;
    *p = *p == 'A' ? 'B' : 'A';
    assert_null(fv_answers_finish(reply, strlen(reply), ring, &n, err, sizeof err));
    assert_non_null(strstr(err, RID));
    /* clear rows (kv null) are masked too */
    const char
        *clear = "{\"id\":\"x\",\"data\":{\"home\":{\"lat\":10,\"lon\":20},\"n\":1},\"location\":null,"
                 "\"_fv\":{\"id\":\"x\",\"org\":\"" ORG "\",\"kv\":null,\"wk\":null,\"mask\":"
                 "{\"seed\":null,\"radius\":1000,\"geo\":[\"home\"]}}}";
    out = fv_answers_finish(clear, strlen(clear), ring, &n, err, sizeof err);
    assert_non_null(out);
    assert_string_equal(out, "{\"id\":\"x\",\"data\":{\"home\":null,\"n\":1},\"location\":null}");
    fv_answers_free_text(out);
    /* no hint: unchanged */
    out = fv_answers_finish("{\"a\":1}", 7, ring, &n, err, sizeof err);
    assert_string_equal(out, "{\"a\":1}");
    free(out);
    fv_jgen_free(lj);
    yajl_tree_free(loc);
    free(data);
    free(wk);
    fv_dkring_free(ring);
}

int main(void)
{
    memset(dk, 0x42, sizeof dk);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_is_deterministic_and_hides_values),
        cmocka_unit_test(test_offset_matches_migration_024),
        cmocka_unit_test(test_finish_opens_masks_and_drops_the_hint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of fv_envelope: XADD argv -> parse round trip, malformed entries rejected, and the
 * dead-letter fields written, read back and told apart from the entry's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "fv_envelope.h"

#define NARGS (3 + 2 * FV_ENVELOPE_NFIELDS)

static fv_envelope sample(void)
{
    fv_envelope e;
    memset(&e, 0, sizeof e);
    strcpy(e.id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ab");
    strcpy(e.survey_id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ac");
    strcpy(e.deployment_id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ad");
    strcpy(e.submitted_by, "0190a1b2-c3d4-7e5f-8a9b-0123456789ae");
    e.survey_version = 7;
    e.received_at_ms = 1717171717123LL;
    e.data = "{\"q\":\"caf\xc3\xa9\"}";
    e.data_len = strlen(e.data);
    e.location = "{\"lat\":1.5,\"lon\":-2}";
    e.location_len = strlen(e.location);
    e.collected_at = "2024-05-01T10:00:00Z";
    e.collected_at_len = strlen(e.collected_at);
    e.verified = true;
    return e;
}

/* Encodes e and parses the field/value part (argv after "XADD stream *") back into out. */
static int round_trip(const fv_envelope *e, fv_envelope *out, const char **argv, size_t *lens, char *err,
                      size_t errlen)
{
    char scratch[64];
    int n = fv_envelope_xadd_argv(e, "fv:test", scratch, sizeof scratch, argv, lens);
    assert_int_equal(n, NARGS);
    return fv_envelope_parse(out, argv + 3, lens + 3, (size_t)n - 3, err, errlen);
}

static void test_round_trip(void **state)
{
    (void)state;
    fv_envelope e = sample(), out;
    const char *argv[NARGS];
    size_t lens[NARGS];
    char err[128] = "";
    assert_int_equal(round_trip(&e, &out, argv, lens, err, sizeof err), 0);
    assert_string_equal(argv[0], "XADD");
    assert_string_equal(argv[1], "fv:test");
    assert_string_equal(argv[2], "*");
    assert_string_equal(out.id, e.id);
    assert_string_equal(out.survey_id, e.survey_id);
    assert_string_equal(out.deployment_id, e.deployment_id);
    assert_string_equal(out.submitted_by, e.submitted_by);
    assert_int_equal(out.survey_version, 7);
    assert_int_equal(out.received_at_ms, 1717171717123LL);
    assert_int_equal(out.data_len, e.data_len);
    assert_memory_equal(out.data, e.data, e.data_len);
    assert_int_equal(out.location_len, e.location_len);
    assert_memory_equal(out.location, e.location, e.location_len);
    assert_int_equal(out.collected_at_len, e.collected_at_len);
    assert_memory_equal(out.collected_at, e.collected_at, e.collected_at_len);
    assert_true(out.verified);
}

static void test_round_trip_optional_empty(void **state)
{
    (void)state;
    fv_envelope e = sample(), out;
    e.location = NULL;
    e.location_len = 0;
    e.collected_at = NULL;
    e.collected_at_len = 0;
    e.verified = false;
    const char *argv[NARGS];
    size_t lens[NARGS];
    char err[128];
    assert_int_equal(round_trip(&e, &out, argv, lens, err, sizeof err), 0);
    assert_int_equal(out.location_len, 0);
    assert_int_equal(out.collected_at_len, 0);
    assert_false(out.verified);
}

/* Builds the argv of sample(), then replaces (or, with value NULL, removes) one field. */
static int parse_with(const char *field, const char *value, char *err, size_t errlen)
{
    fv_envelope e = sample(), out;
    const char *argv[NARGS];
    size_t lens[NARGS];
    char scratch[64];
    int n = fv_envelope_xadd_argv(&e, "s", scratch, sizeof scratch, argv, lens);
    const char *items[NARGS];
    size_t ilens[NARGS], k = 0;
    bool found = false;
    for (int i = 3; i < n; i += 2) {
        if (strcmp(argv[i], field) == 0) {
            found = true;
            if (value == NULL) continue;
            items[k] = argv[i];
            ilens[k++] = lens[i];
            items[k] = value;
            ilens[k++] = strlen(value);
            continue;
        }
        items[k] = argv[i];
        ilens[k++] = lens[i];
        items[k] = argv[i + 1];
        ilens[k++] = lens[i + 1];
    }
    assert_true(found);
    return fv_envelope_parse(&out, items, ilens, k, err, errlen);
}

static void test_missing_fields_rejected(void **state)
{
    (void)state;
    static const char *fields[] = {
        "v",           "id",   "survey_id", "survey_version", "deployment_id", "submitted_by",
        "received_at", "data", "location",  "collected_at",   "verified"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char err[128] = "";
        assert_int_equal(parse_with(fields[i], NULL, err, sizeof err), -1);
        assert_non_null(strstr(err, fields[i]));
        assert_non_null(strstr(err, "missing"));
    }
}

static void test_malformed_fields_rejected(void **state)
{
    (void)state;
    struct {
        const char *field, *value;
    } bad[] = {
        {"v", "2"},
        {"id", "not-a-uuid"},
        {"id", "0190a1b2-c3d4-7e5f-8a9b-0123456789a"},  /* one short */
        {"id", "0190a1b2xc3d4-7e5f-8a9b-0123456789ab"}, /* separator */
        {"survey_id", "0190a1b2-c3d4-7e5f-8a9b-0123456789ag"},
        {"survey_version", "0"},
        {"survey_version", "-3"},
        {"survey_version", "12x"},
        {"survey_version", "99999999999"},
        {"deployment_id", ""},
        {"submitted_by", "x"},
        {"received_at", ""},
        {"received_at", "17e3"},
        {"data", ""},
        {"verified", "yes"},
        {"verified", "2"},
        {"rversion", "-2"},
        {"rversion", ""},
        {"rversion", "1x"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[128] = "";
        int rc = parse_with(bad[i].field, bad[i].value, err, sizeof err);
        if (rc != -1) fail_msg("%s=%s was accepted", bad[i].field, bad[i].value);
        assert_non_null(strstr(err, bad[i].field));
    }
}

/* rversion (the revocation version of a verified entry's check) travels, and an entry of an
 * older front end without it parses as -1 (unknown: the worker re-checks it after any revocation). */
static void test_rversion_round_trip_and_optional(void **state)
{
    (void)state;
    fv_envelope e = sample(), out;
    e.rversion = 9007199254740993LL;
    const char *argv[NARGS];
    size_t lens[NARGS];
    char err[128] = "";
    assert_int_equal(round_trip(&e, &out, argv, lens, err, sizeof err), 0);
    assert_true(out.rversion == 9007199254740993LL);
    e.rversion = -1;
    e.received_at_ms = INT64_MIN;
    assert_int_equal(round_trip(&e, &out, argv, lens, err, sizeof err), 0);
    assert_true(out.rversion == -1 && out.received_at_ms == INT64_MIN);
    assert_int_equal(parse_with("rversion", NULL, err, sizeof err), 0);
    assert_int_equal(parse_with("rversion", "-1", err, sizeof err), 0);
}

static void test_unknown_fields_ignored(void **state)
{
    (void)state;
    fv_envelope e = sample(), out;
    const char *argv[NARGS + 2];
    size_t lens[NARGS + 2];
    char scratch[64], err[128];
    int n = fv_envelope_xadd_argv(&e, "s", scratch, sizeof scratch, argv, lens);
    argv[n] = "from_the_future";
    lens[n] = strlen(argv[n]);
    argv[n + 1] = "x";
    lens[n + 1] = 1;
    assert_int_equal(fv_envelope_parse(&out, argv + 3, lens + 3, (size_t)n - 1, err, sizeof err), 0);
    assert_string_equal(out.id, e.id);
}

#define NDEAD (NARGS + 2 * FV_ENVELOPE_DEAD_NFIELDS)

/* A dead letter as the worker writes it: the entry's fields, then the dead-letter fields. */
static int dead_letter(const fv_envelope *e, const char *error, const char **argv, size_t *lens,
                       char *scratch, size_t scratchlen)
{
    int n = fv_envelope_xadd_argv(e, "fv:dead", scratch, 64, argv, lens);
    n += fv_envelope_dead_argv(error, "1700000000000-7", 5, scratch + 64, scratchlen - 64, argv + n,
                               lens + n);
    return n;
}

static void test_dead_letter_round_trip(void **state)
{
    (void)state;
    fv_envelope e = sample(), out;
    const char *argv[NDEAD];
    size_t lens[NDEAD];
    char scratch[128], err[128];
    int n = dead_letter(&e, "survey not found", argv, lens, scratch, sizeof scratch);
    assert_int_equal(n, NDEAD);
    assert_string_equal(argv[NARGS], FV_ENVELOPE_F_ERROR);
    assert_string_equal(argv[NARGS + 2], FV_ENVELOPE_F_STREAM_ID);
    assert_string_equal(argv[NARGS + 4], FV_ENVELOPE_F_DELIVERIES);
    assert_string_equal(argv[NARGS + 5], "5");
    fv_dead_letter d;
    fv_envelope_dead_parse(&d, argv + 3, lens + 3, (size_t)n - 3);
    assert_int_equal(d.own_items, 2 * FV_ENVELOPE_NFIELDS);
    assert_int_equal(d.error_len, strlen("survey not found"));
    assert_memory_equal(d.error, "survey not found", d.error_len);
    assert_int_equal(d.stream_id_len, strlen("1700000000000-7"));
    assert_memory_equal(d.stream_id, "1700000000000-7", d.stream_id_len);
    assert_int_equal(d.deliveries, 5);
    /* What requeue puts back is the envelope as it was. */
    assert_int_equal(fv_envelope_parse(&out, argv + 3, lens + 3, d.own_items, err, sizeof err), 0);
    assert_string_equal(out.id, e.id);
    long i = fv_envelope_find(argv + 3, lens + 3, d.own_items, FV_ENVELOPE_F_DEPLOYMENT_ID);
    assert_true(i > 0);
    assert_string_equal(argv[3 + i], e.deployment_id);
    assert_int_equal(fv_envelope_find(argv + 3, lens + 3, d.own_items, FV_ENVELOPE_F_ERROR), -1);
}

/* Only the run of fields at the end counts, each once: an "error" before it stays the entry's, and an
 * entry that never was a dead letter has none. */
static void test_dead_letter_fields_only_at_the_end(void **state)
{
    (void)state;
    const char *items[] = {"id",        "x",   "error",      "its own", "deliveries", "7",
                           "stream_id", "1-1", "deliveries", "x9",      "error",      "the worker's"};
    size_t lens[12];
    for (int i = 0; i < 12; i++) lens[i] = strlen(items[i]);
    fv_dead_letter d;
    fv_envelope_dead_parse(&d, items, lens, 12);
    assert_int_equal(d.own_items, 6); /* the deliveries at 4 repeats the one at 8: it is the entry's */
    assert_memory_equal(d.error, "the worker's", d.error_len);
    assert_int_equal(d.deliveries, -1); /* "x9" is not a number */
    assert_memory_equal(d.stream_id, "1-1", d.stream_id_len);
    fv_envelope_dead_parse(&d, items, lens, 4);
    assert_int_equal(d.own_items, 2);
    assert_memory_equal(d.error, "its own", d.error_len);
    fv_envelope_dead_parse(&d, items, lens, 2);
    assert_int_equal(d.own_items, 2);
    assert_null(d.error);
    assert_null(d.stream_id);
    assert_int_equal(d.deliveries, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_optional_empty),
        cmocka_unit_test(test_missing_fields_rejected),
        cmocka_unit_test(test_malformed_fields_rejected),
        cmocka_unit_test(test_rversion_round_trip_and_optional),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_dead_letter_round_trip),
        cmocka_unit_test(test_dead_letter_fields_only_at_the_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

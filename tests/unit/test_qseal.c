/* Unit tests for common/fv_qseal.c, the sealing of queue entries: a sealed entry written as XADD
 * arguments parses and opens to the same payload; no payload byte is in the sealed text; a
 * flipped byte, another entry's ids, a wrong key, a truncated text do not open; an entry sealed
 * under a previous key opens while that key is in the key set; and a small timing of seal+open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fv_envelope.h"
#include "fv_keys.h"
#include "fv_qseal.h"

static const char *K1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char *K2 = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

static void load(fv_keyset *ks, const char *text)
{
    char path[64], err[256];
    snprintf(path, sizeof path, "/tmp/fv-test-qseal-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    fchmod(fd, 0600);
    close(fd);
    assert_int_equal(fv_keys_load(ks, path, err, sizeof err), 0);
    unlink(path);
}

static fv_envelope sample(const char *openrosa)
{
    fv_envelope e;
    memset(&e, 0, sizeof e);
    strcpy(e.id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ab");
    strcpy(e.survey_id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ac");
    strcpy(e.deployment_id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ad");
    strcpy(e.submitted_by, "0190a1b2-c3d4-7e5f-8a9b-0123456789ae");
    e.survey_version = 3;
    e.received_at_ms = 1717171717123LL;
    e.data = "{\"q\":\"MARKER-ANSWER-caf\xc3\xa9\"}";
    e.data_len = strlen(e.data);
    e.location = "{\"lat\":51.5,\"lon\":-0.1}";
    e.location_len = strlen(e.location);
    e.collected_at = "2024-05-01T10:00:00Z";
    e.collected_at_len = strlen(e.collected_at);
    e.verified = true;
    e.openrosa = openrosa;
    e.openrosa_len = openrosa ? strlen(openrosa) : 0;
    return e;
}

/* The sealed text of e (caller frees). */
static char *seal_text(fv_qseal *q, const fv_envelope *e)
{
    size_t tl = fv_qseal_text_len(e), sl = fv_qseal_scratch_len(e);
    char *out = malloc(tl + 1);
    unsigned char *scratch = malloc(sl);
    assert_non_null(out);
    assert_non_null(scratch);
    assert_int_equal(fv_qseal_seal(q, e, scratch, out), 0);
    assert_int_equal(strlen(out), tl);
    free(scratch);
    return out;
}

/* Builds the XADD arguments of e sealed as text, parses them back into out. */
static void wire(const fv_envelope *e, const char *text, fv_envelope *out)
{
    fv_envelope se = *e;
    se.sealed = text;
    se.sealed_len = strlen(text);
    const char *argv[3 + 2 * FV_ENVELOPE_MAX_FIELDS];
    size_t lens[3 + 2 * FV_ENVELOPE_MAX_FIELDS];
    char scratch[64], err[256];
    int n = fv_envelope_xadd_argv(&se, "s", scratch, sizeof scratch, argv, lens);
    assert_int_equal(n, 3 + 2 * FV_ENVELOPE_NSEALED);
    for (int i = 3; i < n; i++) {
        assert_false(lens[i] == 4 && memcmp(argv[i], "data", 4) == 0);
        assert_false(lens[i] == 8 && memcmp(argv[i], "openrosa", 8) == 0);
    }
    assert_int_equal(fv_envelope_parse(out, argv + 3, lens + 3, (size_t)n - 3, err, sizeof err), 0);
    assert_null(out->data);
    assert_ptr_equal(out->sealed, text);
}

static void test_round_trip(void **state)
{
    (void)state;
    fv_keyset ks;
    load(&ks, K1);
    fv_qseal *q = fv_qseal_new(&ks);
    assert_non_null(q);
    const char *ors[] = {NULL, "{\"instance_id\":\"uuid:1\",\"xml\":\"<d>MARKER-XML</d>\"}"};
    for (int k = 0; k < 2; k++) {
        fv_envelope e = sample(ors[k]);
        char *text = seal_text(q, &e);
        assert_int_equal(strncmp(text, "q1.", 3), 0);
        assert_int_equal(strncmp(text + 3, ks.keys[0].id, FV_KEY_IDLEN), 0);
        assert_null(strstr(text, "MARKER"));
        fv_envelope got;
        wire(&e, text, &got);
        unsigned char *plain;
        size_t plen;
        char err[256];
        assert_int_equal(fv_qseal_open(q, &got, &plain, &plen, err, sizeof err), 0);
        assert_int_equal(got.data_len, e.data_len);
        assert_memory_equal(got.data, e.data, e.data_len);
        assert_int_equal(got.location_len, e.location_len);
        assert_memory_equal(got.location, e.location, e.location_len);
        if (ors[k]) {
            assert_int_equal(got.openrosa_len, e.openrosa_len);
            assert_memory_equal(got.openrosa, e.openrosa, e.openrosa_len);
        } else {
            assert_null(got.openrosa);
        }
        assert_string_equal(got.collected_at, "2024-05-01T10:00:00Z");
        fv_qseal_plain_free(plain, plen);
        /* Two seals of one entry differ (random nonce). */
        char *again = seal_text(q, &e);
        assert_string_not_equal(text, again);
        free(again);
        free(text);
    }
    /* No location at all. */
    fv_envelope e = sample(NULL);
    e.location = NULL, e.location_len = 0;
    char *text = seal_text(q, &e);
    fv_envelope got;
    wire(&e, text, &got);
    unsigned char *plain;
    size_t plen;
    char err[256];
    assert_int_equal(fv_qseal_open(q, &got, &plain, &plen, err, sizeof err), 0);
    assert_int_equal(got.location_len, 0);
    fv_qseal_plain_free(plain, plen);
    free(text);
    fv_qseal_free(q);
    fv_keys_clear(&ks);
}

/* Each change must fail to open, with a reason and without touching the payload pointers. */
static void expect_refused(fv_qseal *q, fv_envelope *got, const char *why_part)
{
    unsigned char *plain = (unsigned char *)"x";
    size_t plen = 7;
    char err[256] = "";
    assert_int_equal(fv_qseal_open(q, got, &plain, &plen, err, sizeof err), -1);
    assert_null(plain);
    assert_null(got->data);
    assert_non_null(strstr(err, why_part));
    assert_null(strstr(err, "MARKER"));
}

static void test_refusals(void **state)
{
    (void)state;
    fv_keyset ks, other;
    load(&ks, K1);
    load(&other, K2);
    fv_qseal *q = fv_qseal_new(&ks), *qo = fv_qseal_new(&other);
    fv_envelope e = sample(NULL), got;
    char *text = seal_text(q, &e);
    size_t tl = strlen(text);
    /* Every flipped byte of the base64 part (to another base64url character) refuses. */
    for (size_t i = 3 + FV_KEY_IDLEN + 1; i < tl; i++) {
        char *t = strdup(text);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        wire(&e, t, &got);
        unsigned char *plain;
        size_t plen;
        char err[256];
        assert_int_equal(fv_qseal_open(q, &got, &plain, &plen, err, sizeof err), -1);
        assert_null(got.data);
        free(t);
    }
    {
        char *t = strdup(text);
        t[tl - 5] = t[tl - 5] == 'A' ? 'B' : 'A';
        wire(&e, t, &got);
        expect_refused(q, &got, "does not open");
        free(t);
    }
    /* Moved to another submission, deployment or submitter: the associated data differs. */
    char *fields[] = {e.id, e.deployment_id, e.submitted_by};
    for (int f = 0; f < 3; f++) {
        fv_envelope moved = e;
        char *fld = f == 0 ? moved.id : f == 1 ? moved.deployment_id : moved.submitted_by;
        (void)fields;
        fld[FV_UUID_STRLEN - 1] = fld[FV_UUID_STRLEN - 1] == 'f' ? 'e' : 'f';
        wire(&moved, text, &got);
        expect_refused(q, &got, "does not open");
    }
    /* A key set without the key: named by its id. */
    wire(&e, text, &got);
    expect_refused(qo, &got, "not in the key file");
    /* Same id, other key (a forged id): does not open. */
    char *t = strdup(text);
    memcpy(t + 3, other.keys[0].id, FV_KEY_IDLEN);
    wire(&e, t, &got);
    expect_refused(qo, &got, "does not open");
    free(t);
    /* Truncated, garbage, wrong prefix. */
    const char *bad[] = {"q1.", "q1.0123456.", "s1.abcdefgh.AAAA", "q2.abcdefgh.AAAA"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        wire(&e, bad[i], &got);
        expect_refused(q, &got, "");
    }
    t = strdup(text);
    t[tl - 30] = '\0';
    wire(&e, t, &got);
    expect_refused(q, &got, "");
    t[3 + FV_KEY_IDLEN + 1 + 1] = '\0'; /* one base64 char: not canonical */
    wire(&e, t, &got);
    expect_refused(q, &got, "malformed");
    free(t);
    free(text);
    fv_qseal_free(q);
    fv_qseal_free(qo);
    fv_keys_clear(&ks);
    fv_keys_clear(&other);
}

static void test_rotation(void **state)
{
    (void)state;
    fv_keyset before, after, dropped;
    char text[256];
    load(&before, K1);
    snprintf(text, sizeof text, "%s\n%s\n", K2, K1);
    load(&after, text);
    load(&dropped, K2);
    fv_qseal *qb = fv_qseal_new(&before), *qa = fv_qseal_new(&after), *qd = fv_qseal_new(&dropped);
    fv_envelope e = sample(NULL), got;
    char *old = seal_text(qb, &e), *cur = seal_text(qa, &e);
    assert_int_equal(strncmp(cur + 3, after.keys[0].id, FV_KEY_IDLEN), 0);
    unsigned char *plain;
    size_t plen;
    char err[256];
    wire(&e, old, &got);
    assert_int_equal(fv_qseal_open(qa, &got, &plain, &plen, err, sizeof err), 0);
    assert_memory_equal(got.data, e.data, e.data_len);
    fv_qseal_plain_free(plain, plen);
    wire(&e, cur, &got);
    assert_int_equal(fv_qseal_open(qa, &got, &plain, &plen, err, sizeof err), 0);
    fv_qseal_plain_free(plain, plen);
    /* The old key gone from the file: its entries are refused, by key id. */
    wire(&e, old, &got);
    expect_refused(qd, &got, before.keys[0].id);
    free(old);
    free(cur);
    fv_qseal_free(qb);
    fv_qseal_free(qa);
    fv_qseal_free(qd);
    fv_keys_clear(&before);
    fv_keys_clear(&after);
    fv_keys_clear(&dropped);
}

static void test_parse_rules(void **state)
{
    (void)state;
    fv_envelope e = sample(NULL), got;
    /* A sealed entry that also carries a clear data field is malformed. */
    const char *argv[3 + 2 * FV_ENVELOPE_MAX_FIELDS + 2];
    size_t lens[3 + 2 * FV_ENVELOPE_MAX_FIELDS + 2];
    char scratch[64], err[256];
    int n = fv_envelope_xadd_argv(&e, "s", scratch, sizeof scratch, argv, lens);
    argv[n] = "sealed", lens[n] = 6, n++;
    argv[n] = "q1.abcdefgh.AAAA", lens[n] = 16, n++;
    assert_int_equal(fv_envelope_parse(&got, argv + 3, lens + 3, (size_t)n - 3, err, sizeof err), -1);
    assert_non_null(strstr(err, "sealed entry with a clear"));
    /* An empty sealed value is malformed. */
    fv_envelope se = e;
    se.sealed = "";
    se.sealed_len = 0;
    n = fv_envelope_xadd_argv(&se, "s", scratch, sizeof scratch, argv, lens);
    assert_int_equal(fv_envelope_parse(&got, argv + 3, lens + 3, (size_t)n - 3, err, sizeof err), -1);
}

/* A micro benchmark, not a test of speed: seal + open of a 2 KiB and a 256 KiB payload, printed
 * (docs/performance.md). Runs in well under a second. */
static void test_timing(void **state)
{
    (void)state;
    fv_keyset ks;
    load(&ks, K1);
    fv_qseal *q = fv_qseal_new(&ks);
    size_t sizes[] = {2048, 262144};
    for (int s = 0; s < 2; s++) {
        char *data = malloc(sizes[s] + 1);
        memset(data, 'a', sizes[s]);
        data[0] = '{', data[sizes[s] - 1] = '}', data[sizes[s]] = '\0';
        fv_envelope e = sample(NULL);
        e.data = data;
        e.data_len = sizes[s];
        size_t tl = fv_qseal_text_len(&e);
        char *out = malloc(tl + 1);
        unsigned char *scratch = malloc(fv_qseal_scratch_len(&e));
        int iters = s == 0 ? 20000 : 100;
        struct timespec a, b, c;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int i = 0; i < iters; i++) assert_int_equal(fv_qseal_seal(q, &e, scratch, out), 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        for (int i = 0; i < iters; i++) {
            fv_envelope got = e;
            got.sealed = out, got.sealed_len = tl;
            unsigned char *plain;
            size_t plen;
            char err[256];
            assert_int_equal(fv_qseal_open(q, &got, &plain, &plen, err, sizeof err), 0);
            fv_qseal_plain_free(plain, plen);
        }
        clock_gettime(CLOCK_MONOTONIC, &c);
        double ts = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / iters / 1000.0;
        double to = ((c.tv_sec - b.tv_sec) * 1e9 + (c.tv_nsec - b.tv_nsec)) / iters / 1000.0;
        printf("qseal %zu-byte payload: seal %.2f us, open %.2f us per entry\n", sizes[s], ts, to);
        free(out);
        free(scratch);
        free(data);
    }
    fv_qseal_free(q);
    fv_keys_clear(&ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_rotation),   cmocka_unit_test(test_parse_rules),
        cmocka_unit_test(test_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

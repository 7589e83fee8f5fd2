/* Unit tests of master key rotation without downtime (docs/operations.md section 12): every use of
 * the key file opens and verifies under any key of the file, not only the first, and makes under
 * the first alone. Three key files, as a rolling restart has them side by side:
 *   old      [K1]      a program not yet restarted
 *   standby  [K1, K2]  restarted after `--new-key --standby`
 *   promoted [K2, K1]  restarted after `--promote K2`
 * For session tokens (fv_token), queue entries (fv_qseal), TOTP secrets (fv_seal), data keys
 * (fv_datakey_wrap, and the ring fv_dkring) and the shared cache's MACs (fv_shared): what each
 * makes opens in the two others it meets during the procedure (old with standby, standby with
 * promoted), what standby makes opens in old (K2 signs nothing yet), and what promoted makes does
 * not open in old: the window that plain `--new-key` opens and the standby step closes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fv_datakey.h"
#include "fv_envelope.h"
#include "fv_keys.h"
#include "fv_qseal.h"
#include "fv_seal.h"
#include "fv_shared.h"
#include "fv_token.h"

static const char *K1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char *K2 = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
#define NOW 1700000100

enum { OLD, STANDBY, PROMOTED, NSETS };
static const char *const set_name[NSETS] = {"old [K1]", "standby [K1, K2]", "promoted [K2, K1]"};

static void load(fv_keyset *ks, const char *text)
{
    char path[64], err[256];
    snprintf(path, sizeof path, "/tmp/fv-test-standby-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, 0600), 0);
    close(fd);
    assert_int_equal(fv_keys_load(ks, path, err, sizeof err), 0);
    unlink(path);
}

static void load_sets(fv_keyset ks[NSETS])
{
    char text[256];
    snprintf(text, sizeof text, "%s\n", K1);
    load(&ks[OLD], text);
    snprintf(text, sizeof text, "%s\n%s\n", K1, K2);
    load(&ks[STANDBY], text);
    snprintf(text, sizeof text, "%s\n%s\n", K2, K1);
    load(&ks[PROMOTED], text);
}

/* One use of the key file: make something under ks (caller frees), and open it with ks. */
typedef struct use {
    const char *what;
    char *(*make)(const fv_keyset *ks);
    bool (*open)(const fv_keyset *ks, const char *text);
} use;

static fv_token sample_token(void)
{
    fv_token t;
    memset(&t, 0, sizeof t);
    strcpy(t.session_id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ab");
    strcpy(t.user_id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ac");
    t.issued_at = NOW - 100;
    t.expires_at = NOW + 43200;
    return t;
}

static char *token_make(const fv_keyset *ks)
{
    fv_token t = sample_token();
    char *out = malloc(FV_TOKEN_MAX + 1);
    assert_non_null(out);
    assert_int_equal(fv_token_sign(ks, &t, out), 0);
    return out;
}

static bool token_open(const fv_keyset *ks, const char *text)
{
    fv_token t;
    if (fv_token_verify(ks, text, NOW, &t) != FV_TOKEN_OK) return false;
    assert_string_equal(t.user_id, sample_token().user_id);
    return true;
}

static fv_envelope sample_entry(void)
{
    fv_envelope e;
    memset(&e, 0, sizeof e);
    strcpy(e.id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ab");
    strcpy(e.survey_id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ac");
    strcpy(e.deployment_id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ad");
    strcpy(e.submitted_by, "0190a1b2-c3d4-7e5f-8a9b-0123456789ae");
    e.data = "{\"q\":\"an answer\"}";
    e.data_len = strlen(e.data);
    e.location = "{\"lat\":51.5,\"lon\":-0.1}";
    e.location_len = strlen(e.location);
    return e;
}

static char *qseal_make(const fv_keyset *ks)
{
    fv_qseal *q = fv_qseal_new(ks);
    assert_non_null(q);
    fv_envelope e = sample_entry();
    char *out = malloc(fv_qseal_text_len(&e) + 1);
    unsigned char *scratch = malloc(fv_qseal_scratch_len(&e));
    assert_non_null(out);
    assert_non_null(scratch);
    assert_int_equal(fv_qseal_seal(q, &e, scratch, out), 0);
    free(scratch);
    fv_qseal_free(q);
    return out;
}

static bool qseal_open(const fv_keyset *ks, const char *text)
{
    fv_qseal *q = fv_qseal_new(ks);
    assert_non_null(q);
    fv_envelope e = sample_entry(), got = e;
    got.sealed = text;
    got.sealed_len = strlen(text);
    got.data = NULL, got.data_len = 0, got.location = NULL, got.location_len = 0;
    unsigned char *plain = NULL;
    size_t plen = 0;
    char err[256];
    bool ok = fv_qseal_open(q, &got, &plain, &plen, err, sizeof err) == 0;
    if (ok) {
        assert_int_equal(got.data_len, e.data_len);
        assert_memory_equal(got.data, e.data, e.data_len);
    } else {
        assert_non_null(strstr(err, "not in the key file")); /* refused by id, not as tampered */
    }
    fv_qseal_plain_free(plain, plen);
    fv_qseal_free(q);
    return ok;
}

static char *totp_make(const fv_keyset *ks)
{
    char *out = fv_seal(ks, "fv-seal-totp", "totp:0190a1b2-c3d4-7e5f-8a9b-0123456789ac",
                        "12345678901234567890", 20);
    assert_non_null(out);
    return out;
}

static bool totp_open(const fv_keyset *ks, const char *text)
{
    size_t len = 0;
    unsigned char *pt = fv_unseal(ks, "fv-seal-totp", "totp:0190a1b2-c3d4-7e5f-8a9b-0123456789ac", text,
                                  &len);
    if (!pt) return false;
    assert_int_equal(len, 20);
    assert_memory_equal(pt, "12345678901234567890", 20);
    free(pt);
    return true;
}

static const unsigned char DK[FV_DATAKEY_BYTES] = {7, 7, 7, 7, 7, 7, 7, 7, 1, 2, 3, 4, 5, 6, 7, 8,
                                                   9, 9, 9, 9, 9, 9, 9, 9, 8, 7, 6, 5, 4, 3, 2, 1};

static char *datakey_make(const fv_keyset *ks)
{
    char *out = fv_datakey_wrap(ks, "org:0190a1b2-c3d4-7e5f-8a9b-0123456789af", 2, DK);
    assert_non_null(out);
    return out;
}

static bool datakey_open(const fv_keyset *ks, const char *text)
{
    unsigned char key[FV_DATAKEY_BYTES];
    char err[256];
    if (fv_datakey_unwrap(ks, "org:0190a1b2-c3d4-7e5f-8a9b-0123456789af", 2, text, key, err,
                          sizeof err) != 0) {
        assert_non_null(strstr(err, "not in the key file"));
        return false;
    }
    assert_memory_equal(key, DK, sizeof key);
    /* and the ring the front end and the worker keep (its own copy of the key set) */
    fv_dkring *r = fv_dkring_new(ks, 4);
    assert_non_null(r);
    const unsigned char *k = fv_dkring_put(r, "org:0190a1b2-c3d4-7e5f-8a9b-0123456789af", 2, text, err,
                                           sizeof err);
    assert_non_null(k);
    assert_memory_equal(k, DK, sizeof DK);
    fv_dkring_free(r);
    return true;
}

static char *shared_make(const fv_keyset *ks)
{
    fv_shared_keys sk;
    assert_int_equal(fv_shared_keys_init(&sk, ks), 0);
    char *out = fv_shared_wrap(&sk, "fv:cache:auth", "field", 3, NOW + 60, "{\"ok\":1}", 8);
    fv_shared_keys_clear(&sk);
    assert_non_null(out);
    return out;
}

static bool shared_open(const fv_keyset *ks, const char *text)
{
    fv_shared_keys sk;
    assert_int_equal(fv_shared_keys_init(&sk, ks), 0);
    long long version = 0;
    const char *payload = NULL;
    size_t plen = 0;
    fv_shared_result r = fv_shared_open(&sk, "fv:cache:auth", "field", text, strlen(text), NOW, &version,
                                        &payload, &plen);
    fv_shared_keys_clear(&sk);
    if (r != FV_SHARED_OK) {
        assert_int_equal(r, FV_SHARED_UNKNOWN_KEY);
        return false;
    }
    assert_int_equal(version, 3);
    assert_int_equal(plen, 8);
    return true;
}

static const use uses[] = {
    {"session token (fv_token)", token_make, token_open},
    {"queue entry (fv_qseal)", qseal_make, qseal_open},
    {"TOTP secret (fv_seal)", totp_make, totp_open},
    {"data key (fv_datakey, fv_dkring)", datakey_make, datakey_open},
    {"shared cache entry (fv_shared)", shared_make, shared_open},
};

static void check(const use *u, const fv_keyset ks[NSETS], int maker, int opener, bool expect)
{
    char *text = u->make(&ks[maker]);
    bool got = u->open(&ks[opener], text);
    free(text);
    if (got != expect)
        fail_msg("%s made by %s %s in %s, expected the opposite", u->what, set_name[maker],
                 got ? "opens" : "does not open", set_name[opener]);
}

static void test_every_use_opens_under_a_non_first_key(void **state)
{
    (void)state;
    fv_keyset ks[NSETS];
    load_sets(ks);
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++) {
        const use *u = &uses[i];
        for (int m = 0; m < NSETS; m++) check(u, ks, m, m, true);
        /* the first rolling restart: old and standby side by side, both ways */
        check(u, ks, OLD, STANDBY, true);
        check(u, ks, STANDBY, OLD, true); /* standby makes under K1: K2 is used for nothing yet */
        /* the second: standby and promoted side by side, both ways (K2 second, K1 second) */
        check(u, ks, PROMOTED, STANDBY, true);
        check(u, ks, STANDBY, PROMOTED, true);
        check(u, ks, OLD, PROMOTED, true);
        /* what plain --new-key does: promoted beside old, which cannot open K2's */
        check(u, ks, PROMOTED, OLD, false);
    }
    for (int m = 0; m < NSETS; m++) fv_keys_clear(&ks[m]);
}

static void test_describe_names_ids_only(void **state)
{
    (void)state;
    fv_keyset ks[NSETS];
    load_sets(ks);
    char out[160];
    fv_keys_describe(&ks[STANDBY], out, sizeof out);
    char want[160];
    snprintf(want, sizeof want, "2 key(s): signs, seals and wraps under %s, also opens %s",
             ks[STANDBY].keys[0].id, ks[STANDBY].keys[1].id);
    assert_string_equal(out, want);
    fv_keys_describe(&ks[OLD], out, sizeof out);
    snprintf(want, sizeof want, "1 key(s): signs, seals and wraps under %s", ks[OLD].keys[0].id);
    assert_string_equal(out, want);
    /* truncated, never overrun */
    char small[12];
    fv_keys_describe(&ks[PROMOTED], small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    for (int m = 0; m < NSETS; m++) fv_keys_clear(&ks[m]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_use_opens_under_a_non_first_key),
        cmocka_unit_test(test_describe_names_ids_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of fv_token (signed session tokens), fv_totp (RFC 6238 appendix B vectors, drift,
 * replay) and fv_seal (round trip, tamper, wrong associated data). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "fv_crypto.h"
#include "fv_seal.h"
#include "fv_token.h"
#include "fv_totp.h"

static void make_key(fv_key *k, unsigned char fill)
{
    memset(k->key, fill, sizeof k->key);
    char hex[FV_SHA256_HEXLEN + 1];
    fv_sha256_hex(k->key, sizeof k->key, hex);
    memcpy(k->id, hex, FV_KEY_IDLEN);
    k->id[FV_KEY_IDLEN] = '\0';
}

static fv_token sample(void)
{
    fv_token t;
    memset(&t, 0, sizeof t);
    strcpy(t.session_id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ab");
    strcpy(t.user_id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ac");
    t.issued_at = 1700000000;
    t.expires_at = 1700043200;
    t.mfa = true;
    return t;
}

static void test_good(void **st)
{
    fv_keyset ks = {.n = 1};
    make_key(&ks.keys[0], 1);
    fv_token t = sample(), out;
    char tok[FV_TOKEN_MAX + 1];
    assert_int_equal(fv_token_sign(&ks, &t, tok), 0);
    assert_memory_equal(tok, "fvs_", 4);
    assert_int_equal(fv_token_verify(&ks, tok, 1700000100, &out), FV_TOKEN_OK);
    assert_string_equal(out.session_id, t.session_id);
    assert_string_equal(out.user_id, t.user_id);
    assert_int_equal(out.issued_at, t.issued_at);
    assert_int_equal(out.expires_at, t.expires_at);
    assert_true(out.mfa);
    t.mfa = false;
    assert_int_equal(fv_token_sign(&ks, &t, tok), 0);
    assert_int_equal(fv_token_verify(&ks, tok, 1700000100, &out), FV_TOKEN_OK);
    assert_false(out.mfa);
}

static void test_tampered(void **st)
{
    fv_keyset ks = {.n = 1};
    make_key(&ks.keys[0], 1);
    fv_token t = sample(), out;
    char tok[FV_TOKEN_MAX + 1], bad[FV_TOKEN_MAX + 1];
    assert_int_equal(fv_token_sign(&ks, &t, tok), 0);
    /* payload: a forged one (mfa 0 -> same user, other session) signed by nobody */
    fv_token forged = t;
    strcpy(forged.user_id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ff");
    fv_keyset other = {.n = 1};
    make_key(&other.keys[0], 9);
    memcpy(other.keys[0].id, ks.keys[0].id, sizeof ks.keys[0].id); /* claims our key id */
    assert_int_equal(fv_token_sign(&other, &forged, bad), 0);
    assert_int_equal(fv_token_verify(&ks, bad, 1700000100, &out), FV_TOKEN_BAD_SIG);
    /* our signature on another payload */
    char *dot = strchr(tok, '.'), *bdot = strchr(bad, '.');
    char mix[FV_TOKEN_MAX + 1];
    snprintf(mix, sizeof mix, "%.*s%s", (int)(bdot - bad), bad, dot);
    assert_int_equal(fv_token_verify(&ks, mix, 1700000100, &out), FV_TOKEN_BAD_SIG);
    /* one character of the payload or of the signature changed */
    strcpy(bad, tok);
    bad[6] = bad[6] == 'A' ? 'B' : 'A';
    assert_int_not_equal(fv_token_verify(&ks, bad, 1700000100, &out), FV_TOKEN_OK);
    strcpy(bad, tok);
    size_t n = strlen(bad);
    bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(fv_token_verify(&ks, bad, 1700000100, &out), FV_TOKEN_BAD_SIG);
    /* shapes */
    const char *shapes[] = {"",
                            "fvs_",
                            "fvs_.",
                            "fvk_abc.def",
                            "fvs_abc",
                            "fvs_a.b.c",
                            tok + 1,
                            "fvs_"
                            "\xff"
                            ".x"};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        assert_int_equal(fv_token_verify(&ks, shapes[i], 1700000100, &out), FV_TOKEN_MALFORMED);
    strcpy(bad, tok);
    bad[n - 1] = '\0';
    assert_int_equal(fv_token_verify(&ks, bad, 1700000100, &out), FV_TOKEN_MALFORMED);
    char huge[2000];
    memset(huge, 'A', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    memcpy(huge, "fvs_", 4);
    assert_int_equal(fv_token_verify(&ks, huge, 1700000100, &out), FV_TOKEN_MALFORMED);
    assert_int_equal(fv_token_verify(&ks, NULL, 1700000100, &out), FV_TOKEN_MALFORMED);
}

static void test_expired(void **st)
{
    fv_keyset ks = {.n = 1};
    make_key(&ks.keys[0], 1);
    fv_token t = sample(), out;
    char tok[FV_TOKEN_MAX + 1];
    assert_int_equal(fv_token_sign(&ks, &t, tok), 0);
    assert_int_equal(fv_token_verify(&ks, tok, (time_t)t.expires_at - 1, &out), FV_TOKEN_OK);
    assert_int_equal(fv_token_verify(&ks, tok, (time_t)t.expires_at, &out), FV_TOKEN_EXPIRED);
    assert_int_equal(fv_token_verify(&ks, tok, (time_t)t.expires_at + 86400, &out), FV_TOKEN_EXPIRED);
}

static void test_rotation(void **st)
{
    fv_keyset old = {.n = 1}, rotated = {.n = 2}, dropped = {.n = 1};
    make_key(&old.keys[0], 1);
    make_key(&rotated.keys[0], 2); /* new current key */
    make_key(&rotated.keys[1], 1); /* the previous one, still accepted */
    make_key(&dropped.keys[0], 2);
    fv_token t = sample(), out;
    char tok[FV_TOKEN_MAX + 1], tok2[FV_TOKEN_MAX + 1];
    assert_int_equal(fv_token_sign(&old, &t, tok), 0);
    assert_int_equal(fv_token_verify(&rotated, tok, 1700000100, &out), FV_TOKEN_OK);
    assert_int_equal(fv_token_verify(&dropped, tok, 1700000100, &out), FV_TOKEN_UNKNOWN_KEY);
    /* new tokens are signed with the new current key */
    assert_int_equal(fv_token_sign(&rotated, &t, tok2), 0);
    assert_int_equal(fv_token_verify(&dropped, tok2, 1700000100, &out), FV_TOKEN_OK);
    assert_int_equal(fv_token_verify(&old, tok2, 1700000100, &out), FV_TOKEN_UNKNOWN_KEY);
    fv_keyset none = {.n = 0};
    assert_int_equal(fv_token_sign(&none, &t, tok2), -1);
}

/* RFC 6238 appendix B, SHA-1 rows: secret "12345678901234567890"; the 6-digit codes are the
 * last six digits of the 8-digit values the RFC lists. */
static const unsigned char RFC_SECRET[] = "12345678901234567890";
static const struct {
    time_t t;
    const char *code;
} RFC[] = {
    {59, "287082"},          /* 94287082 */
    {1111111109, "081804"},  /* 07081804 */
    {1111111111, "050471"},  /* 14050471 */
    {1234567890, "005924"},  /* 89005924 */
    {2000000000, "279037"},  /* 69279037 */
    {20000000000, "353130"}, /* 65353130 */
};

static void test_totp_vectors(void **st)
{
    assert_int_equal(fv_totp_init(), 0);
    for (size_t i = 0; i < sizeof RFC / sizeof RFC[0]; i++) {
        char code[FV_TOTP_DIGITS + 1];
        assert_int_equal(fv_totp_code(RFC_SECRET, 20, RFC[i].t, code), 0);
        assert_string_equal(code, RFC[i].code);
        int64_t step = -1;
        assert_int_equal(fv_totp_check(RFC_SECRET, 20, RFC[i].code, RFC[i].t, 0, &step), FV_TOTP_OK);
        assert_int_equal(step, (int64_t)RFC[i].t / 30);
    }
}

static void test_totp_drift_and_replay(void **st)
{
    assert_int_equal(fv_totp_init(), 0);
    const time_t t = 1234567890; /* step 41152263 */
    const int64_t s = t / 30;
    int64_t step = 0;
    /* one step of drift either way */
    assert_int_equal(fv_totp_check(RFC_SECRET, 20, "005924", t + 30, 0, &step), FV_TOTP_OK);
    assert_int_equal(step, s);
    assert_int_equal(fv_totp_check(RFC_SECRET, 20, "005924", t - 30, 0, &step), FV_TOTP_OK);
    assert_int_equal(step, s);
    /* two steps off: wrong */
    assert_int_equal(fv_totp_check(RFC_SECRET, 20, "005924", t + 60, 0, &step), FV_TOTP_WRONG);
    assert_int_equal(fv_totp_check(RFC_SECRET, 20, "005924", t - 60, 0, &step), FV_TOTP_WRONG);
    /* used once: the same step or an earlier one is a replay */
    assert_int_equal(fv_totp_check(RFC_SECRET, 20, "005924", t, s, &step), FV_TOTP_REPLAY);
    assert_int_equal(fv_totp_check(RFC_SECRET, 20, "005924", t, s + 1, &step), FV_TOTP_REPLAY);
    assert_int_equal(fv_totp_check(RFC_SECRET, 20, "005924", t, s - 1, &step), FV_TOTP_OK);
    /* shapes */
    const char *bad[] = {"", "00592", "0059245", "00592a", " 05924", "-05924"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(fv_totp_check(RFC_SECRET, 20, bad[i], t, 0, &step), FV_TOTP_WRONG);
    char b32[FV_TOTP_B32_MAX + 1];
    assert_int_equal(fv_totp_base32(RFC_SECRET, 20, b32), 0);
    assert_string_equal(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
}

static void test_seal(void **st)
{
    fv_keyset ks = {.n = 1};
    make_key(&ks.keys[0], 7);
    const char *aad = "totp:0190a1b2-c3d4-7e5f-8a9b-0123456789ac";
    char *sealed = fv_seal(&ks, "fv-seal-totp", aad, RFC_SECRET, 20);
    assert_non_null(sealed);
    assert_null(strstr(sealed, "12345678901234567890"));
    size_t len = 0;
    unsigned char *pt = fv_unseal(&ks, "fv-seal-totp", aad, sealed, &len);
    assert_non_null(pt);
    assert_int_equal(len, 20);
    assert_memory_equal(pt, RFC_SECRET, 20);
    OPENSSL_cleanse(pt, len);
    free(pt);
    /* wrong associated data (another user's row), wrong label */
    assert_null(
        fv_unseal(&ks, "fv-seal-totp", "totp:0190a1b2-c3d4-7e5f-8a9b-0123456789ad", sealed, &len));
    assert_null(fv_unseal(&ks, "fv-seal-other", aad, sealed, &len));
    /* tampered ciphertext */
    char *t = strdup(sealed);
    size_t n = strlen(t);
    t[n - 5] = t[n - 5] == 'A' ? 'B' : 'A';
    assert_null(fv_unseal(&ks, "fv-seal-totp", aad, t, &len));
    free(t);
    /* unknown key */
    fv_keyset other = {.n = 1};
    make_key(&other.keys[0], 8);
    assert_null(fv_unseal(&other, "fv-seal-totp", aad, sealed, &len));
    assert_null(fv_unseal(&ks, "fv-seal-totp", aad, "s1.garbage", &len));
    /* two seals of the same secret differ (random nonce) */
    char *again = fv_seal(&ks, "fv-seal-totp", aad, RFC_SECRET, 20);
    assert_non_null(again);
    assert_string_not_equal(sealed, again);
    free(again);
    free(sealed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),         cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_expired),      cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_totp_vectors), cmocka_unit_test(test_totp_drift_and_replay),
        cmocka_unit_test(test_seal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

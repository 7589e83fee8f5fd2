/* Unit tests for common/fv_keys.c (the master key file, HKDF subkeys) and the base64 helpers of
 * common/fv_crypto.c. */
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

#include "fv_crypto.h"
#include "fv_keys.h"

static const char *K1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char *K2 = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

/* Writes text to a new temporary file with mode; returns its path (static buffer). */
static const char *keyfile(const char *text, mode_t mode)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/fv-test-keys-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    fchmod(fd, mode);
    close(fd);
    return path;
}

static void test_load_and_find(void **state)
{
    (void)state;
    char text[256], err[256];
    snprintf(text, sizeof text, "# current first\n%s\n\n  %s  \n", K1, K2);
    const char *p = keyfile(text, 0600);
    fv_keyset ks;
    assert_int_equal(fv_keys_load(&ks, p, err, sizeof err), 0);
    unlink(p);
    assert_int_equal(ks.n, 2);
    assert_int_equal(ks.keys[0].key[0], 0x00);
    assert_int_equal(ks.keys[0].key[31], 0x1f);
    assert_int_equal(ks.keys[1].key[0], 0xff);
    assert_int_equal(strlen(ks.keys[0].id), FV_KEY_IDLEN);
    assert_string_not_equal(ks.keys[0].id, ks.keys[1].id);
    assert_ptr_equal(fv_keys_find(&ks, ks.keys[1].id), &ks.keys[1]);
    assert_null(fv_keys_find(&ks, "00000000"));
    fv_keys_clear(&ks);
    assert_int_equal(ks.n, 0);
}

static void test_refusals(void **state)
{
    (void)state;
    char err[256];
    fv_keyset ks;
    const char *p = keyfile(K1, 0644); /* readable by others */
    assert_int_equal(fv_keys_load(&ks, p, err, sizeof err), -1);
    assert_non_null(strstr(err, "chmod 600"));
    unlink(p);
    p = keyfile("# only a comment\n", 0600);
    assert_int_equal(fv_keys_load(&ks, p, err, sizeof err), -1);
    unlink(p);
    p = keyfile("0011\n", 0600); /* too short */
    assert_int_equal(fv_keys_load(&ks, p, err, sizeof err), -1);
    unlink(p);
    p = keyfile("zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", 0600);
    assert_int_equal(fv_keys_load(&ks, p, err, sizeof err), -1);
    assert_null(strstr(err, "zz01")); /* the error never echoes key material */
    unlink(p);
    assert_int_equal(fv_keys_load(&ks, "/nonexistent/fv.key", err, sizeof err), -1);
}

/* HKDF-SHA256 with an empty salt: RFC 5869 test case 3 (IKM 22 x 0x0b, no salt, no info) has
 * a 22-byte key; ours are 32 bytes, so check determinism and label separation instead, plus one
 * value computed independently (python3: hmac over the RFC 5869 steps). */
static void test_derive(void **state)
{
    (void)state;
    fv_key k = {{0}, ""};
    for (int i = 0; i < FV_KEY_BYTES; i++) k.key[i] = (unsigned char)i;
    unsigned char a[32], b[32], c[32];
    assert_int_equal(fv_keys_derive(&k, "fv-session-token", a, sizeof a), 0);
    assert_int_equal(fv_keys_derive(&k, "fv-session-token", b, sizeof b), 0);
    assert_int_equal(fv_keys_derive(&k, "fv-seal-totp", c, sizeof c), 0);
    assert_memory_equal(a, b, 32);
    assert_memory_not_equal(a, c, 32);
    /* python3 -c 'import hmac,hashlib; prk=hmac.new(b"\0"*32, bytes(range(32)), hashlib.sha256).digest();
     *            print(hmac.new(prk, b"fv-session-token\x01", hashlib.sha256).hexdigest())' */
    static const char expect[] = "d7c742564f2a6e991f8a8c7cf0570e6bffa4d2fd01107130591446f841026a55";
    char hex[65];
    for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", a[i]);
    assert_string_equal(hex, expect);
}

static void test_base64(void **state)
{
    (void)state;
    char out[64];
    unsigned char back[64];
    /* RFC 4648 section 10 vectors */
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(in[i]);
        fv_b64_encode(in[i], n, out);
        assert_string_equal(out, std[i]);
        assert_int_equal(fv_b64_decode(out, strlen(out), back), (long)n);
        assert_memory_equal(back, in[i], n);
        fv_b64url_encode(in[i], n, out);
        assert_string_equal(out, url[i]);
        assert_int_equal(fv_b64url_decode(out, strlen(out), back), (long)n);
        assert_memory_equal(back, in[i], n);
    }
    unsigned char bin[] = {0xfb, 0xff, 0xfe};
    fv_b64url_encode(bin, 3, out);
    assert_string_equal(out, "-__-");
    fv_b64_encode(bin, 3, out);
    assert_string_equal(out, "+//+");
    /* not canonical or not base64 */
    assert_int_equal(fv_b64url_decode("Zh", 2, back), -1); /* non-zero padding bits */
    assert_int_equal(fv_b64url_decode("Z", 1, back), -1);
    assert_int_equal(fv_b64url_decode("Zm9v+", 5, back), -1);
    assert_int_equal(fv_b64_decode("Zm9", 3, back), -1); /* standard needs padding */
    assert_int_equal(fv_b64_decode("Zm9v\0Zm9v", 9, back), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_find),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_derive),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

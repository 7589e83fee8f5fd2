/* PBKDF2-HMAC-SHA256 password hashes in Django's format (see fv_password.h). */
#include "fv_password.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_crypto.h"

#define PREFIX "pbkdf2_sha256$"
#define DK_BYTES 32
#define SALT_BYTES 16
#define SALT_MAX 64

static int derive(const char *pw, size_t len, const char *salt, size_t saltlen, int iterations,
                  unsigned char dk[DK_BYTES])
{
    if (len > (size_t)0x7fffffff) return -1;
    return PKCS5_PBKDF2_HMAC(pw, (int)len, (const unsigned char *)salt, (int)saltlen, iterations,
                             EVP_sha256(), DK_BYTES, dk) == 1
               ? 0
               : -1;
}

int fv_password_hash_salt(const char *pw, size_t len, int iterations, const char *salt,
                          char out[FV_PASSWORD_HASH_MAX + 1])
{
    size_t saltlen = strlen(salt);
    if (iterations < FV_PASSWORD_MIN_ITERATIONS || iterations > FV_PASSWORD_MAX_ITERATIONS ||
        saltlen == 0 || saltlen > SALT_MAX || strchr(salt, '$'))
        return -1;
    unsigned char dk[DK_BYTES];
    if (derive(pw, len, salt, saltlen, iterations, dk) != 0) return -1;
    char b64[4 * ((DK_BYTES + 2) / 3) + 1];
    fv_b64_encode(dk, DK_BYTES, b64);
    OPENSSL_cleanse(dk, sizeof dk);
    int n = snprintf(out, FV_PASSWORD_HASH_MAX + 1, PREFIX "%d$%s$%s", iterations, salt, b64);
    return n > 0 && n <= FV_PASSWORD_HASH_MAX ? 0 : -1;
}

int fv_password_hash(const char *pw, size_t len, int iterations, char out[FV_PASSWORD_HASH_MAX + 1])
{
    unsigned char raw[SALT_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1) return -1;
    char salt[4 * ((SALT_BYTES + 2) / 3) + 1];
    size_t n = fv_b64_encode(raw, sizeof raw, salt);
    while (n > 0 && salt[n - 1] == '=') salt[--n] = '\0'; /* no padding: Django's salts have none */
    return fv_password_hash_salt(pw, len, iterations, salt, out);
}

/* Splits stored into its fields. On success returns 0 with *iterations, the salt (pointer into
 * stored, *saltlen bytes) and the decoded key in dk. */
static int parse(const char *stored, int *iterations, const char **salt, size_t *saltlen,
                 unsigned char dk[DK_BYTES])
{
    if (!stored || strlen(stored) > FV_PASSWORD_HASH_MAX) return -1;
    if (strncmp(stored, PREFIX, strlen(PREFIX)) != 0) return -1;
    const char *p = stored + strlen(PREFIX);
    long it = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 8) return -1;
        it = it * 10 + (*p++ - '0');
    }
    if (digits == 0 || *p != '$' || it < FV_PASSWORD_MIN_ITERATIONS || it > FV_PASSWORD_MAX_ITERATIONS)
        return -1;
    const char *s = ++p;
    const char *d = strchr(s, '$');
    if (!d || d == s || (size_t)(d - s) > SALT_MAX) return -1;
    const char *h = d + 1;
    size_t hlen = strlen(h);
    if (hlen != 4 * ((DK_BYTES + 2) / 3)) return -1; /* 44 characters */
    unsigned char buf[4 * ((DK_BYTES + 2) / 3)];
    long n = fv_b64_decode(h, hlen, buf);
    if (n != DK_BYTES) return -1;
    memcpy(dk, buf, DK_BYTES);
    *iterations = (int)it;
    *salt = s;
    *saltlen = (size_t)(d - s);
    return 0;
}

int fv_password_iterations(const char *stored)
{
    int it;
    const char *salt;
    size_t saltlen;
    unsigned char dk[DK_BYTES];
    return parse(stored, &it, &salt, &saltlen, dk) == 0 ? it : -1;
}

bool fv_password_verify(const char *pw, size_t len, const char *stored, int iterations,
                        bool *needs_rehash)
{
    int it;
    const char *salt;
    size_t saltlen;
    unsigned char want[DK_BYTES], got[DK_BYTES];
    if (needs_rehash) *needs_rehash = false;
    if (parse(stored, &it, &salt, &saltlen, want) != 0) return false;
    if (derive(pw, len, salt, saltlen, it, got) != 0) return false;
    bool ok = fv_ct_equal(want, got, DK_BYTES);
    OPENSSL_cleanse(got, sizeof got);
    if (ok && needs_rehash) *needs_rehash = it < iterations;
    return ok;
}

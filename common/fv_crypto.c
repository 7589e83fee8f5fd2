/* Small cryptographic helpers over OpenSSL. */
#include "fv_crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <limits.h>
#include <string.h>

void fv_sha256_hex(const void *data, size_t len, char out[FV_SHA256_HEXLEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

bool fv_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool fv_api_key_new(char out[FV_API_KEY_LEN + 1])
{
    unsigned char raw[33]; /* 32 random bytes, padded to a multiple of 3 */
    if (RAND_bytes(raw, 32) != 1) return false;
    raw[32] = 0;
    memcpy(out, FV_API_KEY_PREFIX, 4);
    size_t o = 4;
    for (int i = 0; i < 33; i += 3) {
        unsigned v = ((unsigned)raw[i] << 16) | ((unsigned)raw[i + 1] << 8) | raw[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    /* 33 bytes give 44 chars; the last carries only padding bits: 43 characters hold 256 bits. */
    o = FV_API_KEY_LEN;
    out[o] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return true;
}

bool fv_api_key_well_formed(const char *s)
{
    if (s == NULL || strlen(s) != FV_API_KEY_LEN || strncmp(s, FV_API_KEY_PREFIX, 4) != 0) return false;
    for (const char *p = s + 4; *p; p++)
        if (!strchr(b64url, *p)) return false;
    return true;
}

static size_t encode_with(const char *alphabet, bool pad, const unsigned char *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = ((unsigned)in[i] << 16) | ((unsigned)in[i + 1] << 8) | in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < len) out[o++] = alphabet[(v >> 6) & 63];
        else if (pad) out[o++] = '=';
        if (pad) out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* Decodes; with pad, s must be padded to a multiple of 4. Unused low bits must be zero so that
 * every value has exactly one encoding. */
/* Each byte's value in the two alphabets, -1 for none: a table, not a scan of the alphabet per
 * character (decoding queue entries, fv_qseal, must keep up with encoding). */
// clang-format off
static const signed char b64url_value[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};
static const signed char b64std_value[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};
// clang-format on

static long decode_with(const signed char *values, bool pad, const char *s, size_t slen,
                        unsigned char *out)
{
    if (pad) {
        if (slen % 4) return -1;
        if (slen && s[slen - 1] == '=') slen--;
        if (slen && s[slen - 1] == '=') slen--;
    }
    if (slen % 4 == 1) return -1;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < slen; i++) {
        int v = values[(unsigned char)s[i]];
        if (v < 0) return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) return -1;
    return (long)o;
}

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t fv_b64url_encode(const void *data, size_t len, char *out)
{
    return encode_with(b64url, false, data, len, out);
}

long fv_b64url_decode(const char *s, size_t slen, unsigned char *out)
{
    return decode_with(b64url_value, false, s, slen, out);
}

size_t fv_b64_encode(const void *data, size_t len, char *out)
{
    return encode_with(b64std, true, data, len, out);
}

long fv_b64_decode(const char *s, size_t slen, unsigned char *out)
{
    return decode_with(b64std_value, true, s, slen, out);
}

int fv_aes256gcm(int enc, const unsigned char key[32], const unsigned char nonce[12], const char *aad,
                 const unsigned char *in, size_t len, unsigned char *out, unsigned char tag[16])
{
    if (len > INT_MAX) return -1;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = 0, n = 0;
    if (c && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
        EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) == 1 &&
        EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1 &&
        (len == 0 || EVP_CipherUpdate(c, out, &n, in, (int)len) == 1) &&
        (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1) &&
        EVP_CipherFinal_ex(c, out + (len ? n : 0), &n) == 1 &&
        (!enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1))
        ok = 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

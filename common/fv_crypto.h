/* Small cryptographic helpers over OpenSSL: digests, constant-time compare, API keys. */
#ifndef FV_CRYPTO_H
#define FV_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#define FV_SHA256_HEXLEN 64
#define FV_API_KEY_PREFIX "fvk_"
#define FV_API_KEY_LEN 47 /* "fvk_" + 43 base64url characters of 32 random bytes */

/* SHA-256 of data as lower-case hex into out[65]. */
void fv_sha256_hex(const void *data, size_t len, char out[FV_SHA256_HEXLEN + 1]);
/* Constant-time equality of two buffers of the same length. */
bool fv_ct_equal(const void *a, const void *b, size_t len);
/* A new API key (fvk_ + 43 base64url chars) into out[48]; returns false if the RNG failed. */
bool fv_api_key_new(char out[FV_API_KEY_LEN + 1]);
/* True when s has the shape of an API key (checked before any lookup). */
bool fv_api_key_well_formed(const char *s);

/* Unpadded base64url of data[len] into out (room for fv_b64url_len(len) + 1); returns the length. */
#define fv_b64url_len(n) (((n)*4 + 2) / 3)
size_t fv_b64url_encode(const void *data, size_t len, char *out);
/* Decodes unpadded base64url s[slen] into out (room for slen * 3 / 4 bytes); returns the
 * number of bytes, or -1 when s is not canonical base64url. */
long fv_b64url_decode(const char *s, size_t slen, unsigned char *out);
/* Standard base64 with padding (Django's password hashes use it), same conventions. */
size_t fv_b64_encode(const void *data, size_t len, char *out); /* out: 4 * ((len + 2) / 3) + 1 */
long fv_b64_decode(const char *s, size_t slen, unsigned char *out);

/* One AES-256-GCM pass with a 12-byte nonce and aad (a C string) as associated data: enc 1 seals
 * in[len] into out and writes the 16-byte tag, enc 0 opens in[len] into out and checks the tag
 * (out then holds nothing usable on failure). len at most INT_MAX. Returns 0 or -1. The one AES-GCM
 * of the stored formats (fv_seal.c, fv_datakey.c; fv_qseal.c keeps its own reused context). */
int fv_aes256gcm(int enc, const unsigned char key[32], const unsigned char nonce[12], const char *aad,
                 const unsigned char *in, size_t len, unsigned char *out, unsigned char tag[16]);

#endif

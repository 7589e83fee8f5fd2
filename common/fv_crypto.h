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

#endif

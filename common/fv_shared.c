/* MACed values shared through Redis (see fv_shared.h). */
#include "fv_shared.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_crypto.h"

#define MAC_BYTES 32
#define MAC_B64 43  /* fv_b64url_len(32) */
#define HEAD_MAX 80 /* "m1." id "." version "." expiry "." */

int fv_shared_keys_init(fv_shared_keys *sk, const fv_keyset *ks)
{
    memset(sk, 0, sizeof *sk);
    for (int i = 0; i < ks->n; i++) {
        if (fv_keys_derive(&ks->keys[i], FV_SHARED_LABEL, sk->sub[i], sizeof sk->sub[i]) != 0) {
            fv_shared_keys_clear(sk);
            return -1;
        }
        memcpy(sk->id[i], ks->keys[i].id, sizeof sk->id[i]);
    }
    sk->n = ks->n;
    return 0;
}

void fv_shared_keys_clear(fv_shared_keys *sk)
{
    OPENSSL_cleanse(sk, sizeof *sk);
}

/* HMAC over name, field, version, expiry, payload: NUL-separated (none of the first four may
 * hold a NUL: names and fields are ours, the numbers are digits), the payload last. */
static int mac(const unsigned char sub[32], const char *name, const char *field, long long version,
               int64_t expires_at, const char *payload, size_t len, unsigned char out[MAC_BYTES])
{
    char head[HEAD_MAX];
    int hl = snprintf(head, sizeof head, "%lld%c%" PRId64, version, '\0', expires_at);
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    EVP_MAC_free(m);
    if (!c) return -1;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t outlen = 0;
    static const char zero = '\0';
    int ok = EVP_MAC_init(c, sub, 32, params) == 1 &&
             EVP_MAC_update(c, (const unsigned char *)"fv-shared-v1", 13) == 1 && /* with its NUL */
             EVP_MAC_update(c, (const unsigned char *)name, strlen(name) + 1) == 1 &&
             EVP_MAC_update(c, (const unsigned char *)field, strlen(field) + 1) == 1 &&
             EVP_MAC_update(c, (const unsigned char *)head, (size_t)hl) == 1 &&
             EVP_MAC_update(c, (const unsigned char *)&zero, 1) == 1 &&
             EVP_MAC_update(c, (const unsigned char *)payload, len) == 1 &&
             EVP_MAC_final(c, out, &outlen, MAC_BYTES) == 1 && outlen == MAC_BYTES;
    EVP_MAC_CTX_free(c);
    return ok ? 0 : -1;
}

char *fv_shared_wrap(const fv_shared_keys *sk, const char *name, const char *field, long long version,
                     int64_t expires_at, const char *payload, size_t len)
{
    if (sk->n == 0 || version < 0) return NULL;
    unsigned char m[MAC_BYTES];
    if (mac(sk->sub[0], name, field, version, expires_at, payload, len, m) != 0) return NULL;
    char *out = malloc(HEAD_MAX + MAC_B64 + 2 + len);
    if (!out) return NULL;
    int o = snprintf(out, HEAD_MAX, "m1.%s.%lld.%" PRId64 ".", sk->id[0], version, expires_at);
    o += (int)fv_b64url_encode(m, sizeof m, out + o);
    out[o++] = '.';
    memcpy(out + o, payload, len);
    out[o + len] = '\0';
    return out;
}

/* Reads a decimal number of at most 19 digits ending at '.' from *p; advances past the dot. */
static int number(const char **p, const char *end, long long *v)
{
    const char *s = *p;
    long long n = 0;
    int digits = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (++digits > 18) return -1;
        n = n * 10 + (*s - '0');
    }
    if (digits == 0 || s == end || *s != '.') return -1;
    *v = n;
    *p = s + 1;
    return 0;
}

fv_shared_result fv_shared_open(const fv_shared_keys *sk, const char *name, const char *field,
                                const char *text, size_t len, int64_t now, long long *version,
                                const char **payload, size_t *plen)
{
    const char *p = text, *end = text + len;
    if (len < 3 + FV_KEY_IDLEN + 1 || memcmp(p, "m1.", 3) != 0 || p[3 + FV_KEY_IDLEN] != '.')
        return FV_SHARED_MALFORMED;
    char id[FV_KEY_IDLEN + 1];
    memcpy(id, p + 3, FV_KEY_IDLEN);
    id[FV_KEY_IDLEN] = '\0';
    p += 3 + FV_KEY_IDLEN + 1;
    long long v, exp;
    if (number(&p, end, &v) != 0 || number(&p, end, &exp) != 0) return FV_SHARED_MALFORMED;
    if (end - p < MAC_B64 + 1 || p[MAC_B64] != '.') return FV_SHARED_MALFORMED;
    unsigned char given[MAC_BYTES + 2], want[MAC_BYTES];
    if (fv_b64url_decode(p, MAC_B64, given) != MAC_BYTES) return FV_SHARED_MALFORMED;
    const char *pl = p + MAC_B64 + 1;
    int k = -1;
    for (int i = 0; i < sk->n; i++)
        if (strcmp(sk->id[i], id) == 0) k = i;
    if (k < 0) return FV_SHARED_UNKNOWN_KEY;
    if (mac(sk->sub[k], name, field, v, exp, pl, (size_t)(end - pl), want) != 0 ||
        !fv_ct_equal(given, want, MAC_BYTES))
        return FV_SHARED_BAD_MAC;
    if (exp <= now) return FV_SHARED_EXPIRED;
    *version = v;
    *payload = pl;
    *plen = (size_t)(end - pl);
    return FV_SHARED_OK;
}

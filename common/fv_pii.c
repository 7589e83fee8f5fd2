/* Personal data at rest: sealing emails and names, and the emails' lookup HMAC (see fv_pii.h). */
#include "fv_pii.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hexd[] = "0123456789abcdef";

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexd[b[i] >> 4];
        out[2 * i + 1] = hexd[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void fv_pii_aad(const char *table, const char *id, const char *column, char out[FV_DK_AAD_MAX])
{
    snprintf(out, FV_DK_AAD_MAX, "fv:%s:%s:%s", table, id, column);
}

int fv_pii_email_hmac(const fv_key *k, const char *email, char out[FV_PII_HMAC_HEXLEN + 1])
{
    size_t n = strlen(email);
    if (n > FV_PII_EMAIL_MAX) return -1;
    char lower[FV_PII_EMAIL_MAX + 1];
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)((email[i] >= 'A' && email[i] <= 'Z') ? email[i] + 32 : email[i]);
    unsigned char sub[32], mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int rc = -1;
    if (fv_keys_derive(k, FV_PII_HMAC_LABEL, sub, sizeof sub) == 0 &&
        HMAC(EVP_sha256(), sub, sizeof sub, (const unsigned char *)lower, n, mac, &maclen) &&
        maclen == FV_PII_HMAC_BYTES) {
        out[0] = '\\';
        out[1] = 'x';
        to_hex(mac, FV_PII_HMAC_BYTES, out + 2);
        rc = 0;
    }
    OPENSSL_cleanse(sub, sizeof sub);
    OPENSSL_cleanse(lower, sizeof lower);
    return rc;
}

char *fv_pii_email_hmacs(const fv_keyset *ks, const char *email)
{
    if (!ks || ks->n < 1) return NULL;
    /* '{' then per key '"' "\\x" hex '"' ',' ; '}' NUL */
    size_t cap = 2 + (size_t)ks->n * (FV_PII_HMAC_HEXLEN + 4) + 1;
    char *out = malloc(cap); /* the caller's */
    if (!out) return NULL;
    size_t o = 0;
    out[o++] = '{';
    for (int i = 0; i < ks->n; i++) {
        char h[FV_PII_HMAC_HEXLEN + 1];
        if (fv_pii_email_hmac(&ks->keys[i], email, h)) {
            free(out);
            return NULL;
        }
        if (i) out[o++] = ',';
        /* inside an array literal a backslash is escaped: "\\x..." */
        o += (size_t)snprintf(out + o, cap - o, "\"\\\\%s\"", h + 1);
    }
    out[o++] = '}';
    out[o] = '\0';
    return out;
}

char *fv_pii_seal_hex(const unsigned char key[FV_DATAKEY_BYTES], int version, const char *aad,
                      const char *s)
{
    size_t n = strlen(s);
    unsigned char *sealed = malloc(n + FV_DK_OVERHEAD);
    char *out = malloc(2 + 2 * (n + FV_DK_OVERHEAD) + 1); /* the caller's */
    if (!sealed || !out || fv_dk_seal(key, version, aad, s, n, sealed)) {
        free(sealed);
        free(out);
        return NULL;
    }
    out[0] = '\\';
    out[1] = 'x';
    to_hex(sealed, n + FV_DK_OVERHEAD, out + 2);
    free(sealed);
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

unsigned char *fv_pii_unhex(const char *text, size_t *len)
{
    if (!text || text[0] != '\\' || text[1] != 'x') return NULL;
    const char *h = text + 2;
    size_t n = strlen(h);
    if (n % 2) return NULL;
    unsigned char *out = malloc(n / 2 + 1); /* the caller's */
    if (!out) return NULL;
    for (size_t i = 0; i < n / 2; i++) {
        int a = hexval(h[2 * i]), b = hexval(h[2 * i + 1]);
        if (a < 0 || b < 0) {
            free(out);
            return NULL;
        }
        out[i] = (unsigned char)(a << 4 | b);
    }
    *len = n / 2;
    return out;
}

char *fv_pii_open(const unsigned char key[FV_DATAKEY_BYTES], int version, const char *aad,
                  const unsigned char *sealed, size_t len, char *err, size_t errlen)
{
    int v = fv_dk_version(sealed, len);
    if (v < 1 || v != version) {
        snprintf(err, errlen, "%s: not a sealed value of data key version %d", aad, version);
        return NULL;
    }
    char *out = malloc(len + 1); /* the caller's */
    if (!out) {
        snprintf(err, errlen, "%s: out of memory", aad);
        return NULL;
    }
    long n = fv_dk_open(key, aad, sealed, len, (unsigned char *)out);
    if (n < 0 || memchr(out, '\0', (size_t)n)) {
        OPENSSL_cleanse(out, len);
        free(out);
        snprintf(err, errlen, "%s does not open under its data key: tampered, or moved from another row",
                 aad);
        return NULL;
    }
    out[n] = '\0';
    return out;
}

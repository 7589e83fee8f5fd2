/* Data keys and the values sealed under them (see fv_datakey.h). */
#include "fv_datakey.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_crypto.h"
#include "fv_seal.h"

#define NONCE 12
#define TAG 16
#define HEAD 8 /* "FVD1" and the version */
#define MAX_PT (1UL << 30)

int fv_datakey_new(unsigned char key[FV_DATAKEY_BYTES])
{
    return RAND_bytes(key, FV_DATAKEY_BYTES) == 1 ? 0 : -1;
}

static bool wrap_aad(const char *scope, int version, char *out, size_t n)
{
    if (!scope || strlen(scope) >= FV_DATAKEY_SCOPE_MAX || version < 1) return false;
    int k = snprintf(out, n, "fv-datakey:%s:%d", scope, version);
    return k > 0 && (size_t)k < n;
}

char *fv_datakey_wrap(const fv_keyset *ks, const char *scope, int version,
                      const unsigned char key[FV_DATAKEY_BYTES])
{
    char aad[FV_DATAKEY_SCOPE_MAX + 32];
    if (!wrap_aad(scope, version, aad, sizeof aad)) return NULL;
    return fv_seal(ks, FV_DATAKEY_WRAP_LABEL, aad, key, FV_DATAKEY_BYTES);
}

bool fv_datakey_master_id(const char *wrapped, char id[FV_KEY_IDLEN + 1])
{
    if (!wrapped || strncmp(wrapped, "s1.", 3) != 0 || strlen(wrapped) < 3 + FV_KEY_IDLEN + 1 ||
        wrapped[3 + FV_KEY_IDLEN] != '.')
        return false;
    memcpy(id, wrapped + 3, FV_KEY_IDLEN);
    id[FV_KEY_IDLEN] = '\0';
    return true;
}

int fv_datakey_unwrap(const fv_keyset *ks, const char *scope, int version, const char *wrapped,
                      unsigned char key[FV_DATAKEY_BYTES], char *err, size_t errlen)
{
    char aad[FV_DATAKEY_SCOPE_MAX + 32], id[FV_KEY_IDLEN + 1];
    if (!wrap_aad(scope, version, aad, sizeof aad) || !fv_datakey_master_id(wrapped, id)) {
        snprintf(err, errlen, "data key %s v%d: not a wrapped key", scope ? scope : "?", version);
        return -1;
    }
    if (!fv_keys_find(ks, id)) {
        snprintf(err, errlen, "data key %s v%d: wrapped by master key %s, which is not in the key file",
                 scope, version, id);
        return -1;
    }
    size_t len = 0;
    unsigned char *pt = fv_unseal(ks, FV_DATAKEY_WRAP_LABEL, aad, wrapped, &len);
    if (!pt || len != FV_DATAKEY_BYTES) {
        if (pt) OPENSSL_cleanse(pt, len);
        free(pt);
        snprintf(err, errlen,
                 "data key %s v%d: does not open under master key %s (tampered, or another "
                 "scope's or version's)",
                 scope, version, id);
        return -1;
    }
    memcpy(key, pt, FV_DATAKEY_BYTES);
    OPENSSL_cleanse(pt, len);
    free(pt);
    return 0;
}

int fv_dk_seal(const unsigned char key[FV_DATAKEY_BYTES], int version, const char *aad, const void *pt,
               size_t len, unsigned char *out)
{
    if (len > MAX_PT || version < 1) return -1;
    memcpy(out, "FVD1", 4);
    out[4] = (unsigned char)((unsigned)version >> 24);
    out[5] = (unsigned char)((unsigned)version >> 16);
    out[6] = (unsigned char)((unsigned)version >> 8);
    out[7] = (unsigned char)version;
    if (RAND_bytes(out + HEAD, NONCE) != 1) return -1;
    return fv_aes256gcm(1, key, out + HEAD, aad, pt, len, out + HEAD + NONCE, out + HEAD + NONCE + len);
}

int fv_dk_seal_det(const unsigned char key[FV_DATAKEY_BYTES], int version, const char *aad,
                   const void *pt, size_t len, unsigned char *out)
{
    if (len > MAX_PT || version < 1 || !aad) return -1;
    static const char label[] = "fv-dk-nonce";
    unsigned char nk[32], mac[32];
    unsigned int nklen = 0;
    if (!HMAC(EVP_sha256(), key, FV_DATAKEY_BYTES, (const unsigned char *)label, sizeof label - 1, nk,
              &nklen))
        return -1;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *h = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t maclen = 0;
    int ok = h && EVP_MAC_init(h, nk, nklen, params) &&
             EVP_MAC_update(h, (const unsigned char *)aad, strlen(aad) + 1) && /* the NUL too */
             EVP_MAC_update(h, pt, len) && EVP_MAC_final(h, mac, &maclen, sizeof mac) && maclen == 32;
    EVP_MAC_CTX_free(h);
    EVP_MAC_free(m);
    OPENSSL_cleanse(nk, sizeof nk);
    if (!ok) return -1;
    memcpy(out, "FVD1", 4);
    out[4] = (unsigned char)((unsigned)version >> 24);
    out[5] = (unsigned char)((unsigned)version >> 16);
    out[6] = (unsigned char)((unsigned)version >> 8);
    out[7] = (unsigned char)version;
    memcpy(out + HEAD, mac, NONCE);
    OPENSSL_cleanse(mac, sizeof mac);
    return fv_aes256gcm(1, key, out + HEAD, aad, pt, len, out + HEAD + NONCE, out + HEAD + NONCE + len);
}

int fv_dk_version(const unsigned char *sealed, size_t len)
{
    if (!sealed || len < FV_DK_OVERHEAD || memcmp(sealed, "FVD1", 4) != 0) return -1;
    unsigned long v = ((unsigned long)sealed[4] << 24) | ((unsigned long)sealed[5] << 16) |
                      ((unsigned long)sealed[6] << 8) | sealed[7];
    return v >= 1 && v <= 0x7fffffffUL ? (int)v : -1;
}

long fv_dk_open(const unsigned char key[FV_DATAKEY_BYTES], const char *aad, const unsigned char *sealed,
                size_t len, unsigned char *out)
{
    if (fv_dk_version(sealed, len) < 0 || len - FV_DK_OVERHEAD > MAX_PT) return -1;
    size_t ct = len - FV_DK_OVERHEAD;
    /* the tag is copied: EVP takes a non-const pointer */
    unsigned char tag[TAG];
    memcpy(tag, sealed + HEAD + NONCE + ct, TAG);
    if (fv_aes256gcm(0, key, sealed + HEAD, aad, sealed + HEAD + NONCE, ct, out, tag) != 0) {
        OPENSSL_cleanse(out, ct);
        return -1;
    }
    return (long)ct;
}

void fv_dk_aad_xml(const char *response_id, const char *sha256_hex, char out[FV_DK_AAD_MAX])
{
    snprintf(out, FV_DK_AAD_MAX, "fv:response_xml:%.40s:%.64s", response_id, sha256_hex);
}

void fv_dk_aad_blob(const char *org_id, const char *sha256_hex, char out[FV_DK_AAD_MAX])
{
    snprintf(out, FV_DK_AAD_MAX, "fv:attachment_blobs:%.40s:%.64s", org_id, sha256_hex);
}

/* The ring: entries in order of arrival, the oldest replaced when full. */
typedef struct dk_entry {
    char scope[FV_DATAKEY_SCOPE_MAX];
    int version; /* 0: empty */
    unsigned char key[FV_DATAKEY_BYTES];
} dk_entry;

struct fv_dkring {
    fv_keyset ks; /* a copy, wiped in fv_dkring_free */
    size_t cap, next;
    dk_entry e[]; /* cap entries */
};

fv_dkring *fv_dkring_new(const fv_keyset *ks, size_t cap)
{
    if (!ks || ks->n == 0 || cap < 1 || cap > 65536) return NULL;
    fv_dkring *r = calloc(1, sizeof *r + cap * sizeof(dk_entry));
    if (!r) return NULL;
    r->ks = *ks;
    r->cap = cap;
    return r;
}

void fv_dkring_free(fv_dkring *r)
{
    if (!r) return;
    OPENSSL_cleanse(r, sizeof *r + r->cap * sizeof(dk_entry));
    free(r);
}

const unsigned char *fv_dkring_get(fv_dkring *r, const char *scope, int version)
{
    for (size_t i = 0; i < r->cap; i++)
        if (r->e[i].version == version && version > 0 && strcmp(r->e[i].scope, scope) == 0)
            return r->e[i].key;
    return NULL;
}

const unsigned char *fv_dkring_put(fv_dkring *r, const char *scope, int version, const char *wrapped,
                                   char *err, size_t errlen)
{
    unsigned char key[FV_DATAKEY_BYTES];
    if (fv_datakey_unwrap(&r->ks, scope, version, wrapped, key, err, errlen) != 0) return NULL;
    dk_entry *e = NULL;
    for (size_t i = 0; i < r->cap && !e; i++)
        if (r->e[i].version == version && strcmp(r->e[i].scope, scope) == 0) e = &r->e[i];
    if (!e) {
        e = &r->e[r->next];
        r->next = (r->next + 1) % r->cap;
    }
    snprintf(e->scope, sizeof e->scope, "%s", scope);
    e->version = version;
    memcpy(e->key, key, sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    return e->key;
}

const fv_keyset *fv_dkring_keys(const fv_dkring *r)
{
    return &r->ks;
}

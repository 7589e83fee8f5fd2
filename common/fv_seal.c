/* AES-256-GCM sealing under HKDF subkeys of the master key (see fv_seal.h). */
#include "fv_seal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_crypto.h"

#define NONCE 12
#define TAG 16
#define MAX_PT 4096

char *fv_seal(const fv_keyset *ks, const char *label, const char *aad, const void *pt, size_t len)
{
    if (ks->n == 0 || len > MAX_PT) return NULL;
    const fv_key *k = &ks->keys[0];
    unsigned char key[32], buf[NONCE + MAX_PT + TAG];
    if (fv_keys_derive(k, label, key, sizeof key) != 0 || RAND_bytes(buf, NONCE) != 1) return NULL;
    char *out = NULL;
    if (fv_aes256gcm(1, key, buf, aad, pt, len, buf + NONCE, buf + NONCE + len) == 0) {
        size_t blen = NONCE + len + TAG;
        out = malloc(3 + FV_KEY_IDLEN + 1 + fv_b64url_len(blen) + 1);
        if (out) {
            int o = sprintf(out, "s1.%s.", k->id);
            fv_b64url_encode(buf, blen, out + o);
        }
    }
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(buf, sizeof buf);
    return out;
}

unsigned char *fv_unseal(const fv_keyset *ks, const char *label, const char *aad, const char *sealed,
                         size_t *len)
{
    if (!sealed || strncmp(sealed, "s1.", 3) != 0 || strlen(sealed) < 3 + FV_KEY_IDLEN + 1 ||
        sealed[3 + FV_KEY_IDLEN] != '.')
        return NULL;
    char id[FV_KEY_IDLEN + 1];
    memcpy(id, sealed + 3, FV_KEY_IDLEN);
    id[FV_KEY_IDLEN] = '\0';
    const fv_key *k = fv_keys_find(ks, id);
    const char *b = sealed + 3 + FV_KEY_IDLEN + 1;
    size_t blen = strlen(b);
    if (!k || blen > fv_b64url_len(NONCE + MAX_PT + TAG)) return NULL;
    unsigned char buf[NONCE + MAX_PT + TAG + 3], key[32];
    long n = fv_b64url_decode(b, blen, buf);
    if (n < NONCE + TAG) return NULL;
    size_t ctlen = (size_t)n - NONCE - TAG;
    unsigned char *pt = malloc(ctlen + 1);
    if (!pt) return NULL;
    if (fv_keys_derive(k, label, key, sizeof key) != 0 ||
        fv_aes256gcm(0, key, buf, aad, buf + NONCE, ctlen, pt, buf + NONCE + ctlen) != 0) {
        OPENSSL_cleanse(pt, ctlen + 1);
        free(pt);
        pt = NULL;
    } else {
        pt[ctlen] = '\0';
        *len = ctlen;
    }
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(buf, sizeof buf);
    return pt;
}

/* AES-256-GCM sealing of queue entries' payload fields (see fv_qseal.h). */
#include "fv_qseal.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_crypto.h"

#define NONCE 12
#define TAG 16
#define PREFIX_LEN (3 + FV_KEY_IDLEN + 1) /* "q1.<id>." */
#define NPARTS 3
#define AAD_MAX 160

struct fv_qseal {
    EVP_CIPHER_CTX *ctx; /* owned, reused for every entry */
    int n;
    unsigned char key[FV_KEYS_MAX][32]; /* the queue subkey of each key; [0] the current one */
    char id[FV_KEYS_MAX][FV_KEY_IDLEN + 1];
};

fv_qseal *fv_qseal_new(const fv_keyset *ks)
{
    if (!ks || ks->n <= 0) return NULL;
    fv_qseal *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->ctx = EVP_CIPHER_CTX_new();
    if (!q->ctx) goto failed;
    for (int i = 0; i < ks->n && i < FV_KEYS_MAX; i++) {
        if (fv_keys_derive(&ks->keys[i], FV_QSEAL_LABEL, q->key[i], sizeof q->key[i]) != 0) goto failed;
        memcpy(q->id[i], ks->keys[i].id, sizeof q->id[i]);
        q->n++;
    }
    return q;
failed:
    fv_qseal_free(q);
    return NULL;
}

void fv_qseal_free(fv_qseal *q)
{
    if (!q) return;
    EVP_CIPHER_CTX_free(q->ctx);
    OPENSSL_cleanse(q, sizeof *q);
    free(q);
}

static size_t plain_len(const fv_envelope *e)
{
    return NPARTS * 4 + e->data_len + (e->location ? e->location_len : 0) +
           (e->openrosa ? e->openrosa_len : 0);
}

size_t fv_qseal_scratch_len(const fv_envelope *e)
{
    return NONCE + plain_len(e) + TAG;
}

size_t fv_qseal_text_len(const fv_envelope *e)
{
    return PREFIX_LEN + fv_b64url_len(fv_qseal_scratch_len(e));
}

static int aad_of(const fv_envelope *e, char *out)
{
    return snprintf(out, AAD_MAX, "fv-queue:1:%s:%s:%s", e->id, e->deployment_id, e->submitted_by);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16),
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int fv_qseal_seal(fv_qseal *q, const fv_envelope *e, unsigned char *scratch, char *out)
{
    size_t plen = plain_len(e);
    if (!q || q->n == 0 || plen > INT_MAX - 64) return -1;
    const void *part[NPARTS] = {e->data, e->location, e->openrosa};
    size_t partlen[NPARTS] = {e->data_len, e->location ? e->location_len : 0,
                              e->openrosa ? e->openrosa_len : 0};
    char aad[AAD_MAX];
    int alen = aad_of(e, aad), n;
    unsigned char *nonce = scratch, *ct = scratch + NONCE;
    EVP_CIPHER_CTX *c = q->ctx;
    if (RAND_bytes(nonce, NONCE) != 1 ||
        EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, q->key[0], nonce) != 1 ||
        EVP_EncryptUpdate(c, NULL, &n, (const unsigned char *)aad, alen) != 1)
        return -1;
    /* The parts are encrypted where they are: no plaintext copy is made. */
    size_t o = 0;
    for (int i = 0; i < NPARTS; i++) {
        unsigned char hdr[4];
        put_u32(hdr, (uint32_t)partlen[i]);
        if (EVP_EncryptUpdate(c, ct + o, &n, hdr, 4) != 1) return -1;
        o += (size_t)n;
        if (partlen[i] > 0) {
            if (EVP_EncryptUpdate(c, ct + o, &n, part[i], (int)partlen[i]) != 1) return -1;
            o += (size_t)n;
        }
    }
    if (EVP_EncryptFinal_ex(c, ct + o, &n) != 1) return -1;
    o += (size_t)n;
    if (o != plen || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG, ct + o) != 1) return -1;
    memcpy(out, "q1.", 3);
    memcpy(out + 3, q->id[0], FV_KEY_IDLEN);
    out[3 + FV_KEY_IDLEN] = '.';
    fv_b64url_encode(scratch, NONCE + plen + TAG, out + PREFIX_LEN);
    return 0;
}

void fv_qseal_plain_free(unsigned char *plain, size_t len)
{
    if (!plain) return;
    OPENSSL_cleanse(plain, len);
    free(plain);
}

int fv_qseal_open(fv_qseal *q, fv_envelope *e, unsigned char **plain, size_t *plain_len_out, char *err,
                  size_t errlen)
{
    *plain = NULL;
    *plain_len_out = 0;
    const char *s = e->sealed;
    size_t slen = e->sealed_len;
    if (!s || slen < PREFIX_LEN || memcmp(s, "q1.", 3) != 0 || s[PREFIX_LEN - 1] != '.') {
        snprintf(err, errlen, "sealed payload is malformed");
        return -1;
    }
    int k = 0;
    while (k < (q ? q->n : 0) && memcmp(q->id[k], s + 3, FV_KEY_IDLEN) != 0) k++;
    if (!q || k == q->n) {
        snprintf(err, errlen, "sealed under key %.*s, which is not in the key file", FV_KEY_IDLEN,
                 s + 3);
        for (char *p = err; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
        return -1;
    }
    size_t blen = slen - PREFIX_LEN;
    if (blen > (size_t)INT_MAX) {
        snprintf(err, errlen, "sealed payload is too large");
        return -1;
    }
    unsigned char *buf = malloc(blen * 3 / 4 + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory opening a sealed payload of %zu bytes", blen);
        return -1;
    }
    long dn = fv_b64url_decode(s + PREFIX_LEN, blen, buf);
    if (dn < NONCE + TAG + NPARTS * 4) {
        snprintf(err, errlen, "sealed payload is malformed");
        goto failed;
    }
    size_t ctlen = (size_t)dn - NONCE - TAG;
    char aad[AAD_MAX];
    int alen = aad_of(e, aad), n, n2;
    EVP_CIPHER_CTX *c = q->ctx;
    /* Decrypted in place, after the nonce: the plaintext starts at buf + NONCE. */
    unsigned char *pt = buf + NONCE;
    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, q->key[k], buf) != 1 ||
        EVP_DecryptUpdate(c, NULL, &n, (const unsigned char *)aad, alen) != 1 ||
        EVP_DecryptUpdate(c, pt, &n, pt, (int)ctlen) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG, pt + ctlen) != 1 ||
        EVP_DecryptFinal_ex(c, pt + n, &n2) != 1) {
        snprintf(err, errlen,
                 "sealed payload does not open under key %s (tampered, another entry's, or a "
                 "different key file)",
                 q->id[k]);
        OPENSSL_cleanse(buf, (size_t)dn);
        goto failed;
    }
    /* Authentic: the framing is the front end's, but check it all the same. */
    const char *part[NPARTS];
    size_t partlen[NPARTS], o = 0;
    for (int i = 0; i < NPARTS; i++) {
        if (ctlen - o < 4 || get_u32(pt + o) > ctlen - o - 4) {
            snprintf(err, errlen, "sealed payload has a malformed plaintext");
            OPENSSL_cleanse(buf, (size_t)dn);
            goto failed;
        }
        partlen[i] = get_u32(pt + o);
        part[i] = (const char *)pt + o + 4;
        o += 4 + partlen[i];
    }
    if (o != ctlen || partlen[0] == 0) {
        snprintf(err, errlen, "sealed payload has a malformed plaintext");
        OPENSSL_cleanse(buf, (size_t)dn);
        goto failed;
    }
    e->data = part[0], e->data_len = partlen[0];
    e->location = part[1], e->location_len = partlen[1];
    e->openrosa = partlen[2] ? part[2] : NULL, e->openrosa_len = partlen[2];
    *plain = buf;
    *plain_len_out = (size_t)dn;
    return 0;
failed:
    free(buf);
    return -1;
}

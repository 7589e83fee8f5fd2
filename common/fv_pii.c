/* Personal data at rest: sealing emails and names, and the emails' lookup HMAC (see fv_pii.h). */
#include "fv_pii.h"

#include "fv_json.h"

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

/* ---- reading ---- */

char *fv_pii_cell_open(fv_dkring *ring, const char *cell, const char *aad, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!cell) return NULL;
    if (cell[0] == 'c' && cell[1] == ':') {
        char *c = strdup(cell + 2); /* the caller's */
        if (!c) snprintf(err, errlen, "%s: out of memory", aad);
        return c;
    }
    /* "s:<version>:<wrapped>:<hex>" */
    char *end = NULL;
    long v = cell[0] == 's' && cell[1] == ':' ? strtol(cell + 2, &end, 10) : 0;
    const char *wrapped = end && *end == ':' ? end + 1 : NULL;
    const char *hex = wrapped ? strchr(wrapped, ':') : NULL;
    if (v < 1 || v > 1000000 || !hex || (size_t)(hex - wrapped) >= 512) {
        snprintf(err, errlen, "%s: a stored field of an unknown shape (or its data key is missing)",
                 aad);
        return NULL;
    }
    char wtext[512];
    memcpy(wtext, wrapped, (size_t)(hex - wrapped));
    wtext[hex - wrapped] = '\0';
    char kerr[200];
    const unsigned char *key = fv_dkring_get(ring, "global", (int)v);
    if (!key) key = fv_dkring_put(ring, "global", (int)v, wtext, kerr, sizeof kerr);
    if (!key) {
        snprintf(err, errlen, "%s: its data key (global v%ld) does not unwrap: %s", aad, v, kerr);
        return NULL;
    }
    /* hex + 1 is "<hex>": give unhex its "\x" form */
    size_t hl = strlen(hex + 1);
    char *hx = malloc(hl + 3);
    if (!hx) {
        snprintf(err, errlen, "%s: out of memory", aad);
        return NULL;
    }
    hx[0] = '\\';
    hx[1] = 'x';
    memcpy(hx + 2, hex + 1, hl + 1);
    size_t len = 0;
    unsigned char *sealed = fv_pii_unhex(hx, &len);
    free(hx);
    if (!sealed) {
        snprintf(err, errlen, "%s: a sealed field that is not hex", aad);
        return NULL;
    }
    char *out = fv_pii_open(key, (int)v, aad, sealed, len, err, errlen);
    free(sealed);
    return out;
}

static bool key_named(const char *k, const char *const *keys)
{
    for (; *keys; keys++)
        if (!strcmp(k, *keys)) return true;
    return false;
}

/* Opens the sealed fields of object o named in keys, and (when depth is 0) of the objects directly
 * inside it. Returns false with err. */
static bool open_object(fv_dkring *ring, yajl_val o, const char *const *keys, int depth, char *err,
                        size_t errlen)
{
    if (!YAJL_IS_OBJECT(o)) return true;
    for (size_t i = 0; i < o->u.object.len; i++) {
        yajl_val v = o->u.object.values[i];
        if (YAJL_IS_OBJECT(v) && key_named(o->u.object.keys[i], keys)) {
            const char *cell = fv_json_get_str(v, "fv_sealed"), *aad = fv_json_get_str(v, "aad");
            if (cell && aad && v->u.object.len == 2) {
                char *pt = fv_pii_cell_open(ring, cell, aad, err, errlen);
                yajl_val s = pt ? calloc(1, sizeof *s) : NULL;
                if (!s) {
                    if (pt) snprintf(err, errlen, "%s: out of memory", aad);
                    free(pt);
                    return false;
                }
                s->type = yajl_t_string;
                s->u.string = pt; /* owned by the tree now */
                yajl_tree_free(v);
                o->u.object.values[i] = s;
                continue;
            }
        }
        if (depth == 0 && !open_object(ring, v, keys, 1, err, errlen)) return false;
    }
    return true;
}

char *fv_pii_json_open(fv_dkring *ring, const char *json, size_t len, const char *const *keys, char *err,
                       size_t errlen)
{
    fv_json_error e;
    yajl_val t = fv_json_parse_n(json, len, &e);
    if (!t) {
        snprintf(err, errlen, "personal data: a statement's JSON does not parse");
        return NULL;
    }
    bool ok = true;
    if (YAJL_IS_ARRAY(t)) {
        for (size_t i = 0; ok && i < t->u.array.len; i++)
            ok = open_object(ring, t->u.array.values[i], keys, 0, err, errlen);
    } else {
        ok = open_object(ring, t, keys, 0, err, errlen);
    }
    char *out = ok ? fv_json_text(t) : NULL; /* the caller's */
    if (ok && !out) snprintf(err, errlen, "personal data: out of memory");
    yajl_tree_free(t);
    return out;
}

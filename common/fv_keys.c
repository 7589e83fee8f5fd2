/* The master key file and HKDF subkeys (see fv_keys.h). */
#include "fv_keys.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int fv_keys_load(fv_keyset *ks, const char *path, char *err, size_t errlen)
{
    memset(ks, 0, sizeof *ks);
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "cannot open key file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        fclose(f);
        snprintf(err, errlen, "key file %s is readable by group or others (chmod 600 it)", path);
        return -1;
    }
    char line[256];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        char *e = p + strlen(p);
        while (e > p && isspace((unsigned char)e[-1])) *--e = '\0';
        if (*p == '\0' || *p == '#') continue;
        if (ks->n == FV_KEYS_MAX) {
            snprintf(err, errlen, "key file %s: more than %d keys", path, FV_KEYS_MAX);
            rc = -1;
            break;
        }
        if (strlen(p) != 2 * FV_KEY_BYTES) {
            snprintf(err, errlen, "key file %s line %d: expected %d hex characters", path, lineno,
                     2 * FV_KEY_BYTES);
            rc = -1;
            break;
        }
        fv_key *k = &ks->keys[ks->n];
        for (int i = 0; i < FV_KEY_BYTES; i++) {
            int hi = hexval((unsigned char)p[2 * i]), lo = hexval((unsigned char)p[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                snprintf(err, errlen, "key file %s line %d: not hexadecimal", path, lineno);
                rc = -1;
                break;
            }
            k->key[i] = (unsigned char)(hi << 4 | lo);
        }
        if (rc) break;
        fv_keys_id(k->key, k->id);
        ks->n++;
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    if (rc == 0 && ks->n == 0) {
        snprintf(err, errlen, "key file %s holds no key (create one: openssl rand -hex 32)", path);
        rc = -1;
    }
    if (rc) fv_keys_clear(ks);
    return rc;
}

void fv_keys_clear(fv_keyset *ks)
{
    OPENSSL_cleanse(ks, sizeof *ks);
}

void fv_keys_id(const unsigned char key[FV_KEY_BYTES], char id[FV_KEY_IDLEN + 1])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(key, FV_KEY_BYTES, d);
    snprintf(id, FV_KEY_IDLEN + 1, "%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
}

const fv_key *fv_keys_find(const fv_keyset *ks, const char *id)
{
    for (int i = 0; i < ks->n; i++)
        if (strcmp(ks->keys[i].id, id) == 0) return &ks->keys[i];
    return NULL;
}

void fv_keys_describe(const fv_keyset *ks, char *out, size_t outlen)
{
    if (outlen == 0) return;
    int o = snprintf(out, outlen, "%d key(s): signs, seals and wraps under %s", ks->n,
                     ks->n > 0 ? ks->keys[0].id : "none");
    for (int i = 1; i < ks->n && o > 0 && (size_t)o < outlen; i++)
        o += snprintf(out + o, outlen - (size_t)o, "%s%s", i == 1 ? ", also opens " : " ",
                      ks->keys[i].id);
}

int fv_keys_derive(const fv_key *k, const char *label, unsigned char *out, size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (!ctx) return -1;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)k->key, FV_KEY_BYTES),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label, strlen(label)),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(ctx, out, outlen, params) == 1;
    EVP_KDF_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* The ODK encrypted-submission format: public keys, envelope shape checks, offline opening. */
#include "fv_odkcrypt.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_crypto.h"
#include "fv_json.h"
#include "fv_mem.h"

/* ---- public keys ---- */

void fv_odkcrypt_pubkey_free(fv_odkcrypt_pubkey *k)
{
    if (!k) return;
    free(k->pem), free(k->der_b64);
    memset(k, 0, sizeof *k);
}

/* Fills out from a parsed key (borrowed). NULL or why. */
static const char *pubkey_fill(EVP_PKEY *pk, fv_odkcrypt_pubkey *out)
{
    memset(out, 0, sizeof *out);
    if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) return "must be an RSA public key";
    int bits = EVP_PKEY_get_bits(pk);
    if (bits < FV_ODKCRYPT_MIN_BITS) return "the RSA key must have at least 2048 bits";
    if (bits > FV_ODKCRYPT_MAX_BITS) return "the RSA key must have at most 8192 bits";
    unsigned char *der = NULL;
    int dlen = i2d_PUBKEY(pk, &der);
    if (dlen <= 0) return "the key cannot be encoded";
    out->der_b64 = malloc(4 * (((size_t)dlen + 2) / 3) + 1);
    BIO *mem = BIO_new(BIO_s_mem());
    if (out->der_b64 && mem && PEM_write_bio_PUBKEY(mem, pk) == 1) {
        fv_b64_encode(der, (size_t)dlen, out->der_b64);
        char *p;
        long n = BIO_get_mem_data(mem, &p);
        out->pem = n > 0 ? fv_memdup0(p, (size_t)n) : NULL;
    }
    OPENSSL_free(der);
    BIO_free(mem);
    if (!out->pem || !out->der_b64) {
        fv_odkcrypt_pubkey_free(out);
        return "out of memory";
    }
    out->bits = bits;
    out->bytes = (bits + 7) / 8;
    return NULL;
}

const char *fv_odkcrypt_pubkey_from_pem(const char *text, size_t len, fv_odkcrypt_pubkey *out)
{
    memset(out, 0, sizeof *out);
    if (len == 0 || len > FV_ODKCRYPT_MAX_PEM) return "must be a PEM public key of at most 16384 bytes";
    if (memchr(text, '\0', len)) return "must be a PEM public key (text)";
    /* exactly one PEM block, nothing but whitespace around it */
    static const char begin[] = "-----BEGIN ", endm[] = "-----END ";
    const char *b = memmem(text, len, begin, sizeof begin - 1);
    if (!b) return "must be a PEM public key (-----BEGIN PUBLIC KEY-----)";
    for (const char *c = text; c < b; c++)
        if (!strchr(" \t\r\n", *c)) return "must be a PEM public key with nothing before it";
    if (memmem(b + 1, len - (size_t)(b + 1 - text), begin, sizeof begin - 1))
        return "must be one PEM public key";
    const char *e = memmem(b, len - (size_t)(b - text), endm, sizeof endm - 1);
    if (!e) return "must be a PEM public key (no END line)";
    const char *tail = memmem(e + sizeof endm - 1, len - (size_t)(e + sizeof endm - 1 - text), "-----",
                              5);
    if (!tail) return "must be a PEM public key (no END line)";
    for (const char *c = tail + 5; c < text + len; c++)
        if (!strchr(" \t\r\n", *c)) return "must be a PEM public key with nothing after it";
    if (memmem(b, (size_t)(e - b), "PRIVATE", 7)) return "must be the public key, never the private key";
    if (strncmp(b, "-----BEGIN PUBLIC KEY-----", 26) != 0 &&
        strncmp(b, "-----BEGIN RSA PUBLIC KEY-----", 30) != 0)
        return "must be a PEM public key (-----BEGIN PUBLIC KEY-----)";
    /* OpenSSL's decoders: SubjectPublicKeyInfo or PKCS#1 RSAPublicKey, RSA only */
    EVP_PKEY *pk = NULL;
    OSSL_DECODER_CTX *dc = OSSL_DECODER_CTX_new_for_pkey(&pk, "PEM", NULL, "RSA", EVP_PKEY_PUBLIC_KEY,
                                                         NULL, NULL);
    const unsigned char *in = (const unsigned char *)text;
    size_t inlen = len;
    if (!dc || OSSL_DECODER_from_data(dc, &in, &inlen) != 1) {
        EVP_PKEY_free(pk);
        pk = NULL;
    }
    OSSL_DECODER_CTX_free(dc);
    if (!pk) return "must be a PEM RSA public key (-----BEGIN PUBLIC KEY-----) that parses";
    const char *why = pubkey_fill(pk, out);
    EVP_PKEY_free(pk);
    return why;
}

const char *fv_odkcrypt_pubkey_from_b64(const char *b64, size_t len, fv_odkcrypt_pubkey *out)
{
    memset(out, 0, sizeof *out);
    if (len == 0 || len > FV_ODKCRYPT_MAX_PEM) return "must be base64 of an RSA public key";
    unsigned char *der = malloc(len);
    if (!der) return "out of memory";
    long n = fv_b64_decode(b64, len, der);
    const unsigned char *p = der;
    EVP_PKEY *pk = n > 0 ? d2i_PUBKEY(NULL, &p, n) : NULL;
    bool whole = pk && p == der + n;
    free(der);
    if (!pk || !whole) {
        EVP_PKEY_free(pk);
        return "must be base64 of an RSA public key (DER SubjectPublicKeyInfo)";
    }
    const char *why = pubkey_fill(pk, out);
    EVP_PKEY_free(pk);
    return why;
}

/* ---- envelope shape ---- */

/* Decoded length of canonical padded base64 s, or -1 (no decoding: linear scan only). */
static long b64_len(const char *s, size_t n)
{
    if (n == 0 || n % 4) return -1;
    size_t pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '+' || c == '/';
        if (c == '=') {
            if (i < n - 2) return -1;
            pad++;
        } else if (!alpha || pad) {
            return -1;
        }
    }
    return (long)(n / 4 * 3 - pad);
}

static bool safe_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

/* A media file name: [A-Za-z0-9_][A-Za-z0-9_.-]* ending ".enc", not "submission.xml.enc". */
static bool media_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 5 || n > FV_ODKCRYPT_MAX_NAME || strcmp(s + n - 4, ".enc") != 0) return false;
    if (strcmp(s, "submission.xml.enc") == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || (i > 0 && (c == '.' || c == '-'));
        if (!ok) return false;
    }
    return true;
}

static bool wrapped_len_ok(long n, int modulus_bytes)
{
    return modulus_bytes > 0 ? n == modulus_bytes
                             : n >= FV_ODKCRYPT_MIN_BITS / 8 && n <= FV_ODKCRYPT_MAX_BITS / 8;
}

static bool is_str(yajl_val v)
{
    return v && YAJL_IS_STRING(v);
}

const char *fv_odkcrypt_envelope_check(yajl_val env, int modulus_bytes, const char **field)
{
    *field = "encrypted";
    if (!env || !YAJL_IS_OBJECT(env)) return "required: the encrypted submission's envelope, an object";
    static const char *known[] = {"instanceID",       "version", "base64EncryptedKey",
                                  "encryptedXmlFile", "media",   "base64EncryptedElementSignature"};
    for (size_t i = 0; i < env->u.object.len; i++) {
        bool k = false;
        for (size_t j = 0; j < sizeof known / sizeof known[0]; j++)
            if (strcmp(env->u.object.keys[i], known[j]) == 0) k = true;
        if (!k)
            return "unknown field in the envelope (instanceID, version, base64EncryptedKey, "
                   "encryptedXmlFile, media, base64EncryptedElementSignature)";
    }
    yajl_val v = fv_json_get(env, "instanceID");
    *field = "encrypted.instanceID";
    if (!is_str(v) || !safe_text(v->u.string, FV_ODKCRYPT_MAX_ID))
        return "required: a string of 1 to 255 printable bytes";
    v = fv_json_get(env, "version");
    *field = "encrypted.version";
    if (v && !YAJL_IS_NULL(v) &&
        !(is_str(v) && (!*v->u.string || safe_text(v->u.string, FV_ODKCRYPT_MAX_ID))))
        return "must be null or a string of at most 255 printable bytes (the form's version)";
    v = fv_json_get(env, "base64EncryptedKey");
    *field = "encrypted.base64EncryptedKey";
    if (!is_str(v)) return "required: base64 of the RSA-OAEP-wrapped AES key";
    long n = b64_len(v->u.string, strlen(v->u.string));
    if (n < 0) return "must be canonical base64";
    if (!wrapped_len_ok(n, modulus_bytes)) return "its length does not match the survey's RSA key";
    v = fv_json_get(env, "base64EncryptedElementSignature");
    *field = "encrypted.base64EncryptedElementSignature";
    if (!is_str(v)) return "required: base64 of the RSA-OAEP-wrapped signature";
    n = b64_len(v->u.string, strlen(v->u.string));
    if (n < 0) return "must be canonical base64";
    if (!wrapped_len_ok(n, modulus_bytes)) return "its length does not match the survey's RSA key";
    v = fv_json_get(env, "encryptedXmlFile");
    *field = "encrypted.encryptedXmlFile";
    if (!is_str(v)) return "required: base64 of submission.xml.enc";
    n = b64_len(v->u.string, strlen(v->u.string));
    if (n < 0) return "must be canonical base64";
    if (n == 0 || n % 16) return "the ciphertext must be a non-empty multiple of 16 bytes (PKCS#7)";
    v = fv_json_get(env, "media");
    *field = "encrypted.media";
    if (v && !YAJL_IS_NULL(v)) {
        if (!YAJL_IS_ARRAY(v)) return "must be an array of {name, content}";
        if (v->u.array.len > FV_ODKCRYPT_MAX_MEDIA) return "at most 100 media files";
        for (size_t i = 0; i < v->u.array.len; i++) {
            yajl_val m = v->u.array.values[i];
            yajl_val name = fv_json_get(m, "name"), content = fv_json_get(m, "content");
            if (!m || !YAJL_IS_OBJECT(m) || m->u.object.len != 2 || !is_str(name) || !is_str(content))
                return "each media file must be {\"name\": \"x.jpg.enc\", \"content\": base64}";
            if (!media_name_ok(name->u.string))
                return "a media file's name must be 5 to 255 of [A-Za-z0-9_.-], not starting with . "
                       "or -, ending .enc";
            for (size_t j = 0; j < i; j++)
                if (strcmp(fv_json_get_str(v->u.array.values[j], "name"), name->u.string) == 0)
                    return "two media files have the same name";
            n = b64_len(content->u.string, strlen(content->u.string));
            if (n < 0) return "a media file's content must be canonical base64";
            if (n == 0 || n % 16)
                return "a media file's ciphertext must be a non-empty multiple of 16 bytes";
        }
    }
    *field = NULL;
    return NULL;
}

const char *fv_odkcrypt_envelope_check_text(const char *text, size_t len, int modulus_bytes,
                                            const char **field)
{
    fv_json_error e;
    yajl_val v = fv_json_parse_n(text, len, &e);
    *field = "encrypted";
    if (!v) return "the envelope is not JSON";
    const char *why = fv_odkcrypt_envelope_check(v, modulus_bytes, field);
    yajl_tree_free(v);
    return why;
}

static void jgen_b64(fv_jgen *j, const unsigned char *d, size_t n)
{
    char *b = malloc(4 * ((n + 2) / 3) + 1);
    if (!b) {
        fv_jgen_str(j, NULL); /* the text is then refused by the check (no silent loss) */
        return;
    }
    size_t l = fv_b64_encode(d, n, b);
    fv_jgen_strn(j, b, l);
    free(b);
}

char *fv_odkcrypt_envelope_build(const char *instance_id, const char *version, const char *b64_key,
                                 const unsigned char *xml_enc, size_t xml_len,
                                 const fv_odkcrypt_part *media, size_t nmedia, const char *b64_signature)
{
    fv_jgen *j = fv_jgen_new();
    if (!j) return NULL;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "instanceID");
    fv_jgen_str(j, instance_id);
    fv_jgen_key(j, "version");
    fv_jgen_str(j, version && *version ? version : NULL);
    fv_jgen_key(j, "base64EncryptedKey");
    fv_jgen_str(j, b64_key);
    fv_jgen_key(j, "encryptedXmlFile");
    jgen_b64(j, xml_enc, xml_len);
    fv_jgen_key(j, "media");
    fv_jgen_array_open(j);
    for (size_t i = 0; i < nmedia; i++) {
        fv_jgen_map_open(j);
        fv_jgen_key(j, "name");
        fv_jgen_str(j, media[i].name);
        fv_jgen_key(j, "content");
        jgen_b64(j, media[i].data, media[i].len);
        fv_jgen_map_close(j);
    }
    fv_jgen_array_close(j);
    fv_jgen_key(j, "base64EncryptedElementSignature");
    fv_jgen_str(j, b64_signature);
    fv_jgen_map_close(j);
    size_t len;
    const char *t = fv_jgen_buf(j, &len);
    char *out = t ? fv_memdup0(t, len) : NULL;
    fv_jgen_free(j);
    return out;
}

/* ---- opening ---- */

fv_odkcrypt_privkey *fv_odkcrypt_privkey_load(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, whylen, "%s: cannot open the private key file", path);
        return NULL;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
        EVP_PKEY_free(k);
        snprintf(why, whylen, "%s: not a PEM RSA private key (or it is protected by a passphrase)",
                 path);
        return NULL;
    }
    return k;
}

void fv_odkcrypt_privkey_free(fv_odkcrypt_privkey *k)
{
    EVP_PKEY_free(k);
}

long fv_odkcrypt_unwrap(fv_odkcrypt_privkey *k, const char *b64, size_t len, unsigned char *out,
                        size_t outmax)
{
    long n = b64_len(b64, len);
    if (n <= 0 || n > FV_ODKCRYPT_MAX_BITS / 8) return -1;
    unsigned char ct[FV_ODKCRYPT_MAX_BITS / 8 + 3];
    if (fv_b64_decode(b64, len, ct) != n) return -1;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
    size_t olen = 0;
    unsigned char buf[FV_ODKCRYPT_MAX_BITS / 8];
    long rc = -1;
    if (c && EVP_PKEY_decrypt_init(c) == 1 &&
        EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) == 1 &&
        EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) == 1 &&
        EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) == 1) {
        olen = sizeof buf;
        if (EVP_PKEY_decrypt(c, buf, &olen, ct, (size_t)n) == 1 && olen <= outmax) {
            memcpy(out, buf, olen);
            rc = (long)olen;
        }
    }
    OPENSSL_cleanse(buf, sizeof buf);
    EVP_PKEY_CTX_free(c);
    return rc;
}

void fv_odkcrypt_iv(const char *instance_id, const unsigned char key[FV_ODKCRYPT_KEY_LEN], unsigned n,
                    unsigned char iv[FV_ODKCRYPT_IV_LEN])
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned int l = 0;
    unsigned char seed[EVP_MAX_MD_SIZE];
    memset(seed, 0, sizeof seed);
    if (m && EVP_DigestInit_ex(m, EVP_md5(), NULL) == 1 &&
        EVP_DigestUpdate(m, instance_id, strlen(instance_id)) == 1 &&
        EVP_DigestUpdate(m, key, FV_ODKCRYPT_KEY_LEN) == 1)
        EVP_DigestFinal_ex(m, seed, &l);
    EVP_MD_CTX_free(m);
    for (unsigned i = 0; i <= n; i++) seed[i % 16]++;
    memcpy(iv, seed, FV_ODKCRYPT_IV_LEN);
}

unsigned char *fv_odkcrypt_decrypt_file(const unsigned char key[FV_ODKCRYPT_KEY_LEN],
                                        const unsigned char iv[FV_ODKCRYPT_IV_LEN],
                                        const unsigned char *ct, size_t len, size_t *outlen)
{
    if (len == 0 || len % 16 || len > (size_t)1 << 30) return NULL;
    unsigned char *out = malloc(len + 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int a = 0, b = 0;
    bool ok = out && c && EVP_DecryptInit_ex(c, EVP_aes_256_cfb128(), NULL, key, iv) == 1 &&
              EVP_DecryptUpdate(c, out, &a, ct, (int)len) == 1 &&
              EVP_DecryptFinal_ex(c, out + a, &b) == 1 && (size_t)(a + b) == len;
    EVP_CIPHER_CTX_free(c);
    /* PKCS#7 (CFB is a stream mode: OpenSSL adds no padding, the format does) */
    unsigned pad = ok ? out[len - 1] : 0;
    if (ok && (pad < 1 || pad > 16)) ok = false;
    for (unsigned i = 1; ok && i <= pad; i++)
        if (out[len - i] != pad) ok = false;
    if (!ok) {
        if (out) OPENSSL_cleanse(out, len);
        free(out);
        return NULL;
    }
    *outlen = len - pad;
    out[*outlen] = '\0';
    return out;
}

static void md5_hex(const unsigned char *d, size_t n, char hex[33])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int l = 0;
    EVP_Digest(d, n, md, &l, EVP_md5(), NULL);
    for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

void fv_odkcrypt_signature_digest(const char *form_id, const char *version, const char *b64_key,
                                  const char *instance_id, const fv_odkcrypt_file *media, size_t nmedia,
                                  const fv_odkcrypt_file *xml, unsigned char md[16])
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    char hex[33];
    unsigned int l = 0;
    unsigned char out[EVP_MAX_MD_SIZE];
    memset(out, 0, sizeof out);
    if (m && EVP_DigestInit_ex(m, EVP_md5(), NULL) == 1) {
#define LINE(s) (EVP_DigestUpdate(m, (s), strlen(s)), EVP_DigestUpdate(m, "\n", 1))
        LINE(form_id);
        if (version && *version) LINE(version);
        LINE(b64_key);
        LINE(instance_id);
        for (size_t i = 0; i < nmedia; i++) {
            md5_hex(media[i].data, media[i].len, hex);
            EVP_DigestUpdate(m, media[i].name, strlen(media[i].name));
            EVP_DigestUpdate(m, "::", 2);
            LINE(hex);
        }
        md5_hex(xml->data, xml->len, hex);
        EVP_DigestUpdate(m, "submission.xml::", 16);
        LINE(hex);
#undef LINE
        EVP_DigestFinal_ex(m, out, &l);
    }
    EVP_MD_CTX_free(m);
    memcpy(md, out, 16);
}

void fv_odkcrypt_opened_free(fv_odkcrypt_opened *o)
{
    if (!o) return;
    free(o->xml.name);
    if (o->xml.data) OPENSSL_cleanse(o->xml.data, o->xml.len);
    free(o->xml.data);
    for (size_t i = 0; i < o->nmedia; i++) {
        free(o->media[i].name);
        if (o->media[i].data) OPENSSL_cleanse(o->media[i].data, o->media[i].len);
        free(o->media[i].data);
    }
    free(o->media);
    memset(o, 0, sizeof *o);
}

/* Decodes and decrypts one base64 file as file n. */
static bool open_file(const unsigned char key[32], const char *instance_id, unsigned n, const char *b64,
                      fv_odkcrypt_file *f)
{
    size_t bl = strlen(b64);
    long cl = b64_len(b64, bl);
    if (cl <= 0) return false;
    unsigned char *ct = malloc((size_t)cl + 3);
    if (!ct || fv_b64_decode(b64, bl, ct) != cl) {
        free(ct);
        return false;
    }
    unsigned char iv[16];
    fv_odkcrypt_iv(instance_id, key, n, iv);
    f->data = fv_odkcrypt_decrypt_file(key, iv, ct, (size_t)cl, &f->len);
    free(ct);
    return f->data != NULL;
}

bool fv_odkcrypt_open(fv_odkcrypt_privkey *k, yajl_val env, const char *form_id, fv_odkcrypt_opened *out,
                      char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    const char *field;
    const char *bad = fv_odkcrypt_envelope_check(env, EVP_PKEY_get_size(k), &field);
    if (bad) {
        snprintf(why, whylen, "%s: %s", field, bad);
        return false;
    }
    const char *iid = fv_json_get_str(env, "instanceID");
    const char *b64key = fv_json_get_str(env, "base64EncryptedKey");
    const char *version = fv_json_get_str(env, "version");
    unsigned char key[FV_ODKCRYPT_KEY_LEN + 1], sig[17];
    long kl = fv_odkcrypt_unwrap(k, b64key, strlen(b64key), key, sizeof key);
    if (kl != FV_ODKCRYPT_KEY_LEN) {
        OPENSSL_cleanse(key, sizeof key);
        snprintf(why, whylen,
                 "base64EncryptedKey does not open with this private key (wrong key, or tampered)");
        return false;
    }
    yajl_val media = fv_json_get(env, "media");
    size_t nm = media && YAJL_IS_ARRAY(media) ? media->u.array.len : 0;
    bool ok = true;
    out->media = calloc(nm ? nm : 1, sizeof *out->media);
    if (!out->media) {
        snprintf(why, whylen, "out of memory");
        ok = false;
    }
    for (size_t i = 0; ok && i < nm; i++) {
        const char *name = fv_json_get_str(media->u.array.values[i], "name");
        out->nmedia++;
        out->media[i].name = fv_memdup0(name, strlen(name) - 4);
        if (!out->media[i].name ||
            !open_file(key, iid, (unsigned)i, fv_json_get_str(media->u.array.values[i], "content"),
                       &out->media[i])) {
            snprintf(why, whylen, "media file %s does not decrypt (wrong key, or tampered)", name);
            ok = false;
        }
    }
    if (ok &&
        (!(out->xml.name = strdup("submission.xml")) ||
         !open_file(key, iid, (unsigned)nm, fv_json_get_str(env, "encryptedXmlFile"), &out->xml))) {
        snprintf(why, whylen, "encryptedXmlFile does not decrypt (wrong key, or tampered)");
        ok = false;
    }
    OPENSSL_cleanse(key, sizeof key);
    if (ok) {
        const char *s = fv_json_get_str(env, "base64EncryptedElementSignature");
        unsigned char md[16];
        long sl = fv_odkcrypt_unwrap(k, s, strlen(s), sig, sizeof sig);
        fv_odkcrypt_signature_digest(form_id, version, b64key, iid, out->media, out->nmedia, &out->xml,
                                     md);
        if (sl != 16) {
            snprintf(why, whylen, "base64EncryptedElementSignature does not open with this private key");
            ok = false;
        } else if (CRYPTO_memcmp(sig, md, 16) != 0) {
            snprintf(why, whylen,
                     "the signature does not match (a file, the key, the instanceID, the "
                     "form id or the version was changed)");
            ok = false;
        }
    }
    if (!ok) fv_odkcrypt_opened_free(out);
    return ok;
}

_Static_assert(FV_ODKCRYPT_MAX_NAME == 255, "the media name's reason names 255 bytes");

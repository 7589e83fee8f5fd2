/* Unit tests of fv_odkcrypt: ODK Collect's known-answer vectors (keys/encryption-vectors.json) and
 * the fixture encrypted instances open with keys/priv.pem; an envelope made here opens, and a
 * flipped byte, another key or another signature is an error, never garbage; public keys and
 * envelope shapes are checked. The fixtures are ../shared/fixtures/odk beside the source tree
 * (FV_ODK_FIXTURES overrides); the fixture tests are skipped without them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "fv_crypto.h"
#include "fv_json.h"
#include "fv_mem.h"
#include "fv_odkcrypt.h"
#include "fv_odkxml.h"
#include "fv_xform.h"

static char fixtures[1024];

static char *slurp(const char *name, size_t *len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

static fv_odkcrypt_privkey *fixture_key(void)
{
    char path[1200], why[256];
    snprintf(path, sizeof path, "%s/keys/priv.pem", fixtures);
    fv_odkcrypt_privkey *k = fv_odkcrypt_privkey_load(path, why, sizeof why);
    assert_non_null(k);
    return k;
}

static yajl_val vectors(void)
{
    char *t = slurp("keys/encryption-vectors.json", NULL);
    assert_non_null(t);
    char err[128];
    yajl_val v = fv_json_parse(t, err, sizeof err);
    free(t);
    assert_non_null(v);
    return v;
}

static yajl_val sub(yajl_val v, const char *a)
{
    yajl_val x = fv_json_get(v, a);
    assert_non_null(x);
    return x;
}

static void b64_of(const unsigned char *d, size_t n, char *out)
{
    fv_b64_encode(d, n, out);
}

static void test_vector_key_retrieval(void **st)
{
    if (!*fixtures) skip();
    fv_odkcrypt_privkey *k = fixture_key();
    yajl_val v = vectors(), kr = sub(v, "key_retrieval");
    const char *wrapped = fv_json_get_str(kr, "base64_encrypted_key");
    unsigned char key[64];
    long n = fv_odkcrypt_unwrap(k, wrapped, strlen(wrapped), key, sizeof key);
    assert_int_equal(n, 32);
    char b64[64];
    b64_of(key, 32, b64);
    assert_string_equal(b64, fv_json_get_str(kr, "aes_key_base64"));
    yajl_tree_free(v);
    fv_odkcrypt_privkey_free(k);
}

static void test_vector_ivs(void **st)
{
    if (!*fixtures) skip();
    yajl_val v = vectors(), ig = sub(v, "iv_generation"), ivs = sub(ig, "ivs_hex");
    unsigned char key[40];
    const char *kb = fv_json_get_str(ig, "aes_key_base64");
    assert_int_equal(fv_b64_decode(kb, strlen(kb), key), 32);
    assert_true(ivs->u.object.len >= 5);
    for (size_t i = 0; i < ivs->u.object.len; i++) {
        unsigned char iv[16];
        fv_odkcrypt_iv(fv_json_get_str(ig, "instance_id"), key, (unsigned)atoi(ivs->u.object.keys[i]),
                       iv);
        char hex[33];
        for (int j = 0; j < 16; j++) snprintf(hex + 2 * j, 3, "%02x", iv[j]);
        assert_string_equal(hex, ivs->u.object.values[i]->u.string);
    }
    yajl_tree_free(v);
}

static void test_vector_end_to_end(void **st)
{
    if (!*fixtures) skip();
    fv_odkcrypt_privkey *k = fixture_key();
    yajl_val v = vectors(), e = sub(v, "end_to_end");
    const char *wrapped = fv_json_get_str(e, "base64_encrypted_key");
    unsigned char key[64];
    assert_int_equal(fv_odkcrypt_unwrap(k, wrapped, strlen(wrapped), key, sizeof key), 32);
    unsigned char iv[16];
    fv_odkcrypt_iv(fv_json_get_str(e, "instance_id"), key,
                   (unsigned)YAJL_GET_INTEGER(sub(e, "iv_index")), iv);
    const char *cb = fv_json_get_str(e, "ciphertext_base64");
    unsigned char *ct = malloc(strlen(cb));
    long cl = fv_b64_decode(cb, strlen(cb), ct);
    assert_true(cl > 0);
    size_t pl;
    unsigned char *pt = fv_odkcrypt_decrypt_file(key, iv, ct, (size_t)cl, &pl);
    assert_non_null(pt);
    assert_int_equal(pl, strlen(fv_json_get_str(e, "plaintext")));
    assert_memory_equal(pt, fv_json_get_str(e, "plaintext"), pl);
    free(pt);
    /* a flipped byte in the last block breaks the padding or, earlier, the plaintext: never
     * accepted as the same text */
    ct[cl - 1] ^= 0x01;
    pt = fv_odkcrypt_decrypt_file(key, iv, ct, (size_t)cl, &pl);
    assert_true(pt == NULL || pl != strlen(fv_json_get_str(e, "plaintext")) ||
                memcmp(pt, fv_json_get_str(e, "plaintext"), pl) != 0);
    free(pt);
    /* the wrong IV (file 0) gives garbage the padding check refuses or a different text */
    ct[cl - 1] ^= 0x01;
    fv_odkcrypt_iv(fv_json_get_str(e, "instance_id"), key, 0, iv);
    pt = fv_odkcrypt_decrypt_file(key, iv, ct, (size_t)cl, &pl);
    assert_true(pt == NULL || memcmp(pt, fv_json_get_str(e, "plaintext"), 16) != 0);
    free(pt);
    free(ct);
    yajl_tree_free(v);
    fv_odkcrypt_privkey_free(k);
}

/* The text between <tag> and </tag> of xml, copied. */
static char *element(const char *xml, const char *tag)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(xml, open), *b = a ? strstr(a, close) : NULL;
    assert_non_null(b);
    a += strlen(open);
    return fv_memdup0(a, (size_t)(b - a));
}

static void test_fixture_instances(void **st)
{
    if (!*fixtures) skip();
    fv_odkcrypt_privkey *k = fixture_key();
    const char *files[] = {"instances/encrypted/one.xml", "instances/encrypted/two.xml"};
    for (size_t i = 0; i < 2; i++) {
        char *xml = slurp(files[i], NULL);
        assert_non_null(xml);
        char *wk = element(xml, "base64EncryptedKey"),
             *sg = element(xml, "base64EncryptedElementSignature");
        unsigned char key[64], md[64];
        assert_int_equal(fv_odkcrypt_unwrap(k, wk, strlen(wk), key, sizeof key), 32);
        assert_int_equal(fv_odkcrypt_unwrap(k, sg, strlen(sg), md, sizeof md), 16);
        /* a flipped base64 character of the wrapped key: OAEP refuses it */
        wk[10] = wk[10] == 'A' ? 'B' : 'A';
        assert_int_equal(fv_odkcrypt_unwrap(k, wk, strlen(wk), key, sizeof key), -1);
        free(wk), free(sg), free(xml);
    }
    fv_odkcrypt_privkey_free(k);
}

/* ---- an envelope made here (what the Python test client does in the integration test) ---- */

static EVP_PKEY *pubkey_of(EVP_PKEY *priv)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, priv);
    EVP_PKEY *p = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    return p;
}

static char *wrap_b64(EVP_PKEY *pub, const unsigned char *d, size_t n)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pub, NULL);
    unsigned char out[1024];
    size_t ol = sizeof out;
    assert_int_equal(EVP_PKEY_encrypt_init(c), 1);
    EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING);
    EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256());
    EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256());
    assert_int_equal(EVP_PKEY_encrypt(c, out, &ol, d, n), 1);
    EVP_PKEY_CTX_free(c);
    char *b = malloc(4 * ((ol + 2) / 3) + 1);
    fv_b64_encode(out, ol, b);
    return b;
}

static char *encrypt_b64(const unsigned char key[32], const char *iid, unsigned n, const char *pt,
                         size_t len)
{
    unsigned char iv[16];
    fv_odkcrypt_iv(iid, key, n, iv);
    size_t pad = 16 - len % 16, cl = len + pad;
    unsigned char *buf = malloc(cl), *ct = malloc(cl);
    memcpy(buf, pt, len);
    memset(buf + len, (int)pad, pad);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int a = 0, b = 0;
    EVP_EncryptInit_ex(c, EVP_aes_256_cfb128(), NULL, key, iv);
    EVP_EncryptUpdate(c, ct, &a, buf, (int)cl);
    EVP_EncryptFinal_ex(c, ct + a, &b);
    EVP_CIPHER_CTX_free(c);
    char *out = malloc(4 * ((cl + 2) / 3) + 1);
    fv_b64_encode(ct, cl, out);
    free(buf), free(ct);
    return out;
}

static const char XML[] = "<data id=\"f1\" version=\"v2\"><name>Ada</name></data>";
static const char PHOTO[] = "\x89PNG not really a png, but bytes \x00\x01\x02";

/* An envelope of form f1 version v2 for pub, as JSON text (caller frees). */
static char *make_envelope(EVP_PKEY *pub)
{
    unsigned char key[32];
    for (int i = 0; i < 32; i++) key[i] = (unsigned char)(i * 7 + 3);
    const char *iid = "uuid:6f0a3f44-5d2e-4c38-9d36-0a8f5d7b1e21";
    char *wk = wrap_b64(pub, key, 32);
    char *m0 = encrypt_b64(key, iid, 0, PHOTO, sizeof PHOTO - 1);
    char *x = encrypt_b64(key, iid, 1, XML, strlen(XML));
    fv_odkcrypt_file media = {"photo.png", (unsigned char *)PHOTO, sizeof PHOTO - 1};
    fv_odkcrypt_file xml = {"submission.xml", (unsigned char *)XML, strlen(XML)};
    unsigned char md[16];
    fv_odkcrypt_signature_digest("f1", "v2", wk, iid, &media, 1, &xml, md);
    char *sg = wrap_b64(pub, md, 16);
    size_t n = strlen(wk) + strlen(m0) + strlen(x) + strlen(sg) + 512;
    char *out = malloc(n);
    snprintf(out, n,
             "{\"instanceID\":\"%s\",\"version\":\"v2\",\"base64EncryptedKey\":\"%s\","
             "\"encryptedXmlFile\":\"%s\",\"media\":[{\"name\":\"photo.png.enc\",\"content\":\"%s\"}],"
             "\"base64EncryptedElementSignature\":\"%s\"}",
             iid, wk, x, m0, sg);
    free(wk), free(m0), free(x), free(sg);
    return out;
}

static yajl_val parse(const char *t)
{
    char err[128];
    yajl_val v = fv_json_parse(t, err, sizeof err);
    assert_non_null(v);
    return v;
}

static EVP_PKEY *new_rsa(int bits)
{
    EVP_PKEY *k = EVP_RSA_gen((unsigned)bits);
    assert_non_null(k);
    return k;
}

static void test_round_trip_and_tampering(void **st)
{
    EVP_PKEY *priv = new_rsa(2048), *pub = pubkey_of(priv), *other = new_rsa(2048);
    char *text = make_envelope(pub);
    const char *field;
    assert_null(fv_odkcrypt_envelope_check_text(text, strlen(text), 256, &field));
    /* the key length must match the survey's modulus */
    assert_non_null(fv_odkcrypt_envelope_check_text(text, strlen(text), 512, &field));
    assert_string_equal(field, "encrypted.base64EncryptedKey");
    yajl_val env = parse(text);
    fv_odkcrypt_opened o;
    char why[512];
    assert_true(fv_odkcrypt_open(priv, env, "f1", &o, why, sizeof why));
    assert_int_equal(o.xml.len, strlen(XML));
    assert_memory_equal(o.xml.data, XML, o.xml.len);
    assert_int_equal(o.nmedia, 1);
    assert_string_equal(o.media[0].name, "photo.png");
    assert_int_equal(o.media[0].len, sizeof PHOTO - 1);
    assert_memory_equal(o.media[0].data, PHOTO, sizeof PHOTO - 1);
    fv_odkcrypt_opened_free(&o);
    /* another form id or version: the signature does not match */
    assert_false(fv_odkcrypt_open(priv, env, "f2", &o, why, sizeof why));
    assert_non_null(strstr(why, "signature"));
    assert_null(o.media);
    /* another private key */
    assert_false(fv_odkcrypt_open(other, env, "f1", &o, why, sizeof why));
    assert_non_null(strstr(why, "base64EncryptedKey"));
    yajl_tree_free(env);

    /* a flipped byte in each file's ciphertext (a base64 character changed): refused */
    const char *parts[] = {"\"encryptedXmlFile\":\"", "\"content\":\""};
    for (size_t p = 0; p < 2; p++) {
        char *t2 = strdup(text);
        char *c = strstr(t2, parts[p]) + strlen(parts[p]) + 5;
        *c = *c == 'A' ? 'B' : 'A';
        env = parse(t2);
        assert_false(fv_odkcrypt_open(priv, env, "f1", &o, why, sizeof why));
        yajl_tree_free(env);
        free(t2);
    }
    /* another submission's signature (made for other content) */
    {
        char *t2 = strdup(text);
        char *s = strstr(t2, "\"base64EncryptedElementSignature\":\"") + 35;
        unsigned char md[16] = {1, 2, 3};
        char *fake = wrap_b64(pub, md, 16);
        memcpy(s, fake, strlen(fake));
        free(fake);
        env = parse(t2);
        assert_false(fv_odkcrypt_open(priv, env, "f1", &o, why, sizeof why));
        assert_non_null(strstr(why, "signature does not match"));
        yajl_tree_free(env);
        free(t2);
    }
    /* the same envelope from its parts (the OpenRosa path): opens the same */
    env = parse(text);
    const char *xb = fv_json_get_str(env, "encryptedXmlFile");
    yajl_val m0 = fv_json_get(env, "media")->u.array.values[0];
    const char *mb = fv_json_get_str(m0, "content");
    unsigned char *xe = malloc(strlen(xb)), *me = malloc(strlen(mb));
    long xl = fv_b64_decode(xb, strlen(xb), xe), ml = fv_b64_decode(mb, strlen(mb), me);
    fv_odkcrypt_part part = {"photo.png.enc", me, (size_t)ml};
    char *built = fv_odkcrypt_envelope_build(fv_json_get_str(env, "instanceID"), "v2",
                                             fv_json_get_str(env, "base64EncryptedKey"), xe, (size_t)xl,
                                             &part, 1,
                                             fv_json_get_str(env, "base64EncryptedElementSignature"));
    assert_string_equal(built, text);
    free(built), free(xe), free(me);
    yajl_tree_free(env);
    free(text);
    EVP_PKEY_free(priv), EVP_PKEY_free(pub), EVP_PKEY_free(other);
}

static char *pem_of(EVP_PKEY *k, bool priv)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (priv) PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    else PEM_write_bio_PUBKEY(b, k);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *out = fv_memdup0(p, (size_t)n); /* a BIO's bytes are not a C string */
    BIO_free(b);
    return out;
}

static void test_public_keys(void **st)
{
    fv_odkcrypt_pubkey k;
    if (*fixtures) {
        size_t len;
        char *pem = slurp("keys/pub.pem", &len);
        assert_non_null(pem);
        assert_null(fv_odkcrypt_pubkey_from_pem(pem, len, &k));
        assert_int_equal(k.bits, 2048);
        assert_int_equal(k.bytes, 256);
        char *form = slurp("forms/encrypted.xml", NULL);
        const char *a = strstr(form, "base64RsaPublicKey=\"") + 20;
        assert_int_equal(strncmp(a, k.der_b64, strlen(k.der_b64)), 0);
        assert_int_equal(a[strlen(k.der_b64)], '"');
        fv_odkcrypt_pubkey k2;
        assert_null(fv_odkcrypt_pubkey_from_b64(k.der_b64, strlen(k.der_b64), &k2));
        assert_string_equal(k2.pem, k.pem);
        fv_odkcrypt_pubkey_free(&k2);
        fv_odkcrypt_pubkey_free(&k);
        free(pem), free(form);
    }
    EVP_PKEY *small = new_rsa(1024), *big = new_rsa(3072);
    char *sp = pem_of(small, false), *bp = pem_of(big, false), *pp = pem_of(big, true);
    const char *why = fv_odkcrypt_pubkey_from_pem(sp, strlen(sp), &k);
    assert_non_null(why);
    assert_non_null(strstr(why, "2048"));
    assert_null(fv_odkcrypt_pubkey_from_pem(bp, strlen(bp), &k));
    assert_int_equal(k.bytes, 384);
    /* the same key as PKCS#1 "RSA PUBLIC KEY": accepted, normalised to SubjectPublicKeyInfo */
    OSSL_ENCODER_CTX *ec = OSSL_ENCODER_CTX_new_for_pkey(big, EVP_PKEY_PUBLIC_KEY, "PEM",
                                                         "type-specific", NULL);
    unsigned char *p1 = NULL;
    size_t p1len = 0;
    assert_int_equal(OSSL_ENCODER_to_data(ec, &p1, &p1len), 1);
    OSSL_ENCODER_CTX_free(ec);
    assert_non_null(memmem(p1, p1len, "BEGIN RSA PUBLIC KEY", 20));
    fv_odkcrypt_pubkey k1;
    assert_null(fv_odkcrypt_pubkey_from_pem((const char *)p1, p1len, &k1));
    assert_string_equal(k1.pem, k.pem);
    fv_odkcrypt_pubkey_free(&k1);
    OPENSSL_free(p1);
    fv_odkcrypt_pubkey_free(&k);
    why = fv_odkcrypt_pubkey_from_pem(pp, strlen(pp), &k);
    assert_non_null(why);
    assert_non_null(strstr(why, "private"));
    /* garbage, empty, two keys, trailing text, a NUL, a broken body */
    const char *bad[] = {"", "hello", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                         "-----BEGIN PUBLIC KEY-----\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_non_null(fv_odkcrypt_pubkey_from_pem(bad[i], strlen(bad[i]), &k));
    size_t bl = strlen(bp);
    char *two = malloc(2 * bl + 1);
    memcpy(two, bp, bl), memcpy(two + bl, bp, bl + 1);
    assert_non_null(fv_odkcrypt_pubkey_from_pem(two, strlen(two), &k));
    memcpy(two, bp, bl), strcpy(two + bl, "x");
    assert_non_null(fv_odkcrypt_pubkey_from_pem(two, strlen(two), &k));
    assert_non_null(fv_odkcrypt_pubkey_from_pem(bp, bl + 1, &k)); /* the NUL counted */
    strcpy(two, bp);
    two[40] = two[40] == 'A' ? 'B' : 'A';
    two[41] = '*';
    assert_non_null(fv_odkcrypt_pubkey_from_pem(two, strlen(two), &k));
    assert_non_null(fv_odkcrypt_pubkey_from_b64("AAAA", 4, &k));
    free(two), free(sp), free(bp), free(pp);
    EVP_PKEY_free(small), EVP_PKEY_free(big);
}

static void test_envelope_shapes(void **st)
{
    EVP_PKEY *priv = new_rsa(2048), *pub = pubkey_of(priv);
    char *good = make_envelope(pub);
    const char *field;
    struct {
        const char *from, *to, *field;
    } cases[] = {
        {"\"instanceID\":\"", "\"instanceID\":\"\\n", "encrypted.instanceID"},
        {"\"version\":\"v2\"", "\"version\":3", "encrypted.version"},
        {"\"base64EncryptedKey\":\"", "\"base64EncryptedKey\":\"*", "encrypted.base64EncryptedKey"},
        {"\"encryptedXmlFile\":\"", "\"encryptedXmlFile\":\"AAAA", "encrypted.encryptedXmlFile"},
        {"\"name\":\"photo.png.enc\"", "\"name\":\"../x.enc\"", "encrypted.media"},
        {"\"name\":\"photo.png.enc\"", "\"name\":\"photo.png\"", "encrypted.media"},
        {"\"name\":\"photo.png.enc\"", "\"name\":\"submission.xml.enc\"", "encrypted.media"},
        {"\"media\":[", "\"media\":[1,", "encrypted.media"},
        {"\"version\":\"v2\"", "\"version\":\"v2\",\"extra\":1", "encrypted"},
        {"\"base64EncryptedElementSignature\":\"", "\"base64EncryptedElementSignature\":\"AAAA",
         "encrypted.base64EncryptedElementSignature"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *at = strstr(good, cases[i].from);
        assert_non_null(at);
        size_t n = strlen(good) + strlen(cases[i].to) + 1;
        char *t = malloc(n);
        snprintf(t, n, "%.*s%s%s", (int)(at - good), good, cases[i].to, at + strlen(cases[i].from));
        const char *why = fv_odkcrypt_envelope_check_text(t, strlen(t), 256, &field);
        if (!why) fail_msg("case %zu accepted: %s", i, t);
        assert_string_equal(field, cases[i].field);
        free(t);
    }
    assert_non_null(fv_odkcrypt_envelope_check_text("[]", 2, 256, &field));
    assert_non_null(fv_odkcrypt_envelope_check_text("{}", 2, 0, &field));
    /* without the modulus (unknown here), any key length of 2048 to 8192 bits */
    assert_null(fv_odkcrypt_envelope_check_text(good, strlen(good), 0, &field));
    /* 101 media files */
    size_t n = strlen(good) + 101 * 64 + 16;
    char *t = malloc(n), *o = t;
    const char *m = strstr(good, "\"media\":[") + 9;
    o += sprintf(o, "%.*s", (int)(m - good), good);
    for (int i = 0; i < 101; i++)
        o += sprintf(o, "{\"name\":\"f%d.enc\",\"content\":\"AAAAAAAAAAAAAAAAAAAAAA==\"},", i);
    strcpy(o, m);
    assert_non_null(fv_odkcrypt_envelope_check_text(t, strlen(t), 256, &field));
    assert_string_equal(field, "encrypted.media");
    free(t);
    free(good);
    EVP_PKEY_free(priv), EVP_PKEY_free(pub);
}

static void test_submission_xml(void **st)
{
    const char *xml =
        "<?xml version='1.0'?><data id=\"f1\" version=\"v2\" xmlns:orx=\"http://openrosa.org/xforms\">"
        "<orx:meta><orx:instanceID>uuid:1</orx:instanceID></orx:meta><name>A &amp; B</name>"
        "<kids><kid><n>x</n></kid><kid><n>y</n></kid></kids><empty/></data>";
    fv_odkxml x;
    char why[256];
    assert_true(fv_odkxml_parse(xml, strlen(xml), &x, why, sizeof why));
    assert_string_equal(x.form_id, "f1");
    assert_string_equal(x.version, "v2");
    assert_string_equal(x.instance_id, "uuid:1");
    assert_int_equal(x.n, 5);
    assert_string_equal(x.f[1].path, "name");
    assert_string_equal(x.f[1].value, "A & B");
    assert_string_equal(x.f[2].path, "kids/kid/n");
    assert_string_equal(x.f[3].value, "y");
    assert_string_equal(x.f[4].path, "empty");
    assert_string_equal(x.f[4].value, "");
    fv_odkxml_free(&x);
    const char *bad[] = {"<!DOCTYPE x [<!ENTITY e \"x\">]><x>&e;</x>", "<a><b></a>", "", "<a>&xxe;</a>"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        assert_false(fv_odkxml_parse(bad[i], strlen(bad[i]), &x, why, sizeof why));
        assert_true(why[0] != '\0');
    }
    char deep[2000] = "";
    for (int i = 0; i < 70; i++) strcat(deep, "<a>");
    for (int i = 0; i < 70; i++) strcat(deep, "</a>");
    assert_false(fv_odkxml_parse(deep, strlen(deep), &x, why, sizeof why));
}

static void test_xform_key(void **st)
{
    if (*fixtures) {
        size_t len;
        char *form = slurp("forms/encrypted.xml", &len);
        char why[256];
        fv_xform *x = fv_xform_parse(form, len, why, sizeof why);
        assert_non_null(x);
        fv_odkcrypt_pubkey k;
        assert_non_null(fv_xform_public_key(x));
        assert_null(
            fv_odkcrypt_pubkey_from_b64(fv_xform_public_key(x), strlen(fv_xform_public_key(x)), &k));
        assert_int_equal(k.bits, 2048);
        fv_odkcrypt_pubkey_free(&k);
        fv_xform_free(x);
        free(form);
    }
    yajl_val def = parse("{\"questions\":[{\"name\":\"q\",\"type\":\"text\",\"label\":\"Q\"}]}");
    char *gen = fv_xform_generate_keyed(def, "f", "1", "t", "QUJD");
    assert_non_null(strstr(gen, "<submission method=\"post\" base64RsaPublicKey=\"QUJD\"/>"));
    char why[256];
    fv_xform *x = fv_xform_parse(gen, strlen(gen), why, sizeof why);
    assert_non_null(x);
    assert_string_equal(fv_xform_public_key(x), "QUJD");
    fv_xform_free(x);
    free(gen);
    gen = fv_xform_generate(def, "f", "1", "t");
    assert_null(strstr(gen, "base64RsaPublicKey"));
    free(gen);
    yajl_tree_free(def);
}

int main(void)
{
    const char *env = getenv("FV_ODK_FIXTURES"), *src = getenv("FV_SOURCE_DIR");
    if (env) snprintf(fixtures, sizeof fixtures, "%s", env);
    else if (src) snprintf(fixtures, sizeof fixtures, "%s/../shared/fixtures/odk", src);
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/keys/priv.pem", fixtures);
    FILE *f = *fixtures ? fopen(probe, "r") : NULL;
    if (f) fclose(f);
    else fixtures[0] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_key_retrieval),
        cmocka_unit_test(test_vector_ivs),
        cmocka_unit_test(test_vector_end_to_end),
        cmocka_unit_test(test_fixture_instances),
        cmocka_unit_test(test_round_trip_and_tampering),
        cmocka_unit_test(test_public_keys),
        cmocka_unit_test(test_envelope_shapes),
        cmocka_unit_test(test_submission_xml),
        cmocka_unit_test(test_xform_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

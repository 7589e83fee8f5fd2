/* TLS for the front end: the server SSL_CTX. */
#include "fe_tls.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Mozilla "intermediate" TLS 1.2 suites: ECDHE with AEAD ciphers only. */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static void ssl_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s: %s", what, buf[0] ? buf : "unknown error");
    ERR_clear_error();
}

/* The stapled OCSP response of a context: owned by the context (ex data, freed with it). */
typedef struct staple {
    unsigned char *der; /* the response as read (malloc) */
    int len;
    time_t next_update; /* 0: none given; after it the response is stale and no longer sent */
} staple;

static int staple_index = -1;

static void staple_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    staple *s = ptr;
    if (!s) return;
    free(s->der);
    free(s);
}

/* Called by OpenSSL when a client asks for the certificate's status: hands it a copy of the
 * response (OpenSSL takes the copy), unless it has expired. */
static int staple_cb(SSL *ssl, void *arg)
{
    const staple *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), staple_index);
    if (!s || (s->next_update && time(NULL) > s->next_update)) return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = OPENSSL_malloc((size_t)s->len);
    if (!copy) return SSL_TLSEXT_ERR_NOACK;
    memcpy(copy, s->der, (size_t)s->len);
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, s->len) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* Reads a DER OCSP response for the context's certificate and staples it: it must be a
 * successful, signed answer saying "good" for this very certificate and not yet stale. */
static int load_staple(SSL_CTX *ctx, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot be read", file);
        return -1;
    }
    unsigned char *der = malloc(65536);
    size_t n = der ? fread(der, 1, 65536, f) : 0;
    bool too_big = der && n == 65536 && fgetc(f) != EOF;
    fclose(f);
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = (n && !too_big) ? d2i_OCSP_RESPONSE(NULL, &p, (long)n) : NULL;
    OCSP_BASICRESP *basic = resp ? OCSP_response_get1_basic(resp) : NULL;
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    X509 *issuer = NULL;
    for (int i = 0; chain && i < sk_X509_num(chain); i++)
        if (X509_check_issued(sk_X509_value(chain, i), cert) == X509_V_OK)
            issuer = sk_X509_value(chain, i);
    OCSP_CERTID *id = (cert && issuer) ? OCSP_cert_to_id(NULL, cert, issuer) : NULL;
    int status = -1, reason = 0;
    ASN1_GENERALIZEDTIME *this_upd = NULL, *next_upd = NULL;
    const char *why = NULL;
    if (!resp) why = too_big ? "larger than 64 KiB" : "not a DER OCSP response";
    else if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL)
        why = "not a successful OCSP answer";
    else if (!basic) why = "no basic OCSP response in it";
    else if (!id) why = "tls_cert has no issuer certificate in its chain file";
    else if (!OCSP_resp_find_status(basic, id, &status, &reason, NULL, &this_upd, &next_upd))
        why = "it is not about tls_cert";
    else if (status != V_OCSP_CERTSTATUS_GOOD) why = "it does not say the certificate is good";
    else if (!OCSP_check_validity(this_upd, next_upd, 300, -1)) why = "it is stale or not yet valid";
    else if (OCSP_basic_verify(basic, chain, NULL, OCSP_TRUSTOTHER) <= 0)
        why = "its signature does not verify";
    staple *s = NULL;
    if (!why) {
        s = calloc(1, sizeof *s);
        if (!s) why = "out of memory";
    }
    if (s) {
        s->der = der;
        s->len = (int)n;
        der = NULL;
        struct tm tm;
        if (next_upd && ASN1_TIME_to_tm(next_upd, &tm)) s->next_update = timegm(&tm);
    }
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    free(der);
    ERR_clear_error();
    if (why) {
        snprintf(err, errlen, "tls_ocsp_response %s: %s", file, why);
        return -1;
    }
    if (staple_index < 0) staple_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, staple_free);
    if (staple_index < 0 || !SSL_CTX_set_ex_data(ctx, staple_index, s)) {
        staple_free(NULL, s, NULL, 0, 0, NULL);
        snprintf(err, errlen, "tls_ocsp_response: cannot attach it");
        return -1;
    }
    SSL_CTX_set_tlsext_status_cb(ctx, staple_cb);
    return 0;
}

SSL_CTX *fe_tls_server_ctx(const char *cert_file, const char *key_file, const char *ocsp_file, char *err,
                           size_t errlen)
{
    const char *errpos = "SSL_CTX_new";
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) goto failed;
    errpos = "SSL_CTX_set_min_proto_version";
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) goto failed;
    errpos = "SSL_CTX_set_cipher_list";
    if (!SSL_CTX_set_cipher_list(ctx, tls12_ciphers)) goto failed;
    errpos = "SSL_CTX_set1_groups_list";
    if (!SSL_CTX_set1_groups_list(ctx, "X25519:prime256v1:secp384r1")) goto failed;
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    errpos = cert_file;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) goto failed;
    errpos = key_file;
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) goto failed;
    errpos = "certificate and key do not match";
    if (SSL_CTX_check_private_key(ctx) != 1) goto failed;
    if (ocsp_file && ocsp_file[0] && load_staple(ctx, ocsp_file, err, errlen) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
failed:
    ssl_err(err, errlen, errpos);
    SSL_CTX_free(ctx);
    return NULL;
}

/* TLS for the front end: the server SSL_CTX. */
#include "fe_tls.h"

#include <openssl/err.h>
#include <stdio.h>

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

SSL_CTX *fe_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen)
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
    return ctx;
failed:
    ssl_err(err, errlen, errpos);
    SSL_CTX_free(ctx);
    return NULL;
}

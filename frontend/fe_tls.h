/* TLS for the front end: the server SSL_CTX (TLS 1.2 and 1.3 only, Mozilla intermediate). */
#ifndef FE_TLS_H
#define FE_TLS_H

#include <openssl/ssl.h>

/* Builds a server context from PEM files; with ocsp_file (a DER OCSP response, NULL or "" for
 * none) it staples that response to handshakes that ask for it, until its nextUpdate passes. The
 * response must be a good, verified, current answer about cert_file, whose chain file must hold
 * the issuer. Returns a context the caller frees with SSL_CTX_free, or NULL with the reason
 * (OpenSSL's error queue included) in err. */
SSL_CTX *fe_tls_server_ctx(const char *cert_file, const char *key_file, const char *ocsp_file, char *err,
                           size_t errlen);

#endif

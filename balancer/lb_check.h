/* Health checks: GET /readyz over HTTPS to each backend, on an interval with jitter. */
#ifndef LB_CHECK_H
#define LB_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

#include "lb_server.h"

/* The checks' TLS client context: TLS 1.2+; when verify, the certificate is verified against
 * ca_file (the system's trusted CAs when ca_file is empty), each check then expecting
 * check_server_name or else the backend's IP as the name; not verified at all when !verify.
 * Caller frees with SSL_CTX_free. NULL with the reason in err. */
SSL_CTX *lb_check_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen);
/* Schedules b's checks, the first one first_delay_ms from now. Allocates b->check. */
bool lb_check_start(lb_server *s, lb_backend *b, int first_delay_ms) __attribute__((warn_unused_result));
/* Cancels b's checks (an in-flight one included) and frees b->check. */
void lb_check_stop(lb_backend *b);

/* What an answer to GET /readyz says: the verdict, the HTTP status (0 when there was none) and,
 * for LB_RES_FAILED, why. */
typedef struct lb_check_answer {
    lb_result result;
    int http_status;
    char error[64];
} lb_check_answer;
/* Parses the answer received so far (data, len bytes; eof: the backend closed the connection).
 * Returns false while more is needed, true once decided (*out filled). No socket: the checker
 * calls it on what it has read; tests/fuzz/fuzz_lbcheck.c calls it directly. */
bool lb_check_parse(const char *data, size_t len, bool eof, lb_check_answer *out);

#endif

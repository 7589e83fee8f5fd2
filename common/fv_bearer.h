/* Bearer tokens kept in a file (the balancer's admin API, the front end's /metrics): loading,
 * and checking an Authorization header against one in constant time. fv_bearer.c. */
#ifndef FV_BEARER_H
#define FV_BEARER_H

#include <stdbool.h>
#include <stddef.h>

#define FV_BEARER_MIN_LEN 16  /* characters */
#define FV_BEARER_MAX_LEN 512 /* characters */

/* What is kept of a token: its SHA-256, never the token itself. */
typedef struct fv_bearer {
    bool set;
    unsigned char digest[32];
} fv_bearer;

/* Reads the token from path: the file's first line, without surrounding white space, of
 * FV_BEARER_MIN_LEN..FV_BEARER_MAX_LEN visible ASCII characters; the file must not be readable
 * by group or others. Fills *out (set = true); false with the reason in err (which never holds
 * the token). */
bool fv_bearer_load(const char *path, fv_bearer *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* True when header (an Authorization header value, NULL when absent) is "Bearer <token>" with
 * the token of b; compares digests with CRYPTO_memcmp, so the time taken tells nothing about
 * how much of a guess was right. Always false when b is not set. */
bool fv_bearer_matches(const fv_bearer *b, const char *header);

#endif

/* Values that Fieldvault's programs share through Redis and must trust (cached authentication and
 * permission answers): MACed with HMAC-SHA256 under a subkey of the master key file, so that
 * write access to Redis is not the power to impersonate a user or to forge a permission.
 *
 *     m1.<key id>.<version>.<expires at>.<base64url(mac)>.<payload>
 *
 * The MAC covers the Redis key name, the hash field ("" for a plain key), the version (an
 * fe_revoke version: a reader refuses an answer older than the newest revocation it knows of its
 * subject), the expiry (Unix seconds: a reader refuses an entry past it, whatever Redis' TTL of
 * the key says, so re-EXPIREing a hash does not prolong an old field) and the payload. The subkey
 * is fv_keys_derive(key, "fv-shared-cache") of the key named by <key id>: every key of the file
 * verifies, the first one MACs. */
#ifndef FV_SHARED_H
#define FV_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "fv_keys.h"

#define FV_SHARED_LABEL "fv-shared-cache"

/* The derived subkeys of a key set; owned by the caller, wiped by fv_shared_keys_clear. */
typedef struct fv_shared_keys {
    unsigned char sub[FV_KEYS_MAX][32];
    char id[FV_KEYS_MAX][FV_KEY_IDLEN + 1];
    int n;
} fv_shared_keys;

typedef enum {
    FV_SHARED_OK,
    FV_SHARED_MALFORMED,   /* not of this shape (e.g. written by an older version, or forged) */
    FV_SHARED_UNKNOWN_KEY, /* MACed under a key this key file does not hold */
    FV_SHARED_BAD_MAC,     /* the MAC does not verify: forged or altered */
    FV_SHARED_EXPIRED,     /* past its own expiry */
} fv_shared_result;

/* Derives the subkeys of every key of ks. Returns 0 or -1. */
int fv_shared_keys_init(fv_shared_keys *sk, const fv_keyset *ks);
void fv_shared_keys_clear(fv_shared_keys *sk);

/* The shared text of payload[len] for Redis key name and field (field "" for none), MACed with
 * the first key. Returns a string the caller frees, or NULL (no key, out of memory). */
char *fv_shared_wrap(const fv_shared_keys *sk, const char *name, const char *field, long long version,
                     int64_t expires_at, const char *payload, size_t len);
/* Checks text[len] (as read from name/field) at time now (Unix seconds). On FV_SHARED_OK sets
 * *version, and *payload / *plen to the payload inside text (borrowed from text). The MAC is
 * compared in constant time before anything in the text is trusted. */
fv_shared_result fv_shared_open(const fv_shared_keys *sk, const char *name, const char *field,
                                const char *text, size_t len, int64_t now, long long *version,
                                const char **payload, size_t *plen);

#endif

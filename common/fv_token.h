/* Session tokens: stateless, signed, verified without PostgreSQL (DESIGN section 2).
 *
 *     fvs_<base64url(payload)>.<base64url(HMAC-SHA256(subkey, "fvs_" + base64url(payload)))>
 *
 * payload (text, fields separated by '|'):
 *     v1|<key id>|<session id>|<user id>|<issued at>|<expires at>|<mfa 0/1>
 * times are Unix seconds. The subkey is fv_keys_derive(key, "fv-session-token") of the key named
 * by <key id>, so a token signed by a previous key (key file rotation) keeps verifying until the
 * key is dropped from the file. Revocation is not decided here: see frontend/fe_revoke.h. */
#ifndef FV_TOKEN_H
#define FV_TOKEN_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "fv_id.h"
#include "fv_keys.h"

#define FV_TOKEN_PREFIX "fvs_"
#define FV_TOKEN_MAX 400 /* longest token text, NUL excluded */

typedef struct fv_token {
    char session_id[FV_UUID_STRLEN + 1];
    char user_id[FV_UUID_STRLEN + 1];
    int64_t issued_at;
    int64_t expires_at;
    bool mfa;
} fv_token;

typedef enum {
    FV_TOKEN_OK,
    FV_TOKEN_MALFORMED, /* not a token of ours, or a field out of shape */
    FV_TOKEN_BAD_SIG,   /* the signature does not verify */
    FV_TOKEN_UNKNOWN_KEY,
    FV_TOKEN_EXPIRED, /* signature good, but now >= expires_at */
} fv_token_result;

/* Signs t with the current key of ks into out. Returns 0 or -1 (no key, bad ids). */
int fv_token_sign(const fv_keyset *ks, const fv_token *t, char out[FV_TOKEN_MAX + 1]);
/* Verifies text at time now; on FV_TOKEN_OK (and FV_TOKEN_EXPIRED) fills *t. The signature is
 * checked in constant time before any field of the payload is trusted. */
fv_token_result fv_token_verify(const fv_keyset *ks, const char *text, time_t now, fv_token *t);

#endif

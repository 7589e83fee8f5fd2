/* Fuzz target: session-token parsing (common/fv_token.c fv_token_verify). A random text never
 * carries a valid HMAC, so the payload's fields would stay out of reach: in the second mode the
 * harness signs the fuzzed payload itself with the test key, as fv_token_sign would, and the
 * verifier's payload parser gets it.
 *
 * Input: one mode byte, then the text. Mode even: the text is a token as a client sends it.
 * Mode odd: the text is a payload ("v1|<key id>|<session>|<user>|<iat>|<exp>|<mfa>"; the
 * literal KEYID is replaced by the test key's id), signed by the harness. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz_util.h"
#include "fv_crypto.h"
#include "fv_token.h"

static fv_keyset ks;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    memset(&ks, 0, sizeof ks);
    for (int k = 0; k < 2; k++) {
        memset(ks.keys[k].key, 0x41 + k, FV_KEY_BYTES);
        char hex[FV_SHA256_HEXLEN + 1];
        fv_sha256_hex(ks.keys[k].key, FV_KEY_BYTES, hex);
        memcpy(ks.keys[k].id, hex, FV_KEY_IDLEN);
        ks.keys[k].id[FV_KEY_IDLEN] = '\0';
    }
    ks.n = 2;
    return 0;
}

/* "fvs_" + b64url(payload) + "." + b64url(HMAC(subkey, "fvs_" + b64url(payload))), as
 * fv_token.c signs. Returns the token's length, 0 when it does not fit. */
static size_t sign_payload(const char *payload, size_t plen, char *out, size_t outlen)
{
    if (4 + fv_b64url_len(plen) + 1 + fv_b64url_len(32) + 1 > outlen) return 0;
    size_t pos = 0;
    memcpy(out, FV_TOKEN_PREFIX, 4);
    pos = 4 + fv_b64url_encode(payload, plen, out + 4);
    unsigned char sub[32], m[32];
    unsigned int mlen = 0;
    if (fv_keys_derive(&ks.keys[0], "fv-session-token", sub, sizeof sub) != 0) abort();
    if (!HMAC(EVP_sha256(), sub, sizeof sub, (const unsigned char *)out, pos, m, &mlen)) abort();
    out[pos++] = '.';
    pos += fv_b64url_encode(m, sizeof m, out + pos);
    out[pos] = '\0';
    return pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096) return -1;
    char *text = fuzz_cstr(data + 1, size - 1, true);
    char token[8192];
    const char *t = text;
    if (data[0] & 1) {
        /* Put the key id where the payload says KEYID (a fuzzer cannot guess it). */
        char payload[4096];
        size_t n = 0;
        for (const char *p = text; *p && n + FV_KEY_IDLEN < sizeof payload;) {
            if (strncmp(p, "KEYID", 5) == 0) {
                memcpy(payload + n, ks.keys[0].id, FV_KEY_IDLEN);
                n += FV_KEY_IDLEN;
                p += 5;
            } else {
                payload[n++] = *p++;
            }
        }
        if (!sign_payload(payload, n, token, sizeof token)) {
            free(text);
            return -1;
        }
        t = token;
    }
    fv_token tok;
    fv_token_result r = fv_token_verify(&ks, t, (time_t)1700000000, &tok);
    if (r == FV_TOKEN_OK || r == FV_TOKEN_EXPIRED) {
        /* A token that verifies signs again (with the current key) and verifies the same. */
        if (strlen(tok.session_id) != FV_UUID_STRLEN || strlen(tok.user_id) != FV_UUID_STRLEN) abort();
        char again[FV_TOKEN_MAX + 1];
        if (fv_token_sign(&ks, &tok, again) == 0) {
            fv_token tok2;
            fv_token_result r2 = fv_token_verify(&ks, again, (time_t)1700000000, &tok2);
            if (r2 != r || strcmp(tok.session_id, tok2.session_id) != 0 ||
                strcmp(tok.user_id, tok2.user_id) != 0 || tok.issued_at != tok2.issued_at ||
                tok.expires_at != tok2.expires_at || tok.mfa != tok2.mfa)
                abort();
        }
    }
    free(text);
    return 0;
}

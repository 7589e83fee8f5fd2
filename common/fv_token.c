/* Signed session tokens (see fv_token.h). */
#include "fv_token.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_crypto.h"

#define LABEL "fv-session-token"
#define MAC_BYTES 32
#define PAYLOAD_MAX 200

static int mac(const fv_key *k, const char *data, size_t len, unsigned char out[MAC_BYTES])
{
    unsigned char sub[32];
    if (fv_keys_derive(k, LABEL, sub, sizeof sub) != 0) return -1;
    unsigned int outlen = 0;
    unsigned char *r = HMAC(EVP_sha256(), sub, sizeof sub, (const unsigned char *)data, len, out,
                            &outlen);
    OPENSSL_cleanse(sub, sizeof sub);
    return r && outlen == MAC_BYTES ? 0 : -1;
}

int fv_token_sign(const fv_keyset *ks, const fv_token *t, char out[FV_TOKEN_MAX + 1])
{
    if (!ks || ks->n < 1 || !fv_id_valid(t->session_id) || !fv_id_valid(t->user_id)) return -1;
    const fv_key *k = &ks->keys[0];
    char payload[PAYLOAD_MAX];
    int n = snprintf(payload, sizeof payload, "v1|%s|%s|%s|%" PRId64 "|%" PRId64 "|%d", k->id,
                     t->session_id, t->user_id, t->issued_at, t->expires_at, t->mfa ? 1 : 0);
    if (n <= 0 || (size_t)n >= sizeof payload) return -1;
    /* out = prefix + b64(payload) + '.' + b64(mac) */
    size_t need = strlen(FV_TOKEN_PREFIX) + fv_b64url_len((size_t)n) + 1 + fv_b64url_len(MAC_BYTES);
    if (need > FV_TOKEN_MAX) return -1;
    size_t pos = strlen(FV_TOKEN_PREFIX);
    memcpy(out, FV_TOKEN_PREFIX, pos);
    pos += fv_b64url_encode(payload, (size_t)n, out + pos);
    unsigned char m[MAC_BYTES];
    if (mac(k, out, pos, m) != 0) return -1;
    out[pos++] = '.';
    pos += fv_b64url_encode(m, MAC_BYTES, out + pos);
    out[pos] = '\0';
    return 0;
}

/* Parses a decimal int64 field [s, e). */
static bool parse_i64(const char *s, const char *e, int64_t *v)
{
    if (e - s < 1 || e - s > 18) return false;
    int64_t x = 0;
    for (const char *p = s; p < e; p++) {
        if (*p < '0' || *p > '9') return false;
        x = x * 10 + (*p - '0');
    }
    *v = x;
    return true;
}

fv_token_result fv_token_verify(const fv_keyset *ks, const char *text, time_t now, fv_token *t)
{
    size_t plen = strlen(FV_TOKEN_PREFIX);
    if (!text || strncmp(text, FV_TOKEN_PREFIX, plen) != 0) return FV_TOKEN_MALFORMED;
    size_t len = strnlen(text, FV_TOKEN_MAX + 1);
    if (len > FV_TOKEN_MAX) return FV_TOKEN_MALFORMED;
    const char *dot = strchr(text + plen, '.');
    if (!dot || strchr(dot + 1, '.')) return FV_TOKEN_MALFORMED;
    size_t b64len = (size_t)(dot - (text + plen)), siglen = len - (size_t)(dot + 1 - text);
    if (b64len == 0 || b64len > fv_b64url_len(PAYLOAD_MAX) || siglen != fv_b64url_len(MAC_BYTES))
        return FV_TOKEN_MALFORMED;
    char payload[PAYLOAD_MAX + 4];
    long n = fv_b64url_decode(text + plen, b64len, (unsigned char *)payload);
    if (n <= 0 || n >= PAYLOAD_MAX) return FV_TOKEN_MALFORMED;
    payload[n] = '\0';
    if (strlen(payload) != (size_t)n) return FV_TOKEN_MALFORMED; /* embedded NUL */
    unsigned char sig[MAC_BYTES + 4];
    if (fv_b64url_decode(dot + 1, siglen, sig) != MAC_BYTES) return FV_TOKEN_MALFORMED;

    /* Fields: v1|kid|sid|uid|iat|exp|mfa */
    const char *f[7], *end[7];
    const char *p = payload;
    for (int i = 0; i < 7; i++) {
        f[i] = p;
        const char *bar = strchr(p, '|');
        if (i < 6) {
            if (!bar) return FV_TOKEN_MALFORMED;
            end[i] = bar;
            p = bar + 1;
        } else {
            if (bar) return FV_TOKEN_MALFORMED;
            end[i] = payload + n;
        }
    }
    if (end[0] - f[0] != 2 || memcmp(f[0], "v1", 2) != 0) return FV_TOKEN_MALFORMED;
    if (end[1] - f[1] != FV_KEY_IDLEN) return FV_TOKEN_MALFORMED;
    char kid[FV_KEY_IDLEN + 1];
    memcpy(kid, f[1], FV_KEY_IDLEN);
    kid[FV_KEY_IDLEN] = '\0';
    const fv_key *k = fv_keys_find(ks, kid);
    if (!k) return FV_TOKEN_UNKNOWN_KEY;
    unsigned char want[MAC_BYTES];
    if (mac(k, text, (size_t)(dot - text), want) != 0) return FV_TOKEN_MALFORMED;
    if (!fv_ct_equal(want, sig, MAC_BYTES)) return FV_TOKEN_BAD_SIG;

    /* Signed by us: the fields are ours, but still checked for shape. */
    fv_token tk;
    memset(&tk, 0, sizeof tk);
    if (end[2] - f[2] != FV_UUID_STRLEN || end[3] - f[3] != FV_UUID_STRLEN) return FV_TOKEN_MALFORMED;
    memcpy(tk.session_id, f[2], FV_UUID_STRLEN);
    memcpy(tk.user_id, f[3], FV_UUID_STRLEN);
    if (!fv_id_valid(tk.session_id) || !fv_id_valid(tk.user_id)) return FV_TOKEN_MALFORMED;
    if (!parse_i64(f[4], end[4], &tk.issued_at) || !parse_i64(f[5], end[5], &tk.expires_at))
        return FV_TOKEN_MALFORMED;
    if (end[6] - f[6] != 1 || (f[6][0] != '0' && f[6][0] != '1')) return FV_TOKEN_MALFORMED;
    tk.mfa = f[6][0] == '1';
    if (t) *t = tk;
    return (int64_t)now >= tk.expires_at ? FV_TOKEN_EXPIRED : FV_TOKEN_OK;
}

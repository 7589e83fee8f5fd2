/* Fuzz target: the stored-secret formats, read back from PostgreSQL or disk: password hashes in
 * Django's format (common/fv_password.c fv_password_iterations, fv_password_verify), sealed TOTP
 * secrets (common/fv_seal.c fv_unseal, and a seal/unseal round trip), the base64 decoders they
 * use (common/fv_crypto.c: each output must encode back to the input, the encoding being
 * canonical), API-key and UUID shapes, the master key file (common/fv_keys.c fv_keys_load), and
 * envelope encryption's stored forms (common/fv_datakey.c: a wrapped data key as data_keys holds
 * it, a value sealed under a data key as response_xml and attachment_blobs hold it, and a
 * seal/open round trip bound to its place).
 *
 * Input: one mode byte (mod 6: 0 password hash, 1 sealed text, 2 base64, 3 key file, 4 API key /
 * UUID, 5 data keys), then the text. */
#include <openssl/crypto.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "fv_crypto.h"
#include "fv_datakey.h"
#include "fv_id.h"
#include "fv_keys.h"
#include "fv_password.h"
#include "fv_seal.h"

static fv_keyset ks;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    memset(&ks, 0, sizeof ks);
    for (int k = 0; k < 2; k++) {
        memset(ks.keys[k].key, 0x61 + k, FV_KEY_BYTES);
        char hex[FV_SHA256_HEXLEN + 1];
        fv_sha256_hex(ks.keys[k].key, FV_KEY_BYTES, hex);
        memcpy(ks.keys[k].id, hex, FV_KEY_IDLEN);
        ks.keys[k].id[FV_KEY_IDLEN] = '\0';
    }
    ks.n = 2;
    return 0;
}

/* Decodes s[n] with dec into a buffer of exactly the documented room (n * 3 / 4 bytes); a
 * result must encode back to s. */
static void base64(const char *s, size_t n, long (*dec)(const char *, size_t, unsigned char *),
                   size_t (*enc)(const void *, size_t, char *))
{
    size_t room = n * 3 / 4;
    unsigned char *out = malloc(room ? room : 1);
    if (!out) abort();
    long got = dec(s, n, out);
    if (got > (long)room) abort();
    if (got >= 0) {
        char *again = malloc(4 * ((size_t)got + 2) / 3 + 4);
        if (!again) abort();
        size_t m = enc(out, (size_t)got, again);
        if (m != n || memcmp(again, s, n) != 0) abort(); /* not canonical */
        free(again);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] % 6;
    char *s = fuzz_cstr(data + 1, size - 1, true);
    size_t n = size - 1;
    switch (mode) {
    case 0: {
        int it = fv_password_iterations(s);
        if (it != -1 && (it < FV_PASSWORD_MIN_ITERATIONS || it > FV_PASSWORD_MAX_ITERATIONS)) abort();
        /* PBKDF2 costs what the hash says: only cheap ones are verified (speed, not a limit on
         * what is checked: the parser ran above and runs again here). */
        if (it >= 1 && it <= 64) (void)fv_password_verify("password", 8, s, it, NULL);
        else if (it == -1) (void)fv_password_verify("password", 8, s, 1, NULL);
        break;
    }
    case 1: {
        size_t len = 0;
        unsigned char *pt = fv_unseal(&ks, "fv-seal-totp", "totp:u", s, &len);
        if (pt) {
            OPENSSL_cleanse(pt, len);
            free(pt);
        }
        /* The input as a plaintext: sealed and opened, it comes back the same. */
        char *sealed = fv_seal(&ks, "fv-seal-totp", "totp:u", data + 1, n);
        if (!sealed) abort();
        pt = fv_unseal(&ks, "fv-seal-totp", "totp:u", sealed, &len);
        if (!pt || len != n || memcmp(pt, data + 1, n) != 0) abort();
        if (fv_unseal(&ks, "fv-seal-totp", "totp:v", sealed, &len)) abort(); /* other place */
        free(pt);
        free(sealed);
        break;
    }
    case 2:
        base64(s, n, fv_b64url_decode, fv_b64url_encode);
        base64(s, n, fv_b64_decode, fv_b64_encode);
        break;
    case 3: {
        const char *path = fuzz_file(data + 1, n);
        if (fchmod(fuzz_file_fd, 0600) != 0) abort(); /* the loader refuses group/other access */
        fv_keyset got;
        char err[256];
        if (fv_keys_load(&got, path, err, sizeof err) == 0) {
            if (got.n < 1 || got.n > FV_KEYS_MAX) abort();
            for (int k = 0; k < got.n; k++)
                if (fv_keys_find(&got, got.keys[k].id) == NULL) abort();
        }
        fv_keys_clear(&got);
        break;
    }
    case 4:
        (void)fv_api_key_well_formed(s);
        if (fv_id_valid(s) && strlen(s) != FV_UUID_STRLEN) abort();
        break;
    case 5: {
        unsigned char key[FV_DATAKEY_BYTES], got[FV_DATAKEY_BYTES];
        memset(key, 0x5a, sizeof key);
        char err[256];
        /* the input as wrapped text: opens only as what was wrapped (nothing the fuzzer makes) */
        if (fv_datakey_unwrap(&ks, "org:x", 1, s, got, err, sizeof err) == 0) abort();
        /* the input as a stored value: a version, and it never opens (no valid tag) */
        int v = fv_dk_version(data + 1, n);
        if (v == 0 || v < -1) abort();
        unsigned char *out = malloc(n + 1);
        if (!out) abort();
        if (v > 0 && fv_dk_open(key, "fv:a", data + 1, n, out) >= 0) abort();
        free(out);
        /* the input as a plaintext: sealed and opened, the same; at another place, nothing */
        unsigned char *sealed = malloc(n + FV_DK_OVERHEAD), *back = malloc(n + 1);
        if (!sealed || !back) abort();
        if (fv_dk_seal(key, 7, "fv:a", data + 1, n, sealed) != 0) abort();
        if (fv_dk_version(sealed, n + FV_DK_OVERHEAD) != 7) abort();
        if (fv_dk_open(key, "fv:a", sealed, n + FV_DK_OVERHEAD, back) != (long)n ||
            memcmp(back, data + 1, n) != 0)
            abort();
        if (fv_dk_open(key, "fv:b", sealed, n + FV_DK_OVERHEAD, back) != -1) abort();
        free(sealed);
        free(back);
        /* wrap and unwrap the first 32 bytes (or fewer, padded) */
        memset(key, 0, sizeof key);
        memcpy(key, data + 1, n < sizeof key ? n : sizeof key);
        char *w = fv_datakey_wrap(&ks, "org:x", 3, key);
        if (!w || fv_datakey_unwrap(&ks, "org:x", 3, w, got, err, sizeof err) != 0 ||
            memcmp(got, key, sizeof key) != 0 ||
            fv_datakey_unwrap(&ks, "org:y", 3, w, got, err, sizeof err) == 0)
            abort();
        free(w);
        break;
    }
    }
    free(s);
    return 0;
}

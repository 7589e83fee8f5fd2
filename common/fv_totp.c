/* TOTP through liboath (see fv_totp.h). */
#include "fv_totp.h"

#include <ctype.h>
#include <liboath/oath.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

int fv_totp_init(void)
{
    return oath_init() == OATH_OK ? 0 : -1;
}

int fv_totp_new_secret(unsigned char out[FV_TOTP_SECRET_BYTES])
{
    return RAND_bytes(out, FV_TOTP_SECRET_BYTES) == 1 ? 0 : -1;
}

int fv_totp_base32(const unsigned char *secret, size_t len, char out[FV_TOTP_B32_MAX + 1])
{
    char *b32 = NULL;
    size_t n = 0;
    if (oath_base32_encode((const char *)secret, len, &b32, &n) != OATH_OK) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n && b32[i] != '=' && o < FV_TOTP_B32_MAX; i++) out[o++] = b32[i];
    out[o] = '\0';
    free(b32);
    return 0;
}

int fv_totp_code(const unsigned char *secret, size_t len, time_t t, char out[FV_TOTP_DIGITS + 1])
{
    return oath_totp_generate((const char *)secret, len, t, FV_TOTP_STEP, 0, FV_TOTP_DIGITS, out) ==
                   OATH_OK
               ? 0
               : -1;
}

/* liboath's comparison callback: 0 when equal, as strcmp; constant time over the 6 digits. */
static int ct_cmp(void *handle, const char *test_otp)
{
    const char *code = handle;
    return CRYPTO_memcmp(code, test_otp, FV_TOTP_DIGITS) == 0 ? 0 : 1;
}

fv_totp_result fv_totp_check(const unsigned char *secret, size_t len, const char *code, time_t now,
                             int64_t last_step, int64_t *step)
{
    if (!code || strlen(code) != FV_TOTP_DIGITS) return FV_TOTP_WRONG;
    for (int i = 0; i < FV_TOTP_DIGITS; i++)
        if (!isdigit((unsigned char)code[i])) return FV_TOTP_WRONG;
    int pos = 0;
    uint64_t counter = 0;
    int rc = oath_totp_validate3_callback((const char *)secret, len, now, FV_TOTP_STEP, 0,
                                          FV_TOTP_DIGITS, 1, &pos, &counter, ct_cmp, (void *)code);
    if (rc < 0) return FV_TOTP_WRONG;
    if ((int64_t)counter <= last_step) return FV_TOTP_REPLAY;
    *step = (int64_t)counter;
    return FV_TOTP_OK;
}

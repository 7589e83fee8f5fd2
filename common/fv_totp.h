/* TOTP (RFC 6238): HMAC-SHA-1, 6 digits, 30-second steps from the Unix epoch, one step of drift
 * either way, computed by liboath. A code is accepted once: the caller keeps the last accepted
 * step per user and passes it in; a code of that step or an earlier one is a replay. */
#ifndef FV_TOTP_H
#define FV_TOTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define FV_TOTP_SECRET_BYTES 20 /* 160 bits, as RFC 4226 recommends */
#define FV_TOTP_STEP 30
#define FV_TOTP_DIGITS 6
#define FV_TOTP_B32_MAX 64

typedef enum {
    FV_TOTP_OK,
    FV_TOTP_WRONG,  /* not the code of any step in the window, or not 6 digits */
    FV_TOTP_REPLAY, /* the code of a step at or before last_step: already used */
} fv_totp_result;

/* Once per process, before any other call. Returns 0 or -1. */
int fv_totp_init(void);
/* A new random secret into out. Returns 0 or -1 (RNG failure). */
int fv_totp_new_secret(unsigned char out[FV_TOTP_SECRET_BYTES]);
/* The secret in base32 without padding (what authenticator apps take) into out. Returns 0/-1. */
int fv_totp_base32(const unsigned char *secret, size_t len, char out[FV_TOTP_B32_MAX + 1]);
/* The code of time t into out[7] (tests, and nothing else in the server). Returns 0 or -1. */
int fv_totp_code(const unsigned char *secret, size_t len, time_t t, char out[FV_TOTP_DIGITS + 1]);
/* Checks code at time now against the steps now-1, now, now+1. On FV_TOTP_OK, *step is the
 * matched step: store it as the new last_step (atomically: UPDATE ... WHERE last_step < step).
 * The comparison does not leak the expected code through timing. */
fv_totp_result fv_totp_check(const unsigned char *secret, size_t len, const char *code, time_t now,
                             int64_t last_step, int64_t *step);

#endif

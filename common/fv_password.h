/* Password hashes: PBKDF2-HMAC-SHA256 (OpenSSL) in Django's format, so hashes travel both ways
 * between Fieldvault and Django sites such as KoboToolbox:
 *
 *     pbkdf2_sha256$<iterations>$<salt>$<hash>
 *
 * Django's rule: the salt field's text is used as-is as the PBKDF2 salt bytes, and <hash> is the
 * standard base64 (with '=' padding) of the 32-byte derived key. New salts made here are 16 random
 * bytes written as base64 without padding ('+', '/' and letters; never '$').
 *
 * Everything here is CPU work of hundreds of milliseconds: call it off the event loop
 * (frontend/fe_workpool). Nothing here logs a password or a hash. */
#ifndef FV_PASSWORD_H
#define FV_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define FV_PASSWORD_MIN_ITERATIONS 1
#define FV_PASSWORD_MAX_ITERATIONS 10000000
#define FV_PASSWORD_HASH_MAX 160 /* longest stored text accepted, NUL excluded */

/* Hashes pw[len] with a new random salt and `iterations` into out[FV_PASSWORD_HASH_MAX + 1].
 * Returns 0, or -1 (iterations out of range, RNG or PBKDF2 failure). */
int fv_password_hash(const char *pw, size_t len, int iterations, char out[FV_PASSWORD_HASH_MAX + 1]);

/* Same with a given salt text (tests, and re-deriving Django's own vectors). salt must not contain
 * '$' and must be 1..64 bytes. */
int fv_password_hash_salt(const char *pw, size_t len, int iterations, const char *salt,
                          char out[FV_PASSWORD_HASH_MAX + 1]);

/* True when pw[len] matches the stored hash. The derived key is compared in constant time. A
 * stored text that does not parse (wrong algorithm, iterations outside 1..10,000,000, empty or
 * oversized fields, hash not 32 bytes of base64) never verifies. When it verifies and
 * *needs_rehash is not NULL, it is set when the hash has fewer iterations than `iterations`
 * (rehash it with the current count at this login). */
bool fv_password_verify(const char *pw, size_t len, const char *stored, int iterations,
                        bool *needs_rehash);

/* The iteration count of a stored hash that parses, else -1 (to spend equal work on a miss). */
int fv_password_iterations(const char *stored);

#endif

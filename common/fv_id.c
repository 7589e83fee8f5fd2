/* Identifiers: time-ordered UUIDs (version 7). */
#include "fv_id.h"

#include <ctype.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <uuid/uuid.h>

void fv_id_new(char out[FV_UUID_STRLEN + 1])
{
    uuid_t u;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t ms = (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
    if (RAND_bytes(u, sizeof u) != 1) uuid_generate_random(u);
    for (int i = 0; i < 6; i++) u[i] = (unsigned char)(ms >> (40 - 8 * i));
    u[6] = (unsigned char)(0x70 | (u[6] & 0x0f)); /* version 7 */
    u[8] = (unsigned char)(0x80 | (u[8] & 0x3f)); /* RFC 4122 variant */
    uuid_unparse_lower(u, out);
}

bool fv_id_valid(const char *s)
{
    if (s == NULL || strlen(s) != FV_UUID_STRLEN) return false;
    for (int i = 0; i < FV_UUID_STRLEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

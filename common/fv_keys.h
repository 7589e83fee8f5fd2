/* The master key file: the secrets every program derives its keys from (session-token signing,
 * sealing of TOTP secrets, later the data keys). One key per line as 64 hex characters (32
 * bytes); the first line is the current key (everything new is signed, sealed, MACed and wrapped
 * under it), every later line is accepted for verifying and opening only: a previous key, or a
 * standby not yet used (rotation without downtime, docs/operations.md section 12: a new key goes in
 * second, every program restarts, then it is moved first). Every use looks a key up by the id
 * carried beside what it opens, never by position. Lines starting with '#' and blank lines are
 * ignored. The file must not be readable by group or others.
 *
 * Subkeys are derived with HKDF-SHA256 (OpenSSL EVP_KDF "HKDF") from a key and a label, so no
 * two uses ever share a key. A key is named by its id: the first 4 bytes of SHA-256(key) as 8 hex
 * characters, carried beside what it signed or sealed so the right key is picked at once. */
#ifndef FV_KEYS_H
#define FV_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define FV_KEY_BYTES 32
#define FV_KEY_IDLEN 8
#define FV_KEYS_MAX 8

typedef struct fv_key {
    unsigned char key[FV_KEY_BYTES];
    char id[FV_KEY_IDLEN + 1];
} fv_key;

/* Owned by whoever loaded it; wiped by fv_keys_clear. */
typedef struct fv_keyset {
    fv_key keys[FV_KEYS_MAX];
    int n; /* keys[0] is the current key */
} fv_keyset;

/* Loads path into ks. Returns 0, or -1 with the reason in err (never any key material). */
int fv_keys_load(fv_keyset *ks, const char *path, char *err, size_t errlen);
/* Wipes ks (OPENSSL_cleanse). */
void fv_keys_clear(fv_keyset *ks);
/* The id of key (the first 4 bytes of SHA-256(key) as 8 lowercase hex characters) into id. */
void fv_keys_id(const unsigned char key[FV_KEY_BYTES], char id[FV_KEY_IDLEN + 1]);
/* The key named id, or NULL. */
const fv_key *fv_keys_find(const fv_keyset *ks, const char *id);
/* What ks holds, for a start-up log line: "N key(s): signs, seals and wraps under <id>[, also
 * opens <id> <id>...]" into out (ids only, never key material; truncated to outlen). */
void fv_keys_describe(const fv_keyset *ks, char *out, size_t outlen);
/* HKDF-SHA256(key, salt = none, info = label) into out[outlen]. Returns 0 or -1. */
int fv_keys_derive(const fv_key *k, const char *label, unsigned char *out, size_t outlen);

#endif

/* Personal data at rest (issue 12; migration 028, docs/security.md "Personal data"): users' and
 * invitations' emails and names sealed under the global data key (fv_datakey.h, scope "global"),
 * and emails found by a keyed hash.
 *
 * A sealed value is bound to its place by its associated data "fv:<table>:<row id>:<column>"
 * (e.g. "fv:users:<uuid>:email"), so a value copied to another row or column does not open.
 * An email's lookup hash is HMAC-SHA256(subkey FV_PII_HMAC_LABEL of a master key, the email
 * lower-cased in ASCII, as the lower(email) index of migration 001 compared them for ASCII). A
 * reader computes it under every key of the key file (a rotation's standby and previous key too)
 * and looks rows up with "email_hmac = ANY($n::bytea[])"; a writer stores it under the current
 * key with that key's id (email_hmac_key), which fvctl rotate-master-key recomputes. */
#ifndef FV_PII_H
#define FV_PII_H

#include <stdbool.h>
#include <stddef.h>

#include "fv_datakey.h"
#include "fv_keys.h"

#define FV_PII_HMAC_LABEL "fv-email-hmac"
#define FV_PII_HMAC_BYTES 32
#define FV_PII_EMAIL_MAX 254
/* "\x" and 64 hex digits: a bytea parameter in PostgreSQL's text form */
#define FV_PII_HMAC_HEXLEN (2 + 2 * FV_PII_HMAC_BYTES)

/* The associated data of a sealed field into out[FV_DK_AAD_MAX]: "fv:<table>:<id>:<column>". */
void fv_pii_aad(const char *table, const char *id, const char *column, char out[FV_DK_AAD_MAX]);

/* HMAC of email (ASCII lower-cased; at most FV_PII_EMAIL_MAX bytes) under k's subkey as a bytea
 * text "\x<hex>" into out[FV_PII_HMAC_HEXLEN + 1]. Returns 0, or -1 (too long, HKDF/HMAC failed). */
int fv_pii_email_hmac(const fv_key *k, const char *email, char out[FV_PII_HMAC_HEXLEN + 1]);

/* The HMACs of email under every key of ks as a PostgreSQL bytea[] literal
 * ("{\\x...,\\x...}"), for "= ANY($n::bytea[])". The caller frees it. NULL: no key, too long, or
 * out of memory. */
char *fv_pii_email_hmacs(const fv_keyset *ks, const char *email);

/* Seals the string s under key (version) bound to aad as a bytea text "\x<hex>" (the caller
 * frees it), for a statement parameter. NULL: out of memory, RNG or cipher failure. */
char *fv_pii_seal_hex(const unsigned char key[FV_DATAKEY_BYTES], int version, const char *aad,
                      const char *s);

/* Decodes a bytea value in PostgreSQL's hex text form ("\x<hex>") into a new buffer (caller
 * frees), its length in *len. NULL: not that form (odd length, a non-hex digit), or out of memory. */
unsigned char *fv_pii_unhex(const char *text, size_t *len);

/* Opens sealed[len] under key (the data key of the given version: the header's version is not
 * under the tag, so it is compared here) bound to aad as a NUL-terminated string (caller frees).
 * NULL with the reason in err (never a plaintext byte): not a sealed value, another version, the
 * tag fails (a flipped byte, a value from another row), or the plaintext holds a NUL. */
char *fv_pii_open(const unsigned char key[FV_DATAKEY_BYTES], int version, const char *aad,
                  const unsigned char *sealed, size_t len, char *err, size_t errlen);

/* ---- reading: one text column per field (migration 028's fv_pii_cell) ----
 * A field is read as one text value: "c:<the value in clear>" (stored before migration 028 and
 * not yet sealed by the workers' sweep), or "s:<data key version>:<wrapped data key>:<hex of the
 * sealed value>" (the wrapped global data key of that version beside it, so opening costs no
 * other round trip), or SQL NULL. */

/* Opens cell (NULL: NULL) bound to aad, unwrapping its data key with ring (scope "global") when
 * the ring does not hold it yet. Returns the value (caller frees; NULL cell gives NULL with err
 * ""), or NULL with the reason in err naming aad (a flipped byte, a value moved from another
 * row, a data key that does not unwrap, a cell of another shape). */
char *fv_pii_cell_open(fv_dkring *ring, const char *cell, const char *aad, char *err, size_t errlen);

/* Rewrites json (the text of an object or an array of objects, as a statement gave it) where
 * migration 028's fv_pii_json left a sealed field, {"fv_sealed": <cell>, "aad": <aad>}: the
 * value of a key named in keys (NULL-terminated) in the top object, in the array's objects, or in
 * an object directly inside one of those, becomes the opened string. Nowhere else (answers of
 * submissions are users' JSON: an object of that shape inside them is left alone). Returns the
 * new text (caller frees), or NULL with the reason in err (not JSON, a field that does not open:
 * named by its aad). */
char *fv_pii_json_open(fv_dkring *ring, const char *json, size_t len, const char *const *keys, char *err,
                       size_t errlen);

#endif

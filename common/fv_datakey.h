/* Data keys: the middle layer of envelope encryption at rest (DESIGN.md section 3,
 * docs/security.md "Envelope encryption").
 *
 * A data key is 32 random bytes, one per scope and version. The scope is "org:<uuid>" for an
 * organisation's data, "global" for users' own data. A data key is stored only wrapped, in the
 * table data_keys (migration 025): sealed by fv_seal (fv_seal.h) under the master key's subkey
 * FV_DATAKEY_WRAP_LABEL with associated data "fv-datakey:<scope>:<version>", so a wrapped key
 * copied to another scope or version does not open. The wrapped text names the master key that
 * wrapped it ("s1.<master key id>.…"): `fvctl rotate-master-key` re-wraps every row under the key
 * file's first key, after which the old master key can leave the file; `fvctl rotate-data-key`
 * adds a version to a scope (new values are sealed under the highest).
 *
 * A value sealed under a data key is binary, for bytea columns:
 *   "FVD1" | version (u32 big-endian) | nonce[12] | ciphertext | tag[16]
 * AES-256-GCM, a random 96-bit nonce per value, associated data the value's place (table, row
 * id, column), so a value copied into another row or column does not open: the opener names
 * the row it failed on.
 *
 * fv_dkring keeps the unwrapped keys a process has needed (bounded; wiped when freed). Not
 * thread-safe: one per thread of use. */
#ifndef FV_DATAKEY_H
#define FV_DATAKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "fv_keys.h"

#define FV_DATAKEY_BYTES 32
#define FV_DATAKEY_WRAP_LABEL "fv-wrap-datakey"
#define FV_DATAKEY_SCOPE_MAX 64 /* "org:" + a uuid, or "global" */
#define FV_DK_OVERHEAD (4 + 4 + 12 + 16)

/* 32 random bytes (RAND_bytes). Returns 0, or -1 when the RNG failed. */
int fv_datakey_new(unsigned char key[FV_DATAKEY_BYTES]);

/* The wrapped text of key for scope and version under ks's first (current) master key; the
 * caller frees it. NULL: no key in ks, a scope too long, or out of memory. */
char *fv_datakey_wrap(const fv_keyset *ks, const char *scope, int version,
                      const unsigned char key[FV_DATAKEY_BYTES]);

/* Unwraps wrapped (from fv_datakey_wrap) into key. Returns 0, or -1 with the reason in err:
 * malformed, wrapped by a master key not in ks (its id is named), or the tag does not verify
 * (tampered, or another scope's or version's). Never writes key material into err. */
int fv_datakey_unwrap(const fv_keyset *ks, const char *scope, int version, const char *wrapped,
                      unsigned char key[FV_DATAKEY_BYTES], char *err, size_t errlen);

/* The id of the master key that wrapped text names into id (FV_KEY_IDLEN + 1 bytes). Returns
 * false when the text has not the shape of fv_seal's. */
bool fv_datakey_master_id(const char *wrapped, char id[FV_KEY_IDLEN + 1]);

/* Seals pt[len] under key (of the given version) with associated data aad into out, which has
 * room for len + FV_DK_OVERHEAD bytes. Returns 0, or -1 (RNG or cipher failure, len over 1 GiB). */
int fv_dk_seal(const unsigned char key[FV_DATAKEY_BYTES], int version, const char *aad, const void *pt,
               size_t len, unsigned char *out);
/* fv_dk_seal with a synthetic nonce instead of a random one: the first 12 bytes of HMAC-SHA256,
 * under a subkey of key (HMAC(key, "fv-dk-nonce")), of aad, a NUL and pt. The same key, aad and
 * pt always give the same sealed value, so stored values can be compared for equality without
 * opening them (a retry of a submission, an answer unchanged by an edit); two different (aad, pt)
 * share a nonce only by a 96-bit collision, as random nonces do. It shows that two values are
 * equal only where the aad is the same too (one answer of one response). */
int fv_dk_seal_det(const unsigned char key[FV_DATAKEY_BYTES], int version, const char *aad,
                   const void *pt, size_t len, unsigned char *out);
/* The data key version a sealed value names, or -1 when it has not the shape of one. */
int fv_dk_version(const unsigned char *sealed, size_t len);
/* Opens sealed[len] into out (room for len - FV_DK_OVERHEAD bytes). Returns the plaintext's
 * length, or -1: not a sealed value, or the tag does not verify (tampered, another place's,
 * another key's). */
long fv_dk_open(const unsigned char key[FV_DATAKEY_BYTES], const char *aad, const unsigned char *sealed,
                size_t len, unsigned char *out);

/* The associated data of the sealed values of migration 026 into out[FV_DK_AAD_MAX]: an OpenRosa
 * instance XML of a response ("fv:response_xml:<response id>:<sha256 hex>") and an attachment
 * content of an organisation ("fv:attachment_blobs:<org id>:<sha256 hex>"). */
#define FV_DK_AAD_MAX 160
void fv_dk_aad_xml(const char *response_id, const char *sha256_hex, char out[FV_DK_AAD_MAX]);
void fv_dk_aad_blob(const char *org_id, const char *sha256_hex, char out[FV_DK_AAD_MAX]);

typedef struct fv_dkring fv_dkring;

/* A ring of at most cap unwrapped keys (cap 1 to 65536), unwrapping with a copy of ks (ks may be
 * cleared afterwards). NULL: out of memory, or ks holds no key. Freed (wiped) by fv_dkring_free. */
fv_dkring *fv_dkring_new(const fv_keyset *ks, size_t cap);
void fv_dkring_free(fv_dkring *r);
/* The key of scope and version when the ring holds it, else NULL. The pointer is valid until
 * the next fv_dkring_put or fv_dkring_free. */
const unsigned char *fv_dkring_get(fv_dkring *r, const char *scope, int version);
/* Unwraps wrapped (scope, version) and keeps the key, replacing the oldest entry when the ring is
 * full. Returns the key (valid as for fv_dkring_get), or NULL with the reason in err. */
const unsigned char *fv_dkring_put(fv_dkring *r, const char *scope, int version, const char *wrapped,
                                   char *err, size_t errlen);
/* The master keys the ring unwraps with (its copy). */
const fv_keyset *fv_dkring_keys(const fv_dkring *r);

#endif

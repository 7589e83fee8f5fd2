/* Sealing small secrets at rest (TOTP secrets; later personal data): AES-256-GCM under a subkey
 * of the master key (fv_keys), with associated data that binds the sealed value to its place
 * (e.g. "totp:<user id>"), so a sealed value copied to another row does not open.
 *
 * Sealed text: "s1.<key id>.<base64url(nonce[12] | ciphertext | tag[16])>". */
#ifndef FV_SEAL_H
#define FV_SEAL_H

#include <stddef.h>

#include "fv_keys.h"

/* Seals pt[len] with the current key of ks under the subkey named label (e.g. "fv-seal-totp")
 * and associated data aad. Returns a string the caller frees, or NULL (out of memory, RNG). */
char *fv_seal(const fv_keyset *ks, const char *label, const char *aad, const void *pt, size_t len);
/* Opens sealed text from fv_seal. Returns the plaintext (caller frees; it is NUL-terminated one
 * byte past *len for convenience; wipe it with OPENSSL_cleanse before freeing), or NULL when the
 * text is malformed, the key unknown, or the tag does not verify. */
unsigned char *fv_unseal(const fv_keyset *ks, const char *label, const char *aad, const char *sealed,
                         size_t *len);

#endif

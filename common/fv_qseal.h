/* Sealing of queue entries (DESIGN.md section 3, "at rest"): what a front end puts into Redis and
 * into its spool carries no answer in clear. The payload fields of an envelope (data, location,
 * openrosa: the answers, the GPS point, an ODK encrypted envelope, the instance XML and the
 * attachments) travel as one field, `sealed`, opened by the worker before anything else reads it.
 *
 * Cipher: AES-256-GCM under the queue subkey HKDF(master key, "fv-seal-queue") (fv_keys.h), a
 * random 96-bit nonce per entry. Associated data "fv-queue:1:<id>:<deployment_id>:<submitted_by>"
 * binds the sealed value to its entry: copied into another submission's entry it does not open.
 * (The stream id is unknown before XADD and changes on a requeue, so it is not bound.)
 *
 * Sealed text: "q1.<key id>.<base64url(nonce[12] | ciphertext | tag[16])>"; the plaintext is
 * three length-prefixed parts, u32 little-endian length then bytes: data, location, openrosa
 * (length 0: no location / a JSON submission). The key id picks the key at once, so an entry
 * sealed under a previous key still opens while that key is in the key file.
 *
 * Speed: fv_qseal_new derives the subkey of every key once; one fv_qseal (one EVP context, reused)
 * per thread of use (a front-end child, a worker). Sealing writes into the caller's buffer;
 * opening makes one allocation, the plaintext. Not thread-safe: one per thread. */
#ifndef FV_QSEAL_H
#define FV_QSEAL_H

#include <stdbool.h>
#include <stddef.h>

#include "fv_envelope.h"
#include "fv_keys.h"

#define FV_QSEAL_LABEL "fv-seal-queue"

typedef struct fv_qseal fv_qseal;

/* Derives the queue subkey of every key of ks (copied: ks may be cleared afterwards). NULL when
 * ks holds no key or memory or the KDF failed. Freed (and wiped) by fv_qseal_free. */
fv_qseal *fv_qseal_new(const fv_keyset *ks);
void fv_qseal_free(fv_qseal *q);

/* The length of the sealed text of e's payload (no NUL), and of the scratch fv_qseal_seal needs. */
size_t fv_qseal_text_len(const fv_envelope *e);
size_t fv_qseal_scratch_len(const fv_envelope *e);
/* Seals e's data, location and openrosa under the current key into out (fv_qseal_text_len(e)
 * bytes of text and a NUL after them: room for one more byte), using scratch (fv_qseal_scratch_len(e) bytes,
 * left holding only ciphertext). Returns 0, or -1 (RNG or cipher failure, payload over 2 GiB). */
int fv_qseal_seal(fv_qseal *q, const fv_envelope *e, unsigned char *scratch, char *out);

/* Opens e->sealed (from fv_envelope_parse) and points e->data, e->location and e->openrosa into
 * *plain, a buffer the caller owns from then on (free it with fv_qseal_plain_free). Returns 0, or
 * -1 with the reason in err (never any payload byte): malformed, unknown key id, or the tag does
 * not verify (tampered, another entry's, or a different key under the same id). */
int fv_qseal_open(fv_qseal *q, fv_envelope *e, unsigned char **plain, size_t *plain_len, char *err,
                  size_t errlen);
/* Wipes and frees a buffer from fv_qseal_open (NULL is fine). */
void fv_qseal_plain_free(unsigned char *plain, size_t len);

#endif

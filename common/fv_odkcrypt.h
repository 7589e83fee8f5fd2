/* The ODK encrypted-submission format (ODK XForms spec, "encryption"; fixtures/odk/README.md):
 * a survey's RSA public key, the shape check of an encrypted submission's envelope (what the
 * server does: it can read nothing), and the offline opening of one with the private key (what
 * fv-decrypt does). Knows nothing of HTTP; the JSON API's and OpenRosa's front ends share it.
 *
 * The format: a random AES-256 key per submission, wrapped with RSA-OAEP (SHA-256, MGF1-SHA-256)
 * into base64EncryptedKey; each file (media files first, in order, the XML last) encrypted with
 * AES-256-CFB (128-bit feedback) and PKCS#7 padding under the IV of its index n: a seed that
 * starts as md5(instanceID || key), byte (n mod 16) incremented for file n = 0, 1, ...; the
 * signature base64EncryptedElementSignature is md5 of the "element signature source" (formID,
 * version when there is one, base64EncryptedKey, instanceID, then "name::md5hex" of each
 * decrypted media file under its name without ".enc", then "submission.xml::md5hex" of the
 * decrypted XML, each line ended by "\n"), RSA-OAEP-wrapped like the key.
 *
 * The JSON envelope (docs/api/surveys-and-responses.md, "Encrypted surveys"), as stored:
 *   {"instanceID": "uuid:...", "version": "..." or null, "base64EncryptedKey": "...",
 *    "encryptedXmlFile": "<base64 of submission.xml.enc>",
 *    "media": [{"name": "photo.jpg.enc", "content": "<base64>"}, ...],
 *    "base64EncryptedElementSignature": "..."}
 */
#ifndef FV_ODKCRYPT_H
#define FV_ODKCRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_tree.h>

#include "fv_attachment.h"

#define FV_ODKCRYPT_MIN_BITS 2048
#define FV_ODKCRYPT_MAX_BITS 8192
#define FV_ODKCRYPT_MAX_PEM 16384 /* bytes of a public key's PEM text */
#define FV_ODKCRYPT_MAX_MEDIA 100 /* media files of one submission */
#define FV_ODKCRYPT_MAX_ID 255    /* bytes of the instanceID and of the version */
/* bytes of a media file's name (with ".enc"): an attachment's (fv_attachment.h), so a Collect photo
 * named by a device keeps its name when its form is encrypted */
#define FV_ODKCRYPT_MAX_NAME FV_ATTACHMENT_NAME_MAX
#define FV_ODKCRYPT_KEY_LEN 32 /* AES-256 */
#define FV_ODKCRYPT_IV_LEN 16

/* A checked RSA public key. Strings owned by the struct (fv_odkcrypt_pubkey_free). */
typedef struct fv_odkcrypt_pubkey {
    char *pem;     /* normalised PEM ("-----BEGIN PUBLIC KEY-----", SubjectPublicKeyInfo) */
    char *der_b64; /* base64 of the DER, one line: the XForm's base64RsaPublicKey */
    int bits;      /* modulus size */
    int bytes;     /* modulus size in bytes: the length of a wrapped key and of a signature */
} fv_odkcrypt_pubkey;

/* Checks text[len] (borrowed): one RSA public key in PEM ("PUBLIC KEY" or "RSA PUBLIC KEY"),
 * FV_ODKCRYPT_MIN_BITS to FV_ODKCRYPT_MAX_BITS. Fills *out (caller frees with
 * fv_odkcrypt_pubkey_free) and returns NULL, or returns why it is refused (static text). */
const char *fv_odkcrypt_pubkey_from_pem(const char *text, size_t len, fv_odkcrypt_pubkey *out);
/* The same from an XForm's base64RsaPublicKey (base64 of the DER SubjectPublicKeyInfo). */
const char *fv_odkcrypt_pubkey_from_b64(const char *b64, size_t len, fv_odkcrypt_pubkey *out);
void fv_odkcrypt_pubkey_free(fv_odkcrypt_pubkey *k);

/* Checks an envelope's shape (env borrowed, a JSON object): every field present with the right
 * type, no other field, the base64 canonical, every file's ciphertext a non-empty multiple of 16
 * bytes, at most FV_ODKCRYPT_MAX_MEDIA media files with distinct safe names ending ".enc", the
 * wrapped key and the signature exactly modulus_bytes long (any length from 256 to 1024 bytes
 * when modulus_bytes is 0: the survey's key is not known here; the worker checks it again).
 * Linear in the envelope's size. Returns NULL, or why it is refused with *field naming the part
 * (static text). */
const char *fv_odkcrypt_envelope_check(yajl_val env, int modulus_bytes, const char **field);
/* The same on JSON text[len] (the worker's check of a stored envelope). */
const char *fv_odkcrypt_envelope_check_text(const char *text, size_t len, int modulus_bytes,
                                            const char **field);

/* One encrypted file as it arrives in an OpenRosa multipart submission (borrowed). */
typedef struct fv_odkcrypt_part {
    const char *name; /* "photo.jpg.enc" */
    const unsigned char *data;
    size_t len;
} fv_odkcrypt_part;

/* The stored envelope (the JSON text above, what the JSON API stores) of an encrypted submission
 * given as its parts: what the OpenRosa endpoint has after reading ODK Collect's manifest
 * (instanceID, version or NULL, base64EncryptedKey, base64EncryptedElementSignature) and the
 * multipart's files (submission.xml.enc and the media named by <media><file>, in that order).
 * Everything borrowed. Returns the JSON text (caller frees), or NULL when out of memory; the
 * caller then checks it with fv_odkcrypt_envelope_check_text like any other. */
char *fv_odkcrypt_envelope_build(const char *instance_id, const char *version, const char *b64_key,
                                 const unsigned char *xml_enc, size_t xml_len,
                                 const fv_odkcrypt_part *media, size_t nmedia,
                                 const char *b64_signature);

/* ---- opening (offline, with the private key: fv-decrypt and the tests) ---- */

typedef struct evp_pkey_st fv_odkcrypt_privkey; /* OpenSSL's EVP_PKEY */

/* Reads a PEM private key file; NULL with why (at most whylen bytes) when it cannot. Caller frees
 * with fv_odkcrypt_privkey_free. */
fv_odkcrypt_privkey *fv_odkcrypt_privkey_load(const char *path, char *why, size_t whylen);
void fv_odkcrypt_privkey_free(fv_odkcrypt_privkey *k);

/* RSA-OAEP-SHA256 unwraps b64[len] (base64) into out, at most outmax bytes. Returns the number of
 * bytes, or -1 (not base64, wrong key, tampered). */
long fv_odkcrypt_unwrap(fv_odkcrypt_privkey *k, const char *b64, size_t len, unsigned char *out,
                        size_t outmax);
/* The IV of file n of a submission. */
void fv_odkcrypt_iv(const char *instance_id, const unsigned char key[FV_ODKCRYPT_KEY_LEN], unsigned n,
                    unsigned char iv[FV_ODKCRYPT_IV_LEN]);
/* Decrypts ct[len] (AES-256-CFB128, PKCS#7) into a new buffer (caller frees; NUL-terminated one
 * byte past *outlen) or NULL when the length or the padding is wrong. */
unsigned char *fv_odkcrypt_decrypt_file(const unsigned char key[FV_ODKCRYPT_KEY_LEN],
                                        const unsigned char iv[FV_ODKCRYPT_IV_LEN],
                                        const unsigned char *ct, size_t len, size_t *outlen);

/* One decrypted file of a submission, owned by fv_odkcrypt_opened. */
typedef struct fv_odkcrypt_file {
    char *name; /* without ".enc" */
    unsigned char *data;
    size_t len;
} fv_odkcrypt_file;

typedef struct fv_odkcrypt_opened {
    fv_odkcrypt_file xml; /* submission.xml */
    fv_odkcrypt_file *media;
    size_t nmedia;
} fv_odkcrypt_opened;

/* Opens a stored envelope (env borrowed) of a form form_id with private key k: unwraps the key,
 * decrypts every file, checks the signature. Returns true and fills *out (caller frees with
 * fv_odkcrypt_opened_free), or false with why (at most whylen bytes, naming the part). Never
 * hands out a file whose signature did not verify. */
bool fv_odkcrypt_open(fv_odkcrypt_privkey *k, yajl_val env, const char *form_id, fv_odkcrypt_opened *out,
                      char *why, size_t whylen);
void fv_odkcrypt_opened_free(fv_odkcrypt_opened *o);

/* The element signature source's md5 (what base64EncryptedElementSignature wraps) of the given
 * parts; version NULL or "" when the form has none. media[i].name without ".enc". */
void fv_odkcrypt_signature_digest(const char *form_id, const char *version, const char *b64_key,
                                  const char *instance_id, const fv_odkcrypt_file *media, size_t nmedia,
                                  const fv_odkcrypt_file *xml, unsigned char md[16]);

#endif

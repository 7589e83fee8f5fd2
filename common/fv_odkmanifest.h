/* The cleartext manifest of an encrypted ODK submission: what ODK Collect sends as
 * xml_submission_file for a form with a base64RsaPublicKey (the ODK XForms spec, "encryption";
 * fixtures/odk/instances/encrypted/):
 *   <data id="..." version="..." encrypted="yes" xmlns="http://www.opendatakit.org/xforms/encrypted">
 *     <base64EncryptedKey>...</base64EncryptedKey>
 *     <orx:meta><orx:instanceID>uuid:...</orx:instanceID></orx:meta>
 *     <media><file>x.jpg.enc</file></media> ...
 *     <encryptedXmlFile>submission.xml.enc</encryptedXmlFile>
 *     <base64EncryptedElementSignature>...</base64EncryptedElementSignature>
 *   </data>
 * Parsed with expat, hardened as fv_instance.h (no DOCTYPE, no entity, bounded text; elements
 * below the third level are passed over, so a plain instance of any size parses too, linearly). Names only what the manifest says; the parts themselves and the envelope's
 * shape are the caller's (fv_odkcrypt_envelope_build, fv_odkcrypt_envelope_check_text). Knows
 * nothing of HTTP. */
#ifndef FV_ODKMANIFEST_H
#define FV_ODKMANIFEST_H
#include <stdbool.h>
#include <stddef.h>

#include "fv_odkcrypt.h"

#define FV_ODKMANIFEST_MAX_TEXT 4096 /* bytes of one element's text (a 8192-bit key: 1368) */

typedef struct fv_odkmanifest {
    bool encrypted;                           /* the root's encrypted="yes" */
    char form_id[FV_ODKCRYPT_MAX_ID + 1];     /* the root's id ("" when absent) */
    char version[FV_ODKCRYPT_MAX_ID + 1];     /* the root's version ("" when absent) */
    char instance_id[FV_ODKCRYPT_MAX_ID + 1]; /* meta/instanceID ("" when absent) */
    char xml_file[FV_ODKCRYPT_MAX_NAME + 1];  /* encryptedXmlFile ("" when absent) */
    char *b64_key;                            /* owned; NULL when absent */
    char *b64_sig;                            /* owned; NULL when absent */
    char (*media)[FV_ODKCRYPT_MAX_NAME + 1];  /* owned: media/file names, in order */
    size_t nmedia;
} fv_odkmanifest;

/* Reads xml[len] (borrowed) into *out (the caller frees with fv_odkmanifest_clear, also after a
 * failure). A plain instance (no encrypted="yes") parses too, with out->encrypted false.
 * Returns 0, or -1 with why (at most whylen bytes): malformed or refused XML, an element twice
 * (key, signature, instanceID, encryptedXmlFile), a name or text too long, more than
 * FV_ODKCRYPT_MAX_MEDIA media files, out of memory. */
int fv_odkmanifest_parse(const char *xml, size_t len, fv_odkmanifest *out, char *why, size_t whylen);
void fv_odkmanifest_clear(fv_odkmanifest *m);
#endif

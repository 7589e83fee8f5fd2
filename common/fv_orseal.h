/* Sealing an OpenRosa submission's instance XML and attachments under its organisation's data key
 * (envelope encryption, docs/security.md; migration 026), the same way wherever it is stored from:
 * the worker's batch insert (worker/wk_seal.c) and the front end's edit (meta/deprecatedID,
 * frontend/api/surveys/fe_orsubmit.c, on a pool thread). */
#ifndef FV_ORSEAL_H
#define FV_ORSEAL_H

#include <stddef.h>

#include "fv_datakey.h"

/* Rewrites an openrosa field (fv_envelope.h: {"instance_id", "xml", "attachments": [{"name",
 * "content_type", "size", "sha256", "data" (base64)}]}) into what is stored for response
 * response_id of org, sealed under key (the org's data key of the given version):
 *   {"instance_id", "org_id", "key_version", "xml_sha256" (hex), "xml_body" (base64 of the sealed
 *    XML), "attachments": [{"name", "content_type", "size", "sha256", "data" (base64 of the sealed
 *    content), "questions": [the top-level questions of answers whose answer names the file
 *    anywhere inside it (migration 027)]}]}
 * answers[answers_len] is the submission's answers in clear (a JSON object; NULL: none).
 * The associated data are fv_dk_aad_xml and fv_dk_aad_blob. Returns the new text (the caller
 * frees it), or NULL with why in err: "malformed ..." (no xml, an attachment whose content does
 * not match its size or SHA-256) or "out of memory". No plaintext byte is left in memory it
 * allocated (each decoded content is wiped before it is freed). */
char *fv_orseal_field(const unsigned char key[FV_DATAKEY_BYTES], int version, const char *org,
                      const char *response_id, const char *openrosa, size_t len, const char *answers,
                      size_t answers_len, char *err, size_t errlen);

#endif

/* XForms (ODK/OpenRosa form definitions): parsing one with expat into Fieldvault's question list,
 * and generating one from a Fieldvault JSON definition. Knows nothing of HTTP.
 *
 * Hardening (docs/security.md, "XML hardening"): a document with a DOCTYPE is refused as soon as
 * the declaration starts (so no entity can be declared: no "billion laughs", no external
 * entity), external entity references and parameter entities are never resolved, expat's
 * amplification protection is on all the same, elements nest at most FV_XFORM_MAX_DEPTH deep, a
 * document holds at most FV_XFORM_MAX_NODES elements, an attribute value at most FV_XFORM_MAX_ATTR bytes and a text
 * at most FV_XFORM_MAX_TEXT, and the whole input at most FV_XFORM_MAX_BYTES. Each check stops the
 * parse at once, so refusing costs at most one pass over the input. */
#ifndef FV_XFORM_H
#define FV_XFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_tree.h>

#define FV_XFORM_MAX_BYTES (4u << 20) /* the request body limit bounds it further */
#define FV_XFORM_MAX_DEPTH 64
#define FV_XFORM_MAX_NODES 20000   /* the 250-question soak form has about 2,300 */
#define FV_XFORM_MAX_CHILDREN 2000 /* element children of one primary-instance element */
#define FV_XFORM_MAX_TEXT 65536    /* bytes of one element's text */
#define FV_XFORM_MAX_ATTR 16384    /* bytes of one attribute value (an XPath expression at most) */
#define FV_XFORM_MAX_ID 255        /* bytes of the form id and of the version */

typedef struct fv_xform fv_xform; /* a parsed XForm; owned by the caller (fv_xform_free) */

/* Parses xml (len bytes, borrowed). Returns the form, or NULL with a reason in why (at most
 * whylen bytes, NUL-terminated): a malformed or refused document ("XML: ..."), or a construct
 * Fieldvault does not support ("unsupported ...", naming it). */
fv_xform *fv_xform_parse(const char *xml, size_t len, char *why, size_t whylen);
void fv_xform_free(fv_xform *x);

/* The primary instance's id (formID) and version attributes (version "" when absent), and the
 * title ("" when absent). Borrowed from x. */
const char *fv_xform_id(const fv_xform *x);
const char *fv_xform_version(const fv_xform *x);
const char *fv_xform_title(const fv_xform *x);
size_t fv_xform_field_count(const fv_xform *x);
/* The model's <submission base64RsaPublicKey="..."> (ODK encryption: base64 of the DER public
 * key; checked by fv_odkcrypt_pubkey_from_b64), borrowed from x, or NULL when there is none. */
const char *fv_xform_public_key(const fv_xform *x);

/* The Fieldvault definition derived from x, as JSON text the caller frees (NULL: out of memory):
 * {"questions": [...], "xform": {"form_id", "version"}}. One question per leaf of the primary
 * instance, in document order, named by its path below the root ("grp/age"); each carries the
 * Fieldvault type, label, required, choices, and "xform": {path, type, repeat?, relevant?,
 * constraint?, constraint_msg?, required?, calculate?, readonly?, appearance?, mediatype?} as the
 * XForm says (kept for the clients, not evaluated by the server). */
char *fv_xform_definition(const fv_xform *x);

/* An XForm for a Fieldvault definition (borrowed; one fv_form_compile accepted): the XML text
 * the caller frees, or NULL (out of memory, or not an object with questions). form_id and
 * version go into the primary instance, title into h:title. */
char *fv_xform_generate(yajl_val definition, const char *form_id, const char *version,
                        const char *title);
/* The same with <submission base64RsaPublicKey="public_key_b64"> in the model when
 * public_key_b64 is not NULL (an encrypted survey, common/fv_odkcrypt.h). */
char *fv_xform_generate_keyed(yajl_val definition, const char *form_id, const char *version,
                              const char *title, const char *public_key_b64);

#endif

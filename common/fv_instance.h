/* OpenRosa submission instances (the XML ODK Collect sends in xml_submission_file): parsed with
 * expat into the answers object of a JSON submission, typed by the survey version's derived
 * definition (fv_xform_definition), and validated with fv_form's rules. Knows nothing of HTTP.
 *
 * The answers: one key per question of the definition, named by its path ("grp/age"), as the
 * JSON API takes them. A question inside a repeat holds a list with one item per repeat
 * instance, in document order (null where that instance has no answer); inside nested repeats,
 * lists of lists. select_multiple's space-separated values become a list; int and decimal become
 * numbers (text that is not a number stays text, and validation says so); geopoint's
 * "lat lon [altitude [accuracy]]" an object {lat, lon, altitude?, accuracy?}; everything else
 * text. Empty elements are unanswered (absent); notes are never answers. A leaf that is no
 * question of the definition is kept as text under its path (validation reports it unknown),
 * except in the OpenRosa meta block (meta/deprecatedID, meta/instanceName, ...: the client's).
 *
 * Hardening: as fv_xform.h (DOCTYPE refused as soon as it starts, no entity ever resolved,
 * expat's amplification protection, input read as UTF-8 whatever it declares), with
 * FV_INSTANCE_MAX_DEPTH, FV_INSTANCE_MAX_NODES and FV_INSTANCE_MAX_TEXT bounds, each stopping
 * the parse at once. */
#ifndef FV_INSTANCE_H
#define FV_INSTANCE_H
#include <stddef.h>
#include <yajl/yajl_tree.h>

#include "fv_form.h"

#define FV_INSTANCE_MAX_DEPTH 64
#define FV_INSTANCE_MAX_NODES 50000
#define FV_INSTANCE_MAX_TEXT 65536 /* bytes of one element's text */
#define FV_INSTANCE_MAX_ID 255     /* bytes of instanceID, deprecatedID, the form id and version */

typedef struct fv_instance {
    char *data;                                 /* owned: the answers, a JSON object as text */
    char form_id[FV_INSTANCE_MAX_ID + 1];       /* the root's id attribute ("" when absent) */
    char version[FV_INSTANCE_MAX_ID + 1];       /* the root's version attribute ("" when absent) */
    char instance_id[FV_INSTANCE_MAX_ID + 1];   /* meta/instanceID ("" when absent) */
    char deprecated_id[FV_INSTANCE_MAX_ID + 1]; /* meta/deprecatedID ("" when absent) */
} fv_instance;

/* Pass 1 of a submission: the root's id and version attributes and meta/instanceID and
 * meta/deprecatedID (namespace prefixes ignored), without a definition (to choose the survey
 * version). out->data stays NULL. 0, or -1 with why ("XML: ..."). */
int fv_instance_head(const char *xml, size_t len, fv_instance *out, char *why, size_t whylen);
/* Parses xml (borrowed) into out (its data the caller frees with fv_instance_clear), typed by
 * definition (borrowed: a derived definition, {"questions": [...]}) and validated against form
 * (borrowed: that definition compiled). Returns 0 when valid; the number of problems added to
 * errs (field = question path, reason as fv_form_validate's; a repeat item's reason starts with
 * its position, "#2: ") when not (out->data is still filled); -1 with why when the XML is
 * malformed, refused or memory ran out (nothing to free then). */
int fv_instance_parse(const char *xml, size_t len, yajl_val definition, const fv_form *form,
                      fv_instance *out, fv_form_errors *errs, char *why, size_t whylen);
void fv_instance_clear(fv_instance *in);
#endif

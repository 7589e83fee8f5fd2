/* A response's answers sealed at rest, and the answers as a reader may see them (issue 12;
 * docs/security.md "Answers at rest"; migration 027).
 *
 * Stored form. A response's answers (responses.data, a JSON object) keep their keys, the question
 * names, in clear, so that SQL can still leave confidential answers out of a reply (data - names),
 * strip purged questions and find which question names an attachment; each value is replaced by
 * a JSON string: the standard base64 of fv_dk_seal_det (fv_datakey.h) of the value's compact JSON
 * text under the data key of the response's organisation, associated data
 * "fv:answer:<submission id>:<question name>". The location (responses.location) is sealed the
 * same way with "fv:location:<submission id>". The sealing is deterministic, so a retry of a
 * submission compares equal to the stored one without opening it, and an answer an edit leaves
 * alone stays byte for byte the same; the associated data binds a value to its submission and
 * question, so a value copied to another response or question does not open. The row's
 * answers_kv names the data key version every value of it is sealed under; NULL: in clear (stored
 * before 027 and not yet sealed by the workers' sweep).
 *
 * Reading. SQL writes each response object of a reply (fv_response_json) with a private member
 * "_fv": {"id", "org", "kv", "wk" (the wrapped key of kv), "mask"}; fv_answers_finish opens its
 * data and location, applies the mask (confidential mode for a reader who is not survey admin: the
 * geopoint answers and the location moved by the response's offset) and drops "_fv". The offset
 * is the one migration 024 defined (fv_gps_displace), computed here instead of in SQL, since SQL
 * no longer sees the points. */
#ifndef FV_ANSWERS_H
#define FV_ANSWERS_H

#include <stdbool.h>
#include <stddef.h>

#include "fv_datakey.h"
#include "fv_json.h"

/* "fv:answer:" + a submission id + ":" + a question name (at most 255 bytes, fv_form.h) */
#define FV_ANSWERS_AAD_MAX 320

/* Writes data (a JSON object) into j with every value sealed under key (version kv) for
 * submission id. Returns 0, or -1 with why (not an object, a name too long, the cipher). */
int fv_answers_seal(fv_jgen *j, const unsigned char key[FV_DATAKEY_BYTES], int kv, const char *id,
                    yajl_val data, char *err, size_t errlen);
/* Writes the location sealed (a JSON null, or a missing one, stays null). */
int fv_answers_seal_location(fv_jgen *j, const unsigned char key[FV_DATAKEY_BYTES], int kv,
                             const char *id, yajl_val loc, char *err, size_t errlen);

/* The JSON text of the value sealed as b64[len] (answer name of submission id; name NULL: the
 * location), opened under key, which must be of version kv. The caller frees it (it is wiped
 * first by fv_answers_free_text). NULL with why (names the answer, never quotes it). */
char *fv_answers_open_value(const unsigned char key[FV_DATAKEY_BYTES], int kv, const char *id,
                            const char *name, const char *b64, size_t len, char *err, size_t errlen);
void fv_answers_free_text(char *text);

/* The confidential-mode offset of a response (migration 024): drawn from its gps_seed (a UUID's
 * text) within radius metres. */
typedef struct fv_gps_offset {
    double r; /* metres */
    double a; /* bearing, radians */
} fv_gps_offset;
bool fv_gps_offset_of(const char *seed, double radius, fv_gps_offset *o);
/* Writes point p moved by o: an object with number lat and lon gets them replaced (its other
 * members kept); null stays null; anything else is written as null, never as the true value. */
void fv_gps_displace(fv_jgen *j, yajl_val p, const fv_gps_offset *o);
/* Whether sent is exactly p as fv_gps_displace moves it (an edit that sends back the point it was
 * shown keeps the true one). */
bool fv_gps_is_moved(yajl_val sent, yajl_val p, const fv_gps_offset *o);

/* The text of double v that reads back as v, as short as possible (PostgreSQL's float8 output);
 * out has room for 32 bytes. */
void fv_double_text(double v, char out[32]);

/* The answers of one response opened: data (an object, or whatever was stored), location (or
 * NULL), both trees the caller frees with fv_answers_opened_free. */
typedef struct fv_answers_opened {
    yajl_val data;
    yajl_val location;
} fv_answers_opened;
void fv_answers_opened_free(fv_answers_opened *o);

/* Opens data and location (as stored: sealed when kv > 0, else in clear) of submission id of
 * org's version kv (key). Returns 0, or -1 with why naming the response and the answer. */
int fv_answers_open(const unsigned char *key, int kv, const char *id, yajl_val data, yajl_val location,
                    fv_answers_opened *out, char *err, size_t errlen);

/* Finishes a reply (json[len]) as described above: every object with a "_fv" member has its data
 * and location opened and masked, keys taken from ring (unwrapping the "wk" text when the ring does
 * not hold it). Returns the new text (the caller frees it with fv_answers_free_text; *outlen its
 * length), or NULL with why (a value that does not open names its response and answer). A text
 * without "_fv" comes back unchanged. */
char *fv_answers_finish(const char *json, size_t len, fv_dkring *ring, size_t *outlen, char *err,
                        size_t errlen);

#endif

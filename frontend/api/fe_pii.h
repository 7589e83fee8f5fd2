/* Personal data in the front end (migration 028, common/fv_pii.h): opening the names and emails a
 * statement read (fv_pii_cell columns, fv_pii_json fields) with this child's data-key ring, and
 * the emails' lookup HMACs under the master key file. Opening is synchronous and cheap: the
 * statement read the wrapped global data key beside the value (no other query). Loop thread. */
#ifndef FE_PII_H
#define FE_PII_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "fe_reply.h"
#include "fv_pii.h"

/* Opens the cell at (row, col) of res, the field column of table's row id, into *out (caller
 * frees; NULL for an SQL NULL). False when it does not open: then r was answered 500
 * sealed_data_unreadable with a message naming the row (and the failure logged), *out NULL. */
bool fe_pii_read(fe_req *r, const PGresult *res, int row, int col, const char *table, const char *id,
                 const char *column, char **out);

/* fv_pii_json_open of json for the fields named "name" and "email". NULL when r was answered
 * (500 internal naming the row, or out of memory); else the text (caller frees). */
char *fe_pii_json(fe_req *r, const char *json);

/* The bytea[] literal of email's HMACs under every key of the key file (caller frees; NULL: out
 * of memory or too long). */
char *fe_pii_hmacs(const char *email);

/* The email's HMAC under the current key as bytea text, and that key's id. False when it failed. */
bool fe_pii_hmac_current(const char *email, char hmac[FV_PII_HMAC_HEXLEN + 1],
                         char key_id[FV_KEY_IDLEN + 1]);

#endif

/* Shared pieces of the access handlers (surveys, deployments, responses): how a permission
 * decision made in SQL becomes a reply, list parameters, and principal bodies. */
#ifndef FE_ACCESS_H
#define FE_ACCESS_H

#include <stdbool.h>

#include "fe_reply.h"


/* The outcome of the SQL rule columns for one object and one action. */
typedef struct fe_access_check {
    bool visible;     /* the caller may see the object at all (else 404) */
    bool allowed;     /* the caller may do this action (else 403) */
    bool needs_totp;  /* allowed only with a TOTP session (org policy): 403 totp_required */
} fe_access_check;

/* Answers 404 not_found (naming what), 403 totp_required or 403 forbidden (with why) when c
 * denies, and returns true; returns false (r untouched) when c allows. */
bool fe_access_deny(fe_req *r, const fe_access_check *c, const char *what, const char *why);

/* True when column col of row 0 is the boolean true. */
bool fe_access_pg_true(const PGresult *p, int col);

/* The list parameters ?after=&limit= where the cursor is the last id returned (the lists of
 * surveys, deployments and API keys, ordered by id). Answers 422 and returns false when invalid; else
 * sets *limit and after (an empty string when absent; FV_UUID_STRLEN + 1 bytes). */
bool fe_access_list_params(fe_req *r, int *limit, char *after);

/* Checks v is a principal object {type: user|team|branch, id: UUID}: NULL, or the reason. */
const char *fe_access_principal_error(yajl_val v);


#endif

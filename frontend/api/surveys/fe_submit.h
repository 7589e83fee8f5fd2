/* The submission path's permission step, shared by the JSON submission (fe_submit.c) and the
 * OpenRosa one (fe_orsubmit.c): the deployment and the caller's right to submit, from this
 * child's caches, else Redis, else PostgreSQL; unverified (DESIGN section 2) while PostgreSQL
 * cannot be asked. Denials (404 hidden, 403 forbidden, 409 closed or archived, 429 unverified
 * limit) are answered here through fe_verdict_reply; a permitted submission goes to the
 * caller's `permitted` callback. */
#ifndef FE_SUBMIT_H
#define FE_SUBMIT_H
#include <stdbool.h>
#include <stddef.h>

#include "fe_depcache.h"
#include "fe_http.h"

/* Called when r's caller may submit to the deployment. dep: borrowed from the cache, use it at
 * once (copy what is kept); NULL only when !verified and no cache knows the deployment. rversion:
 * the revocation version the answer holds at (fv_envelope.h), -1 when unverified. */
typedef void (*fe_submit_permitted_fn)(fe_req *r, const fe_dep_info *dep, bool verified,
                                       long long rversion);

/* The lookup's state. It must be the first member of r->state (the lookup casts r->state to it);
 * its owner frees shared_dep (fe_submit_base_clear) with the rest of its state. */
typedef struct fe_submit_base {
    char dep_id[FV_UUID_STRLEN + 1]; /* lower case */
    char perm_key[FE_DEPCACHE_PERM_KEY_MAX];
    char *shared_dep;        /* owned or NULL: the deployment as shared in Redis, between two replies */
    bool ask_pg_after_get;   /* the HGET could not be sent: ask PostgreSQL once the GET returns */
    long long rversion;      /* fe_revoke_version() when PostgreSQL was asked */
    size_t unverified_bytes; /* what an unverified submission counts against the caller's cap */
    fe_submit_permitted_fn permitted;
} fe_submit_base;

/* Starts the lookup for r (r->state's first member is b, dep_id set from path parameter 0). */
void fe_submit_lookup(fe_req *r, fe_submit_base *b, fe_submit_permitted_fn permitted);
void fe_submit_base_clear(fe_submit_base *b);
#endif

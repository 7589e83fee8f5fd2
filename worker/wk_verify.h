/* The re-check of unverified submissions: accepted by a front end while PostgreSQL was down and
 * it could not check the submitter's permission (DESIGN section 2). Before such an entry is
 * written, the worker checks, inside the batch's transaction, that the deployment exists, that
 * the submitter is one of its enumerators, that the deployment is not closed nor its survey
 * archived (quarantined "the deployment is closed" / "the survey is archived": an entry the front
 * end verified before the close was acknowledged under the rule and is stored, wk_store.c), and
 * that the answers pass the form; a refused entry goes to the quarantine table with an audit
 * entry, never into responses. */
#ifndef WK_VERIFY_H
#define WK_VERIFY_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "fv_envelope.h"
#include "wk_store.h"

typedef enum wk_verify_result {
    WK_VERIFY_ACCEPT,     /* write it: *survey_id and *version say against what it was checked */
    WK_VERIFY_QUARANTINE, /* refused: the quarantine row and the audit entry are written */
    WK_VERIFY_STORED,     /* the id is already in responses: nothing to do */
    WK_VERIFY_REJECTED,   /* PostgreSQL refused this entry's data (SQLSTATE 22/23): it is poison */
    WK_VERIFY_FAILED,     /* a query failed otherwise: err says why; the transaction is aborted */
} wk_verify_result;

/* Checks e (borrowed) through st inside the caller's open transaction. */
wk_verify_result wk_verify_entry(wk_store *st, const fv_envelope *e, char survey_id[FV_UUID_STRLEN + 1],
                                 int *version, char *err, size_t errlen);

/* The verified entries of b (only b->entries[only] when only >= 0) that a revocation made
 * invalid after the front end checked them (fv_envelope.h, rversion): one query, inside the
 * caller's open transaction; revoked (b->n slots, caller's) is set true for each. ACCEPT when the
 * query ran, else REJECTED or FAILED with err. */
wk_verify_result wk_verify_revoked(wk_store *st, const wk_batch *b, long only, bool *revoked, char *err,
                                   size_t errlen);
/* Quarantines e, refused by wk_verify_revoked (QUARANTINE, or REJECTED / FAILED with err). */
wk_verify_result wk_verify_quarantine_revoked(wk_store *st, const fv_envelope *e, char *err,
                                              size_t errlen);

#endif

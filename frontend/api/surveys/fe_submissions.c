/* GET /v1/submissions/{id}: what became of a submission of the caller's, by its id: stored,
 * refused (reason id_conflict: the id is held by another response; the refused entry is given
 * back whole), quarantined, or queued (accepted, not yet written: known from the id's claim in
 * Redis, fe_subid.h). PostgreSQL answers first by the rule fv_submission_status_json (migration
 * 007), which reads only the caller's own rows; nothing of the caller's: 404 not_found, the same
 * whether the id is unknown or another user's, so a stranger learns nothing of anyone's
 * submission. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_handlers.h"
#include "fe_pg.h"
#include "fe_subid.h"
#include "fe_verdict.h"
#include "fv_id.h"

static const char sql_submission_status[] = "SELECT fv_submission_status_json($2, $1::uuid)::text";

/* Owned by the request (r->state). */
typedef struct status_req {
    char id[FV_UUID_STRLEN + 1]; /* lower case */
} status_req;

static void claim_looked_up(fe_subid_holder holder, void *arg)
{
    fe_req *r = arg;
    status_req *st = r->state;
    switch (holder) {
    case FE_SUBID_HELD_BY_USER: {
        char body[96];
        int n = snprintf(body, sizeof body, "{\"id\":\"%s\",\"status\":\"queued\"}", st->id);
        fe_reply_text(r, 200, "application/json", body, (size_t)n);
        return;
    }
    case FE_SUBID_NOT_USERS: fe_verdict_reply(r, "hidden", "submission"); return;
    case FE_SUBID_CANNOT_TELL:
        fe_reply_error(r, 503, "queue_unavailable",
                       "whether the submission is queued cannot be told now; retry later");
        return;
    }
}

static void status_read(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    status_req *st = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) == 1 && !PQgetisnull(res->res, 0, 0)) {
        /* a refused entry's answers are sealed (migration 027): opened before they leave */
        fe_verdict_reply_json(r, 200, PQgetvalue(res->res, 0, 0));
        return;
    }
    /* Not written (yet): queued if the caller holds the id's claim. */
    fe_subid_lookup(st->id, r->user->id, claim_looked_up, r);
}

void fe_submissions_get(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "submission")) return;
    status_req *st = calloc(1, sizeof *st);
    if (!st) {
        fe_reply_oom(r);
        return;
    }
    r->state = st;
    r->state_free = free;
    for (int i = 0; i < FV_UUID_STRLEN; i++) st->id[i] = (char)tolower((unsigned char)r->param[0][i]);
    const char *params[] = {st->id, r->user->id};
    fe_pg_query(sql_submission_status, 2, params, status_read, r);
}

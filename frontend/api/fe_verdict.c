/* Access decided in SQL: runs verdict statements and answers by their verdict (fe_verdict.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_verdict.h"

#include "fe_depcache.h"
#include "fe_handlers.h"
#include "fe_revoke.h"
#include "fv_log.h"


/* State of one verdict statement: owned by the request. */
typedef struct access_call {
    int ok_status;
    const char *what;                       /* borrowed string literal */
    char forget_user[FV_UUID_STRLEN + 1];   /* "" unless the statement changed memberships */
} access_call;

const char *fe_verdict_mfa(const fe_req *r)
{
    return r->user && r->user->cred == FE_CRED_SESSION && r->user->mfa ? "true" : "false";
}

const char *fe_verdict_user(const fe_req *r)
{
    return r->user ? r->user->id : NULL;
}

/* Answers an 'invalid:<field>:<why>' verdict. */
static void reply_invalid(fe_req *r, const char *verdict)
{
    char field[64] = "", why[200] = "invalid";
    const char *f = verdict + strlen("invalid:");
    const char *colon = strchr(f, ':');
    size_t n = colon ? (size_t)(colon - f) : strlen(f);
    if (n >= sizeof field) n = sizeof field - 1;
    memcpy(field, f, n);
    field[n] = '\0';
    if (colon) snprintf(why, sizeof why, "%s", colon + 1);
    const char *names[] = {field}, *reasons[] = {why};
    fe_reply_error_fields(r, 422, "validation_failed", "the request is invalid", 1, names, reasons);
}

static void ran(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    access_call *c = r->state;
    if (res->status == FE_PG_SQL && !strcmp(res->sqlstate, "FV409")) {
        /* migration 005's trigger: a concurrent change already removed the other admin */
        fe_reply_error(r, 409, "last_admin", "this would leave the organisation without an administrator");
        return;
    }
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    const char *verdict = PQntuples(p) == 1 && !PQgetisnull(p, 0, 0) ? PQgetvalue(p, 0, 0) : "hidden";
    if (!strcmp(verdict, "ok")) {
        if (c->forget_user[0]) {
            fe_depcache_forget_user_shared(c->forget_user);
            fe_revoke_poll_now();
        }
        if (c->ok_status == 204 || PQnfields(p) < 2 || PQgetisnull(p, 0, 1))
            fe_reply_text(r, c->ok_status, "application/json", NULL, 0);
        else
            fe_reply_text(r, c->ok_status, "application/json", PQgetvalue(p, 0, 1),
                          (size_t)PQgetlength(p, 0, 1));
        return;
    }
    char msg[128];
    if (!strcmp(verdict, "hidden")) {
        snprintf(msg, sizeof msg, "no such %s", c->what);
        fe_reply_error(r, 404, "not_found", msg);
    } else if (!strcmp(verdict, "forbidden")) {
        fe_reply_error(r, 403, "forbidden", "you are not allowed to do this");
    } else if (!strcmp(verdict, "totp_required")) {
        fe_reply_error(r, 403, "totp_required",
                       "this organisation requires its administrators to sign in with a TOTP code");
    } else if (!strcmp(verdict, "last_admin")) {
        fe_reply_error(r, 409, "last_admin", "this would leave the organisation without an administrator");
    } else if (!strcmp(verdict, "version_conflict")) {
        fe_reply_error(r, 409, "version_conflict", "the object has changed since that version");
    } else if (!strcmp(verdict, "no_such_user")) {
        fe_reply_error(r, 404, "no_such_user", "no such user");
    } else if (!strcmp(verdict, "no_such_membership")) {
        fe_reply_error(r, 404, "not_found", "no such membership");
    } else if (!strncmp(verdict, "invalid:", 8)) {
        reply_invalid(r, verdict);
    } else {
        fv_error("req %s: unknown verdict from the database", r->req_id);
        fe_reply_error(r, 500, "internal", "internal error");
    }
}

void fe_verdict_run(fe_req *r, const char *sql, int nparams, const char *const *params, int ok_status,
                   const char *what, const char *forget_user)
{
    access_call *c = calloc(1, sizeof *c);
    if (!c) {
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }
    c->ok_status = ok_status;
    c->what = what;
    if (forget_user) snprintf(c->forget_user, sizeof c->forget_user, "%s", forget_user);
    r->state = c;
    r->state_free = free;
    fe_pg_query(sql, nparams, params, ran, r);
}

bool fe_verdict_page(fe_req *r, bool after_is_int, char limit_text[16], char **after)
{
    char *a = fe_query_param(r, "after"), *l = fe_query_param(r, "limit");
    const char *bad[2], *why[2];
    size_t nbad = 0;
    int limit = fe_list_limit(l);
    if (a) {
        bool ok;
        if (after_is_int) {
            size_t n = strlen(a);
            ok = n >= 1 && n <= 18 && a[0] != '0';
            for (size_t i = 0; ok && i < n; i++) ok = isdigit((unsigned char)a[i]);
        } else {
            ok = fv_id_valid(a);
        }
        if (!ok) bad[nbad] = "after", why[nbad++] = "not a cursor this server returned";
    }
    if (limit < 0) bad[nbad] = "limit", why[nbad++] = FE_LIST_LIMIT_REASON;
    free(l);
    if (nbad) {
        free(a);
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", nbad, bad, why);
        return false;
    }
    snprintf(limit_text, 16, "%d", limit);
    *after = a;
    return true;
}

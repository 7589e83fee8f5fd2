/* Access decided in SQL: runs verdict statements and answers by their verdict (fe_verdict.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_verdict.h"
#include "fe_pii.h"

#include <openssl/crypto.h>

#include "fe_config.h"
#include "fe_depcache.h"
#include "fe_handlers.h"
#include "fe_revoke.h"
#include "fe_workpool.h"
#include "fv_answers.h"
#include "fv_log.h"

/* The reply of every verdict but 'ok' and 'invalid:...'; a NULL message means "no such <what>". */
static const struct verdict_reply {
    const char *verdict;
    int status;
    const char *code;
    const char *message;
} verdict_replies[] = {
    {"hidden", 404, "not_found", NULL},
    {"forbidden", 403, "forbidden", "you are not allowed to do this"},
    {"totp_required", 403, "totp_required",
     "this organisation requires its administrators to sign in with a TOTP code"},
    {"last_admin", 409, "last_admin", "this would leave the organisation without an administrator"},
    {"version_conflict", 409, "version_conflict", "the object has changed since that version"},
    {"conflict", 409, "conflict", "the object changed meanwhile; read it again and retry"},
    {"not_pending", 409, "not_pending", "the response is not waiting for approval"},
    {"not_deleted", 409, "not_deleted", "the object is not deleted: there is nothing to restore"},
    {"key_revoked", 409, "key_revoked", "the API key is revoked; it cannot be reinstated"},
    {"too_many_keys", 409, "too_many_keys",
     "you hold 100 API keys that are not revoked; revoke one before creating another"},
    {"no_such_user", 404, "no_such_user", "no such user"},
    {"no_such_org", 404, "org_not_found", "no such organisation, or you are not a member of it"},
    {"no_such_membership", 404, "not_found", "no such membership"},
    /* management (migration 010) */
    {"no_such_grant", 404, "not_found", "no such grant"},
    {"deployment_closed", 409, "deployment_closed", "the deployment is closed"},
    {"survey_archived", 409, "survey_archived", "the survey is archived"},
    {"responses_pending", 409, "responses_pending",
     "responses are pending at an approval stage this change removes; decide them first"},
    /* invitations (fe_invitations.c, fe_invitations_me.c) */
    {"not_a_member", 409, "not_a_member",
     "this user is not a member of the organisation: invite them (POST /v1/orgs/{org}/invitations)"},
    {"too_many_invitations", 409, "too_many_invitations",
     "the organisation has the most pending invitations allowed; withdraw some or wait until they expire"},
    {"invitation_used", 409, "invitation_used", "this invitation was accepted already"},
    {"invitation_withdrawn", 409, "invitation_withdrawn", "this invitation was withdrawn"},
    {"invitation_declined", 409, "invitation_declined", "this invitation was declined"},
    {"invitation_expired", 409, "invitation_expired", "this invitation has expired"},
    {"wrong_invitation_code", 403, "wrong_invitation_code",
     "the invitation code is missing or wrong (ask the organisation's administrator for it)"},
    /* exports (fe_exports.c) */
    {"export_running", 409, "export_running",
     "an export of this organisation is being built already; wait for its job to end"},
    {"export_not_ready", 409, "export_not_ready",
     "this export is not ready: see its job (GET /v1/jobs/{id}); a failed one has no file"},
    {"export_expired", 410, "export_expired", "this export has expired and its file was deleted"},
    {"export_withdrawn", 410, "export_withdrawn",
     "this export was withdrawn and its file deleted: a purge or an erasure in the organisation "
     "made its contents out of date (start a new export)"},
};

/* How an 'ok' is answered. */
typedef enum {
    CALL_REPLY, /* ok_status with column 1 */
    CALL_LIST,  /* {"items": column 1, "next": the cursor of column 2} */
} call_kind;

/* State of one verdict statement: owned by the request. */
typedef struct verdict_call {
    call_kind kind;
    int ok_status;
    fe_page_kind page_kind;
    const char *what;                     /* borrowed string literal */
    char forget_user[FV_UUID_STRLEN + 1]; /* "" unless the statement changed memberships */
    bool revoking;                        /* it may have written a deployment or survey revocation */
    char forget_dep[FV_UUID_STRLEN + 1];  /* "" or the deployment it changed */
    fe_work *work;                        /* the finishing job while it runs (finish_start) */
    bool more;                            /* a list: another page follows, its cursor in next */
    char next[FE_PAGE_CURSOR_MAX + 1];
    bool pii; /* the answer may hold sealed names and emails (fv_pii_json): opened (fe_pii_json) */
} verdict_call;

static void verdict_call_free(void *p)
{
    verdict_call *c = p;
    if (c && c->work) fe_work_detach(c->work);
    free(c);
}

const char *fe_verdict_mfa(const fe_req *r)
{
    return r->user && r->user->cred == FE_CRED_SESSION && r->user->mfa ? "true" : "false";
}

const char *fe_verdict_user(const fe_req *r)
{
    return r->user ? r->user->id : NULL;
}

/* Answers an 'invalid:<field>:<why>' verdict (code validation_failed), or a
 * 'principal_not_member:<field>' one (code principal_not_member). */
static void reply_invalid(fe_req *r, const char *verdict)
{
    bool not_member = !strncmp(verdict, "principal_not_member:", 21);
    if (not_member) {
        const char *names[] = {verdict + 21},
                   *reasons[] = {"names a user who is not a member of the organisation"};
        fe_reply_error_fields(
            r, 422, "principal_not_member",
            "a user named as a principal must be a member of the survey's organisation", 1, names,
            reasons);
        return;
    }
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

void fe_verdict_reply(fe_req *r, const char *verdict, const char *what)
{
    if (!strncmp(verdict, "invalid:", 8) || !strncmp(verdict, "principal_not_member:", 21)) {
        reply_invalid(r, verdict);
        return;
    }
    for (size_t i = 0; i < sizeof verdict_replies / sizeof verdict_replies[0]; i++) {
        const struct verdict_reply *v = &verdict_replies[i];
        if (strcmp(verdict, v->verdict)) continue;
        char msg[128];
        if (!v->message) snprintf(msg, sizeof msg, "no such %s", what);
        fe_reply_error(r, v->status, v->code, v->message ? v->message : msg);
        return;
    }
    fv_error("req %s: unknown verdict from the database", r->req_id);
    fe_reply_error(r, 500, "internal", "internal error");
}

bool fe_verdict_id(fe_req *r, int i, const char *what)
{
    if (fv_id_valid(r->param[i])) return true;
    fe_verdict_reply(r, "hidden", what);
    return false;
}

const char *fe_verdict_answer(fe_req *r, const fe_pg_result *res, const char *what)
{
    if (res->status == FE_PG_SQL && !strcmp(res->sqlstate, "FV409")) {
        /* migration 005's trigger: a concurrent change already removed the other admin */
        fe_verdict_reply(r, "last_admin", what);
        return NULL;
    }
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return NULL;
    }
    PGresult *p = res->res;
    const char *verdict = PQntuples(p) == 1 && !PQgetisnull(p, 0, 0) ? PQgetvalue(p, 0, 0) : "hidden";
    if (strcmp(verdict, "ok")) {
        fe_verdict_reply(r, verdict, what);
        return NULL;
    }
    return PQnfields(p) < 2 ? "" : PQgetvalue(p, 0, 1); /* "" for NULL too */
}

/* The cursor of an 'ok' list's next page (column 2) into c; false (r answered 500) when the
 * sort key is not one. */
static bool list_cursor(fe_req *r, verdict_call *c, PGresult *p)
{
    c->more = PQnfields(p) > 2 && !PQgetisnull(p, 0, 2);
    if (c->more && !fe_page_encode(c->page_kind, PQgetvalue(p, 0, 2), c->next, sizeof c->next)) {
        fv_error("req %s: the list's sort key is not a cursor", r->req_id);
        fe_reply_error(r, 500, "internal", "internal error");
        return false;
    }
    return true;
}

/* Answers an 'ok' list: the items and the cursor list_cursor kept. */
static void reply_list(fe_req *r, const verdict_call *c, const char *items, size_t len)
{
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "items");
    fv_jgen_raw(j, items, len);
    fv_jgen_key(j, "next");
    fv_jgen_str(j, c->more ? c->next : NULL);
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}

/* The reply of an 'ok' once its body is final. */
static void reply_ok(fe_req *r, verdict_call *c, const char *body, size_t len)
{
    if (c->kind == CALL_LIST) {
        reply_list(r, c, body, len);
        return;
    }
    if (c->forget_user[0]) fe_depcache_forget_user_shared(c->forget_user);
    if (c->forget_dep[0]) fe_depcache_forget_deployment(c->forget_dep);
    if (c->forget_user[0] || c->revoking) fe_revoke_poll_now();
    fe_reply_text(r, c->ok_status, "application/json", c->ok_status == 204 ? NULL : body,
                  c->ok_status == 204 ? 0 : len);
}

/* ---- finishing a body that carries responses (fv_answers.h: their "_fv" hints) ----
 * Opening and masking the answers is CPU work proportional to the page: a pool thread does it
 * (FE_WORK_BULK, as OpenRosa parsing), with its own ring of the data keys it unwraps. */
typedef struct finish_job {
    char *in, *out; /* owned: the body as SQL wrote it; the finished one (NULL: failed) */
    size_t inlen, outlen;
    char why[512];
} finish_job;

static void finish_run(void *p)
{
    finish_job *f = p;
    fv_dkring *ring = fv_dkring_new(&fe_keys, 8); /* owned; fe_keys never changes in a child */
    if (!ring) snprintf(f->why, sizeof f->why, "out of memory");
    else f->out = fv_answers_finish(f->in, f->inlen, ring, &f->outlen, f->why, sizeof f->why);
    fv_dkring_free(ring);
}

static void finish_free(void *p)
{
    finish_job *f = p;
    OPENSSL_cleanse(f->in, f->inlen);
    free(f->in);
    fv_answers_free_text(f->out);
    free(f);
}

static void finish_done(void *p, bool ran, void *owner)
{
    finish_job *f = p;
    fe_req *r = owner;
    verdict_call *c = r->state;
    c->work = NULL;
    if (!ran) {
        fe_reply_error(r, 503, "overloaded", "shutting down; retry shortly");
    } else if (!f->out) {
        fv_error("req %s: %s", r->req_id, f->why);
        char msg[600];
        snprintf(msg, sizeof msg, "a stored response does not open: %s", f->why);
        fe_reply_error(r, 500, "internal", msg);
    } else {
        reply_ok(r, c, f->out, f->outlen);
    }
}

/* Hands body[len] (borrowed) to a pool thread to be finished; answers 503 when the pool is full. */
static void finish_start(fe_req *r, verdict_call *c, const char *body, size_t len)
{
    finish_job *f = calloc(1, sizeof *f);
    if (f) f->in = malloc(len + 1);
    if (!f || !f->in) {
        free(f);
        fe_reply_oom(r);
        return;
    }
    memcpy(f->in, body, len);
    f->in[len] = '\0';
    f->inlen = len;
    c->work = fe_work_submit_bulk(f, finish_run, finish_done, finish_free, r);
    if (!c->work) {
        finish_free(f);
        fe_reply_error(r, 503, "overloaded", "too many replies being prepared; retry shortly");
    }
}

static void ran(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    verdict_call *c = r->state;
    const char *body = fe_verdict_answer(r, res, c->what);
    if (!body) return;
    char *opened = NULL; /* owned here: names and emails opened (fe_pii_json) */
    if (c->pii && !(body = opened = fe_pii_json(r, body))) return;
    if (c->kind == CALL_LIST && !list_cursor(r, c, res->res)) {
        free(opened);
        return;
    }
    size_t len = strlen(body);
    if (memmem(body, len, "\"_fv\"", 5)) finish_start(r, c, body, len);
    else reply_ok(r, c, body, len);
    free(opened);
}

void fe_verdict_reply_json(fe_req *r, int status, const char *body)
{
    size_t len = strlen(body);
    if (!memmem(body, len, "\"_fv\"", 5)) {
        fe_reply_text(r, status, "application/json", body, len);
        return;
    }
    verdict_call *c = calloc(1, sizeof *c);
    if (!c) {
        fe_reply_oom(r);
        return;
    }
    c->kind = CALL_REPLY;
    c->ok_status = status;
    c->what = "response";
    /* the handler is done with its own state: the finishing job's takes its place */
    if (r->state && r->state_free) r->state_free(r->state);
    r->state = c;
    r->state_free = verdict_call_free;
    finish_start(r, c, body, len);
}

/* Runs sql for a call like tmpl (copied into r's state); answers 503 when out of memory. */
static void start(fe_req *r, const verdict_call *tmpl, const char *sql, int nparams,
                  const char *const *params)
{
    verdict_call *c = malloc(sizeof *c);
    if (!c) {
        fe_reply_oom(r);
        return;
    }
    *c = *tmpl;
    r->state = c;
    r->state_free = verdict_call_free;
    fe_pg_query(sql, nparams, params, ran, r);
}

void fe_verdict_run(fe_req *r, const char *sql, int nparams, const char *const *params, int ok_status,
                    const char *what, const char *forget_user)
{
    verdict_call c = {.kind = CALL_REPLY, .ok_status = ok_status, .what = what};
    if (forget_user) snprintf(c.forget_user, sizeof c.forget_user, "%s", forget_user);
    start(r, &c, sql, nparams, params);
}

void fe_verdict_run_revoking(fe_req *r, const char *sql, int nparams, const char *const *params,
                             int ok_status, const char *what, const char *forget_deployment)
{
    verdict_call c = {.kind = CALL_REPLY, .ok_status = ok_status, .what = what, .revoking = true};
    if (forget_deployment) snprintf(c.forget_dep, sizeof c.forget_dep, "%s", forget_deployment);
    start(r, &c, sql, nparams, params);
}

static void page_list(fe_req *r, fe_page_kind kind, const char *sql, int nparams,
                      const char *const *params, const char *what, bool pii);

void fe_verdict_page_list(fe_req *r, fe_page_kind kind, const char *sql, int nparams,
                          const char *const *params, const char *what)
{
    page_list(r, kind, sql, nparams, params, what, false);
}

void fe_verdict_page_list_pii(fe_req *r, fe_page_kind kind, const char *sql, int nparams,
                              const char *const *params, const char *what)
{
    page_list(r, kind, sql, nparams, params, what, true);
}

static void page_list(fe_req *r, fe_page_kind kind, const char *sql, int nparams,
                      const char *const *params, const char *what, bool pii)
{
    fe_page pg;
    const char *all[FE_VERDICT_LIST_PARAMS + 3];
    if (nparams > FE_VERDICT_LIST_PARAMS) {
        fv_error("req %s: a list with too many parameters", r->req_id);
        fe_reply_error(r, 500, "internal", "internal error");
        return;
    }
    if (!fe_page_read(r, kind, &pg)) return;
    int n = 0;
    for (; n < nparams; n++) all[n] = params[n];
    all[n++] = fe_page_after(&pg);
    if (kind == FE_PAGE_TS_UUID) all[n++] = fe_page_after_id(&pg);
    all[n++] = pg.limit_text;
    verdict_call c = {
        .kind = CALL_LIST, .ok_status = 200, .page_kind = pg.kind, .what = what, .pii = pii};
    start(r, &c, sql, n, all);
}

void fe_verdict_get(fe_req *r, const char *sql, const char *what)
{
    if (!fe_verdict_id(r, 0, what)) return;
    const char *params[] = {r->param[0], fe_verdict_user(r)};
    fe_verdict_run(r, sql, 2, params, 200, what, NULL);
}

void fe_verdict_list(fe_req *r, const fe_page *pg, const char *sql, int nparams,
                     const char *const *params, const char *what)
{
    verdict_call c = {.kind = CALL_LIST, .ok_status = 200, .page_kind = pg->kind, .what = what};
    start(r, &c, sql, nparams, params);
}

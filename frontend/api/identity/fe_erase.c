/* Personal data (DESIGN section 3, docs/security.md "Personal data and erasure"):
 * GET /v1/me/personal-data, everything held about the caller as one JSON document (the long
 * sections paged: ?section=<name>&after=<cursor> continues one), and POST /v1/me/erase, the
 * withdrawal of consent: a session and the password again (and the TOTP code when it is on),
 * then migration 014's fv_erase_account (028's) in one statement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_config.h"
#include "fe_handlers.h"
#include "fe_pii.h"
#include "fe_reauth.h"
#include "fe_revoke.h"
#include "fe_verdict.h"
#include "fv_id.h"

/* Items per page of each long section (sessions, audit, submissions with their answers, refused
 * and quarantined submissions): with the body cap of a submission this bounds the reply. */
#define PD_PAGE 100
#define PD_PAGE_S "100"

static const char sql_document[] = "SELECT fv_personal_data($1::uuid, " PD_PAGE_S ")::text";
static const char sql_section[] = "SELECT fv_personal_data_section($1::uuid, $2, $3, " PD_PAGE_S
                                  ")::text "
                                  "FROM users WHERE id = $1::uuid AND disabled_at IS NULL";

static void document_read(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1 || PQgetisnull(res->res, 0, 0)) {
        fe_reply_error(r, 404, "not_found", "this account no longer exists");
        return;
    }
    char *doc = fe_pii_json(r, PQgetvalue(res->res, 0, 0)); /* owned here: the account opened */
    if (!doc) return;
    /* the submissions' answers are sealed (migration 027): opened before they leave (copied) */
    fe_verdict_reply_json(r, 200, doc);
    free(doc);
}

/* The sections one can page through, and whether the cursor is a number (else an id). */
static const struct {
    const char *name;
    bool numeric;
} sections[] = {{"sessions", false},
                {"audit", true},
                {"submissions", false},
                {"refused_submissions", true},
                {"quarantined_submissions", false}};

static bool cursor_ok(const char *after, bool numeric)
{
    if (!numeric) return fv_id_valid(after);
    size_t n = strlen(after);
    if (n == 0 || n > 18) return false;
    for (size_t i = 0; i < n; i++)
        if (after[i] < '0' || after[i] > '9') return false;
    return true;
}

void fe_personal_data_get(fe_req *r)
{
    char *section = fe_query_param(r, "section"), *after = fe_query_param(r, "after");
    if (!section) {
        const char *params[] = {r->user->id};
        if (after) {
            const char *f[] = {"after"}, *w[] = {"only with section"};
            fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", 1, f, w);
        } else {
            fe_pg_query(sql_document, 1, params, document_read, r);
        }
        free(after);
        return;
    }
    int which = -1;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (!strcmp(section, sections[i].name)) which = (int)i;
    const char *f[1], *w[1];
    size_t nbad = 0;
    if (which < 0)
        f[0] = "section",
        w[nbad++] = "one of sessions, audit, submissions, refused_submissions, quarantined_submissions";
    else if (after && !cursor_ok(after, sections[which].numeric))
        f[0] = "after", w[nbad++] = "the next cursor of the previous page";
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", nbad, f, w);
    } else {
        const char *params[] = {r->user->id, sections[which].name, after};
        fe_pg_query(sql_section, 3, params, document_read, r);
    }
    free(section);
    free(after);
}

/* ---- POST /v1/me/erase ---- */

static const char sql_erase[] =
    "SELECT (e - 'verdict')::text, e->>'verdict' "
    "FROM fv_erase_account($1::uuid, NULLIF($2, '')::inet, $3::int, $4::int, $5, $6, $7::bytea[]) e";
/* The account's email and name, to be found and replaced where they were copied (migration 028:
 * fv_erase_account cannot open them). */
static const char sql_erase_whom[] =
    "SELECT fv_pii_cell(email, email_sealed), fv_pii_cell(name, name_sealed) FROM users "
    "WHERE id = $1 AND disabled_at IS NULL";

static void erased(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status == FE_PG_SQL && !strcmp(res->sqlstate, "FV409")) {
        fe_verdict_reply(r, "last_admin", "organisation");
        return;
    }
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    const char *verdict = PQntuples(res->res) == 1 ? PQgetvalue(res->res, 0, 1) : "hidden";
    if (strcmp(verdict, "ok") != 0) {
        fe_verdict_reply(r, verdict, "account");
        return;
    }
    fe_revoke_poll_now();
    const char *body = PQgetvalue(res->res, 0, 0);
    fe_reply_text(r, 200, "application/json", body, strlen(body));
}

static void erase_whom(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_verdict_reply(r, "hidden", "account");
        return;
    }
    char *email = NULL, *name = NULL; /* owned here */
    if (!fe_pii_read(r, res->res, 0, 0, "users", r->user->id, "email", &email) ||
        !fe_pii_read(r, res->res, 0, 1, "users", r->user->id, "name", &name)) {
        free(email);
        return;
    }
    char *hmacs = email ? fe_pii_hmacs(email) : NULL; /* owned here */
    if (!hmacs || !name) {
        free(email);
        free(name);
        free(hmacs);
        fe_reply_oom(r);
        return;
    }
    char ttl[16], key_ttl[16];
    snprintf(ttl, sizeof ttl, "%d", fe_cfg.session_ttl_s);
    /* a key's revocation row lives as long as any cache may hold the key (as fe_apikeys.c's) */
    snprintf(key_ttl, sizeof key_ttl, "%d", fe_cfg.cache_stale_s + fe_cfg.redis_cache_ttl_s);
    const char *params[] = {r->user->id, r->address, ttl, key_ttl, email, name, hmacs};
    fe_pg_query(sql_erase, 7, params, erased, r);
    free(email);
    free(name);
    free(hmacs);
}

static void erase_go(fe_req *r)
{
    const char *params[] = {r->user->id};
    fe_pg_query(sql_erase_whom, 1, params, erase_whom, r);
}

void fe_me_erase(fe_req *r)
{
    if (r->user->cred != FE_CRED_SESSION) {
        fe_reply_error(r, 403, "session_required",
                       "sign in with your password (POST /v1/auth/login) to erase your account");
        return;
    }
    fe_reauth(r, true, erase_go);
}

/* Authentication of a request's bearer API key. */
#include "fe_auth.h"

#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "fe_cache.h"
#include "fe_config.h"
#include "fv_crypto.h"
#include "fv_log.h"

#define FE_AUTH_NEGATIVE_TTL_S 5

/* A cached lookup: user NULL means "no such key" (negative entry). Owned by the cache. */
typedef struct auth_entry {
    fe_user *user;
} auth_entry;

static fe_cache *auth_cache;

static time_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

void fe_auth_user_free(fe_user *u)
{
    if (!u) return;
    free(u->email);
    free(u->name);
    free(u);
}

/* A copy of u the caller owns, or NULL when out of memory. */
static fe_user *user_dup(const fe_user *u)
{
    fe_user *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    memcpy(c->id, u->id, sizeof c->id);
    c->email = strdup(u->email);
    c->name = strdup(u->name);
    c->is_admin = u->is_admin;
    if (!c->email || !c->name) {
        fe_auth_user_free(c);
        return NULL;
    }
    return c;
}

static void entry_free(void *p)
{
    auth_entry *e = p;
    fe_auth_user_free(e->user);
    free(e);
}

int fe_auth_init(void)
{
    auth_cache = fe_cache_new(100000, entry_free);
    return auth_cache ? 0 : -1;
}

void fe_auth_shutdown(void)
{
    fe_cache_free(auth_cache);
    auth_cache = NULL;
}

static void unauthorized(fe_req *r, const char *code, const char *message)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "WWW-Authenticate",
                      "Bearer realm=\"fieldvault\"");
    fe_reply_error(r, 401, code, message);
}

/* State of one lookup in flight: owned by the request (r->state). */
typedef struct auth_lookup {
    char hash[FV_SHA256_HEXLEN + 1];
    fe_handler next;
} auth_lookup;

static const char sql_key_lookup[] =
    "SELECT u.id, u.email, u.name, u.is_admin FROM api_keys k JOIN users u ON u.id = k.user_id "
    "WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND k.suspended_at IS NULL "
    "AND u.disabled_at IS NULL";

static void lookup_done(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    auth_lookup *l = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    auth_entry *e = calloc(1, sizeof *e);
    if (!e) {
        fe_reply_error(r, 503, "overloaded", "out of memory; retry later");
        return;
    }
    if (PQntuples(res->res) == 1) {
        fe_user u = {0};
        snprintf(u.id, sizeof u.id, "%s", PQgetvalue(res->res, 0, 0));
        u.email = PQgetvalue(res->res, 0, 1);
        u.name = PQgetvalue(res->res, 0, 2);
        u.is_admin = PQgetvalue(res->res, 0, 3)[0] == 't';
        e->user = user_dup(&u);
        r->user = user_dup(&u);
    }
    fe_cache_put(auth_cache, l->hash, e, now_s(),
                 e->user ? fe_cfg.auth_cache_ttl_s : FE_AUTH_NEGATIVE_TTL_S);
    fe_handler next = l->next;
    free(r->state);
    r->state = NULL;
    r->state_free = NULL;
    if (!r->user) {
        unauthorized(r, "invalid_token", "the API key is not valid");
        return;
    }
    r->phase = FE_REQ_HANDLER;
    next(r);
}

void fe_auth_authenticate(fe_req *r, fe_handler next)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Authorization");
    if (!h) {
        unauthorized(r, "unauthenticated", "send Authorization: Bearer <API key>");
        return;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        unauthorized(r, "invalid_token", "the Authorization header must be 'Bearer <API key>'");
        return;
    }
    const char *key = h + 7;
    while (*key == ' ') key++;
    if (!fv_api_key_well_formed(key)) {
        unauthorized(r, "invalid_token", "the API key is not valid");
        return;
    }
    auth_lookup *l = calloc(1, sizeof *l);
    if (!l) {
        fe_reply_error(r, 503, "overloaded", "out of memory; retry later");
        return;
    }
    /* Only the digest is kept, compared and logged; the key itself goes nowhere. */
    fv_sha256_hex(key, strlen(key), l->hash);
    auth_entry *e = fe_cache_get(auth_cache, l->hash, now_s());
    if (e) {
        free(l);
        if (!e->user) {
            unauthorized(r, "invalid_token", "the API key is not valid");
            return;
        }
        r->user = user_dup(e->user);
        if (!r->user) {
            fe_reply_error(r, 503, "overloaded", "out of memory; retry later");
            return;
        }
        r->phase = FE_REQ_HANDLER;
        next(r);
        return;
    }
    l->next = next;
    r->state = l;
    r->state_free = free;
    const char *params[] = {l->hash};
    fe_pg_query(sql_key_lookup, 1, params, lookup_done, r);
}

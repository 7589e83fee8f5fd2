/* A front-end child's data keys (see fe_datakeys.h). */
#include "fe_datakeys.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_config.h"
#include "fe_pg.h"

#define RING_KEYS 1024

static fv_dkring *ring; /* owned by the child: lives as long as it */

static fv_dkring *the_ring(void)
{
    if (!ring) ring = fv_dkring_new(&fe_keys, RING_KEYS);
    return ring;
}

fv_dkring *fe_datakeys_ring(void)
{
    return the_ring();
}

/* "global" (FE_DATAKEYS_GLOBAL: users' own data), else "org:<org>". */
static void scope_of(const char *org, char scope[FV_DATAKEY_SCOPE_MAX])
{
    if (!strcmp(org, FE_DATAKEYS_GLOBAL)) snprintf(scope, FV_DATAKEY_SCOPE_MAX, "global");
    else snprintf(scope, FV_DATAKEY_SCOPE_MAX, "org:%s", org);
}

const unsigned char *fe_datakeys_get(const char *org, int version, const char *wrapped, char *err,
                                     size_t errlen)
{
    fv_dkring *r = the_ring();
    if (!r) {
        snprintf(err, errlen, "data keys: out of memory");
        return NULL;
    }
    char scope[FV_DATAKEY_SCOPE_MAX];
    scope_of(org, scope);
    const unsigned char *k = fv_dkring_get(r, scope, version);
    if (k) return k;
    if (!wrapped) {
        snprintf(err, errlen, "data key %s v%d: unknown", scope, version);
        return NULL;
    }
    return fv_dkring_put(r, scope, version, wrapped, err, errlen);
}

unsigned char *fe_datakeys_open(const char *org, const char *wrapped, const char *aad,
                                const unsigned char *sealed, size_t len, size_t *outlen, char *err,
                                size_t errlen)
{
    int v = fv_dk_version(sealed, len);
    unsigned char *out = malloc(len + 1); /* the caller's */
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (v < 0) { /* in clear, from before migration 026 */
        memcpy(out, sealed, len);
        out[len] = '\0';
        *outlen = len;
        return out;
    }
    const unsigned char *key = fe_datakeys_get(org, v, wrapped, err, errlen);
    long n = key ? fv_dk_open(key, aad, sealed, len, out) : -1;
    if (n < 0) {
        if (key) snprintf(err, errlen, "does not open under its data key (v%d): tampered or moved", v);
        free(out);
        return NULL;
    }
    out[n] = '\0';
    *outlen = (size_t)n;
    return out;
}

/* ---- the current key, made when the org has none ---- */

static const char sql_current[] =
    "SELECT version, wrapped FROM data_keys WHERE scope = $1 ORDER BY version DESC LIMIT 1";
static const char sql_create[] =
    "INSERT INTO data_keys (scope, version, wrapped) VALUES ($1, 1, $2) ON CONFLICT DO NOTHING";

typedef struct cur_req {
    char org[40];
    char scope[FV_DATAKEY_SCOPE_MAX];
    bool created; /* version 1 was inserted (or another program's won): read it once more */
    fe_datakeys_cb cb;
    void *arg;
} cur_req;

static void current_read(const fe_pg_result *res, void *arg);

static void created(const fe_pg_result *res, void *arg)
{
    cur_req *c = arg;
    if (res->status != FE_PG_OK) {
        c->cb(NULL, 0, "data key: could not store a new one (PostgreSQL)", c->arg);
        free(c);
        return;
    }
    c->created = true;
    const char *params[] = {c->scope};
    fe_pg_query(sql_current, 1, params, current_read, c);
}

static void current_read(const fe_pg_result *res, void *arg)
{
    cur_req *c = arg; /* owned here: freed once cb was called */
    char err[256];
    if (res->status != FE_PG_OK) {
        c->cb(NULL, 0, "data key: PostgreSQL unavailable", c->arg);
        free(c);
        return;
    }
    if (PQntuples(res->res) == 1) {
        int v = atoi(PQgetvalue(res->res, 0, 0));
        const unsigned char *k = fe_datakeys_get(c->org, v, PQgetvalue(res->res, 0, 1), err, sizeof err);
        c->cb(k, v, k ? NULL : err, c->arg);
        free(c);
        return;
    }
    if (c->created) {
        c->cb(NULL, 0, "data key: none after creating one", c->arg);
        free(c);
        return;
    }
    unsigned char key[FV_DATAKEY_BYTES];
    char *wrapped = the_ring() && fv_datakey_new(key) == 0
                        ? fv_datakey_wrap(fv_dkring_keys(the_ring()), c->scope, 1, key)
                        : NULL; /* owned; fe_pg_query copies it */
    OPENSSL_cleanse(key, sizeof key);
    if (!wrapped) {
        c->cb(NULL, 0, "data key: cannot make one (random numbers or memory)", c->arg);
        free(c);
        return;
    }
    const char *params[] = {c->scope, wrapped};
    fe_pg_query(sql_create, 2, params, created, c);
    free(wrapped);
}

void fe_datakeys_current(const char *org, fe_datakeys_cb cb, void *arg)
{
    cur_req *c = calloc(1, sizeof *c);
    if (!c) {
        cb(NULL, 0, "out of memory", arg); /* the one call before returning (fe_datakeys.h) */
        return;
    }
    snprintf(c->org, sizeof c->org, "%s", org);
    scope_of(org, c->scope);
    c->cb = cb;
    c->arg = arg;
    const char *params[] = {c->scope};
    fe_pg_query(sql_current, 1, params, current_read, c);
}

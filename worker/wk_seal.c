/* Sealing OpenRosa XML and attachments under the organisation's data key (see wk_seal.h). */
#include "wk_seal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fv_log.h"
#include "fv_orseal.h"
#include "fv_pgutil.h"
#include "fv_pii.h"

#define RING_KEYS 1024

static fv_dkring *ring; /* owned: wk_seal_free */

int wk_seal_init(const fv_keyset *ks)
{
    ring = fv_dkring_new(ks, RING_KEYS);
    return ring ? 0 : -1;
}

void wk_seal_free(void)
{
    fv_dkring_free(ring);
    ring = NULL;
}

fv_dkring *wk_seal_ring(void)
{
    return ring;
}

/* The org's highest data key version and its wrapped text (no row: the org has none yet). */
static const char sql_current[] =
    "SELECT version, wrapped FROM data_keys WHERE scope = $1 ORDER BY version DESC LIMIT 1";
static const char sql_create[] =
    "INSERT INTO data_keys (scope, version, wrapped) VALUES ($1, 1, $2) ON CONFLICT DO NOTHING";

static const unsigned char *scope_key(wk_store *st, const char *scope, int *version, char *err,
                                      size_t errlen);

const unsigned char *wk_seal_org_key(wk_store *st, const char *org, int *version, char *err,
                                     size_t errlen)
{
    char scope[FV_DATAKEY_SCOPE_MAX];
    snprintf(scope, sizeof scope, "org:%s", org);
    return scope_key(st, scope, version, err, errlen);
}

/* The current key of scope ("org:<uuid>" or "global"), made when there is none. */
static const unsigned char *scope_key(wk_store *st, const char *scope, int *version, char *err,
                                      size_t errlen)
{
    if (!ring) {
        snprintf(err, errlen, "data keys: not initialised");
        return NULL;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        const char *params[] = {scope};
        PGresult *res = wk_store_exec(st, sql_current, 1, params);
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
            fv_pgutil_error(st->conn, res, err, errlen);
            PQclear(res);
            return NULL;
        }
        if (PQntuples(res) == 1) {
            int v = atoi(PQgetvalue(res, 0, 0));
            const unsigned char *k = fv_dkring_get(ring, scope, v);
            if (!k) k = fv_dkring_put(ring, scope, v, PQgetvalue(res, 0, 1), err, errlen);
            PQclear(res);
            if (k) *version = v;
            return k;
        }
        PQclear(res);
        if (attempt == 1) break;
        /* None yet: make version 1. Another program may make it at the same time; the row that
         * wins is read back (ON CONFLICT waits for the other transaction). */
        unsigned char key[FV_DATAKEY_BYTES];
        char *wrapped = fv_datakey_new(key) == 0 ? fv_datakey_wrap(fv_dkring_keys(ring), scope, 1, key)
                                                 : NULL; /* owned */
        OPENSSL_cleanse(key, sizeof key);
        if (!wrapped) {
            snprintf(err, errlen, "data key for %s: cannot make one (random numbers or memory)", scope);
            return NULL;
        }
        const char *cp[] = {scope, wrapped};
        res = wk_store_exec(st, sql_create, 2, cp);
        free(wrapped);
        bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok) fv_pgutil_error(st->conn, res, err, errlen);
        PQclear(res);
        if (!ok) return NULL;
    }
    snprintf(err, errlen, "data key for %s: none after creating one", scope);
    return NULL;
}

static const char sql_org_of[] =
    "SELECT s.org_id::text FROM deployments d JOIN surveys s ON s.id = d.survey_id WHERE d.id = $1::uuid";

char *wk_seal_openrosa(wk_store *st, const char *response_id, const char *deployment,
                       const char *openrosa, size_t len, char *err, size_t errlen)
{
    char org[40];
    const char *params[] = {deployment};
    PGresult *res = wk_store_exec(st, sql_org_of, 1, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        fv_pgutil_error(st->conn, res, err, errlen);
        PQclear(res);
        return NULL;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        /* an unknown deployment: the INSERT fails its foreign key and says so */
        return strndup(openrosa, len);
    }
    snprintf(org, sizeof org, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    int version = 0;
    const unsigned char *key = wk_seal_org_key(st, org, &version, err, errlen);
    if (!key) return NULL;
    return fv_orseal_field(key, version, org, response_id, openrosa, len, err, errlen);
}

/* ---- the re-seal sweep ---- */

/* Values to seal again: in clear (stored before migration 026), or under a data key version older
 * than their org's highest (a rotated data key, fvctl rotate-data-key). Columns: what (x: XML,
 * b: blob), the row's two key columns, the org, the version (NULL: clear), the value, its
 * wrapped key. Both halves use the partial and the (org_id, key_version) indexes of 026. */
static const char sql_stale[] =
    "WITH cur AS (SELECT substr(scope, 5)::uuid AS org, max(version) AS v FROM data_keys "
    "             WHERE scope LIKE 'org:%' GROUP BY scope HAVING count(*) > 1) "
    "(SELECT 'x', x.response_id::text, encode(x.sha256, 'hex'), x.org_id::text, x.key_version, x.body, "
    "        fv_dk_wrapped(x.org_id, x.key_version) FROM response_xml x WHERE x.key_version IS NULL "
    " AND x.seal_error IS NULL LIMIT $1::int) "
    "UNION ALL "
    "(SELECT 'x', x.response_id::text, encode(x.sha256, 'hex'), x.org_id::text, x.key_version, x.body, "
    "        fv_dk_wrapped(x.org_id, x.key_version) FROM cur JOIN response_xml x "
    "        ON x.org_id = cur.org AND x.key_version < cur.v WHERE x.seal_error IS NULL LIMIT $1::int) "
    "UNION ALL "
    "(SELECT 'b', b.org_id::text, encode(b.sha256, 'hex'), b.org_id::text, b.key_version, b.data, "
    "        fv_dk_wrapped(b.org_id, b.key_version) FROM attachment_blobs b WHERE b.key_version IS NULL "
    " AND b.seal_error IS NULL LIMIT $1::int) "
    "UNION ALL "
    "(SELECT 'b', b.org_id::text, encode(b.sha256, 'hex'), b.org_id::text, b.key_version, b.data, "
    "        fv_dk_wrapped(b.org_id, b.key_version) FROM cur JOIN attachment_blobs b "
    "        ON b.org_id = cur.org AND b.key_version < cur.v WHERE b.seal_error IS NULL LIMIT $1::int) "
    "LIMIT $1::int";
/* Compare-and-set: only a row still under the version that was read is replaced. */
static const char sql_reseal_xml[] =
    "UPDATE response_xml SET body = $3, key_version = $4::int "
    "WHERE response_id = $1::uuid AND sha256 = decode($2, 'hex') AND key_version IS NOT DISTINCT FROM $5::int";
static const char sql_reseal_blob[] =
    "UPDATE attachment_blobs SET data = $3, key_version = $4::int "
    "WHERE org_id = $1::uuid AND sha256 = decode($2, 'hex') AND key_version IS NOT DISTINCT FROM $5::int";

/* A value that does not open is marked (seal_error), so the sweep goes on with the others and an
 * operator finds it; only while it still is under the version that was read. */
static const char sql_mark_xml[] =
    "UPDATE response_xml SET seal_error = $3 WHERE response_id = $1::uuid AND sha256 = decode($2, 'hex') "
    "AND key_version IS NOT DISTINCT FROM $4::int";
static const char sql_mark_blob[] =
    "UPDATE attachment_blobs SET seal_error = $3 WHERE org_id = $1::uuid AND sha256 = decode($2, 'hex') "
    "AND key_version IS NOT DISTINCT FROM $4::int";

/* Seals one stale row again. Returns 1 when replaced, 0 when changed meanwhile, -1 on failure
 * (logged, naming the row; never a plaintext byte; a value that does not open is marked). */
static int reseal_row(wk_store *st, const PGresult *res, int row)
{
    bool xml = PQgetvalue(res, row, 0)[0] == 'x';
    const char *id = PQgetvalue(res, row, 1), *sha = PQgetvalue(res, row, 2),
               *org = PQgetvalue(res, row, 3);
    bool clear = PQgetisnull(res, row, 4);
    char err[256], aad[FV_DK_AAD_MAX], scope[FV_DATAKEY_SCOPE_MAX];
    if (xml) fv_dk_aad_xml(id, sha, aad);
    else fv_dk_aad_blob(org, sha, aad);
    size_t slen = 0;
    unsigned char *old = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, 5), &slen);
    unsigned char *pt = old ? malloc(slen + 1) : NULL, *again = NULL; /* owned */
    int rc = -1;
    if (!pt) {
        fv_warn("re-seal: out of memory");
        goto done;
    }
    long n = (long)slen;
    if (clear) {
        memcpy(pt, old, slen);
    } else {
        int v = fv_dk_version(old, slen);
        snprintf(scope, sizeof scope, "org:%s", org);
        const unsigned char *k = fv_dkring_get(ring, scope, v);
        if (!k && !PQgetisnull(res, row, 6))
            k = fv_dkring_put(ring, scope, v, PQgetvalue(res, row, 6), err, sizeof err);
        n = k ? fv_dk_open(k, aad, old, slen, pt) : -1;
        if (n < 0) {
            char why[400];
            snprintf(why, sizeof why, "does not open under data key v%d of org %s (%s)", v, org,
                     k ? "tampered or moved" : err);
            fv_error("re-seal: the %s %s/%s %s; marked (seal_error), left as it is",
                     xml ? "XML of response" : "attachment content of org", id, sha, why);
            const char *mp[] = {id, sha, why, PQgetvalue(res, row, 4)};
            PQclear(wk_store_exec(st, xml ? sql_mark_xml : sql_mark_blob, 4, mp));
            goto done;
        }
    }
    int version = 0;
    const unsigned char *key = wk_seal_org_key(st, org, &version, err, sizeof err);
    again = key ? malloc((size_t)n + FV_DK_OVERHEAD) : NULL;
    if (!again || fv_dk_seal(key, version, aad, pt, (size_t)n, again) != 0) {
        fv_warn("re-seal: %s", key ? "out of memory" : err);
        goto done;
    }
    char vtext[16], oldv[16];
    snprintf(vtext, sizeof vtext, "%d", version);
    if (!clear) snprintf(oldv, sizeof oldv, "%s", PQgetvalue(res, row, 4));
    const char *params[] = {id, sha, (const char *)again, vtext, clear ? NULL : oldv};
    int lengths[] = {0, 0, (int)((size_t)n + FV_DK_OVERHEAD), 0, 0}, formats[] = {0, 0, 1, 0, 0};
    PGresult *u = wk_store_exec_bin(st, xml ? sql_reseal_xml : sql_reseal_blob, 5, params, lengths,
                                    formats);
    if (u && PQresultStatus(u) == PGRES_COMMAND_OK) {
        rc = strcmp(PQcmdTuples(u), "1") == 0 ? 1 : 0;
    } else {
        fv_pgutil_error(st->conn, u, err, sizeof err);
        fv_warn("re-seal: %s", err);
    }
    PQclear(u);
done:
    if (pt) OPENSSL_cleanse(pt, slen);
    free(pt);
    free(again);
    if (old) PQfreemem(old);
    return rc;
}

/* ---- names and emails stored in clear before migration 028 ---- */

/* Users' and invitations' rows still holding an email or name in clear (not an erased account's
 * pseudonym), not marked. Columns: u/i, id, email, name (NULL for an invitation). */
static const char sql_pii_clear[] =
    "(SELECT 'u', id::text, email, name FROM users WHERE (email IS NOT NULL OR name IS NOT NULL) "
    " AND pii_seal_error IS NULL AND NOT (disabled_at IS NOT NULL AND email LIKE '%@erased.invalid') "
    " LIMIT $1::int) "
    "UNION ALL "
    "(SELECT 'i', id::text, email, NULL FROM invitations WHERE email IS NOT NULL "
    " AND email NOT LIKE '%@erased.invalid' AND pii_seal_error IS NULL LIMIT $1::int) "
    "LIMIT $1::int";
/* Compare-and-set on the clear values read. */
static const char sql_pii_user[] =
    "UPDATE users SET email_sealed = $2::bytea, name_sealed = $3::bytea, pii_version = $4::int, "
    "email_hmac = $5::bytea, email_hmac_key = $6, email = NULL, name = NULL "
    "WHERE id = $1::uuid AND email = $7 AND name = $8";
static const char sql_pii_invitation[] =
    "UPDATE invitations SET email_sealed = $2::bytea, pii_version = $3::int, email_hmac = $4::bytea, "
    "email_hmac_key = $5, email = NULL WHERE id = $1::uuid AND email = $6";
static const char sql_pii_mark_user[] = "UPDATE users SET pii_seal_error = $2 WHERE id = $1::uuid";
static const char sql_pii_mark_invitation[] =
    "UPDATE invitations SET pii_seal_error = $2 WHERE id = $1::uuid";

/* Seals one row's clear email (and name). Returns 1 when sealed, 0 when changed meanwhile, -1 on
 * failure (logged by row id, never the value; a refused update marks the row). */
static int pii_seal_row(wk_store *st, const PGresult *res, int row)
{
    bool user = PQgetvalue(res, row, 0)[0] == 'u';
    const char *table = user ? "users" : "invitations", *id = PQgetvalue(res, row, 1);
    if (PQgetisnull(res, row, 2) || (user && PQgetisnull(res, row, 3))) {
        /* half sealed: not a state any program writes */
        const char *mp[] = {id, "email or name in clear beside a sealed one"};
        PQclear(wk_store_exec(st, user ? sql_pii_mark_user : sql_pii_mark_invitation, 2, mp));
        return -1;
    }
    const char *email = PQgetvalue(res, row, 2), *name = user ? PQgetvalue(res, row, 3) : NULL;
    char err[256], aad_e[FV_DK_AAD_MAX], aad_n[FV_DK_AAD_MAX], hmac[FV_PII_HMAC_HEXLEN + 1], v[16];
    int version = 0;
    const unsigned char *key = scope_key(st, "global", &version, err, sizeof err);
    if (!key) {
        fv_warn("re-seal: %s", err);
        return -1;
    }
    fv_pii_aad(table, id, "email", aad_e);
    fv_pii_aad(table, id, "name", aad_n);
    snprintf(v, sizeof v, "%d", version);
    const fv_keyset *ks = fv_dkring_keys(ring);
    char *se = fv_pii_seal_hex(key, version, aad_e, email); /* owned */
    char *sn = user ? fv_pii_seal_hex(key, version, aad_n, name) : NULL;
    int rc = -1;
    if (!se || (user && !sn) || fv_pii_email_hmac(&ks->keys[0], email, hmac) != 0) {
        fv_warn("re-seal: sealing %s %s failed (out of memory, or an email over 254 bytes)", table, id);
        if (se) {
            const char *mp[] = {id, "the email cannot be sealed (over 254 bytes?)"};
            PQclear(wk_store_exec(st, user ? sql_pii_mark_user : sql_pii_mark_invitation, 2, mp));
        }
        goto done;
    }
    PGresult *u;
    if (user) {
        const char *params[] = {id, se, sn, v, hmac, ks->keys[0].id, email, name};
        u = wk_store_exec(st, sql_pii_user, 8, params);
    } else {
        const char *params[] = {id, se, v, hmac, ks->keys[0].id, email};
        u = wk_store_exec(st, sql_pii_invitation, 6, params);
    }
    if (u && PQresultStatus(u) == PGRES_COMMAND_OK) {
        rc = strcmp(PQcmdTuples(u), "1") == 0 ? 1 : 0;
    } else {
        /* e.g. a sealed account with the same email (unique email_hmac): an operator decides */
        fv_pgutil_error(st->conn, u, err, sizeof err);
        fv_error("re-seal: %s %s: sealing its email refused: %s; marked (pii_seal_error)", table, id,
                 err);
        const char *mp[] = {id, err};
        PQclear(wk_store_exec(st, user ? sql_pii_mark_user : sql_pii_mark_invitation, 2, mp));
    }
    PQclear(u);
done:
    free(se);
    free(sn);
    return rc;
}

/* One batch of the clear names and emails; returns the rows read (-1 when the query failed). */
static int pii_sweep(wk_store *st, int rows, int *done, int *failed)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", rows);
    const char *params[] = {lim};
    PGresult *res = wk_store_exec(st, sql_pii_clear, 1, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        char why[256];
        fv_pgutil_error(st->conn, res, why, sizeof why);
        fv_warn("re-seal: the sweep of names and emails failed (retried): %s", why);
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        int rc = pii_seal_row(st, res, i);
        if (rc > 0) (*done)++;
        else if (rc < 0) (*failed)++;
    }
    PQclear(res);
    return n;
}

void wk_seal_sweep(wk_store *st, int every_ms, int rows)
{
    static long long next_ms;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (!ring || now < next_ms || !st->conn || PQstatus(st->conn) != CONNECTION_OK ||
        PQtransactionStatus(st->conn) != PQTRANS_IDLE)
        return;
    next_ms = now + every_ms;
    int pdone = 0, pfailed = 0;
    int pn = pii_sweep(st, rows, &pdone, &pfailed);
    if (pdone || pfailed)
        fv_info("re-seal: %d user(s) or invitation(s) had their email and name sealed, %d failed", pdone,
                pfailed);
    if (pn == rows && pfailed == 0) {
        next_ms = now; /* more left */
        return;
    }
    char lim[16];
    snprintf(lim, sizeof lim, "%d", rows);
    const char *params[] = {lim};
    PGresult *res = wk_store_exec(st, sql_stale, 1, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        char why[256];
        fv_pgutil_error(st->conn, res, why, sizeof why);
        fv_warn("re-seal: the sweep failed (retried): %s", why);
        PQclear(res);
        return;
    }
    int done = 0, failed = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        int rc = reseal_row(st, res, i); /* each autocommitted on its own */
        if (rc > 0) done++;
        else if (rc < 0) failed++;
    }
    if (done || failed)
        fv_info("re-seal: %d value(s) sealed under their org's current data key, %d failed", done,
                failed);
    /* more left: come back at the next gap between batches rather than in every_ms */
    if (PQntuples(res) == rows && failed == 0) next_ms = now;
    PQclear(res);
}

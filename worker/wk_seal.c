/* Sealing OpenRosa XML and attachments under the organisation's data key (see wk_seal.h). */
#include "wk_seal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fv_answers.h"
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
                       const char *openrosa, size_t len, const char *answers, size_t answers_len,
                       char *err, size_t errlen)
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
    return fv_orseal_field(key, version, org, response_id, openrosa, len, answers, answers_len, err,
                           errlen);
}

/* ---- answers ---- */

/* $1 the deployments (uuid[]): each one's org, its org's current key version and wrapped key (no
 * row yet: NULL), and whether its survey has a version with a public key. */
static const char sql_batch_keys[] =
    "SELECT d.id::text, s.org_id::text, k.version, k.wrapped, "
    "       EXISTS (SELECT 1 FROM survey_versions v WHERE v.survey_id = s.id AND v.public_key IS NOT NULL) "
    "FROM deployments d JOIN surveys s ON s.id = d.survey_id "
    "LEFT JOIN LATERAL (SELECT x.version, x.wrapped FROM data_keys x WHERE x.scope = 'org:' || s.org_id "
    "                   ORDER BY x.version DESC LIMIT 1 FOR SHARE) k ON true "
    "WHERE d.id = ANY ($1::uuid[])";

void wk_seal_keys_free(wk_seal_keys *k)
{
    if (k->d) OPENSSL_cleanse(k->d, k->n * sizeof *k->d);
    free(k->d);
    k->d = NULL;
    k->n = 0;
}

/* The keys of the deployments of arr (a uuid[] literal) into out. */
static int load_keys(wk_store *st, const char *arr, wk_seal_keys *out, char *err, size_t errlen)
{
    const char *params[] = {arr};
    PGresult *res = wk_store_exec(st, sql_batch_keys, 1, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        fv_pgutil_error(st->conn, res, err, errlen);
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    out->d = calloc(n ? (size_t)n : 1, sizeof *out->d);
    if (!out->d) {
        PQclear(res);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        wk_seal_dep *d = &out->d[out->n];
        snprintf(d->dep, sizeof d->dep, "%s", PQgetvalue(res, i, 0));
        snprintf(d->org, sizeof d->org, "%s", PQgetvalue(res, i, 1));
        d->encrypted = PQgetvalue(res, i, 4)[0] == 't';
        const unsigned char *key = NULL;
        if (PQgetisnull(res, i, 2)) {
            key = wk_seal_org_key(st, d->org, &d->kv, err, errlen); /* the org's first */
        } else {
            char scope[FV_DATAKEY_SCOPE_MAX];
            snprintf(scope, sizeof scope, "org:%s", d->org);
            d->kv = atoi(PQgetvalue(res, i, 2));
            key = fv_dkring_get(ring, scope, d->kv);
            if (!key) key = fv_dkring_put(ring, scope, d->kv, PQgetvalue(res, i, 3), err, errlen);
        }
        if (!key) {
            PQclear(res);
            wk_seal_keys_free(out);
            return -1;
        }
        memcpy(d->key, key, FV_DATAKEY_BYTES);
        out->n++;
    }
    PQclear(res);
    return 0;
}

int wk_seal_batch_keys(wk_store *st, const wk_batch *b, long only, wk_seal_keys *out, char *err,
                       size_t errlen)
{
    out->d = NULL;
    out->n = 0;
    if (!ring) {
        snprintf(err, errlen, "data keys: not initialised");
        return -1;
    }
    /* the array literal {id,id,...}: ids are UUIDs (checked by fv_envelope_parse) */
    size_t cap = 3 + b->n * (FV_UUID_STRLEN + 1);
    char *arr = malloc(cap); /* owned */
    if (!arr) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t len = 0, wanted = 0;
    arr[len++] = '{';
    for (size_t i = 0; i < b->n; i++) {
        if ((only >= 0 && (size_t)only != i) || b->entries[i].state != WK_ENTRY_NEW) continue;
        len += (size_t)snprintf(arr + len, cap - len, "%s%s", wanted ? "," : "",
                                b->entries[i].env.deployment_id);
        wanted++;
    }
    arr[len++] = '}';
    arr[len] = '\0';
    int rc = wanted ? load_keys(st, arr, out, err, errlen) : 0;
    free(arr);
    return rc;
}

int wk_seal_entry_texts(wk_store *st, const fv_envelope *e, char **data, char **loc, int *kv, char *err,
                        size_t errlen)
{
    *data = *loc = NULL;
    *kv = 0;
    char arr[FV_UUID_STRLEN + 3];
    snprintf(arr, sizeof arr, "{%s}", e->deployment_id);
    wk_seal_keys k = {0};
    if (!ring) {
        snprintf(err, errlen, "data keys: not initialised");
        return -1;
    }
    if (load_keys(st, arr, &k, err, errlen) != 0) return -1;
    fv_jgen *j = fv_jgen_new();
    int rc = -1;
    if (!j) snprintf(err, errlen, "out of memory");
    else {
        fv_jgen_map_open(j);
        rc = wk_seal_answers(j, &k, e, err, errlen);
        fv_jgen_map_close(j);
    }
    const char *t = rc == 0 ? fv_jgen_buf(j, NULL) : NULL;
    yajl_val v = t ? fv_json_parse(t, NULL, 0) : NULL;
    yajl_val l = v ? fv_json_get(v, "location") : NULL, kvv = v ? fv_json_get(v, "answers_kv") : NULL;
    *data = v ? fv_json_text(fv_json_get(v, "data")) : NULL;
    *loc = !v ? NULL : YAJL_IS_NULL(l) ? strdup("") : fv_json_text(l);
    *kv = YAJL_IS_INTEGER(kvv) ? (int)YAJL_GET_INTEGER(kvv) : 0;
    if (rc == 0 && (!*data || !*loc)) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    if (rc != 0) {
        free(*data);
        free(*loc);
        *data = *loc = NULL;
    }
    if (v) yajl_tree_free(v);
    fv_jgen_free(j);
    wk_seal_keys_free(&k);
    return rc;
}

/* Whether data is the ODK envelope of an end-to-end encrypted submission (fv_odkcrypt.h). */
static bool is_envelope(yajl_val data)
{
    return YAJL_IS_STRING(fv_json_get(data, "base64EncryptedKey")) &&
           YAJL_IS_STRING(fv_json_get(data, "encryptedXmlFile"));
}

int wk_seal_answers(fv_jgen *j, const wk_seal_keys *k, const fv_envelope *e, char *err, size_t errlen)
{
    const wk_seal_dep *d = NULL;
    for (size_t i = 0; i < k->n && !d; i++)
        if (!strcmp(k->d[i].dep, e->deployment_id)) d = &k->d[i];
    yajl_val data = d ? fv_json_parse_n(e->data, e->data_len, NULL) : NULL; /* owned */
    yajl_val loc = d && e->location_len > 0 ? fv_json_parse_n(e->location, e->location_len, NULL) : NULL;
    int rc = 0;
    if (!d || !YAJL_IS_OBJECT(data) || (d->encrypted && is_envelope(data))) {
        /* as sent: data and location were checked to be one JSON object each (wk_batch.c) */
        fv_jgen_key(j, "data");
        fv_jgen_raw(j, e->data, e->data_len);
        fv_jgen_key(j, "location");
        if (e->location_len > 0) fv_jgen_raw(j, e->location, e->location_len);
        else fv_jgen_null(j);
        fv_jgen_key(j, "answers_kv");
        fv_jgen_null(j);
    } else {
        fv_jgen_key(j, "data");
        rc = fv_answers_seal(j, d->key, d->kv, e->id, data, err, errlen);
        fv_jgen_key(j, "location");
        if (rc == 0) rc = fv_answers_seal_location(j, d->key, d->kv, e->id, loc, err, errlen);
        fv_jgen_key(j, "answers_kv");
        fv_jgen_int(j, d->kv);
    }
    if (data) yajl_tree_free(data);
    if (loc) yajl_tree_free(loc);
    return rc;
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
    int answers = wk_seal_answers_sweep(st, rows, &failed);
    if (done || answers || failed)
        fv_info("re-seal: %d value(s) and %d row(s) of answers sealed under their org's current data "
                "key, %d failed",
                done, answers, failed);
    /* more left: come back at the next gap between batches rather than in every_ms */
    if ((PQntuples(res) == rows || answers == rows) && failed == 0) next_ms = now;
    PQclear(res);
}

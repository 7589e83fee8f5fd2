/* The re-seal sweep of answers (migration 027, common/fv_answers.h): responses, refused and
 * quarantined submissions whose answers are in clear (written before 027) or under an older data
 * key version than their org's highest are sealed under the current one, each row (a response
 * with every version's state) in one autocommitted statement, compare-and-set on its key version.
 * Called by wk_seal_sweep between batches. */
#include "wk_seal.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_answers.h"
#include "fv_log.h"
#include "fv_pgutil.h"

/* Rows to seal again: what (r: a response, f: a refused, q: a quarantined submission), its id,
 * its org. In clear (not an end-to-end envelope, not marked), or under an older version of an
 * org that has several. */
/* Rows to seal again: what (r: a response, f: a refused, q: a quarantined submission), its id,
 * its org. First those under an older version of an org that has several (a rotation waits on
 * them: never behind a backlog in clear), then those in clear (not marked: an end-to-end envelope
 * is). */
static const char sql_stale[] =
    "WITH cur AS (SELECT substr(scope, 5)::uuid AS org, max(version) AS v FROM data_keys "
    "             WHERE scope LIKE 'org:%' GROUP BY scope HAVING count(*) > 1) "
    "(SELECT 'r', r.id::text, s.org_id::text FROM cur JOIN surveys s ON s.org_id = cur.org "
    " JOIN responses r ON r.survey_id = s.id WHERE r.answers_kv < cur.v AND r.answers_seal_error IS NULL "
    " LIMIT $1::int) "
    "UNION ALL "
    "(SELECT 'f', f.seq::text, o.org::text FROM refused_submissions f, "
    "        LATERAL (SELECT fv_deployment_org(f.deployment_id) AS org) o "
    " JOIN cur ON cur.org = o.org WHERE f.answers_seal_error IS NULL AND f.answers_kv < cur.v LIMIT $1::int) "
    "UNION ALL "
    "(SELECT 'q', q.id::text, o.org::text FROM quarantine q, "
    "        LATERAL (SELECT fv_deployment_org(q.deployment_id) AS org) o "
    " JOIN cur ON cur.org = o.org WHERE q.answers_seal_error IS NULL AND q.answers_kv < cur.v LIMIT $1::int) "
    "UNION ALL "
    "(SELECT 'r', r.id::text, s.org_id::text FROM responses r JOIN surveys s ON s.id = r.survey_id "
    " WHERE r.answers_kv IS NULL AND r.answers_seal_error IS NULL LIMIT $1::int) "
    "UNION ALL "
    "(SELECT 'f', f.seq::text, o.org::text FROM refused_submissions f, "
    "        LATERAL (SELECT fv_deployment_org(f.deployment_id) AS org) o "
    " WHERE o.org IS NOT NULL AND f.answers_seal_error IS NULL AND f.answers_kv IS NULL LIMIT $1::int) "
    "UNION ALL "
    "(SELECT 'q', q.id::text, o.org::text FROM quarantine q, "
    "        LATERAL (SELECT fv_deployment_org(q.deployment_id) AS org) o "
    " WHERE o.org IS NOT NULL AND q.answers_seal_error IS NULL AND q.answers_kv IS NULL LIMIT $1::int) "
    "LIMIT $1::int";

/* A response and its versions: kind (r: the row, e: a version), the event id, the submission id,
 * answers, location, the event's copy of them (data, location columns), key version, its wrapped
 * key, the row's version. */
static const char sql_response[] =
    "SELECT 'r', NULL, r.id::text, r.data::text, r.location::text, NULL, NULL, r.answers_kv, "
    "       fv_dk_wrapped($2::uuid, r.answers_kv), r.version "
    "FROM responses r WHERE r.id = $1::uuid "
    "UNION ALL "
    "SELECT 'e', e.id::text, e.response_id::text, (e.state->'data')::text, (e.state->'location')::text, "
    "       e.data::text, e.location::text, (e.state->>'answers_kv')::int, "
    "       fv_dk_wrapped($2::uuid, (e.state->>'answers_kv')::int), e.version "
    "FROM response_events e WHERE e.response_id = $1::uuid";

/* $1 response, $2 the key version read (NULL: clear), $3 the new one, $4 the versions
 * [{id, version, sd, sl, d, l}] (state's answers and location, the event's copies), $5 $6 the
 * row's answers and location, $7 the row's version read. The current version's state becomes the
 * new row's (as every writer leaves it); the others get their answers replaced. */
static const char sql_update_response[] =
    "WITH g AS (SELECT fv_history_reseal_begin()), "
    "     v AS (SELECT * FROM jsonb_to_recordset($4::jsonb) AS v(id bigint, version int, sd jsonb, "
    "                                                               sl jsonb, d jsonb, l jsonb)), "
    "     r AS (UPDATE responses x SET data = $5::jsonb, location = $6::jsonb, answers_kv = $3::int "
    "           FROM g WHERE x.id = $1::uuid AND x.answers_kv IS NOT DISTINCT FROM $2::int "
    "             AND x.version = $7::int RETURNING x), "
    "     c AS (UPDATE response_events e SET state = to_jsonb(r.x), data = v.d, location = v.l "
    "           FROM r, v WHERE e.id = v.id AND e.response_id = $1::uuid AND e.version = (r.x).version), "
    "     o AS (UPDATE response_events e SET state = e.state || jsonb_build_object('data', v.sd, "
    "                  'location', v.sl, 'answers_kv', $3::int), data = v.d, location = v.l "
    "           FROM g, v WHERE e.id = v.id AND e.response_id = $1::uuid AND e.version <> $7::int "
    "             AND EXISTS (SELECT 1 FROM r)) "
    "SELECT count(*) FROM r";

static const char sql_refused[] =
    "SELECT f.id::text, f.data::text, f.location::text, f.answers_kv, fv_dk_wrapped($2::uuid, f.answers_kv) "
    "FROM refused_submissions f WHERE f.seq = $1::bigint";
static const char sql_update_refused[] =
    "UPDATE refused_submissions SET data = $4::jsonb, location = $5::jsonb, answers_kv = $3::int "
    "WHERE seq = $1::bigint AND answers_kv IS NOT DISTINCT FROM $2::int";
static const char sql_quarantined[] =
    "SELECT q.id::text, q.data::text, q.location::text, q.answers_kv, fv_dk_wrapped($2::uuid, q.answers_kv) "
    "FROM quarantine q WHERE q.id = $1::uuid";
static const char sql_update_quarantined[] =
    "UPDATE quarantine SET data = $4::jsonb, location = $5::jsonb, answers_kv = $3::int "
    "WHERE id = $1::uuid AND answers_kv IS NOT DISTINCT FROM $2::int";
static const char *const sql_mark[] = {
    "UPDATE responses SET answers_seal_error = $2 WHERE id = $1::uuid AND answers_seal_error IS NULL",
    "UPDATE refused_submissions SET answers_seal_error = $2 WHERE seq = $1::bigint",
    "UPDATE quarantine SET answers_seal_error = $2 WHERE id = $1::uuid",
};

/* A copy of the key of org's version kv (from the ring, unwrapping wrapped when it is not there). */
static bool key_of(const char *org, int kv, const char *wrapped, unsigned char out[FV_DATAKEY_BYTES],
                   char *err, size_t errlen)
{
    char scope[FV_DATAKEY_SCOPE_MAX];
    snprintf(scope, sizeof scope, "org:%s", org);
    fv_dkring *ring = wk_seal_ring();
    const unsigned char *k = ring ? fv_dkring_get(ring, scope, kv) : NULL;
    if (!k && ring && wrapped) k = fv_dkring_put(ring, scope, kv, wrapped, err, errlen);
    if (!k) {
        if (!wrapped) snprintf(err, errlen, "no data key %s v%d", scope, kv);
        return false;
    }
    memcpy(out, k, FV_DATAKEY_BYTES);
    return true;
}

/* The answers text (or location text when is_loc) of submission id, stored under kv (0: clear),
 * sealed again under key (version nkv) into j. NULL text (SQL NULL) stays null. */
static int reseal_value(fv_jgen *j, const char *org, int kv, const char *wrapped,
                        const unsigned char *key, int nkv, const char *id, const char *text, bool is_loc,
                        char *err, size_t errlen)
{
    if (!text) {
        fv_jgen_null(j);
        return 0;
    }
    yajl_val v = fv_json_parse_n(text, strlen(text), NULL); /* owned */
    if (!v) {
        snprintf(err, errlen, "response %s: stored %s is not JSON", id, is_loc ? "location" : "answers");
        return -1;
    }
    unsigned char old[FV_DATAKEY_BYTES];
    fv_answers_opened o = {0};
    int rc = -1;
    if (kv > 0 && !key_of(org, kv, wrapped, old, err, errlen)) goto done;
    if (fv_answers_open(kv > 0 ? old : NULL, kv, id, is_loc ? NULL : v, is_loc ? v : NULL, &o, err,
                        errlen) != 0)
        goto done;
    if (is_loc) rc = fv_answers_seal_location(j, key, nkv, id, o.location, err, errlen);
    else if (YAJL_IS_OBJECT(o.data)) rc = fv_answers_seal(j, key, nkv, id, o.data, err, errlen);
    else snprintf(err, errlen, "response %s: stored answers are not an object", id);
done:
    OPENSSL_cleanse(old, sizeof old);
    fv_answers_opened_free(&o);
    yajl_tree_free(v);
    return rc;
}

static const char *val(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static int ival(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : atoi(PQgetvalue(res, row, col));
}

static bool is_envelope_text(const char *data)
{
    yajl_val v = data ? fv_json_parse_n(data, strlen(data), NULL) : NULL;
    bool e = v && YAJL_IS_STRING(fv_json_get(v, "base64EncryptedKey")) &&
             YAJL_IS_STRING(fv_json_get(v, "encryptedXmlFile"));
    if (v) yajl_tree_free(v);
    return e;
}

/* Generated text of j, copied (NULL: failed). */
static char *text_of(fv_jgen *j)
{
    const char *t = fv_jgen_buf(j, NULL);
    return t ? strdup(t) : NULL;
}

/* One response and its versions. Returns 1 when sealed again, 0 when it changed meanwhile (or is
 * an end-to-end envelope, marked), -1 on failure (err). */
static int reseal_response(wk_store *st, const char *id, const char *org, const unsigned char *key,
                           int nkv, char *err, size_t errlen, bool *mark)
{
    const char *p[] = {id, org};
    PGresult *res = wk_store_exec(st, sql_response, 2, p);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        fv_pgutil_error(st->conn, res, err, errlen);
        PQclear(res);
        return -1;
    }
    int rc = -1, row = -1;
    for (int i = 0; i < PQntuples(res); i++)
        if (PQgetvalue(res, i, 0)[0] == 'r') row = i;
    fv_jgen *ev = fv_jgen_new(), *d = fv_jgen_new(), *l = fv_jgen_new();
    char *evt = NULL, *dt = NULL, *lt = NULL;
    if (row < 0) {
        rc = 0; /* gone meanwhile */
        goto done;
    }
    if (ival(res, row, 7) == 0 && is_envelope_text(val(res, row, 3))) {
        snprintf(err, errlen, "an end-to-end encrypted envelope: stored as sent");
        *mark = true;
        rc = 0;
        goto done;
    }
    if (!ev || !d || !l) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    fv_jgen_array_open(ev);
    for (int i = 0; i < PQntuples(res); i++) {
        if (i == row) continue;
        int kv = ival(res, i, 7);
        const char *wk = val(res, i, 8);
        fv_jgen_map_open(ev);
        fv_jgen_key(ev, "id");
        fv_jgen_raw(ev, PQgetvalue(res, i, 1), strlen(PQgetvalue(res, i, 1)));
        fv_jgen_key(ev, "version");
        fv_jgen_int(ev, ival(res, i, 9));
        fv_jgen_key(ev, "sd");
        if (reseal_value(ev, org, kv, wk, key, nkv, id, val(res, i, 3), false, err, errlen) != 0)
            goto bad;
        fv_jgen_key(ev, "sl");
        if (reseal_value(ev, org, kv, wk, key, nkv, id, val(res, i, 4), true, err, errlen) != 0)
            goto bad;
        fv_jgen_key(ev, "d");
        if (reseal_value(ev, org, kv, wk, key, nkv, id, val(res, i, 5), false, err, errlen) != 0)
            goto bad;
        fv_jgen_key(ev, "l");
        if (reseal_value(ev, org, kv, wk, key, nkv, id, val(res, i, 6), true, err, errlen) != 0)
            goto bad;
        fv_jgen_map_close(ev);
    }
    fv_jgen_array_close(ev);
    int kv = ival(res, row, 7);
    if (reseal_value(d, org, kv, val(res, row, 8), key, nkv, id, val(res, row, 3), false, err, errlen) !=
            0 ||
        reseal_value(l, org, kv, val(res, row, 8), key, nkv, id, val(res, row, 4), true, err, errlen) !=
            0)
        goto bad;
    if (!(evt = text_of(ev)) || !(dt = text_of(d)) || !(lt = text_of(l))) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    char kvs[16], nkvs[16];
    snprintf(kvs, sizeof kvs, "%d", kv);
    snprintf(nkvs, sizeof nkvs, "%d", nkv);
    const char *up[] = {
        id, kv > 0 ? kvs : NULL, nkvs, evt, dt, strcmp(lt, "null") ? lt : NULL, PQgetvalue(res, row, 9)};
    PGresult *u = wk_store_exec(st, sql_update_response, 7, up);
    if (u && PQresultStatus(u) == PGRES_TUPLES_OK) {
        rc = atoi(PQgetvalue(u, 0, 0)) > 0 ? 1 : 0;
    } else {
        fv_pgutil_error(st->conn, u, err, errlen);
        /* the same statement fails again: bad data, or the history's guard (FV...) */
        const char *state = u ? PQresultErrorField(u, PG_DIAG_SQLSTATE) : NULL;
        *mark = fv_pgutil_is_data_error(u) || (state && !strncmp(state, "FV", 2));
    }
    PQclear(u);
    goto done;
bad:
    *mark = true; /* a value that does not open */
done:
    fv_jgen_free(ev);
    fv_jgen_free(d);
    fv_jgen_free(l);
    free(evt);
    free(dt);
    free(lt);
    PQclear(res);
    return rc;
}

/* A refused (f) or quarantined (q) submission. */
static int reseal_copy(wk_store *st, char what, const char *key_text, const char *org,
                       const unsigned char *key, int nkv, char *err, size_t errlen, bool *mark)
{
    const char *p[] = {key_text, org};
    PGresult *res = wk_store_exec(st, what == 'f' ? sql_refused : sql_quarantined, 2, p);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        fv_pgutil_error(st->conn, res, err, errlen);
        PQclear(res);
        return -1;
    }
    int rc = 0;
    fv_jgen *d = fv_jgen_new(), *l = fv_jgen_new();
    char *dt = NULL, *lt = NULL;
    if (PQntuples(res) == 1) {
        const char *id = PQgetvalue(res, 0, 0);
        int kv = ival(res, 0, 3);
        rc = -1;
        if (!d || !l) snprintf(err, errlen, "out of memory");
        else if (reseal_value(d, org, kv, val(res, 0, 4), key, nkv, id, val(res, 0, 1), false, err,
                              errlen) != 0 ||
                 reseal_value(l, org, kv, val(res, 0, 4), key, nkv, id, val(res, 0, 2), true, err,
                              errlen) != 0)
            *mark = true;
        else if (!(dt = text_of(d)) || !(lt = text_of(l))) snprintf(err, errlen, "out of memory");
        else {
            char kvs[16], nkvs[16];
            snprintf(kvs, sizeof kvs, "%d", kv);
            snprintf(nkvs, sizeof nkvs, "%d", nkv);
            const char *up[] = {key_text, kv > 0 ? kvs : NULL, nkvs, dt, strcmp(lt, "null") ? lt : NULL};
            PGresult *u = wk_store_exec(st, what == 'f' ? sql_update_refused : sql_update_quarantined, 5,
                                        up);
            if (u && PQresultStatus(u) == PGRES_COMMAND_OK)
                rc = strcmp(PQcmdTuples(u), "1") == 0 ? 1 : 0;
            else fv_pgutil_error(st->conn, u, err, errlen);
            PQclear(u);
        }
    }
    fv_jgen_free(d);
    fv_jgen_free(l);
    free(dt);
    free(lt);
    PQclear(res);
    return rc;
}

int wk_seal_answers_sweep(wk_store *st, int rows, int *failed)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", rows);
    const char *params[] = {lim};
    PGresult *res = wk_store_exec(st, sql_stale, 1, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        char why[256];
        fv_pgutil_error(st->conn, res, why, sizeof why);
        fv_warn("re-seal: the answers' sweep failed (retried): %s", why);
        PQclear(res);
        (*failed)++;
        return 0;
    }
    int done = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        char what = PQgetvalue(res, i, 0)[0];
        const char *id = PQgetvalue(res, i, 1), *org = PQgetvalue(res, i, 2);
        char err[512] = "";
        bool mark = false;
        int nkv = 0, rc = -1;
        unsigned char key[FV_DATAKEY_BYTES];
        const unsigned char *k = wk_seal_org_key(st, org, &nkv, err, sizeof err);
        if (k) {
            memcpy(key, k, sizeof key);
            rc = what == 'r' ? reseal_response(st, id, org, key, nkv, err, sizeof err, &mark)
                             : reseal_copy(st, what, id, org, key, nkv, err, sizeof err, &mark);
            OPENSSL_cleanse(key, sizeof key);
        }
        if (rc > 0) done++;
        if (mark && rc == 0) {
            fv_info("re-seal: response %s is %s; marked", id, err); /* an end-to-end envelope */
            const char *mp[] = {id, err};
            PQclear(wk_store_exec(st, sql_mark[0], 2, mp));
        } else if (mark) {
            fv_error("re-seal: the answers of %s %s: %s; marked (answers_seal_error), left as they are",
                     what == 'r'   ? "response"
                     : what == 'f' ? "refused submission"
                                   : "quarantined submission",
                     id, err);
            const char *mp[] = {id, err};
            PQclear(wk_store_exec(st, sql_mark[what == 'r' ? 0 : what == 'f' ? 1 : 2], 2, mp));
        } else if (rc < 0) {
            fv_warn("re-seal: the answers of %s: %s", id, err);
            (*failed)++;
        }
    }
    PQclear(res);
    return done;
}

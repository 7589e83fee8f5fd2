/* The worker's side of PostgreSQL: one parameterised INSERT per batch, inside BEGIN/COMMIT (and,
 * when an id was taken, the statement that keeps the refused entries). */
#include "wk_store.h"

#include <errno.h>
#include <poll.h>
#include <time.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_envelope.h"
#include "fv_json.h"
#include "fv_log.h"
#include "fv_pgutil.h"
#include "wk_seal.h"
#include "wk_verify.h"

/* The entry's answers without those purged from its survey after it was received (fv_purge_strip,
 * migration 013). The function runs only for a survey that has purges: it is not inlined, and
 * calling it for every row cost the batch insert about a fifth of its rate (pgbench on the
 * insert statement, 100-row batches); the EXISTS is one index probe. */
#define PURGE_STRIP                                                                      \
    "CASE WHEN EXISTS (SELECT 1 FROM survey_purges p WHERE p.survey_id = x.survey_id)"   \
    " THEN fv_purge_strip(x.survey_id, x.data, to_timestamp(x.received_at_ms / 1000.0))" \
    " ELSE x.data END"

/* $1 is a JSON array of envelopes. LEFT JOIN, not JOIN: an unknown deployment must fail the
 * foreign key (and the entry), never vanish from the INSERT while its entry gets acked.
 * A response starts pending at stage 1 when its deployment has approval stages, final (stage 0)
 * otherwise; each inserted row gets its 'submit' event (response_events, migration 004; its full
 * state, migration 012) in the
 * same statement. A replayed entry inserts neither. An OpenRosa entry's XML (migration 023) is
 * not kept when a purge of its survey came after it was received (its answers were stripped). */
static const char insert_sql[] =
    "WITH ins AS ("
    " INSERT INTO responses AS r (id, survey_id, survey_version, deployment_id, submitted_by,"
    "                             status, stage, data, location, collected_at, received_at,"
    "                             xml_sha256, instance_id, answers_kv)"
    " SELECT x.id, x.survey_id, x.survey_version, x.deployment_id, x.submitted_by,"
    "        CASE WHEN d.approval_stages > 0 THEN 'pending' ELSE 'final' END,"
    "        CASE WHEN d.approval_stages > 0 THEN 1 ELSE 0 END,"
    "        " PURGE_STRIP ","
    "        x.location, x.collected_at, to_timestamp(x.received_at_ms / 1000.0),"
    "        CASE WHEN x.openrosa IS NULL THEN NULL"
    "             WHEN EXISTS (SELECT 1 FROM survey_purges p WHERE p.survey_id = x.survey_id"
    "                          AND p.purged_at >= to_timestamp(x.received_at_ms / 1000.0))"
    "             THEN NULL ELSE decode(x.openrosa->>'xml_sha256', 'hex') END,"
    "        x.openrosa->>'instance_id', x.answers_kv"
    " FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, survey_id uuid, survey_version integer,"
    "      deployment_id uuid, submitted_by uuid, data jsonb, location jsonb,"
    "      collected_at timestamptz, received_at_ms bigint, openrosa jsonb, answers_kv integer)"
    " LEFT JOIN deployments d ON d.id = x.deployment_id"
    " ON CONFLICT (id) DO NOTHING"
    " RETURNING id, version, stage, status, submitted_by, data, location, created_at,"
    "           to_jsonb(r) AS state)"
    " INSERT INTO response_events (response_id, version, action, stage, status, actor, data,"
    "                              location, at, state)"
    " SELECT id, version, 'submit', stage, status, submitted_by, data, location, created_at, state"
    " FROM ins";

/* Run after insert_sql in the same transaction when the batch has OpenRosa entries: their XML
 * and attachments (fv_envelope.h, openrosa; sealed under the org's data key by wk_seal_openrosa,
 * migration 026), stored for the response of the entry's id when that response holds the entry's
 * XML (its digest) from the entry's deployment (a first submission, or the same instance sent
 * again with the attachments that were missing), contents deduplicated by SHA-256 within the org,
 * each name once per response (ON CONFLICT: a replayed entry adds nothing). */
static const char attach_sql[] =
    "WITH a AS ("
    " SELECT x.id, s.org_id, x.openrosa AS o FROM jsonb_to_recordset($1::jsonb) AS x(id uuid,"
    "                                                   deployment_id uuid, openrosa jsonb)"
    " JOIN responses r ON r.id = x.id AND r.deployment_id = x.deployment_id"
    "                 AND r.xml_sha256 IS NOT DISTINCT FROM decode(x.openrosa->>'xml_sha256', 'hex')"
    " JOIN surveys s ON s.id = r.survey_id"
    " WHERE x.openrosa IS NOT NULL AND x.openrosa ? 'xml_body'),"
    " xb AS (INSERT INTO response_xml (response_id, sha256, org_id, key_version, body)"
    "        SELECT a.id, decode(a.o->>'xml_sha256', 'hex'), a.org_id, (a.o->>'key_version')::int,"
    "               decode(a.o->>'xml_body', 'base64') FROM a"
    "        ON CONFLICT (response_id, sha256) DO NOTHING),"
    " t AS (SELECT a.id, a.org_id, (a.o->>'key_version')::int AS kv, att FROM a,"
    "       LATERAL jsonb_array_elements(COALESCE(a.o->'attachments', '[]'::jsonb)) AS e(att)),"
    " b AS (INSERT INTO attachment_blobs (org_id, sha256, size, key_version, data)"
    "       SELECT DISTINCT ON (t.org_id, att->>'sha256') t.org_id, decode(att->>'sha256', 'hex'),"
    "              (att->>'size')::bigint, t.kv, decode(att->>'data', 'base64')"
    "       FROM t ON CONFLICT (org_id, sha256) DO NOTHING)"
    " INSERT INTO response_attachments (response_id, name, content_type, size, sha256, org_id, questions)"
    " SELECT t.id, att->>'name', att->>'content_type', (att->>'size')::bigint,"
    "        decode(att->>'sha256', 'hex'), t.org_id,"
    "        ARRAY(SELECT jsonb_array_elements_text(COALESCE(att->'questions', '[]'::jsonb))) FROM t"
    " ON CONFLICT (response_id, name) DO NOTHING";

/* Run after insert_sql in the same transaction (its own snapshot, so a row another worker
 * committed meanwhile is seen) when some entry may be refused: every entry of $1 (those just
 * inserted and those the re-check found stored, $2) whose id is held by a response it is no
 * retry of (fv_submission_is_retry, migration 007), and every entry of $3 (those whose id's
 * claim another submitter holds: wk_stream_id_holders; never inserted), is kept in
 * refused_submissions, once, with an audit entry in the submitter's deployment's org (never the
 * existing response's). The rows just inserted are retries of themselves; the other rows of the
 * batch are written whatever one of them conflicts with. */
#define REFUSE_COLUMNS                                                                         \
    "(id uuid, survey_id uuid, survey_version integer, deployment_id uuid, submitted_by uuid," \
    " data jsonb, location jsonb, collected_at timestamptz, received_at_ms bigint, answers_kv integer)"
/* The entries' columns with the answers purged from their survey after they were received
 * removed (fv_purge_strip, migration 013): queued work never brings purged answers back, into
 * the responses or the refused submissions. */
#define PURGED_COLUMNS                                                      \
    "x.id, x.survey_id, x.survey_version, x.deployment_id, x.submitted_by," \
    " " PURGE_STRIP " AS data,"                                             \
    " x.location, x.collected_at, x.received_at_ms, x.answers_kv"
static const char refuse_sql[] =
    "WITH x AS (SELECT " PURGED_COLUMNS
    " FROM jsonb_to_recordset($1::jsonb || $2::jsonb) AS x" REFUSE_COLUMNS "),"
    " y AS (SELECT x.* FROM x JOIN responses r ON r.id = x.id"
    "       WHERE NOT fv_submission_is_retry(r, x.submitted_by, x.deployment_id, x.data,"
    "                                        x.location, x.collected_at)"
    "       UNION ALL SELECT " PURGED_COLUMNS " FROM jsonb_to_recordset($3::jsonb) AS x" REFUSE_COLUMNS
    "),"
    " f AS (INSERT INTO refused_submissions (id, deployment_id, survey_id, survey_version,"
    "            submitted_by, data, location, collected_at, received_at, reason, fingerprint,"
    "            answers_kv)"
    "       SELECT y.id, y.deployment_id,"
    "              NULLIF(y.survey_id, '" FV_ENVELOPE_UNKNOWN_SURVEY "'::uuid),"
    "              NULLIF(y.survey_version, 0), y.submitted_by, y.data, y.location, y.collected_at,"
    "              to_timestamp(y.received_at_ms / 1000.0), 'id_conflict',"
    "              fv_submission_fingerprint(y.data, y.location, y.collected_at), y.answers_kv"
    "       FROM y ON CONFLICT DO NOTHING RETURNING id, deployment_id, submitted_by)"
    " INSERT INTO audit (actor, action, target_type, target_id, detail, org_id)"
    " SELECT f.submitted_by, 'submission.refused', 'submission', f.id::text,"
    "        jsonb_build_object('deployment_id', f.deployment_id::text, 'reason', 'id_conflict'),"
    "        (SELECT s.org_id FROM deployments d JOIN surveys s ON s.id = d.survey_id"
    "         WHERE d.id = f.deployment_id)"
    " FROM f RETURNING target_id, actor::text";

void wk_store_close(wk_store *st)
{
    if (st->conn) PQfinish(st->conn);
    st->conn = NULL;
}

static int exec_simple(wk_store *st, const char *sql, PGresult **failed, char *why, size_t whylen);

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drives PQconnectPoll to the end, waiting on the socket in slices of wait_tick_ms with on_wait
 * between them, for at most connect_timeout_ms. Returns 0, or -1 with why. */
static int connect_sliced(wk_store *st, PGconn *c, char *err, size_t errlen)
{
    int tick = st->wait_tick_ms > 0 ? st->wait_tick_ms : 1000;
    long long start = now_ms(),
              deadline = start + (st->connect_timeout_ms > 0 ? st->connect_timeout_ms : 5000);
    long long next_tick = start + tick;
    PostgresPollingStatusType ps = PGRES_POLLING_WRITING; /* libpq: as if it had asked to write */
    while (ps != PGRES_POLLING_OK) {
        if (ps == PGRES_POLLING_FAILED) {
            fv_pgutil_error(c, NULL, err, errlen);
            return -1;
        }
        long long now = now_ms();
        if (now >= deadline) {
            snprintf(err, errlen, "connection to the server timed out after %d ms",
                     st->connect_timeout_ms);
            return -1;
        }
        long long until = deadline < next_tick ? deadline : next_tick;
        struct pollfd p = {PQsocket(c), ps == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0};
        int r = poll(&p, 1, (int)(until - now));
        if (r == -1 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return -1;
        }
        if (now_ms() >= next_tick) {
            if (st->on_wait) st->on_wait(st->wait_arg);
            next_tick = now_ms() + tick;
        }
        if (r > 0) ps = PQconnectPoll(c);
    }
    return 0;
}

int wk_store_connect(wk_store *st, char *err, size_t errlen)
{
    wk_store_close(st);
    err[0] = '\0';
    /* Keywords are applied in order, so the dsn (expanded from dbname, last) overrides these. */
    const char *keys[] = {"application_name", "dbname", NULL};
    const char *vals[] = {"fv-worker", st->dsn, NULL};
    PGconn *c = PQconnectStartParams(keys, vals, 1);
    if (c == NULL) {
        snprintf(err, errlen, "PQconnectStartParams: out of memory");
        return -1;
    }
    if (PQstatus(c) == CONNECTION_BAD || connect_sliced(st, c, err, errlen) != 0) {
        if (PQstatus(c) == CONNECTION_BAD && !err[0]) fv_pgutil_error(c, NULL, err, errlen);
        PQfinish(c);
        return -1;
    }
    st->conn = c;
    /* The worker acknowledges entries once COMMIT returns, so COMMIT must mean "on disk"
     * whatever the server's default: a server set to synchronous_commit = off would lose
     * acknowledged submissions in a crash. (Sent like every statement: waiting in slices.) */
    char timeout[64];
    snprintf(timeout, sizeof timeout, "SET statement_timeout TO %d",
             st->statement_timeout_ms > 0 ? st->statement_timeout_ms : 0);
    const char *setup[] = {timeout, "SET synchronous_commit TO on"};
    for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++) {
        PGresult *failed = NULL;
        if (exec_simple(st, setup[i], &failed, err, errlen) != 0) {
            PQclear(failed);
            wk_store_close(st);
            return -1;
        }
    }
    return 0;
}

/* openrosa: the entry's openrosa field as stored (sealed: wk_seal_openrosa), NULL for none; keys:
 * the batch's data keys (its answers sealed: wk_seal_answers). Returns 0, or -1 with why. */
static int gen_envelope(fv_jgen *j, const fv_envelope *e, const char *openrosa, const wk_seal_keys *keys,
                        char *why, size_t whylen)
{
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, e->id);
    fv_jgen_key(j, "survey_id");
    fv_jgen_str(j, e->survey_id);
    fv_jgen_key(j, "survey_version");
    fv_jgen_int(j, e->survey_version);
    fv_jgen_key(j, "deployment_id");
    fv_jgen_str(j, e->deployment_id);
    fv_jgen_key(j, "submitted_by");
    fv_jgen_str(j, e->submitted_by);
    if (wk_seal_answers(j, keys, e, why, whylen) != 0) return -1;
    fv_jgen_key(j, "collected_at");
    if (e->collected_at_len > 0) fv_jgen_strn(j, e->collected_at, e->collected_at_len);
    else fv_jgen_null(j);
    fv_jgen_key(j, "received_at_ms");
    fv_jgen_int(j, e->received_at_ms);
    if (openrosa) { /* made by wk_seal_openrosa from one JSON object (wk_batch.c) */
        fv_jgen_key(j, "openrosa");
        fv_jgen_raw(j, openrosa, strlen(openrosa));
    }
    fv_jgen_map_close(j);
    return 0;
}

PGresult *wk_store_exec(wk_store *st, const char *sql, int nparams, const char *const *params)
{
    return wk_store_exec_bin(st, sql, nparams, params, NULL, NULL);
}

PGresult *wk_store_exec_bin(wk_store *st, const char *sql, int nparams, const char *const *params,
                            const int *lengths, const int *formats)
{
    if (!PQsendQueryParams(st->conn, sql, nparams, NULL, params, lengths, formats, 0)) return NULL;
    PGresult *kept = NULL; /* the first error, else the last result */
    for (;;) {
        while (PQisBusy(st->conn)) {
            struct pollfd p = {PQsocket(st->conn), POLLIN, 0};
            int r = poll(&p, 1, st->wait_tick_ms > 0 ? st->wait_tick_ms : 1000);
            if (r == 0) {
                if (st->on_wait) st->on_wait(st->wait_arg);
                continue;
            }
            if (r == -1 && errno == EINTR) continue; /* a stop request: the batch finishes first */
            if (r == -1 || !PQconsumeInput(st->conn)) break;
        }
        PGresult *res = PQgetResult(st->conn);
        if (res == NULL) break;
        if (kept && PQresultStatus(kept) == PGRES_FATAL_ERROR) {
            PQclear(res);
        } else {
            PQclear(kept);
            kept = res;
        }
        if (PQstatus(st->conn) == CONNECTION_BAD) break;
    }
    return kept;
}

/* Runs a statement without parameters that returns no rows; 0, or -1 with why. */
static int exec_simple(wk_store *st, const char *sql, PGresult **failed, char *why, size_t whylen)
{
    PGresult *res = wk_store_exec(st, sql, 0, NULL);
    if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        return 0;
    }
    fv_pgutil_error(st->conn, res, why, whylen);
    *failed = res;
    return -1;
}

/* Rolls back after a failure; a connection that cannot even do that is dropped. */
static void abandon(wk_store *st)
{
    if (st->conn == NULL) return;
    if (PQstatus(st->conn) != CONNECTION_OK) {
        wk_store_close(st);
        return;
    }
    if (PQtransactionStatus(st->conn) != PQTRANS_IDLE) {
        char why[256];
        if (fv_pgutil_exec(st->conn, "ROLLBACK", why, sizeof why) != 0) wk_store_close(st);
    }
}

/* Whether PostgreSQL refused what was sent rather than failed: bad data (SQLSTATE class 22, 23)
 * or a limit the statement went over (class 54: a batch of large submissions is one jsonb array,
 * and jsonb refuses one whose elements total more than 256 MiB). Either way sending the same
 * batch again fails again: its entries are written one by one instead. */
static bool refused(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return fv_pgutil_is_data_error(res) || (state && strncmp(state, "54", 2) == 0);
}

static void free_sealed(char **sealed, size_t n)
{
    for (size_t i = 0; sealed && i < n; i++) free(sealed[i]);
    free(sealed);
}

wk_store_rc wk_store_write(wk_store *st, const wk_batch *b, long only, char *err, size_t errlen)
{
    wk_store_rc rc = WK_STORE_RETRY;
    PGresult *res = NULL;
    const char *errpos = "generate";
    char why[512] = "";
    fv_jgen *j = fv_jgen_new();
    fv_jgen *k = fv_jgen_new(); /* entries the re-check found stored: checked for a conflict */
    fv_jgen *t = fv_jgen_new(); /* entries whose id's claim is another's: refused */
    bool *revoked = NULL;       /* owned: per entry, refused by wk_verify_revoked */
    char **sealed = NULL;       /* owned, each too: per entry, its sealed openrosa field */
    wk_seal_keys keys = {0};    /* owned: the batch's data keys (wk_seal_keys_free) */
    if (!j || !k || !t) {
        snprintf(why, sizeof why, "out of memory");
        goto failed;
    }
    if (st->conn == NULL || PQstatus(st->conn) != CONNECTION_OK) {
        errpos = "connection";
        snprintf(why, sizeof why, "not connected");
        goto failed;
    }
    errpos = "BEGIN";
    if (exec_simple(st, "BEGIN", &res, why, sizeof why) != 0) goto failed;
    /* Verified entries a removal made invalid after the front end checked them (wk_verify.h). */
    revoked = calloc(b->n ? b->n : 1, sizeof *revoked);
    sealed = calloc(b->n ? b->n : 1, sizeof *sealed);
    errpos = "revoked";
    if (!revoked || !sealed) {
        snprintf(why, sizeof why, "out of memory");
        goto failed;
    }
    switch (wk_verify_revoked(st, b, only, revoked, why, sizeof why)) {
    case WK_VERIFY_REJECTED: rc = WK_STORE_REJECTED; goto failed;
    case WK_VERIFY_FAILED: goto failed;
    default: break;
    }
    errpos = "data keys";
    if (wk_seal_batch_keys(st, b, only, &keys, why, sizeof why) != 0) goto failed;
    long n_insert = 0, n_stored = 0, n_taken = 0; /* entries in j, in k, in t */
    long n_openrosa = 0;                          /* OpenRosa entries (with XML, attachments) */
    fv_jgen_array_open(j);
    fv_jgen_array_open(k);
    fv_jgen_array_open(t);
    for (size_t i = 0; i < b->n; i++) {
        if (only >= 0 && (size_t)only != i) continue;
        if (b->entries[i].state != WK_ENTRY_NEW) continue;
        const fv_envelope *e = &b->entries[i].env;
        if (b->entries[i].id_taken) {
            /* Answered 409 (or spooled before another claimed the id): kept, never stored, and
             * not re-checked: it is refused whatever its submitter may do. */
            errpos = "seal";
            if (gen_envelope(t, e, NULL, &keys, why, sizeof why) != 0) goto failed;
            n_taken++;
            continue;
        }
        if (e->verified && revoked[i]) {
            errpos = "quarantine";
            wk_verify_result q = wk_verify_quarantine_revoked(st, e, why, sizeof why);
            if (q == WK_VERIFY_REJECTED) rc = WK_STORE_REJECTED;
            if (q != WK_VERIFY_QUARANTINE) goto failed;
            continue;
        }
        if (e->openrosa) {
            n_openrosa++;
            errpos = "seal";
            sealed[i] = wk_seal_openrosa(st, e->id, e->deployment_id, e->openrosa, e->openrosa_len,
                                         e->data, e->data_len, why, sizeof why);
            if (!sealed[i]) {
                /* a malformed field fails again: the batch is written one by one, this entry
                 * dead-letters; anything else (PostgreSQL, memory) is retried */
                if (strncmp(why, "malformed", 9) == 0) rc = WK_STORE_REJECTED;
                goto failed;
            }
        }
        if (e->verified) {
            errpos = "seal";
            if (gen_envelope(j, e, sealed[i], &keys, why, sizeof why) != 0) goto failed;
            n_insert++;
            continue;
        }
        /* Accepted while PostgreSQL was down without a permission check: check it now, in
         * this transaction, and write it only if it passes (wk_verify.c). */
        fv_envelope checked = *e;
        errpos = "verify";
        switch (wk_verify_entry(st, e, checked.survey_id, &checked.survey_version, why, sizeof why)) {
        case WK_VERIFY_ACCEPT:
            errpos = "seal";
            if (gen_envelope(j, &checked, sealed[i], &keys, why, sizeof why) != 0) goto failed;
            n_insert++;
            break;
        case WK_VERIFY_QUARANTINE: break;
        case WK_VERIFY_STORED:
            errpos = "seal";
            if (gen_envelope(k, &checked, sealed[i], &keys, why, sizeof why) != 0) goto failed;
            n_stored++;
            break;
        case WK_VERIFY_REJECTED: rc = WK_STORE_REJECTED; goto failed; /* written one by one next */
        case WK_VERIFY_FAILED: goto failed;
        }
    }
    fv_jgen_array_close(j);
    fv_jgen_array_close(k);
    fv_jgen_array_close(t);
    size_t len;
    const char *json = fv_jgen_buf(j, &len);
    const char *stored_json = fv_jgen_buf(k, NULL);
    const char *taken_json = fv_jgen_buf(t, NULL);
    errpos = "generate";
    if (json == NULL || stored_json == NULL || taken_json == NULL) {
        snprintf(why, sizeof why, "%s", fv_jgen_error(json == NULL ? j : stored_json == NULL ? k : t));
        goto failed;
    }
    bool all_new = n_stored == 0 && n_taken == 0;
    if (n_insert > 0) {
        errpos = "INSERT";
        const char *params[] = {json};
        res = wk_store_exec(st, insert_sql, 1, params);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            fv_pgutil_error(st->conn, res, why, sizeof why);
            if (refused(res)) rc = WK_STORE_REJECTED;
            goto failed;
        }
        /* Every entry inserted (the usual case): no id was taken, nothing to refuse. */
        all_new = all_new && atol(PQcmdTuples(res)) == n_insert;
        PQclear(res);
        res = NULL;
    }
    if (!all_new) {
        errpos = "refuse";
        const char *rparams[] = {json, stored_json, taken_json};
        res = wk_store_exec(st, refuse_sql, 3, rparams);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            fv_pgutil_error(st->conn, res, why, sizeof why);
            if (fv_pgutil_is_data_error(res)) rc = WK_STORE_REJECTED;
            goto failed;
        }
        for (int i = 0; i < PQntuples(res); i++)
            fv_warn("submission %s refused: id_conflict (its id is held by another response; "
                    "submitted by %s)",
                    PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        PQclear(res);
        res = NULL;
    }
    if (n_openrosa > 0) {
        /* The stored ones (k) too: an unverified instance sent again with its missing files. */
        errpos = "attachments";
        const char *aparams[] = {json};
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) aparams[0] = stored_json;
            res = wk_store_exec(st, attach_sql, 1, aparams);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                fv_pgutil_error(st->conn, res, why, sizeof why);
                if (refused(res)) rc = WK_STORE_REJECTED;
                goto failed;
            }
            PQclear(res);
            res = NULL;
        }
    }
    errpos = "COMMIT";
    /* A COMMIT lost with its connection leaves the outcome unknown: RETRY writes the batch
     * again, which is harmless (ON CONFLICT DO NOTHING). */
    res = wk_store_exec(st, "COMMIT", 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fv_pgutil_error(st->conn, res, why, sizeof why);
        if (fv_pgutil_is_data_error(res)) rc = WK_STORE_REJECTED; /* deferred constraints */
        goto failed;
    }
    PQclear(res);
    fv_jgen_free(j);
    fv_jgen_free(k);
    fv_jgen_free(t);
    free(revoked);
    free_sealed(sealed, b->n);
    wk_seal_keys_free(&keys);
    return WK_STORE_OK;
failed:
    snprintf(err, errlen, "%s: %s", errpos, why);
    PQclear(res);
    fv_jgen_free(j);
    fv_jgen_free(k);
    fv_jgen_free(t);
    free(revoked);
    free_sealed(sealed, b->n);
    wk_seal_keys_free(&keys);
    abandon(st);
    return rc;
}

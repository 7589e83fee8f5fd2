/* The re-check of unverified submissions before they are written, and of verified ones whose
 * submitter's permissions were revoked after the front end checked them. */
#include "wk_verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_form.h"
#include "fv_json.h"
#include "fv_log.h"
#include "fv_odkcrypt.h"
#include "fv_mem.h"
#include "fv_pgutil.h"
#include "wk_seal.h"

/* $1 submission id, $2 submitter, $3 deployment, $4 the survey version the front end validated
 * against (0: unknown, take the current one). */
static const char check_sql[] =
    "SELECT EXISTS (SELECT 1 FROM responses WHERE id = $1), d.survey_id, sv.version,"
    "       sv.definition::text, fv_may_submit($2, d.id), fv_has_tie($2, d.id),"
    "       d.closed_at IS NOT NULL, s.archived_at IS NOT NULL, sv.public_key_bytes"
    " FROM (SELECT 1) one"
    " LEFT JOIN deployments d ON d.id = $3"
    " LEFT JOIN surveys s ON s.id = d.survey_id"
    " LEFT JOIN survey_versions sv ON sv.survey_id = s.id"
    "      AND sv.version = CASE WHEN $4::int > 0 THEN $4::int ELSE s.current_version END";

/* An id already quarantined for another submission (fv_quarantine_is_retry, migration 007) is
 * refused and kept in refused_submissions, as the worker's INSERT does for responses.
 * $9: whether the submitter has a tie to the deployment's organisation (fv_has_tie). With one,
 * the row shows in the organisation's quarantine and its audit entry says why; without, the row
 * is the operator's (org_visible false), the full audit entry has no organisation, and the
 * organisation gets only a content-free entry (which deployment, that a submission was refused;
 * no answers, no submitter, no reason text). A refused entry is the submitter's and the
 * operator's only, never the organisation's. */
static const char quarantine_sql[] =
    "WITH o AS (SELECT s.org_id FROM deployments d JOIN surveys s ON s.id = d.survey_id WHERE d.id = $2),"
    /* the answers without those purged from the survey after the entry was received (work queued
     * before a purge never brings them back: fv_purge_strip, migration 013) */
    "     p AS (SELECT COALESCE((SELECT fv_purge_strip(d.survey_id, $4::jsonb,"
    "                                                  to_timestamp($7::bigint / 1000.0))"
    "                            FROM deployments d WHERE d.id = $2), $4::jsonb) AS data),"
    "     q AS (INSERT INTO quarantine (id, deployment_id, submitted_by, data, location,"
    "                                   collected_at, received_at, reason, org_visible, answers_kv)"
    "           SELECT $1, $2, $3, p.data, NULLIF($5, '')::jsonb, NULLIF($6, '')::timestamptz,"
    "                  to_timestamp($7::bigint / 1000.0), $8, $9::boolean, $10::int FROM p"
    "           ON CONFLICT (id) DO NOTHING RETURNING id),"
    "     f AS (INSERT INTO refused_submissions (id, deployment_id, submitted_by, data, location,"
    "                                            collected_at, received_at, reason, fingerprint,"
    "                                            answers_kv)"
    "           SELECT $1, $2, $3, p.data, NULLIF($5, '')::jsonb, NULLIF($6, '')::timestamptz,"
    "                  to_timestamp($7::bigint / 1000.0), 'id_conflict',"
    "                  fv_submission_fingerprint(p.data, NULLIF($5, '')::jsonb,"
    "                                            NULLIF($6, '')::timestamptz), $10::int"
    "           FROM quarantine x, p WHERE x.id = $1 AND NOT EXISTS (SELECT 1 FROM q)"
    "             AND NOT fv_quarantine_is_retry(x, $3, $2, p.data, NULLIF($5, '')::jsonb,"
    "                                            NULLIF($6, '')::timestamptz)"
    "           ON CONFLICT DO NOTHING RETURNING id),"
    "     n AS (INSERT INTO audit (actor, action, target_type, target_id, detail, org_id)"
    "           SELECT NULL, 'submission.refused_no_tie', 'deployment', $2::text,"
    "                  jsonb_build_object('deployment_id', $2::text), o.org_id"
    "           FROM q, o WHERE NOT $9::boolean AND o.org_id IS NOT NULL)"
    " INSERT INTO audit (actor, action, target_type, target_id, detail, org_id)"
    " SELECT $3, a.action, 'submission', a.id::text,"
    "        jsonb_build_object('deployment_id', $2::text, 'reason', a.reason),"
    "        CASE WHEN $9::boolean THEN (SELECT org_id FROM o) END"
    " FROM (SELECT id, 'submission.quarantined' AS action, $8::text AS reason FROM q"
    "       UNION ALL SELECT id, 'submission.refused', 'id_conflict' FROM f) a";

/* Writes the quarantine row and its audit entries (tie: see quarantine_sql). */
static wk_verify_result quarantine(wk_store *st, const fv_envelope *e, const char *reason, bool tie,
                                   char *err, size_t errlen)
{
    char *data = NULL, *loc = NULL; /* owned: sealed (migration 027) */
    int kv = 0;
    if (wk_seal_entry_texts(st, e, &data, &loc, &kv, err, errlen) != 0) return WK_VERIFY_FAILED;
    char kvtext[16] = "";
    if (kv > 0) snprintf(kvtext, sizeof kvtext, "%d", kv);
    char *coll = fv_memdup0(e->collected_at ? e->collected_at : "", e->collected_at_len);
    char recv[32];
    snprintf(recv, sizeof recv, "%lld", (long long)e->received_at_ms);
    wk_verify_result rc = WK_VERIFY_FAILED;
    if (data && loc && coll) {
        const char *params[] = {
            e->id,  e->deployment_id,       e->submitted_by,       data, loc, coll, recv,
            reason, tie ? "true" : "false", kv > 0 ? kvtext : NULL};
        PGresult *res = wk_store_exec(st, quarantine_sql, 10, params);
        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            fv_warn("submission %s quarantined%s: %s", e->id, tie ? "" : " for the operator (no tie)",
                    reason);
            rc = WK_VERIFY_QUARANTINE;
        } else {
            fv_pgutil_error(st->conn, res, err, errlen);
            if (fv_pgutil_is_data_error(res)) rc = WK_VERIFY_REJECTED;
        }
        PQclear(res);
    } else {
        snprintf(err, errlen, "out of memory");
    }
    free(data);
    free(loc);
    free(coll);
    return rc;
}

/* Validates the answers against a stored definition; writes the problems into why. */
static bool answers_pass(const char *definition, const fv_envelope *e, char *why, size_t whylen)
{
    char perr[128];
    char *text = fv_memdup0(e->data, e->data_len);
    yajl_val def = fv_json_parse(definition, perr, sizeof perr);
    yajl_val data = text ? fv_json_parse(text, perr, sizeof perr) : NULL;
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    fv_form *form = def ? fv_form_compile_stored(def, &errs) : NULL;
    bool ok = false;
    if (!form || !data) {
        snprintf(why, whylen, "the form or the answers cannot be read");
    } else if (fv_form_validate(form, data, &errs) == 0) {
        ok = true;
    } else {
        size_t o = (size_t)snprintf(why, whylen, "answers fail the form:");
        for (size_t i = 0; i < errs.n && o < whylen; i++)
            o += (size_t)snprintf(why + o, whylen - o, " %s: %s;", errs.items[i].field,
                                  errs.items[i].reason);
    }
    fv_form_errors_free(&errs);
    fv_form_free(form);
    if (def) yajl_tree_free(def);
    if (data) yajl_tree_free(data);
    free(text);
    return ok;
}

wk_verify_result wk_verify_entry(wk_store *st, const fv_envelope *e, char survey_id[FV_UUID_STRLEN + 1],
                                 int *version, char *err, size_t errlen)
{
    char ver[16];
    snprintf(ver, sizeof ver, "%d", e->survey_version);
    const char *params[] = {e->id, e->submitted_by, e->deployment_id, ver};
    PGresult *res = wk_store_exec(st, check_sql, 4, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        fv_pgutil_error(st->conn, res, err, errlen);
        wk_verify_result rc = fv_pgutil_is_data_error(res) ? WK_VERIFY_REJECTED : WK_VERIFY_FAILED;
        PQclear(res);
        return rc;
    }
    char why[1024] = "";
    wk_verify_result rc = WK_VERIFY_ACCEPT;
    if (PQgetvalue(res, 0, 0)[0] == 't') {
        rc = WK_VERIFY_STORED;
    } else if (PQgetisnull(res, 0, 1)) {
        snprintf(why, sizeof why, "no such deployment");
    } else if (e->survey_version > 0 && strcmp(e->survey_id, PQgetvalue(res, 0, 1)) != 0) {
        snprintf(why, sizeof why, "the survey does not match the deployment's");
    } else if (PQgetisnull(res, 0, 2)) {
        snprintf(why, sizeof why, "no such survey version");
    } else if (PQgetvalue(res, 0, 4)[0] != 't') {
        snprintf(why, sizeof why, "the submitter is not an enumerator of the deployment");
    } else if (PQgetvalue(res, 0, 6)[0] == 't') {
        /* closed before the entry could be checked: it was accepted unverified, not by the rule */
        snprintf(why, sizeof why, "the deployment is closed");
    } else if (PQgetvalue(res, 0, 7)[0] == 't') {
        snprintf(why, sizeof why, "the survey is archived");
    } else if (!PQgetisnull(res, 0, 8)) {
        /* an encrypted survey: the data must be an envelope for its key (it cannot be read) */
        const char *field, *bad = fv_odkcrypt_envelope_check_text(e->data, e->data_len,
                                                                  atoi(PQgetvalue(res, 0, 8)), &field);
        if (bad)
            snprintf(why, sizeof why, "not an encrypted submission for the survey's key: %s: %s", field,
                     bad);
    } else if (!answers_pass(PQgetvalue(res, 0, 3), e, why, sizeof why)) {
        /* why says which answers */
    }
    if (rc == WK_VERIFY_ACCEPT && why[0] == '\0') {
        snprintf(survey_id, FV_UUID_STRLEN + 1, "%s", PQgetvalue(res, 0, 1));
        *version = atoi(PQgetvalue(res, 0, 2));
    }
    /* no deployment: no organisation either, so nothing is shown to any (tie is moot) */
    bool tie = !PQgetisnull(res, 0, 1) && PQgetvalue(res, 0, 5)[0] == 't';
    PQclear(res);
    if (rc == WK_VERIFY_STORED || why[0] == '\0') return rc;
    return quarantine(st, e, why, tie, err, errlen);
}

/* $1: the batch's verified entries [{i, id, submitted_by, deployment_id, rversion}]. Answers the
 * i of those whose submitter has a `permissions` revocation, or whose deployment a `deployment`
 * revocation (its principals changed, or it closed: migration 010), newer than the front end's
 * check (rversion; -1: any) and who is no longer an enumerator by the rule (fv_has_deployment_role,
 * migration 009: membership included). An id already stored is left to the INSERT (a replay). */
static const char revoked_sql[] =
    "SELECT x.i FROM jsonb_to_recordset($1::jsonb) AS x(i int, id uuid, submitted_by uuid,"
    "                                                   deployment_id uuid, rversion bigint)"
    /* CASE, not AND: the planner orders AND's terms by its cost estimates and would run the
     * rule function (a dozen lookups) for every verified entry; only those with a newer
     * revocation may need it. */
    " WHERE CASE WHEN (EXISTS (SELECT 1 FROM revocations v WHERE v.kind = 'permissions'"
    "                          AND v.subject = x.submitted_by::text AND v.id > x.rversion)"
    /* or the deployment's principals changed since (PATCH /v1/deployments, migration 010) */
    "                  OR EXISTS (SELECT 1 FROM revocations v WHERE v.kind = 'deployment'"
    "                             AND v.subject = x.deployment_id::text AND v.id > x.rversion))"
    "            THEN NOT EXISTS (SELECT 1 FROM responses r WHERE r.id = x.id)"
    "                 AND NOT fv_may_submit(x.submitted_by, x.deployment_id)"
    "            ELSE false END";

wk_verify_result wk_verify_revoked(wk_store *st, const wk_batch *b, long only, bool *revoked, char *err,
                                   size_t errlen)
{
    fv_jgen *j = fv_jgen_new();
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return WK_VERIFY_FAILED;
    }
    size_t n = 0;
    fv_jgen_array_open(j);
    for (size_t i = 0; i < b->n; i++) {
        revoked[i] = false;
        const wk_entry *x = &b->entries[i];
        if ((only >= 0 && (size_t)only != i) || x->state != WK_ENTRY_NEW || x->id_taken ||
            !x->env.verified)
            continue;
        fv_jgen_map_open(j);
        fv_jgen_key(j, "i");
        fv_jgen_int(j, (long long)i);
        fv_jgen_key(j, "id");
        fv_jgen_str(j, x->env.id);
        fv_jgen_key(j, "submitted_by");
        fv_jgen_str(j, x->env.submitted_by);
        fv_jgen_key(j, "deployment_id");
        fv_jgen_str(j, x->env.deployment_id);
        fv_jgen_key(j, "rversion");
        fv_jgen_int(j, x->env.rversion);
        fv_jgen_map_close(j);
        n++;
    }
    fv_jgen_array_close(j);
    const char *json = fv_jgen_buf(j, NULL);
    wk_verify_result rc = WK_VERIFY_ACCEPT;
    if (n == 0) {
        fv_jgen_free(j);
        return rc;
    }
    if (!json) {
        snprintf(err, errlen, "%s", fv_jgen_error(j));
        fv_jgen_free(j);
        return WK_VERIFY_FAILED;
    }
    const char *params[] = {json};
    PGresult *res = wk_store_exec(st, revoked_sql, 1, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fv_pgutil_error(st->conn, res, err, errlen);
        rc = fv_pgutil_is_data_error(res) ? WK_VERIFY_REJECTED : WK_VERIFY_FAILED;
    } else {
        for (int k = 0; k < PQntuples(res); k++) {
            long i = atol(PQgetvalue(res, k, 0));
            if (i >= 0 && (size_t)i < b->n) revoked[i] = true;
        }
    }
    PQclear(res);
    fv_jgen_free(j);
    return rc;
}

wk_verify_result wk_verify_quarantine_revoked(wk_store *st, const fv_envelope *e, char *err,
                                              size_t errlen)
{
    /* tie: the front end checked that the submitter was an enumerator when it accepted it, so
     * the organisation sees the entry in its quarantine (section "tie" of quarantine_sql). */
    return quarantine(st, e, "the submitter's permission was revoked before the submission was written",
                      true, err, errlen);
}

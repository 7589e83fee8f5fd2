/* Reading responses: GET /v1/responses/{id} and the list of a survey's responses, each row
 * filtered by the reading rule in SQL (fv_can_read_response, fv_response_visible). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "fe_handlers.h"
#include "fe_responses.h"
#include "fv_check.h"
#include "fv_log.h"

void fe_responses_write_at(fv_jgen *j, PGresult *p, int row, int base)
{
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, PQgetvalue(p, row, base + 0));
    fv_jgen_key(j, "survey_id");
    fv_jgen_str(j, PQgetvalue(p, row, base + 1));
    fv_jgen_key(j, "survey_version");
    fv_jgen_int(j, atoll(PQgetvalue(p, row, base + 11)));
    fv_jgen_key(j, "deployment_id");
    fv_jgen_str(j, PQgetvalue(p, row, base + 2));
    fv_jgen_key(j, "status");
    fv_jgen_str(j, PQgetvalue(p, row, base + 3));
    fv_jgen_key(j, "stage");
    fv_jgen_int(j, atoll(PQgetvalue(p, row, base + 12)));
    if (!strcmp(PQgetvalue(p, row, base + 3), "rejected")) {
        fv_jgen_key(j, "rejection_message");
        fv_jgen_str(j, PQgetisnull(p, row, base + 13) ? NULL : PQgetvalue(p, row, base + 13));
    }
    fv_jgen_key(j, "data");
    fv_jgen_raw(j, PQgetvalue(p, row, base + 4), (size_t)PQgetlength(p, row, base + 4));
    fv_jgen_key(j, "location");
    if (PQgetisnull(p, row, base + 5))
        fv_jgen_null(j);
    else
        fv_jgen_raw(j, PQgetvalue(p, row, base + 5), (size_t)PQgetlength(p, row, base + 5));
    fv_jgen_key(j, "submitted_by");
    fv_jgen_str(j, PQgetvalue(p, row, base + 6));
    fv_jgen_key(j, "collected_at");
    fv_jgen_str(j, PQgetisnull(p, row, base + 10) ? NULL : PQgetvalue(p, row, base + 10));
    fv_jgen_key(j, "created_at");
    fv_jgen_str(j, PQgetvalue(p, row, base + 7));
    fv_jgen_key(j, "updated_at");
    fv_jgen_str(j, PQgetvalue(p, row, base + 8));
    fv_jgen_key(j, "version");
    fv_jgen_int(j, atoll(PQgetvalue(p, row, base + 9)));
    fv_jgen_map_close(j);
}

/* The reading rule (fv_can_read_response): survey admins and managers any status, approvers of
 * stage k pending at k and final, viewers final, enumerators their own; deleted ones nobody. */
static const char sql_response_get[] =
    "SELECT " RESPONSE_COLS(MASKED_DATA("COALESCE(fv_survey_role($2, r.survey_id) = 'admin', false)"))
    " FROM responses r WHERE r.id = $1 AND fv_can_read_response($2, r.id)";

static void response_got(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_reply_error(r, 404, "not_found", "no such response");
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fe_responses_write_at(j, res->res, 0, 0);
    fe_reply_gen_send(r, 200, j);
}

void fe_responses_get(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such response");
        return;
    }
    const char *params[] = {r->param[0], r->user->id};
    fe_pg_query(sql_response_get, 2, params, response_got, r);
}

/* State of one listing: owned by the request. */
typedef struct list_state {
    int limit;
} list_state;

/* The caller's access to each deployment of the survey is computed once (fv_deployment_access)
 * and every row is filtered by the reading rule (fv_response_visible), in SQL. */
static const char sql_response_list[] =
    "WITH a AS MATERIALIZED (SELECT d.id, fv_deployment_access($2, d.id) AS acc "
    "                        FROM deployments d WHERE d.survey_id = $1), "
    "     adm AS MATERIALIZED (SELECT COALESCE(fv_survey_role($2, $1) = 'admin', false) AS yes) "
    "SELECT " RESPONSE_COLS(MASKED_DATA("adm.yes")) " FROM a JOIN responses r ON r.deployment_id = a.id, adm "
    "WHERE r.survey_id = $1 "
    "  AND fv_response_visible(a.acc, $2, r.submitted_by, r.status, r.stage, r.deleted_at) "
    "  AND ($3::uuid IS NULL OR r.deployment_id = $3::uuid) "
    "  AND ($4::text IS NULL OR r.status = $4) "
    "  AND ($5::timestamptz IS NULL OR (r.created_at, r.id) > ($5::timestamptz, $6::uuid)) "
    "ORDER BY r.created_at, r.id LIMIT $7";

/* An empty page: the survey exists and the caller may see it (else 404). */
static const char sql_survey_exists[] = "SELECT 1 FROM surveys WHERE id = $1 AND fv_can_see_survey($2, id)";

static void survey_checked(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) == 0) {
        fe_reply_error(r, 404, "not_found", "no such survey");
        return;
    }
    static const char empty[] = "{\"items\":[],\"next\":null}";
    fe_reply_text(r, 200, "application/json", empty, sizeof empty - 1);
}

/* The cursor is opaque to clients: hex of "<created_at>|<id>" of the last row returned. */
static void cursor_encode(const char *ts, const char *id, char *out, size_t outlen)
{
    char raw[128];
    snprintf(raw, sizeof raw, "%s|%s", ts, id);
    size_t o = 0;
    for (const char *p = raw; *p && o + 2 < outlen; p++) o += (size_t)snprintf(out + o, outlen - o, "%02x", (unsigned char)*p);
    out[o] = '\0';
}

static bool cursor_decode(const char *c, char *ts, size_t tslen, char *id)
{
    char raw[128];
    size_t n = strlen(c);
    if (n == 0 || n % 2 || n / 2 >= sizeof raw) return false;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)c[2 * i]) || !isxdigit((unsigned char)c[2 * i + 1]) ||
            sscanf(c + 2 * i, "%2x", &v) != 1)
            return false;
        raw[i] = (char)v;
    }
    raw[n / 2] = '\0';
    char *bar = strchr(raw, '|');
    if (!bar || !fv_id_valid(bar + 1)) return false;
    *bar = '\0';
    if (!fv_check_datetime(raw) || strlen(raw) >= tslen) return false;
    snprintf(ts, tslen, "%s", raw);
    memcpy(id, bar + 1, FV_UUID_STRLEN + 1);
    return true;
}

static void responses_listed(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    list_state *ls = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    PGresult *p = res->res;
    int n = PQntuples(p);
    if (n == 0) {
        const char *params[] = {r->param[0], r->user->id};
        fe_pg_query(sql_survey_exists, 2, params, survey_checked, r);
        return;
    }
    bool more = n > ls->limit;
    if (more) n = ls->limit;
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "items");
    fv_jgen_array_open(j);
    for (int i = 0; i < n; i++) fe_responses_write_at(j, p, i, 0);
    fv_jgen_array_close(j);
    fv_jgen_key(j, "next");
    if (more) {
        char cur[300];
        cursor_encode(PQgetvalue(p, n - 1, 7), PQgetvalue(p, n - 1, 0), cur, sizeof cur);
        fv_jgen_str(j, cur);
    } else {
        fv_jgen_null(j);
    }
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}

void fe_responses_list(fe_req *r)
{
    if (!fv_id_valid(r->param[0])) {
        fe_reply_error(r, 404, "not_found", "no such survey");
        return;
    }
    char *dep = fe_query_param(r, "deployment"), *status = fe_query_param(r, "status");
    char *after = fe_query_param(r, "after"), *limit_s = fe_query_param(r, "limit");
    const char *bad[4], *why[4];
    size_t nbad = 0;
    int limit = fe_list_limit(limit_s);
    char ts[64] = "", cid[FV_UUID_STRLEN + 1] = "";
    if (dep && !fv_id_valid(dep)) bad[nbad] = "deployment", why[nbad++] = "must be a UUID";
    if (status && strcmp(status, "pending") && strcmp(status, "final") && strcmp(status, "rejected"))
        bad[nbad] = "status", why[nbad++] = "must be pending, final or rejected";
    if (after && !cursor_decode(after, ts, sizeof ts, cid))
        bad[nbad] = "after", why[nbad++] = "not a cursor this server returned";
    if (limit < 0) bad[nbad] = "limit", why[nbad++] = FE_LIST_LIMIT_REASON;
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", nbad, bad, why);
    } else {
        list_state *ls = calloc(1, sizeof *ls);
        if (!ls) {
            fe_reply_error(r, 503, "overloaded", "out of memory");
        } else {
            ls->limit = limit;
            r->state = ls;
            r->state_free = free;
            char lim[16];
            snprintf(lim, sizeof lim, "%d", limit + 1);
            const char *params[] = {r->param[0], r->user->id, dep, status, after ? ts : NULL,
                                    after ? cid : NULL, lim};
            fe_pg_query(sql_response_list, 7, params, responses_listed, r);
        }
    }
    free(dep);
    free(status);
    free(after);
    free(limit_s);
}

/* fvctl quarantine: the refused unverified submissions that no organisation sees (their
 * submitter had no tie to the deployment's organisation, or the deployment does not exist), or
 * with --all every quarantined submission. One JSON object a line, oldest first. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "fv_answers.h"
#include "fv_cli.h"
#include "fv_pgutil.h"
#include "fvctl.h"

static void quarantine_usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl [-c FILE] quarantine [--all] [--show-data] [--limit N]\n"
            "list the quarantined submissions no organisation sees (no tie to the deployment's\n"
            "organisation, or no such deployment), oldest first, one JSON object a line:\n"
            "  {id, deployment_id, submitted_by, reason, received_at, quarantined_at, org_visible,\n"
            "   data_bytes[, data, location]}\n"
            "  --all        every quarantined submission, the organisations' too\n"
            "  --show-data  include the answers and the location (the submitter's content)\n"
            "  --limit N    at most N (default 100; 0: all)\n");
}

/* $1: all, $2: with data, $3: limit (NULL: none). The JSON is built by PostgreSQL. */
static const char sql_list[] =
    "SELECT jsonb_build_object('id', q.id, 'deployment_id', q.deployment_id, 'submitted_by', "
    "       q.submitted_by, 'reason', q.reason, 'received_at', fv_ts(q.received_at), "
    "       'quarantined_at', fv_ts(q.created_at), 'org_visible', q.org_visible, "
    "       'data_bytes', octet_length(q.data::text)) "
    "       || CASE WHEN $2::boolean THEN jsonb_build_object('data', q.data, 'location', q.location, "
    "                '_fv', fv_answers_hint(q.id, fv_deployment_org(q.deployment_id), q.answers_kv)) "
    "               ELSE '{}'::jsonb END "
    "FROM quarantine q "
    "WHERE $1::boolean OR NOT q.org_visible "
    "   OR NOT EXISTS (SELECT 1 FROM deployments d WHERE d.id = q.deployment_id) "
    "ORDER BY q.created_at, q.id LIMIT $3::bigint";

int fvctl_quarantine(int argc, char **argv)
{
    fvctl_list_opts lo;
    int rc = fvctl_list_options(argc, argv, quarantine_usage, false, true, &lo);
    if (rc >= 0) return rc;
    long limit = lo.limit;
    bool show_data = lo.show_data, all = lo.all;
    PGconn *conn = fvctl_pg_connect("quarantine");
    if (!conn) return FV_EXIT_FAILURE;
    char lim[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *params[] = {all ? "true" : "false", show_data ? "true" : "false",
                            limit > 0 ? lim : NULL};
    PGresult *res = PQexecParams(conn, sql_list, 3, NULL, params, NULL, NULL, 0);
    int status = FV_EXIT_FAILURE;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(res); i++) {
            char *line = fvctl_answers_open("quarantine", PQgetvalue(res, i, 0)); /* owned */
            if (!line) {
                PQclear(res);
                PQfinish(conn);
                return FV_EXIT_FAILURE;
            }
            printf("%s\n", line);
            fv_answers_free_text(line);
        }
        fprintf(stderr, "fvctl quarantine: %d entr%s\n", PQntuples(res),
                PQntuples(res) == 1 ? "y" : "ies");
        status = FV_EXIT_OK;
    } else {
        char err[512];
        fv_pgutil_error(conn, res, err, sizeof err);
        fprintf(stderr, "fvctl quarantine: %s\n", err);
    }
    PQclear(res);
    PQfinish(conn);
    return status;
}

/* fvctl refused: the submissions the worker refused because their id is held by another
 * response (refused_submissions, migration 007), newest first. Their answers only with
 * --show-data: an operator looking for who reuses ids seldom needs them on the screen. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "fv_answers.h"
#include "fv_cli.h"
#include "fvctl.h"

static void refused_usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl refused [--limit N] [--json] [--show-data]\n"
            "  The refused submissions (reason id_conflict: their id is held by another response),\n"
            "  newest first: when, the submission id, who sent it, for which deployment, why.\n"
            "  --limit N     at most N (default 100; 0: all)\n"
            "  --json        one JSON object a line\n"
            "  --show-data   with the answers, location and collection time\n");
}

/* $1 the limit (NULL: all), $2 with the answers. */
/* the answers are sealed (migration 027): their hint, for fvctl_answers_open */
#define HINT "fv_answers_hint(f.id, fv_deployment_org(f.deployment_id), f.answers_kv)"
static const char sql_refused_list[] =
    "SELECT fv_ts(f.created_at), f.id::text, f.submitted_by::text, f.deployment_id::text, f.reason,"
    "       jsonb_strip_nulls(jsonb_build_object("
    "           'refused_at', fv_ts(f.created_at), 'id', f.id, 'submitted_by', f.submitted_by,"
    "           'deployment_id', f.deployment_id, 'survey_id', f.survey_id,"
    "           'survey_version', f.survey_version, 'reason', f.reason,"
    "           'received_at', fv_ts(f.received_at))"
    "         || CASE WHEN $2::boolean THEN jsonb_build_object('data', f.data, 'location', f.location,"
    "                     'collected_at', fv_ts(f.collected_at), '_fv', " HINT
    ") ELSE '{}'::jsonb END)::text,"
    "       CASE WHEN $2::boolean THEN jsonb_build_object('data', f.data, 'location', f.location,"
    "                     'collected_at', fv_ts(f.collected_at), '_fv', " HINT ")::text END"
    " FROM refused_submissions f ORDER BY f.seq DESC LIMIT $1::bigint";

int fvctl_refused(int argc, char **argv)
{
    fvctl_list_opts lo;
    int rc = fvctl_list_options(argc, argv, refused_usage, true, false, &lo);
    if (rc >= 0) return rc;
    long limit = lo.limit;
    bool json = lo.json, show_data = lo.show_data;
    PGconn *conn = fvctl_pg_connect("refused");
    if (!conn) return FV_EXIT_FAILURE;
    char lim[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *params[] = {limit > 0 ? lim : NULL, show_data ? "true" : "false"};
    PGresult *res = PQexecParams(conn, sql_refused_list, 2, NULL, params, NULL, NULL, 0);
    int status = FV_EXIT_FAILURE;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "fvctl refused: %s", PQerrorMessage(conn));
    } else {
        int n = PQntuples(res);
        if (!json && n > 0)
            printf("%-27s  %-36s  %-36s  %-36s  %s\n", "REFUSED AT (UTC)", "SUBMISSION", "SUBMITTED BY",
                   "DEPLOYMENT", "REASON");
        for (int i = 0; i < n; i++) {
            char *line = NULL; /* owned: the JSON (or the data) with its answers opened */
            if ((json || show_data) &&
                !(line = fvctl_answers_open("refused", PQgetvalue(res, i, json ? 5 : 6)))) {
                status = FV_EXIT_FAILURE;
                goto out;
            }
            if (json) {
                printf("%s\n", line);
                fv_answers_free_text(line);
                continue;
            }
            printf("%-27s  %-36s  %-36s  %-36s  %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                   PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
            if (show_data) printf("    %s\n", line);
            fv_answers_free_text(line);
        }
        status = FV_EXIT_OK;
    }
out:
    PQclear(res);
    PQfinish(conn);
    return status;
}

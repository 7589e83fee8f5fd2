/* fvctl rotate-data-key: a new version of an organisation's data key (envelope encryption at
 * rest, common/fv_datakey.h, migrations 025 and 026). New values are sealed under the highest
 * version at once (every program reads it per write); the workers' re-seal sweep
 * (worker/wk_seal.c, reseal_sweep_ms) seals the values already stored again, in the background,
 * while everything keeps working (the older version opens them until then). --wait follows the
 * sweep until nothing is left under an older version; --retire then deletes the older versions'
 * wrapped keys (a data key thought compromised is gone from the database, its backups aside).
 *
 * The new key is 32 random bytes wrapped under the key file's current master key; two runs at
 * once cannot make the same version (the primary key: the loser tries the next one). */
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fv_cli.h"
#include "fv_datakey.h"
#include "fv_id.h"
#include "fv_keys.h"
#include "fv_pgutil.h"
#include "fv_settings.h"
#include "fvctl.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl [-c FILE] rotate-data-key --org ID [--wait] [--timeout S] [--retire]\n"
            "  Adds a new version of the organisation's data key (wrapped under the key file's\n"
            "  current master key). New values are sealed under it at once; the workers seal the\n"
            "  stored ones again in the background. Prints the new version and how many values are\n"
            "  still under an older one.\n"
            "  --wait       poll until none is (exit 1 if --timeout passes first)\n"
            "  --timeout S  bound of --wait, seconds (default 600)\n"
            "  --retire     with --wait, once none is left: delete the older versions' wrapped keys\n");
}

static const char sql_org[] = "SELECT 1 FROM orgs WHERE id = $1::uuid";
static const char sql_max[] = "SELECT COALESCE(max(version), 0)::text FROM data_keys WHERE scope = $1";
static const char sql_insert[] =
    "INSERT INTO data_keys (scope, version, wrapped) VALUES ($1, $2::int, $3) ON CONFLICT DO NOTHING";
/* Values of the org under a version older than $2, or in clear: those the sweep will seal, and
 * those it marked as not opening (seal_error; it leaves them alone). */
#define ORG_RESPONSES "responses r JOIN surveys s ON s.id = r.survey_id AND s.org_id = $1::uuid"
#define ORG_COPIES(t) t " x WHERE fv_deployment_org(x.deployment_id) = $1::uuid"
static const char sql_stale[] =
    "SELECT ((SELECT count(*) FROM response_xml WHERE org_id = $1::uuid AND seal_error IS NULL "
    "         AND (key_version IS NULL OR key_version < $2::int)) "
    "      + (SELECT count(*) FROM attachment_blobs WHERE org_id = $1::uuid AND seal_error IS NULL "
    "         AND (key_version IS NULL OR key_version < $2::int)) "
    /* answers (migration 027): the responses (their versions go with them), refused, quarantined */
    "      + (SELECT count(*) FROM " ORG_RESPONSES " WHERE r.answers_seal_error IS NULL "
    "         AND (r.answers_kv IS NULL OR r.answers_kv < $2::int)) "
    "      + (SELECT count(*) FROM " ORG_COPIES(
        "refused_submissions") " AND x.answers_seal_error IS NULL "
                               "         AND (x.answers_kv IS NULL OR x.answers_kv < $2::int)) "
                               "      + (SELECT count(*) FROM " ORG_COPIES(
                                   "quarantine") " AND x.answers_seal_error IS NULL "
                                                 "         AND (x.answers_kv IS NULL OR x.answers_kv < $2::int)))::text, "
                                                 "       ((SELECT count(*) FROM response_xml WHERE org_id = $1::uuid AND seal_error IS NOT NULL) "
                                                 "      + (SELECT count(*) FROM attachment_blobs WHERE org_id = $1::uuid AND seal_error IS NOT NULL) "
                                                 "      + (SELECT count(*) FROM " ORG_RESPONSES
                                                 " WHERE r.answers_seal_error IS NOT NULL "
                                                 "         AND r.answers_kv IS NOT NULL) "
                                                 "      + (SELECT count(*) FROM " ORG_COPIES(
                                                     "refused_submissions") " AND x.answers_seal_error IS NOT NULL) "
                                                                            "      + (SELECT count(*) FROM " ORG_COPIES(
                                                                                "quarantine") " AND x.answers_seal_error IS NOT NULL))::text";
static const char sql_retire[] =
    "DELETE FROM data_keys k WHERE k.scope = 'org:' || $1 AND k.version < $2::int "
    "AND NOT EXISTS (SELECT 1 FROM response_xml x WHERE x.org_id = $1::uuid AND x.key_version = k.version) "
    "AND NOT EXISTS (SELECT 1 FROM attachment_blobs b WHERE b.org_id = $1::uuid AND b.key_version = k.version) "
    /* answers (027): a version any row or any history state is sealed under stays */
    "AND NOT EXISTS (SELECT 1 FROM " ORG_RESPONSES " WHERE r.answers_kv = k.version) "
    "AND NOT EXISTS (SELECT 1 FROM " ORG_RESPONSES " JOIN response_events e ON e.response_id = r.id "
    "                WHERE (e.state->>'answers_kv')::int = k.version) "
    "AND NOT EXISTS (SELECT 1 FROM " ORG_COPIES(
        "refused_submissions") " AND x.answers_kv = k.version) "
                               "AND NOT EXISTS (SELECT 1 FROM " ORG_COPIES(
                                   "quarantine") " AND x.answers_kv = k.version)";

/* Runs one statement; its result (the caller clears it) or NULL after saying why. */
static PGresult *run(PGconn *conn, const char *sql, int n, const char *const *params, const char *what)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(res);
    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) return res;
    char err[512];
    fv_pgutil_error(conn, res, err, sizeof err);
    fprintf(stderr, "fvctl rotate-data-key: %s: %s\n", what, err);
    PQclear(res);
    return NULL;
}

/* The values still to seal again (-1 on failure); *marked: those that do not open. */
static long long stale_count(PGconn *conn, const char *org, const char *version, long long *marked)
{
    const char *params[] = {org, version};
    PGresult *res = run(conn, sql_stale, 2, params, "counting the values to seal again");
    long long n = res ? atoll(PQgetvalue(res, 0, 0)) : -1;
    *marked = res ? atoll(PQgetvalue(res, 0, 1)) : 0;
    PQclear(res);
    return n;
}

int fvctl_rotate_data_key(int argc, char **argv)
{
    static const struct option opts[] = {{"org", required_argument, NULL, 'o'},
                                         {"wait", no_argument, NULL, 'w'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"retire", no_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *org = NULL;
    bool wait = false, retire = false;
    long timeout = 600;
    int o;
    while ((o = getopt_long(argc, argv, "o:wt:rh", opts, NULL)) != -1) {
        char *end;
        switch (o) {
        case 'h': usage(stdout); return FV_EXIT_OK;
        case 'o': org = optarg; break;
        case 'w': wait = true; break;
        case 'r': retire = true; break;
        case 't':
            timeout = strtol(optarg, &end, 10);
            if (*end || timeout < 1 || timeout > 86400) {
                fprintf(stderr, "fvctl rotate-data-key: --timeout must be 1 to 86400\n");
                return FV_EXIT_CONFIG;
            }
            break;
        default: usage(stderr); return FV_EXIT_CONFIG;
        }
    }
    if (optind < argc || !org || !fv_id_valid(org) || (retire && !wait)) {
        fprintf(stderr, "fvctl rotate-data-key: %s\n",
                optind < argc ? "unexpected argument"
                : !org        ? "--org ID is needed"
                : retire      ? "--retire needs --wait"
                              : "--org: not an id");
        usage(stderr);
        return FV_EXIT_CONFIG;
    }
    fv_keyset ks;
    char err[512];
    if (fv_keys_load(&ks, fv_common.key_file, err, sizeof err) != 0) {
        fprintf(stderr, "fvctl rotate-data-key: %s\n", err);
        return FV_EXIT_CONFIG;
    }
    PGconn *conn = fvctl_pg_connect("rotate-data-key");
    int status = FV_EXIT_FAILURE;
    char scope[FV_DATAKEY_SCOPE_MAX], vtext[16] = "";
    snprintf(scope, sizeof scope, "org:%s", org);
    if (!conn) goto done;
    const char *op[] = {org};
    PGresult *res = run(conn, sql_org, 1, op, "looking up the organisation");
    if (!res) goto done;
    bool known = PQntuples(res) == 1;
    PQclear(res);
    if (!known) {
        fprintf(stderr, "fvctl rotate-data-key: no organisation %s\n", org);
        goto done;
    }
    int version = 0;
    for (int attempt = 0; attempt < 5 && !version; attempt++) {
        const char *sp[] = {scope};
        res = run(conn, sql_max, 1, sp, "reading the data key versions");
        if (!res) goto done;
        int v = atoi(PQgetvalue(res, 0, 0)) + 1;
        PQclear(res);
        unsigned char key[FV_DATAKEY_BYTES];
        char *wrapped = fv_datakey_new(key) == 0 ? fv_datakey_wrap(&ks, scope, v, key)
                                                 : NULL; /* owned */
        OPENSSL_cleanse(key, sizeof key);
        if (!wrapped) {
            fprintf(stderr, "fvctl rotate-data-key: cannot make a key (random numbers or memory)\n");
            goto done;
        }
        snprintf(vtext, sizeof vtext, "%d", v);
        const char *ip[] = {scope, vtext, wrapped};
        res = run(conn, sql_insert, 3, ip, "storing the new data key");
        free(wrapped);
        if (!res) goto done;
        if (strcmp(PQcmdTuples(res), "1") == 0) version = v; /* else another run took v: next */
        PQclear(res);
    }
    if (!version) {
        fprintf(stderr, "fvctl rotate-data-key: the version kept being taken by another run\n");
        goto done;
    }
    long long marked = 0, left = stale_count(conn, org, vtext, &marked);
    if (left < 0) goto done;
    printf("fvctl rotate-data-key: organisation %s: data key version %d, wrapped under master key "
           "%s; %lld stored value(s) to seal again (the workers do it in the background)\n",
           org, version, ks.keys[0].id, left);
    fflush(stdout);
    status = FV_EXIT_OK;
    if (!wait) goto done;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (left > 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= timeout) {
            fprintf(stderr,
                    "fvctl rotate-data-key: %lld value(s) still under an older version after %ld s "
                    "(are the workers running? their logs say why a value does not open)\n",
                    left, timeout);
            status = FV_EXIT_FAILURE;
            goto done;
        }
        struct timespec tick = {0, 500 * 1000 * 1000};
        nanosleep(&tick, NULL); /* polling the database, which says when the sweep is done */
        if ((left = stale_count(conn, org, vtext, &marked)) < 0) {
            status = FV_EXIT_FAILURE;
            goto done;
        }
    }
    if (marked > 0) {
        fprintf(stderr,
                "fvctl rotate-data-key: %lld stored value(s) of %s do not open and were left as they "
                "are (SELECT response_id, seal_error FROM response_xml WHERE seal_error IS NOT NULL; "
                "the same on attachment_blobs); every other value is under version %d%s\n",
                marked, org, version, retire ? "; the versions they are under are kept" : "");
        status = FV_EXIT_FAILURE;
    } else {
        printf("fvctl rotate-data-key: every stored value of %s is under version %d\n", org, version);
    }
    if (retire) {
        const char *rp[] = {org, vtext};
        res = run(conn, sql_retire, 2, rp, "deleting the older versions");
        if (!res) {
            status = FV_EXIT_FAILURE;
            goto done;
        }
        printf("fvctl rotate-data-key: %s older version(s) deleted\n", PQcmdTuples(res));
        PQclear(res);
    }
done:
    if (conn) PQfinish(conn);
    fv_keys_clear(&ks);
    return status;
}

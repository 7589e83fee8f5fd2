/* fvctl: the operator's command line: migrate, create-admin, create-user, queue, dead letters. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fv_config.h"
#include "fv_crypto.h"
#include "fv_envelope.h"
#include "fv_id.h"
#include "fv_migrate.h"
#include "fv_pgutil.h"
#include "fv_redisutil.h"
#include "fv_settings.h"

#ifndef FV_SQL_DIR
#define FV_SQL_DIR "common/sql"
#endif

#define FVCTL_TIMEOUT_S 10

static const fv_cfg_entry fvctl_config_table[] = {
    FV_COMMON_CFG_ENTRIES,
    {NULL, NULL, 0, NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl [-c FILE] COMMAND [OPTIONS]\n"
            "\n"
            "commands:\n"
            "  migrate [--sql-dir DIR]           apply the numbered migrations not yet applied\n"
            "                                    (default DIR: %s)\n"
            "  create-admin --email E --name N   create (or reuse and promote) an operator account\n"
            "                                    and print a new API key for it on stdout\n"
            "  create-user --email E --name N    the same for an ordinary (non-admin) account\n"
            "  queue                             show the stream length, pending entries per\n"
            "                                    consumer and the dead-letter stream length\n"
            "  dead-letters [--limit N] [--json] [--show-data]\n"
            "                                    list the dead-letter stream, oldest first (default\n"
            "                                    100 entries, --limit 0 for all); answers, location\n"
            "                                    and collected_at are shown only with --show-data\n"
            "  requeue ID | --all                move dead letter ID (or every one) back onto the\n"
            "                                    submissions stream, atomically (MULTI/EXEC)\n"
            "\n"
            "options:\n"
            "  -c FILE      configuration file (its [common] section: pg_dsn, redis_*, streams)\n"
            "  -h, --help   this text\n"
            "Environment FV_<KEY> overrides a key, e.g. FV_PG_DSN.\n",
            FV_SQL_DIR);
}

static PGconn *pg_connect(void)
{
    char err[512];
    PGconn *conn = fv_pgutil_connect(fv_common.pg_dsn, "fvctl", FVCTL_TIMEOUT_S, 0, err, sizeof err);
    if (!conn) fprintf(stderr, "fvctl: cannot connect to PostgreSQL: %s\n", err);
    return conn;
}

static int cmd_migrate(int argc, char **argv)
{
    const char *dir = FV_SQL_DIR;
    static const struct option opts[] = {{"sql-dir", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'd') dir = optarg;
        else if (c == 'h') { usage(stdout); return 0; }
        else return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "fvctl migrate: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    PGconn *conn = pg_connect();
    if (!conn) return 1;
    char err[1024];
    int n = fv_migrate_run(conn, dir, stderr, err, sizeof err);
    PQfinish(conn);
    if (n < 0) {
        fprintf(stderr, "fvctl %s\n", err);
        return 1;
    }
    fprintf(stderr, "fvctl migrate: %d migration%s applied, schema up to date\n", n, n == 1 ? "" : "s");
    return 0;
}

/* Runs one parameterised statement expecting `want`; returns the result (caller PQclears) or
 * NULL after printing the error with `what`. */
static PGresult *q(PGconn *conn, const char *what, const char *sql, int n, const char *const *params,
                   ExecStatusType want)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == want) return res;
    char err[512];
    fv_pgutil_error(conn, res, err, sizeof err);
    fprintf(stderr, "fvctl: %s: %s\n", what, err);
    PQclear(res);
    return NULL;
}

static bool plausible_email(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || at[1] == '\0' || strchr(at + 1, '@')) return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ') return false;
    return strlen(s) <= 254;
}

/* create-admin / create-user: one transaction making (or reusing) the user, a key and audit rows. */
static int cmd_create_user(int argc, char **argv, bool admin)
{
    const char *email = NULL, *name = NULL;
    static const struct option opts[] = {{"email", required_argument, NULL, 'e'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'e') email = optarg;
        else if (c == 'n') name = optarg;
        else if (c == 'h') { usage(stdout); return 0; }
        else return 2;
    }
    const char *cmd = admin ? "create-admin" : "create-user";
    if (!email || !name || optind < argc) {
        fprintf(stderr, "fvctl %s: needs --email E --name N\n", cmd);
        return 2;
    }
    if (!plausible_email(email) || name[0] == '\0') {
        fprintf(stderr, "fvctl %s: '%s' is not an email address, or the name is empty\n", cmd, email);
        return 2;
    }

    int status = 1;
    PGresult *res = NULL;
    char user_id[FV_UUID_STRLEN + 1], key_id[FV_UUID_STRLEN + 1], key[FV_API_KEY_LEN + 1];
    char hash[FV_SHA256_HEXLEN + 1], err[512];
    PGconn *conn = pg_connect();
    if (!conn) return 1;
    if (fv_pgutil_exec(conn, "BEGIN", err, sizeof err) != 0) {
        fprintf(stderr, "fvctl %s: BEGIN: %s\n", cmd, err);
        goto done;
    }

    fv_id_new(user_id);
    const char *ins[] = {user_id, email, name, admin ? "true" : "false"};
    res = q(conn, "insert user",
            "INSERT INTO users (id, email, name, is_admin) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT ((lower(email))) DO NOTHING RETURNING id",
            4, ins, PGRES_TUPLES_OK);
    if (!res) goto done;
    bool created = PQntuples(res) == 1;
    PQclear(res);
    const char *sel[] = {email};
    res = q(conn, "find user", "SELECT id, is_admin FROM users WHERE lower(email) = lower($1) FOR UPDATE",
            1, sel, PGRES_TUPLES_OK);
    if (!res) goto done;
    if (PQntuples(res) != 1) {
        fprintf(stderr, "fvctl %s: user %s vanished\n", cmd, email);
        goto done;
    }
    snprintf(user_id, sizeof user_id, "%s", PQgetvalue(res, 0, 0));
    bool was_admin = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    res = NULL;

    const char *uid[] = {user_id};
    if (created) {
        res = q(conn, "audit", "INSERT INTO audit (actor, action, target_type, target_id, detail)"
                " VALUES (NULL, 'user.create', 'user', $1, '{\"via\":\"fvctl\"}')", 1, uid, PGRES_COMMAND_OK);
        if (!res) goto done;
        PQclear(res);
        fprintf(stderr, "fvctl %s: created user %s (%s)\n", cmd, user_id, email);
    } else {
        fprintf(stderr, "fvctl %s: reusing existing user %s (%s)\n", cmd, user_id, email);
        if (admin && !was_admin) {
            /* create-admin on an ordinary account makes it an operator: said and audited. */
            res = q(conn, "promote user", "UPDATE users SET is_admin = true WHERE id = $1", 1, uid,
                    PGRES_COMMAND_OK);
            if (!res) goto done;
            PQclear(res);
            res = q(conn, "audit", "INSERT INTO audit (actor, action, target_type, target_id, detail)"
                    " VALUES (NULL, 'user.admin_grant', 'user', $1, '{\"via\":\"fvctl\"}')", 1, uid,
                    PGRES_COMMAND_OK);
            if (!res) goto done;
            PQclear(res);
            fprintf(stderr, "fvctl %s: user %s is now an admin\n", cmd, user_id);
        }
    }
    res = NULL;

    if (!fv_api_key_new(key)) {
        fprintf(stderr, "fvctl %s: the random number generator failed\n", cmd);
        goto done;
    }
    fv_sha256_hex(key, strlen(key), hash);
    fv_id_new(key_id);
    const char *kparams[] = {key_id, user_id, hash};
    res = q(conn, "insert api key",
            "INSERT INTO api_keys (id, user_id, key_hash, name) VALUES ($1, $2, $3, 'fvctl')", 3, kparams,
            PGRES_COMMAND_OK);
    if (!res) goto done;
    PQclear(res);
    const char *aparams[] = {user_id, key_id};
    res = q(conn, "audit",
            "INSERT INTO audit (actor, action, target_type, target_id, detail)"
            " VALUES (NULL, 'api_key.create', 'user', $1,"
            "         jsonb_build_object('key_id', $2::text, 'via', 'fvctl'))",
            2, aparams, PGRES_COMMAND_OK);
    if (!res) goto done;
    PQclear(res);
    res = NULL;
    if (fv_pgutil_exec(conn, "COMMIT", err, sizeof err) != 0) {
        fprintf(stderr, "fvctl %s: COMMIT: %s\n", cmd, err);
        goto done;
    }
    /* The key itself, shown once: the only thing on stdout. */
    printf("%s\n", key);
    fflush(stdout);
    status = 0;
done:
    PQclear(res);
    PQfinish(conn);
    return status;
}

static int cmd_queue(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "fvctl queue: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    char err[512];
    int status = 1;
    redisReply *r = NULL;
    redisContext *c = fv_redisutil_connect(fv_common.redis_host, fv_common.redis_port,
                                           fv_common.redis_password, FVCTL_TIMEOUT_S * 1000,
                                           FVCTL_TIMEOUT_S * 1000, err, sizeof err);
    if (!c) {
        fprintf(stderr, "fvctl queue: cannot connect to Redis: %s\n", err);
        return 1;
    }
    const char *what = "XLEN";
    r = redisCommand(c, "XLEN %s", fv_common.stream);
    if (!r || r->type != REDIS_REPLY_INTEGER) goto failed;
    printf("stream %s: %lld entries\n", fv_common.stream, r->integer);
    freeReplyObject(r);

    what = "XPENDING";
    r = redisCommand(c, "XPENDING %s %s", fv_common.stream, fv_common.group);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0) {
        printf("group %s: does not exist yet (no worker has started)\n", fv_common.group);
    } else {
        /* [count, min-id, max-id, [[consumer, count], ...] or nil] */
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4 || r->element[0]->type != REDIS_REPLY_INTEGER)
            goto failed;
        printf("group %s: %lld pending\n", fv_common.group, r->element[0]->integer);
        const redisReply *cons = r->element[3];
        for (size_t i = 0; cons->type == REDIS_REPLY_ARRAY && i < cons->elements; i++) {
            const redisReply *p = cons->element[i];
            if (p->type == REDIS_REPLY_ARRAY && p->elements == 2)
                printf("  consumer %s: %s pending\n", p->element[0]->str, p->element[1]->str);
        }
    }
    freeReplyObject(r);

    what = "XLEN";
    r = redisCommand(c, "XLEN %s", fv_common.dead_stream);
    if (!r || r->type != REDIS_REPLY_INTEGER) goto failed;
    printf("dead-letter stream %s: %lld entries\n", fv_common.dead_stream, r->integer);
    status = 0;
    goto done;
failed:
    fv_redisutil_error(c, r, err, sizeof err);
    fprintf(stderr, "fvctl queue: %s: %s\n", what, err);
done:
    if (r) freeReplyObject(r);
    redisFree(c);
    return status;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "fvctl: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    char err[512];
    if (fv_config_load(fvctl_config_table, path, err, sizeof err) != 0) {
        fprintf(stderr, "fvctl: configuration: %s\n", err);
        fv_config_free(fvctl_config_table);
        return 1;
    }
    /* The command's own options: getopt starts at its name. */
    const char *cmd = argv[i];
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    optind = 1;
    int status;
    if (strcmp(cmd, "migrate") == 0) status = cmd_migrate(sub_argc, sub_argv);
    else if (strcmp(cmd, "create-admin") == 0) status = cmd_create_user(sub_argc, sub_argv, true);
    else if (strcmp(cmd, "create-user") == 0) status = cmd_create_user(sub_argc, sub_argv, false);
    else if (strcmp(cmd, "queue") == 0) status = cmd_queue(sub_argc, sub_argv);
    else if (strcmp(cmd, "help") == 0) { usage(stdout); status = 0; }
    else {
        fprintf(stderr, "fvctl: unknown command '%s'\n", cmd);
        usage(stderr);
        status = 2;
    }
    fv_config_free(fvctl_config_table);
    return status;
}

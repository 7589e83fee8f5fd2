/* fvctl's schema and account commands: migrate, create-admin, create-user. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fv_cli.h"
#include <openssl/crypto.h>

#include "fv_crypto.h"
#include "fv_datakey.h"
#include "fv_keys.h"
#include "fv_id.h"
#include "fv_migrate.h"
#include "fv_pgutil.h"
#include "fv_pii.h"
#include "fvctl.h"

/* Where migrate looks when neither --sql-dir nor sql_dir names a directory, relative to the
 * directory of the fvctl executable: the installed layout (<prefix>/bin/fvctl and
 * <prefix>/share/fieldvault/sql), then a build tree (CMake copies common/sql there). */
static const char *const sql_beside_exe[] = {"../share/fieldvault/sql", "share/fieldvault/sql"};
#define NBESIDE (sizeof sql_beside_exe / sizeof sql_beside_exe[0])

void fvctl_migrate_where(FILE *out, const char *indent)
{
    fprintf(out,
            "%sthe migrations (NNN_name.sql) are read from the first of:\n"
            "%s  1. --sql-dir DIR\n"
            "%s  2. sql_dir in [fvctl] of the configuration (or FV_SQL_DIR), when not empty\n"
            "%s  3. <directory of fvctl>/../share/fieldvault/sql (installed: <prefix>/bin/fvctl)\n"
            "%s  4. <directory of fvctl>/share/fieldvault/sql (a build tree)\n",
            indent, indent, indent, indent, indent);
}

static void migrate_usage(FILE *out)
{
    fprintf(out, "usage: fvctl [-c FILE] migrate [--sql-dir DIR]\n"
                 "apply the numbered migrations not yet applied, each in its own transaction\n");
    fvctl_migrate_where(out, "");
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The directory of the migrations (see fvctl_migrate_where) into out; -1 after saying why. */
static int find_sql_dir(const char *given, char *out, size_t outlen)
{
    const char *dir = given ? given : fvctl_cfg.sql_dir[0] ? fvctl_cfg.sql_dir : NULL;
    if (dir) {
        if (!is_dir(dir)) {
            fprintf(stderr, "fvctl migrate: %s%s is not a directory\n",
                    given ? "--sql-dir " : "sql_dir ", dir);
            return -1;
        }
        snprintf(out, outlen, "%s", dir);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n == -1) {
        fprintf(stderr,
                "fvctl migrate: readlink /proc/self/exe: %s; name the migrations with --sql-dir\n",
                strerror(errno));
        return -1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    for (size_t i = 0; i < NBESIDE; i++) {
        snprintf(out, outlen, "%s/%s", exe, sql_beside_exe[i]);
        if (is_dir(out)) return 0;
    }
    fprintf(stderr,
            "fvctl migrate: no migrations in %s/%s or %s/%s; name them with --sql-dir DIR or sql_dir\n",
            exe, sql_beside_exe[0], exe, sql_beside_exe[1]);
    return -1;
}

int fvctl_migrate(int argc, char **argv)
{
    const char *given = NULL;
    static const struct option opts[] = {{"sql-dir", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'd') given = optarg;
        else if (c == 'h') {
            migrate_usage(stdout);
            return FV_EXIT_OK;
        } else {
            migrate_usage(stderr);
            return FV_EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fvctl migrate: unexpected argument '%s'\n", argv[optind]);
        return FV_EXIT_CONFIG;
    }
    char dir[PATH_MAX + 64];
    if (find_sql_dir(given, dir, sizeof dir) != 0) return FV_EXIT_FAILURE;
    PGconn *conn = fvctl_pg_connect("migrate");
    if (!conn) return FV_EXIT_FAILURE;
    char err[1024];
    int n = fv_migrate_run(conn, dir, stderr, err, sizeof err);
    PQfinish(conn);
    if (n < 0) {
        fprintf(stderr, "fvctl %s\n", err);
        return FV_EXIT_FAILURE;
    }
    fprintf(stderr, "fvctl migrate: %d migration%s applied from %s, schema up to date\n", n,
            n == 1 ? "" : "s", dir);
    return FV_EXIT_OK;
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

/* The highest version of the global data key (users' own data, migration 028), made (version 1)
 * when there is none, unwrapped with ks into key. Returns the version, or -1 after saying why. */
static int global_key(PGconn *conn, const fv_keyset *ks, unsigned char key[FV_DATAKEY_BYTES])
{
    static const char sql_cur[] =
        "SELECT version, wrapped FROM data_keys WHERE scope = 'global' ORDER BY version DESC LIMIT 1";
    char err[256];
    for (int attempt = 0; attempt < 2; attempt++) {
        PGresult *res = q(conn, "global data key", sql_cur, 0, NULL, PGRES_TUPLES_OK);
        if (!res) return -1;
        if (PQntuples(res) == 1) {
            int v = atoi(PQgetvalue(res, 0, 0));
            int rc = fv_datakey_unwrap(ks, "global", v, PQgetvalue(res, 0, 1), key, err, sizeof err);
            PQclear(res);
            if (rc != 0) {
                fprintf(stderr, "fvctl: the global data key v%d: %s\n", v, err);
                return -1;
            }
            return v;
        }
        PQclear(res);
        unsigned char fresh[FV_DATAKEY_BYTES];
        char *wrapped = fv_datakey_new(fresh) == 0 ? fv_datakey_wrap(ks, "global", 1, fresh)
                                                   : NULL; /* ours */
        OPENSSL_cleanse(fresh, sizeof fresh);
        if (!wrapped) {
            fprintf(stderr, "fvctl: cannot make a data key (random numbers or memory)\n");
            return -1;
        }
        const char *params[] = {wrapped};
        res = q(
            conn, "new global data key",
            "INSERT INTO data_keys (scope, version, wrapped) VALUES ('global', 1, $1) ON CONFLICT DO NOTHING",
            1, params, PGRES_COMMAND_OK);
        free(wrapped);
        if (!res) return -1;
        PQclear(res);
    }
    fprintf(stderr, "fvctl: no global data key after making one\n");
    return -1;
}

static bool plausible_email(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || at[1] == '\0' || strchr(at + 1, '@')) return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ') return false;
    return strlen(s) <= 254;
}

static void create_admin_usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl [-c FILE] create-admin --email E --name N\n"
            "create an operator account (or reuse the one with that email and make it an operator),\n"
            "and print a new API key for it on stdout (the only thing on stdout)\n");
}

static void create_user_usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl [-c FILE] create-user --email E --name N\n"
            "create an ordinary (non-admin) account (or reuse the one with that email), and print a\n"
            "new API key for it on stdout (the only thing on stdout)\n");
}

/* create-admin / create-user: one transaction making (or reusing) the user, a key and audit rows. */
static int create_user(int argc, char **argv, bool admin)
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
        else if (c == 'h') {
            (admin ? create_admin_usage : create_user_usage)(stdout);
            return FV_EXIT_OK;
        } else {
            (admin ? create_admin_usage : create_user_usage)(stderr);
            return FV_EXIT_CONFIG;
        }
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
    fv_keyset ks = {0};
    unsigned char dk[FV_DATAKEY_BYTES];
    char hmac[FV_PII_HMAC_HEXLEN + 1];
    char *sealed_email = NULL, *sealed_name = NULL, *hmacs = NULL; /* ours */
    char user_id[FV_UUID_STRLEN + 1], key_id[FV_UUID_STRLEN + 1], key[FV_API_KEY_LEN + 1];
    char hash[FV_SHA256_HEXLEN + 1], err[512];
    PGconn *conn = fvctl_pg_connect(cmd);
    if (!conn) return FV_EXIT_FAILURE;
    if (fv_pgutil_exec(conn, "BEGIN", err, sizeof err) != 0) {
        fprintf(stderr, "fvctl %s: BEGIN: %s\n", cmd, err);
        goto done;
    }

    fv_id_new(user_id);
    /* The email and name sealed under the global data key, the email found by its HMACs under
     * every key of the key file, or in clear on a row the workers' sweep has not sealed yet. */
    if (fv_keys_load(&ks, fv_common.key_file, err, sizeof err) != 0) {
        fprintf(stderr, "fvctl %s: %s\n", cmd, err);
        goto done;
    }
    int dkv = global_key(conn, &ks, dk);
    if (dkv < 0) goto done;
    char aad_e[FV_DK_AAD_MAX], aad_n[FV_DK_AAD_MAX], dkvs[16];
    fv_pii_aad("users", user_id, "email", aad_e);
    fv_pii_aad("users", user_id, "name", aad_n);
    snprintf(dkvs, sizeof dkvs, "%d", dkv);
    sealed_email = fv_pii_seal_hex(dk, dkv, aad_e, email);
    sealed_name = fv_pii_seal_hex(dk, dkv, aad_n, name);
    hmacs = fv_pii_email_hmacs(&ks, email);
    if (!sealed_email || !sealed_name || !hmacs || fv_pii_email_hmac(&ks.keys[0], email, hmac) != 0) {
        fprintf(stderr, "fvctl %s: sealing the email and name failed\n", cmd);
        goto done;
    }
    const char *ins[] = {user_id,       sealed_email, sealed_name, admin ? "true" : "false", dkvs, hmac,
                         ks.keys[0].id, hmacs,        email};
    res = q(
        conn, "insert user",
        "INSERT INTO users (id, email_sealed, name_sealed, is_admin, pii_version, email_hmac, email_hmac_key) "
        "SELECT $1, $2::bytea, $3::bytea, $4, $5::int, $6::bytea, $7 WHERE NOT EXISTS ("
        "  SELECT 1 FROM users x WHERE x.email_hmac = ANY ($8::bytea[]) "
        "  OR (x.email IS NOT NULL AND lower(x.email) = lower($9))) "
        "ON CONFLICT DO NOTHING RETURNING id",
        9, ins, PGRES_TUPLES_OK);
    if (!res) goto done;
    bool created = PQntuples(res) == 1;
    PQclear(res);
    const char *sel[] = {hmacs, email};
    res = q(
        conn, "find user",
        "SELECT id, is_admin, disabled_at IS NOT NULL FROM users WHERE email_hmac = ANY ($1::bytea[]) "
        "OR (email IS NOT NULL AND lower(email) = lower($2)) LIMIT 1 FOR UPDATE",
        2, sel, PGRES_TUPLES_OK);
    if (!res) goto done;
    if (PQntuples(res) != 1) {
        fprintf(stderr, "fvctl %s: user %s vanished\n", cmd, email);
        goto done;
    }
    snprintf(user_id, sizeof user_id, "%s", PQgetvalue(res, 0, 0));
    if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
        /* a disabled account (erased at its owner's request: POST /v1/me/erase) is never given a
         * key or rights again: nothing re-enables it */
        fprintf(stderr, "fvctl %s: user %s is disabled (erased); it cannot be used again\n", cmd,
                user_id);
        goto done;
    }
    bool was_admin = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    res = NULL;

    const char *uid[] = {user_id};
    if (created) {
        res = q(conn, "audit",
                "INSERT INTO audit (actor, action, target_type, target_id, detail)"
                " VALUES (NULL, 'user.create', 'user', $1, '{\"via\":\"fvctl\"}')",
                1, uid, PGRES_COMMAND_OK);
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
            res = q(conn, "audit",
                    "INSERT INTO audit (actor, action, target_type, target_id, detail)"
                    " VALUES (NULL, 'user.admin_grant', 'user', $1, '{\"via\":\"fvctl\"}')",
                    1, uid, PGRES_COMMAND_OK);
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
            "INSERT INTO api_keys (id, user_id, key_hash, name) VALUES ($1, $2, $3, 'fvctl')", 3,
            kparams, PGRES_COMMAND_OK);
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
    free(sealed_email);
    free(sealed_name);
    free(hmacs);
    OPENSSL_cleanse(dk, sizeof dk);
    fv_keys_clear(&ks);
    return status;
}


int fvctl_create_admin(int argc, char **argv)
{
    return create_user(argc, argv, true);
}

int fvctl_create_user(int argc, char **argv)
{
    return create_user(argc, argv, false);
}

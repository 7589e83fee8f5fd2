/* Schema migrations: list the numbered SQL files and apply the missing ones. */
#include "fv_migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fv_pgutil.h"

/* Any constant works as long as every fvctl uses the same one: "fvmigr" in ASCII. */
#define FV_MIGRATE_LOCK_KEY "112852045195890"

static int cmp_version(const void *a, const void *b)
{
    const fv_migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

void fv_migrate_list_free(fv_migration *list, size_t n)
{
    if (!list) return;
    for (size_t i = 0; i < n; i++) {
        free(list[i].name);
        free(list[i].path);
    }
    free(list);
}

/* Parses "NNN_name.sql" into its version; -1 when the name has another shape. */
static int parse_name(const char *fname)
{
    size_t len = strlen(fname);
    const char *p = fname;
    long v = 0;
    while (isdigit((unsigned char)*p) && v < 1000000) v = v * 10 + (*p++ - '0');
    if (p == fname || *p != '_' || len < 5 || v < 1 || v >= 1000000) return -1;
    for (const char *q = p + 1; q < fname + len - 4; q++)
        if (!isalnum((unsigned char)*q) && *q != '_' && *q != '-') return -1;
    return (int)v;
}

int fv_migrate_list(const char *dir, fv_migration **out, size_t *n, char *err, size_t errlen)
{
    fv_migration *list = NULL;
    size_t count = 0, cap = 0;
    int rc = -1;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0) continue;
        int version = parse_name(de->d_name);
        if (version < 0) {
            snprintf(err, errlen, "%s/%s: migration files are named NNN_name.sql", dir, de->d_name);
            goto done;
        }
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            fv_migration *nl = realloc(list, ncap * sizeof *nl);
            if (!nl) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
            list = nl;
            cap = ncap;
        }
        fv_migration *m = &list[count];
        m->version = version;
        m->name = strndup(de->d_name, len - 4);
        if (m->name == NULL || asprintf(&m->path, "%s/%s", dir, de->d_name) == -1) {
            free(m->name);
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        count++;
    }
    if (count) qsort(list, count, sizeof *list, cmp_version);
    for (size_t i = 1; i < count; i++)
        if (list[i].version == list[i - 1].version) {
            snprintf(err, errlen, "%s and %s have the same version", list[i - 1].name, list[i].name);
            goto done;
        }
    rc = 0;
done:
    closedir(d);
    if (rc == 0) {
        *out = list;
        *n = count;
    } else {
        fv_migrate_list_free(list, count);
    }
    return rc;
}

/* Reads a whole file into a NUL-terminated buffer the caller frees. */
static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                snprintf(err, errlen, "out of memory");
                goto failed;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto failed;
    }
    buf[len] = '\0';
    if (strlen(buf) != len) {
        snprintf(err, errlen, "%s: contains a NUL byte", path);
        goto failed;
    }
    fclose(f);
    return buf;
failed:
    fclose(f);
    free(buf);
    return NULL;
}

static bool is_applied(const PGresult *applied, int version)
{
    for (int i = 0; i < PQntuples(applied); i++)
        if (atoi(PQgetvalue(applied, i, 0)) == version) return true;
    return false;
}

/* Applies one migration in its own transaction with its schema_migrations row. */
static int apply_one(PGconn *conn, const fv_migration *m, char *err, size_t errlen)
{
    char why[512];
    const char *errpos = "BEGIN";
    char *sql = read_file(m->path, err, errlen);
    if (!sql) return -1;
    if (fv_pgutil_exec(conn, "BEGIN", why, sizeof why) != 0) goto failed;
    errpos = "apply";
    if (fv_pgutil_exec(conn, sql, why, sizeof why) != 0) goto failed;
    errpos = "record";
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->name};
    PGresult *res = PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                 2, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) fv_pgutil_error(conn, res, why, sizeof why);
    PQclear(res);
    if (!ok) goto failed;
    errpos = "COMMIT";
    if (fv_pgutil_exec(conn, "COMMIT", why, sizeof why) != 0) goto failed;
    free(sql);
    return 0;
failed:
    snprintf(err, errlen, "migrate: %s (%s): %s", m->name, errpos, why);
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        (void)fv_pgutil_exec(conn, "ROLLBACK", why, sizeof why);
    free(sql);
    return -1;
}

int fv_migrate_run(PGconn *conn, const char *dir, FILE *progress, char *err, size_t errlen)
{
    fv_migration *list = NULL;
    size_t n = 0;
    PGresult *applied = NULL;
    bool locked = false;
    int rc = -1, count = 0;
    char why[512];
    const char *errpos = "list";

    if (fv_migrate_list(dir, &list, &n, why, sizeof why) != 0) goto failed;
    /* Two concurrent migrates: the second waits here, then finds everything applied. */
    errpos = "pg_advisory_lock";
    if (fv_pgutil_exec(conn, "SELECT pg_advisory_lock(" FV_MIGRATE_LOCK_KEY ")", why, sizeof why) != 0)
        goto failed;
    locked = true;
    errpos = "create schema_migrations";
    /* Quiet "already exists, skipping" notices: stderr carries one line per applied file. */
    if (fv_pgutil_exec(conn, "SET client_min_messages = warning", why, sizeof why) != 0) goto failed;
    if (fv_pgutil_exec(conn,
                       "CREATE TABLE IF NOT EXISTS schema_migrations ("
                       " version integer PRIMARY KEY,"
                       " name text NOT NULL,"
                       " applied_at timestamptz NOT NULL DEFAULT now())",
                       why, sizeof why) != 0)
        goto failed;
    errpos = "read schema_migrations";
    applied = PQexec(conn, "SELECT version FROM schema_migrations");
    if (PQresultStatus(applied) != PGRES_TUPLES_OK) {
        fv_pgutil_error(conn, applied, why, sizeof why);
        goto failed;
    }
    for (size_t i = 0; i < n; i++) {
        if (is_applied(applied, list[i].version)) continue;
        if (apply_one(conn, &list[i], err, errlen) != 0) goto done; /* err already says which */
        if (progress) fprintf(progress, "applied %s\n", list[i].name);
        count++;
    }
    rc = count;
    goto done;
failed:
    snprintf(err, errlen, "migrate: %s: %s", errpos, why);
done:
    if (locked)
        (void)fv_pgutil_exec(conn, "SELECT pg_advisory_unlock(" FV_MIGRATE_LOCK_KEY ")", why,
                             sizeof why);
    PQclear(applied);
    fv_migrate_list_free(list, n);
    return rc;
}

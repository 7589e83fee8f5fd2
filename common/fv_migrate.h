/* Schema migrations: the numbered files common/sql/NNN_name.sql, applied in order, each in its
 * own transaction with its schema_migrations row, under an advisory lock. */
#ifndef FV_MIGRATE_H
#define FV_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>

typedef struct fv_migration {
    int version; /* NNN of the file name */
    char *name;  /* file name without ".sql", e.g. "001_initial"; owned by the list */
    char *path;  /* dir/file; owned by the list */
} fv_migration;

/* Lists the migrations of dir in ascending version. Files not ending in ".sql" are ignored; a
 * ".sql" file not named NNN_name.sql, or two files with one version, is an error. On success
 * *out is an array the caller frees with fv_migrate_list_free. Returns 0 or -1 (reason in err). */
int fv_migrate_list(const char *dir, fv_migration **out, size_t *n, char *err, size_t errlen);
void fv_migrate_list_free(fv_migration *list, size_t n);

/* Applies the migrations of dir not yet recorded in schema_migrations (created if missing),
 * writing one line per applied file to progress (may be NULL). Returns how many were applied,
 * or -1 with a reason in err (the failing migration rolled back, earlier ones stay). Borrows
 * conn, which must not be inside a transaction. */
int fv_migrate_run(PGconn *conn, const char *dir, FILE *progress, char *err, size_t errlen);

#endif

/* fvctl: what its command groups share: the configuration, the connections, the commands. */
#ifndef FVCTL_H
#define FVCTL_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>

#include "fv_settings.h"

#define FVCTL_TIMEOUT_S 10

/* fvctl's own keys ([fvctl] section). */
typedef struct fvctl_settings {
    char *sql_dir;          /* where migrate finds the migrations; "" = next to the executable */
    char *status_balancer;  /* the balancer's admin listener fvctl status asks; "" = none */
    char *status_spool_dir; /* the front ends' spool directory fvctl status looks at; "" = none */
} fvctl_settings;

extern fvctl_settings fvctl_cfg;
/* fvctl_config.c: the table ([common] and [fvctl]) and its checks. */
extern const fv_cfg_entry fvctl_config_table[];
void fvctl_config_check(fv_cfg_load *ld);
/* sql_dir, when set, is a directory (skipped by --print-defaults). */
void fvctl_config_check_files(fv_cfg_load *ld);

/* Connects to PostgreSQL (pg_dsn) or Redis (redis_*); NULL after saying why on stderr. */
PGconn *fvctl_pg_connect(const char *cmd);
redisContext *fvctl_redis_connect(const char *cmd, int command_timeout_ms);
/* Prints "fvctl CMD: WHAT: <the Redis or connection error>" on stderr. */
void fvctl_redis_failed(const char *cmd, const char *what, redisContext *c, const redisReply *r);

/* A command: argv[0] is its name, getopt starts at argv[1] (optind = 1). Returns the exit
 * status: 0, FV_EXIT_FAILURE, or FV_EXIT_CONFIG for bad arguments. "--help" prints its usage
 * on stdout and returns 0. */
typedef int (*fvctl_command_fn)(int argc, char **argv);

/* fvctl_db.c: the schema and the accounts. */
int fvctl_migrate(int argc, char **argv);
int fvctl_create_admin(int argc, char **argv);
int fvctl_create_user(int argc, char **argv);
/* Prints where migrate looks for the migrations, in order (for its --help and fvctl --help). */
void fvctl_migrate_where(FILE *out, const char *indent);

/* fvctl_stream.c: the submissions stream and its dead letters. */
int fvctl_queue(int argc, char **argv);
int fvctl_dead_letters(int argc, char **argv);
int fvctl_requeue(int argc, char **argv);

/* fvctl_status.c: every part of the cluster on one screen. */
int fvctl_status(int argc, char **argv);

/* fvctl_spool.c: the spool files of a front end that is gone. */
int fvctl_spool_replay(int argc, char **argv);

/* fvctl_keys.c: sealed values re-sealed, and data keys re-wrapped, under the current key of the
 * key file; a new master key put first in it (fvctl_keyfile.c). */
int fvctl_reseal(int argc, char **argv);
int fvctl_rotate_master_key(int argc, char **argv);
/* fvctl_keydrop.c: rotate-master-key --drop ID [--force]: id is FV_KEY_IDLEN lowercase hex
 * characters (checked by the caller). Returns the exit status. */
int fvctl_drop_master_key(const char *id, bool force);
/* fvctl_datakey.c: a new version of an organisation's data key. */
int fvctl_rotate_data_key(int argc, char **argv);
/* fvctl_refused.c: the submissions refused for a taken id. */
int fvctl_refused(int argc, char **argv);
/* fvctl_quarantine.c: the refused unverified submissions kept for the operator. */
int fvctl_quarantine(int argc, char **argv);
/* json (borrowed) with the sealed answers it carries opened (fv_answers_finish: their "_fv"
 * hints) under the key file's master keys; the caller frees the result (fv_answers_free_text).
 * NULL after saying why on stderr, naming cmd. */
char *fvctl_answers_open(const char *cmd, const char *json);
/* fvctl open-answers: each JSON line of stdin with its sealed answers opened, on stdout. */
int fvctl_open_answers(int argc, char **argv);

/* Parses only --help (and nothing else) for a command without options; returns -1 to go on, or
 * the status to exit with. */
int fvctl_no_options(int argc, char **argv, void (*usage)(FILE *out));

/* The options of the listing commands (dead-letters, refused, quarantine): --limit N (0: all),
 * --json, --show-data, and --all where the command has it (all: non-NULL). */
typedef struct fvctl_list_opts {
    long limit;
    bool json, show_data, all;
} fvctl_list_opts;

/* Parses a listing command's options into out (defaults: limit 100, the rest off); with_json and
 * all_help say whether the command takes --json and --all. Returns -1 to go on, or the status to
 * exit with (help printed, or a bad option reported). */
int fvctl_list_options(int argc, char **argv, void (*usage)(FILE *out), bool with_json, bool with_all,
                       fvctl_list_opts *out);

#endif

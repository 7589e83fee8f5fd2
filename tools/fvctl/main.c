/* fvctl: the operator's command line: the start (options, configuration), the list of commands,
 * and the connections every command group uses. */
#include <getopt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_cli.h"
#include "fv_config.h"
#include "fv_pgutil.h"
#include "fv_redisutil.h"
#include "fvctl.h"

/* The commands (program.help_more lists them for --help). */
static const struct {
    const char *name;
    fvctl_command_fn run;
} commands[] = {
    {"migrate", fvctl_migrate},
    {"create-admin", fvctl_create_admin},
    {"create-user", fvctl_create_user},
    {"status", fvctl_status},
    {"queue", fvctl_queue},
    {"dead-letters", fvctl_dead_letters},
    {"requeue", fvctl_requeue},
    {"spool-replay", fvctl_spool_replay},
    {"reseal", fvctl_reseal},
    {"refused", fvctl_refused},
    {"quarantine", fvctl_quarantine},
    {"open-answers", fvctl_open_answers},
    {"rotate-master-key", fvctl_rotate_master_key},
    {"rotate-data-key", fvctl_rotate_data_key},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const fv_program program = {
    .name = "fvctl",
    .purpose = "Fieldvault's operator tool. `fvctl COMMAND --help` shows a command's own options.",
    .command_usage = "COMMAND [ARGS]",
    .help_more =
        "\n"
        "commands:\n"
        "  migrate          apply the numbered migrations not yet applied\n"
        "  create-admin     create (or reuse and promote) an operator account, print an API key\n"
        "  create-user      the same for an ordinary (non-admin) account\n"
        "  status           every part of the cluster on one screen: balancer, front ends,\n"
        "                   workers, PostgreSQL, Redis, queue, dead letters, spool\n"
        "  queue            the stream length, pending entries per consumer, dead letters\n"
        "  dead-letters     list the dead-letter stream, oldest first\n"
        "  requeue          move dead letters back onto the submissions stream\n"
        "  spool-replay     replay the spool files a dead front end left into Redis\n"
        "  reseal           seal every TOTP secret again under the key file's current key\n"
        "  rotate-master-key  --new-key --standby: a new master key second in the key file;\n"
        "                   --promote ID: that key first; without: re-wrap every data key (and\n"
        "                   re-seal TOTP secrets) under the current key; --drop ID: an old key out\n"
        "                   of the file once nothing is under it; --new-key: a new key first\n"
        "  rotate-data-key  --org ID: a new version of an organisation's data key; the workers\n"
        "                   seal its stored values again in the background (--wait, --retire)\n"
        "  refused          list the submissions refused because their id was taken\n"
        "  quarantine       list refused unverified submissions no organisation sees\n"
        "  open-answers     JSON lines on stdin with their sealed answers opened (\"_fv\" hints)\n"
        "  help [COMMAND]   this text, or a command's\n"
        "\n"
        "fvctl uses the [common] section (pg_dsn, redis_*, streams, key_file) and [fvctl] (sql_dir).\n",
    .table = fvctl_config_table,
    .check = fvctl_config_check,
    .check_files = fvctl_config_check_files,
};

static fvctl_command_fn find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return commands[i].run;
    return NULL;
}

int fvctl_no_options(int argc, char **argv, void (*usage)(FILE *out))
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'h') {
            usage(stdout);
            return FV_EXIT_OK;
        }
        usage(stderr);
        return FV_EXIT_CONFIG;
    }
    if (optind < argc) {
        fprintf(stderr, "fvctl %s: unexpected argument '%s'\n", argv[0], argv[optind]);
        usage(stderr);
        return FV_EXIT_CONFIG;
    }
    return -1;
}

int fvctl_list_options(int argc, char **argv, void (*usage)(FILE *out), bool with_json, bool with_all,
                       fvctl_list_opts *out)
{
    static const struct option opts[] = {{"limit", required_argument, NULL, 'l'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"show-data", no_argument, NULL, 'd'},
                                         {"all", no_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    *out = (fvctl_list_opts){.limit = 100};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'l') {
            char *end;
            errno = 0;
            out->limit = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || out->limit < 0) {
                fprintf(stderr, "fvctl %s: --limit wants a number >= 0 (0: all)\n", argv[0]);
                return FV_EXIT_CONFIG;
            }
        } else if (o == 'j' && with_json) {
            out->json = true;
        } else if (o == 'd') {
            out->show_data = true;
        } else if (o == 'a' && with_all) {
            out->all = true;
        } else if (o == 'h') {
            usage(stdout);
            return FV_EXIT_OK;
        } else {
            usage(stderr);
            return FV_EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fvctl %s: unexpected argument '%s'\n", argv[0], argv[optind]);
        return FV_EXIT_CONFIG;
    }
    return -1;
}

PGconn *fvctl_pg_connect(const char *cmd)
{
    char err[512];
    PGconn *conn = fv_pgutil_connect(fv_common.pg_dsn, "fvctl", FVCTL_TIMEOUT_S, 0, err, sizeof err);
    if (!conn) fprintf(stderr, "fvctl %s: cannot connect to PostgreSQL: %s\n", cmd, err);
    return conn;
}

redisContext *fvctl_redis_connect(const char *cmd, int command_timeout_ms)
{
    char err[512];
    redisContext *c = fv_redisutil_connect(fv_common.redis_host, fv_common.redis_port,
                                           fv_common.redis_user, fv_common.redis_password,
                                           FVCTL_TIMEOUT_S * 1000, command_timeout_ms, err, sizeof err);
    if (!c) fprintf(stderr, "fvctl %s: cannot connect to Redis: %s\n", cmd, err);
    return c;
}

void fvctl_redis_failed(const char *cmd, const char *what, redisContext *c, const redisReply *r)
{
    char err[512];
    fv_redisutil_error(c, r, err, sizeof err);
    fprintf(stderr, "fvctl %s: %s: %s\n", cmd, what, err);
}

int main(int argc, char **argv)
{
    fv_cli cli;
    /* Before the configuration, so that `fvctl COMMAND --help` works without one. */
    int sub = 1;
    while (sub < argc && argv[sub][0] == '-')
        sub += strcmp(argv[sub], "-c") == 0 || strcmp(argv[sub], "--config") == 0 ? 2 : 1;
    if (sub < argc && find_command(argv[sub])) {
        for (int k = sub + 1; k < argc && strcmp(argv[k], "--") != 0; k++)
            if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
                optind = 0;
                return find_command(argv[sub])(2, (char *[]){argv[sub], "--help", NULL});
            }
    }
    int status = fv_cli_start(&program, argc, argv, &cli);
    if (status >= 0) return status;
    /* The command's own options: getopt starts at its name. */
    const char *cmd = argv[cli.command];
    int sub_argc = argc - cli.command;
    char **sub_argv = argv + cli.command;
    optind = 0; /* a fresh getopt: permuting again, unlike fvctl's own options */
    fvctl_command_fn run = find_command(cmd);
    if (run) {
        status = run(sub_argc, sub_argv);
    } else if (strcmp(cmd, "help") == 0) {
        run = sub_argc > 1 ? find_command(sub_argv[1]) : NULL;
        if (run) status = run(2, (char *[]){sub_argv[1], "--help", NULL});
        else fv_cli_usage(&program, stdout), status = FV_EXIT_OK;
    } else {
        fprintf(stderr, "fvctl: unknown command '%s'\n", cmd);
        fv_cli_usage(&program, stderr);
        status = FV_EXIT_CONFIG;
    }
    fv_config_free(fvctl_config_table);
    return status;
}

/* The start of every Fieldvault program: command line, configuration file, checks, exit codes. */
#include "fv_cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FV_VERSION
#define FV_VERSION "unknown"
#endif

const char fv_version[] = FV_VERSION;

void fv_cli_usage(const fv_program *p, FILE *out)
{
    fprintf(out,
            "usage: %s [OPTIONS]%s%s\n"
            "%s\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   configuration file (deploy/fieldvault.conf documents every key);\n"
            "                      default: $FV_CONFIG, else " FV_CONFIG_DEFAULT_PATH " if it exists\n"
            "  --check-config      check the configuration, then exit (0: ok, 2: not)\n"
            "  --print-defaults    print every key with its value after the file and FV_* variables\n"
            "  -h, --help          this text\n"
            "  --version           print the version\n"
            "%s"
            "\n"
            "Environment FV_<KEY> overrides a key, e.g. FV_LOG_LEVEL=debug.\n"
            "Exit status: 0 done, 1 failed while running, 2 bad usage or configuration.\n",
            p->name, p->command_usage ? " " : "", p->command_usage ? p->command_usage : "",
            p->purpose ? p->purpose : "", p->help_more ? p->help_more : "");
}

/* The file to read when there is no -c: $FV_CONFIG (empty: none), else the default if it exists. */
static const char *default_config(void)
{
    const char *env = getenv("FV_CONFIG");
    if (env) return env[0] ? env : NULL;
    return access(FV_CONFIG_DEFAULT_PATH, F_OK) == 0 ? FV_CONFIG_DEFAULT_PATH : NULL;
}

int fv_cli_parse(const fv_program *p, int argc, char **argv, fv_cli *cli)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'C'},
                                         {"print-defaults", no_argument, NULL, 'P'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    bool have_path = false;
    memset(cli, 0, sizeof *cli);
    int opt;
    optind = 0; /* 0, not 1: glibc then reads the optstring's '+' again */
    /* A program taking commands stops at the first one: what follows is the command's. */
    while ((opt = getopt_long(argc, argv, p->command_usage ? "+c:h" : "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            cli->config_path = optarg;
            have_path = true;
            break;
        case 'C': cli->check_only = true; break;
        case 'P': cli->print_defaults = true; break;
        case 'h': fv_cli_usage(p, stdout); return FV_EXIT_OK;
        case 'V': printf("%s %s\n", p->name, fv_version); return FV_EXIT_OK;
        default: fv_cli_usage(p, stderr); return FV_EXIT_CONFIG;
        }
    }
    cli->command = optind;
    if (optind < argc && !p->command_usage) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", p->name, argv[optind]);
        fv_cli_usage(p, stderr);
        return FV_EXIT_CONFIG;
    }
    if (p->command_usage && optind >= argc && !cli->check_only && !cli->print_defaults) {
        fprintf(stderr, "%s: no command given\n", p->name);
        fv_cli_usage(p, stderr);
        return FV_EXIT_CONFIG;
    }
    if (!have_path) cli->config_path = default_config();
    return -1;
}

int fv_cli_start(const fv_program *p, int argc, char **argv, fv_cli *cli)
{
    int status = fv_cli_parse(p, argc, argv, cli);
    if (status >= 0) return status;
    fv_cfg_load ld;
    fv_config_read(&ld, p->table, cli->config_path);
    if (p->check) p->check(&ld);
    if (!cli->print_defaults && p->check_files) p->check_files(&ld);
    if (ld.nproblems) {
        fv_config_report(&ld, stderr, p->name);
        fprintf(stderr, "%s: %d problem%s in the configuration (%s)\n", p->name, ld.nproblems,
                ld.nproblems == 1 ? "" : "s", cli->config_path ? cli->config_path : "no file, defaults");
        status = FV_EXIT_CONFIG;
    } else if (cli->print_defaults) {
        fv_config_print(p->table, stdout);
        status = FV_EXIT_OK;
    } else if (cli->check_only) {
        printf("configuration ok (%s)\n",
               cli->config_path ? cli->config_path : "no file: defaults and FV_* variables");
        status = FV_EXIT_OK;
    }
    fv_config_release(&ld);
    if (status >= 0) fv_config_free(p->table);
    return status;
}

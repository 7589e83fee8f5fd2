/* The start of every Fieldvault program (fv-frontend, fv-worker, fv-balancer, fvctl): the one
 * command line -c/--config FILE, --check-config, --print-defaults, -h/--help, --version, where
 * the configuration file is, loading and checking it, and the exit codes. */
#ifndef FV_CLI_H
#define FV_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "fv_config.h"

/* Exit codes of every program. */
#define FV_EXIT_OK 0
#define FV_EXIT_FAILURE 1 /* something failed while running (a server down, a refused command) */
#define FV_EXIT_CONFIG 2  /* bad usage or a bad configuration: nothing was started */

/* Read when no -c is given and FV_CONFIG is not set, if it exists. */
#define FV_CONFIG_DEFAULT_PATH "/etc/fieldvault/fieldvault.conf"

/* What a program tells fv_cli_start about itself. */
typedef struct fv_program {
    const char *name;            /* "fv-worker": prefixes messages; --help, --version */
    const char *purpose;         /* one line under the usage line of --help */
    const char *command_usage;   /* "COMMAND [ARGS]" for a program taking commands (fvctl), or NULL */
    const char *help_more;       /* more --help text (commands, notes), ending in '\n', or NULL */
    const fv_cfg_entry *table;   /* the program's configuration table */
    fv_cfg_check_fn check;       /* checks past the ranges, on every load (and reload); or NULL */
    fv_cfg_check_fn check_files; /* checks of files and such, skipped by --print-defaults; or NULL */
} fv_program;

typedef struct fv_cli {
    const char *config_path; /* the file read (borrowed from argv or the environment), or NULL */
    bool check_only;
    bool print_defaults;
    int command; /* with command_usage: index in argv of COMMAND (argc when none was given) */
} fv_cli;

/* Parses argv into cli; resolves the configuration file: -c FILE, else $FV_CONFIG (empty: no
 * file), else FV_CONFIG_DEFAULT_PATH if it exists, else none (defaults and FV_* variables).
 * Returns -1 to go on, or the status to exit with: 0 after --help (on stdout) or --version,
 * FV_EXIT_CONFIG after a bad argument (usage on stderr). */
int fv_cli_parse(const fv_program *p, int argc, char **argv, fv_cli *cli);

/* fv_cli_parse, then loads the configuration, runs the program's checks and reports every
 * problem on stderr, one line each ("fv-worker: FILE:LINE: key: message"). Handles
 * --print-defaults and --check-config ("configuration ok" on stdout). Returns -1 when the program
 * should go on (the table loaded, every check passed), or the status to exit with (the table's
 * strings are then freed). */
int fv_cli_start(const fv_program *p, int argc, char **argv, fv_cli *cli);

/* The --help text. */
void fv_cli_usage(const fv_program *p, FILE *out);

/* "0.9.0": the project version CMake passes in. */
extern const char fv_version[];

#endif

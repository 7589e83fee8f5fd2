/* The command line every Fieldvault daemon takes: -c/--config FILE, --check-config,
 * --print-defaults, -h/--help. */
#ifndef FV_CLI_H
#define FV_CLI_H

#include <stdbool.h>
#include <stdio.h>

typedef struct fv_cli {
    const char *config_path; /* borrowed from argv; NULL: defaults and FV_* variables only */
    bool check_only;
    bool print_defaults;
} fv_cli;

/* Parses argv into cli. Returns -1 to go on, or the status to exit with: 0 after -h (usage
 * printed on stdout), 2 after a bad argument (usage on stderr). */
int fv_cli_parse(int argc, char **argv, fv_cli *cli, void (*usage)(FILE *out));

#endif

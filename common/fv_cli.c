/* The command line every Fieldvault daemon takes. */
#include "fv_cli.h"

#include <getopt.h>

int fv_cli_parse(int argc, char **argv, fv_cli *cli, void (*usage)(FILE *out))
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'C'},
                                         {"print-defaults", no_argument, NULL, 'P'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    cli->config_path = NULL;
    cli->check_only = cli->print_defaults = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': cli->config_path = optarg; break;
        case 'C': cli->check_only = true; break;
        case 'P': cli->print_defaults = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return -1;
}

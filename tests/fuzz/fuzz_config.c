/* Fuzz target: the config file parser (common/fv_config.c) with each program's table and
 * checks: the front end (fe_config_table), the worker, the balancer (which also parses its
 * addresses and backend list in lb_config_check) and fvctl. When a file loads without a
 * problem, what fv_config_print writes of the values must load again without one (that is what
 * --print-defaults promises).
 *
 * Input: the file's text. */
#include <stdio.h>

#include "fe_config.h"
#include "fuzz_util.h"
#include "fv_config.h"
#include "fvctl.h"
#include "lb_config.h"
#include "wk_config.h"

extern char **environ;

static const struct {
    const fv_cfg_entry *table;
    fv_cfg_check_fn check;
} programs[] = {
    {fe_config_table, fe_config_check},
    {wk_config_table, wk_config_check},
    {lb_config_table, lb_config_check},
    {fvctl_config_table, fvctl_config_check},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    /* FV_<KEY> variables override the file: none may leak in from the caller's environment. */
    for (;;) {
        char **e = environ;
        while (*e && strncmp(*e, "FV_", 3) != 0) e++;
        if (!*e) break;
        char name[256];
        size_t n = strcspn(*e, "=");
        snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), *e);
        if (unsetenv(name) != 0) abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    for (size_t p = 0; p < sizeof programs / sizeof programs[0]; p++) {
        fv_cfg_load ld;
        int problems = fv_config_read(&ld, programs[p].table, path);
        programs[p].check(&ld);
        FILE *devnull = fopen("/dev/null", "w");
        if (!devnull) abort();
        fv_config_report(&ld, devnull, "fuzz");
        fclose(devnull);
        fv_config_release(&ld);

        /* Lines are read 4095 bytes at a time (a known limit, see docs/security.md), so the
         * round trip is only asked of files whose printed lines stay shorter. */
        if (problems == 0 && size < 3000) {
            char *printed = NULL;
            size_t plen = 0;
            FILE *out = open_memstream(&printed, &plen);
            if (!out) abort();
            fv_config_print(programs[p].table, out);
            fclose(out);
            fv_config_free(programs[p].table);
            const char *again = fuzz_file((const uint8_t *)printed, plen);
            if (fv_config_read(&ld, programs[p].table, again) != 0) {
                fprintf(stderr, "printed config does not load again:\n%s\n%s", printed,
                        ld.problems ? ld.problems : "");
                abort();
            }
            fv_config_release(&ld);
            free(printed);
            path = fuzz_file(data, size); /* the next table reads the input again */
        }
        fv_config_free(programs[p].table);
    }
    return 0;
}

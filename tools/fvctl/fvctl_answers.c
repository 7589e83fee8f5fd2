/* fvctl's reading of sealed answers (migration 027, common/fv_answers.h): the refused and
 * quarantined submissions it shows with --show-data are opened with the key file's master keys. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_answers.h"
#include "fv_cli.h"
#include "fv_config.h"
#include "fvctl.h"

char *fvctl_answers_open(const char *cmd, const char *json)
{
    static fv_dkring *ring; /* the process's, for its life (a command runs once) */
    char err[512];
    if (!strstr(json, "\"_fv\"")) { /* nothing sealed in it: no key needed */
        char *c = strdup(json);
        if (!c) fprintf(stderr, "fvctl %s: out of memory\n", cmd);
        return c;
    }
    if (!ring) {
        fv_keyset ks;
        if (fv_keys_load(&ks, fv_common.key_file, err, sizeof err) != 0) {
            fprintf(stderr, "fvctl %s: the answers are sealed and the key file cannot be read: %s\n",
                    cmd, err);
            return NULL;
        }
        ring = fv_dkring_new(&ks, 64);
        fv_keys_clear(&ks);
        if (!ring) {
            fprintf(stderr, "fvctl %s: out of memory\n", cmd);
            return NULL;
        }
    }
    size_t n;
    char *out = fv_answers_finish(json, strlen(json), ring, &n, err, sizeof err);
    if (!out) fprintf(stderr, "fvctl %s: %s\n", cmd, err);
    return out;
}

static void open_usage(FILE *out)
{
    fprintf(out, "usage: fvctl [-c FILE] open-answers < LINES\n"
                 "each line of standard input, a JSON text whose responses carry the \"_fv\" hint\n"
                 "of migration 027 (as fv_response_json and fv_answers_hint write it), is written to\n"
                 "standard output with their sealed answers and locations opened and the hints\n"
                 "dropped; a value that does not open stops it, naming the row. For forensics and\n"
                 "for tests: it needs the key file (the wrapped data key travels in the hint).\n");
}

int fvctl_open_answers(int argc, char **argv)
{
    int rc = fvctl_no_options(argc, argv, open_usage);
    if (rc >= 0) return rc;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int status = FV_EXIT_OK;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n') line[n - 1] = '\0';
        if (!line[0]) continue;
        char *out = fvctl_answers_open("open-answers", line); /* owned */
        if (!out) {
            status = FV_EXIT_FAILURE;
            break;
        }
        printf("%s\n", out);
        fv_answers_free_text(out);
    }
    if (line) OPENSSL_cleanse(line, cap);
    free(line);
    return status;
}

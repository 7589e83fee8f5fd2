/* fvctl's reading of sealed answers (migration 027, common/fv_answers.h): the refused and
 * quarantined submissions it shows with --show-data are opened with the key file's master keys. */
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

/* Shared by the config tests: every integer key of a program's table has a range its default
 * lies in; deploy/fieldvault.conf documents every key of the table (a "key = value" line in the
 * key's section, in a block a comment opens) with its default, and loads cleanly with that
 * program's table. Include after cmocka.h. */
#ifndef FV_TEST_SAMPLE_CHECK_H
#define FV_TEST_SAMPLE_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_config.h"

static void fv_test_sample_documents(const fv_cfg_entry *table)
{
    for (const fv_cfg_entry *e = table; e->name; e++) {
        if (e->type != FV_CFG_INT) continue;
        if (e->min >= e->max)
            fail_msg("[%s] %s has no range (min %d, max %d)", e->section, e->name, e->min, e->max);
        int def = atoi(e->def);
        if (def < e->min || def > e->max) fail_msg("%s: default %d is out of its range", e->name, def);
    }
    const char *src = getenv("FV_SOURCE_DIR");
    char path[1024], line[4096], section[64] = "";
    bool documented = false;
    snprintf(path, sizeof path, "%s/deploy/fieldvault.conf", src ? src : ".");
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s (set FV_SOURCE_DIR)", path);
    bool seen[128] = {false};
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '[') {
            sscanf(line, "[%63[^]]", section);
        } else {
            size_t i = 0;
            for (const fv_cfg_entry *e = table; e->name && i < 128; e++, i++) {
                size_t n = strlen(e->name);
                if (strncmp(line, e->name, n) == 0 && (line[n] == ' ' || line[n] == '=') &&
                    strcmp(section, e->section) == 0) {
                    if (!documented) fail_msg("%s: key %s has no comment above it", path, e->name);
                    seen[i] = true;
                }
            }
        }
        if (line[0] == '#') documented = true;
        else if (line[0] == '\n' || line[0] == '[') documented = false;
    }
    fclose(f);
    size_t i = 0;
    for (const fv_cfg_entry *e = table; e->name; e++, i++)
        if (!seen[i]) fail_msg("%s does not document [%s] %s", path, e->section, e->name);

    /* The sample shows the defaults: loading it gives every key its table default. */
    char err[512] = "";
    if (fv_config_load(table, path, err, sizeof err) != 0) fail_msg("%s", err);
    for (const fv_cfg_entry *e = table; e->name; e++) {
        switch (e->type) {
        case FV_CFG_STR:
            if (strcmp(*(char **)e->var, e->def) != 0)
                fail_msg("sample %s = '%s', default '%s'", e->name, *(char **)e->var, e->def);
            break;
        case FV_CFG_INT:
            if (*(int *)e->var != atoi(e->def))
                fail_msg("sample %s = %d, default %s", e->name, *(int *)e->var, e->def);
            break;
        case FV_CFG_BOOL: {
            bool def = !strcmp(e->def, "yes") || !strcmp(e->def, "true") || !strcmp(e->def, "on") ||
                       !strcmp(e->def, "1");
            if (*(bool *)e->var != def)
                fail_msg("sample %s differs from its default %s", e->name, e->def);
            break;
        }
        }
    }
    fv_config_free(table);
}

#endif

/* Configuration: table-driven parser shared by every program. */
#include "fv_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

const char *const fv_config_sections[] = {"common", "frontend", "worker", "balancer", "fvctl", NULL};

static int set_value(const fv_cfg_entry *e, const char *val, char *err, size_t errlen)
{
    switch (e->type) {
    case FV_CFG_STR: {
        char **p = e->var;
        char *copy = strdup(val);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free(*p);
        *p = copy;
        return 0;
    }
    case FV_CFG_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end != '\0' || v < INT_MIN || v > INT_MAX) {
            snprintf(err, errlen, "%s: not an integer: '%s'", e->name, val);
            return -1;
        }
        *(int *)e->var = (int)v;
        return 0;
    }
    case FV_CFG_BOOL: {
        bool *b = e->var;
        if (!strcasecmp(val, "yes") || !strcasecmp(val, "true") || !strcasecmp(val, "on") ||
            !strcmp(val, "1"))
            *b = true;
        else if (!strcasecmp(val, "no") || !strcasecmp(val, "false") || !strcasecmp(val, "off") ||
                 !strcmp(val, "0"))
            *b = false;
        else {
            snprintf(err, errlen, "%s: not a boolean: '%s'", e->name, val);
            return -1;
        }
        return 0;
    }
    }
    return -1;
}

static bool table_uses_section(const fv_cfg_entry *table, const char *section)
{
    for (const fv_cfg_entry *e = table; e->name; e++)
        if (strcmp(e->section, section) == 0) return true;
    return false;
}

static bool known_section(const char *s)
{
    for (int i = 0; fv_config_sections[i]; i++)
        if (strcmp(fv_config_sections[i], s) == 0) return true;
    return false;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) e--;
    *e = '\0';
    return s;
}

static int load_file(const fv_cfg_entry *table, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    char section[64] = "";
    int lineno = 0, rc = 0;
    bool skip = true; /* keys before any section header are errors */
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close) {
                snprintf(err, errlen, "%s:%d: unterminated section header", path, lineno);
                rc = -1;
                break;
            }
            *close = '\0';
            snprintf(section, sizeof section, "%s", trim(s + 1));
            if (!known_section(section)) {
                snprintf(err, errlen, "%s:%d: unknown section [%s]", path, lineno, section);
                rc = -1;
                break;
            }
            skip = !table_uses_section(table, section);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
            rc = -1;
            break;
        }
        if (section[0] == '\0') {
            snprintf(err, errlen, "%s:%d: key outside any [section]", path, lineno);
            rc = -1;
            break;
        }
        if (skip) continue;
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        /* Optional double quotes around a value keep leading/trailing spaces and '#'. */
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        const fv_cfg_entry *e = table;
        for (; e->name; e++)
            if (strcmp(e->section, section) == 0 && strcmp(e->name, key) == 0) break;
        if (!e->name) {
            snprintf(err, errlen, "%s:%d: unknown key '%s' in [%s]", path, lineno, key, section);
            rc = -1;
            break;
        }
        char verr[256];
        if (set_value(e, val, verr, sizeof verr) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, verr);
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

int fv_config_load(const fv_cfg_entry *table, const char *path, char *err, size_t errlen)
{
    for (const fv_cfg_entry *e = table; e->name; e++)
        if (set_value(e, e->def, err, errlen) != 0) return -1;
    if (path && load_file(table, path, err, errlen) != 0) return -1;
    for (const fv_cfg_entry *e = table; e->name; e++) {
        char envname[128] = "FV_";
        size_t i = 3;
        for (const char *p = e->name; *p && i + 1 < sizeof envname; p++)
            envname[i++] = (char)toupper((unsigned char)*p);
        envname[i] = '\0';
        const char *v = getenv(envname);
        if (v) {
            char verr[256];
            if (set_value(e, v, verr, sizeof verr) != 0) {
                snprintf(err, errlen, "environment %s: %s", envname, verr);
                return -1;
            }
        }
    }
    return 0;
}

void fv_config_print(const fv_cfg_entry *table, FILE *out)
{
    for (int s = 0; fv_config_sections[s]; s++) {
        const char *sec = fv_config_sections[s];
        if (!table_uses_section(table, sec)) continue;
        fprintf(out, "[%s]\n", sec);
        for (const fv_cfg_entry *e = table; e->name; e++) {
            if (strcmp(e->section, sec) != 0) continue;
            fprintf(out, "# %s\n", e->help);
            switch (e->type) {
            case FV_CFG_STR: {
                const char *v = *(char **)e->var;
                /* Never print a secret: the output may end up in a ticket or a log (a libpq DSN
                 * may carry password=). */
                if (v && *v && (strstr(e->name, "password") || strstr(v, "password")))
                    v = "(set, contains a secret: not shown)";
                fprintf(out, "%s = \"%s\"\n", e->name, v ? v : "");
                break;
            }
            case FV_CFG_INT: fprintf(out, "%s = %d\n", e->name, *(int *)e->var); break;
            case FV_CFG_BOOL: fprintf(out, "%s = %s\n", e->name, *(bool *)e->var ? "yes" : "no"); break;
            }
        }
        fprintf(out, "\n");
    }
}

void fv_config_free(const fv_cfg_entry *table)
{
    for (const fv_cfg_entry *e = table; e->name; e++)
        if (e->type == FV_CFG_STR) {
            char **p = e->var;
            free(*p);
            *p = NULL;
        }
}

/* Configuration: table-driven parser shared by every program. */
#include "fv_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *const fv_config_sections[] = {"common", "frontend", "worker", "balancer", "fvctl", NULL};

/* Where one entry's value came from in this load. */
typedef enum { ORIGIN_DEFAULT, ORIGIN_FILE, ORIGIN_ENV } origin_kind;

typedef struct fv_cfg_origin {
    origin_kind kind;
    int line; /* ORIGIN_FILE */
    bool bad; /* a problem was reported about this key */
} fv_cfg_origin;

static size_t table_size(const fv_cfg_entry *table)
{
    size_t n = 0;
    while (table[n].name) n++;
    return n;
}

/* FV_<NAME in upper case>. */
static void env_name(const char *name, char *out, size_t outlen)
{
    size_t i = (size_t)snprintf(out, outlen, "FV_");
    for (const char *p = name; *p && i + 1 < outlen; p++) out[i++] = (char)toupper((unsigned char)*p);
    out[i] = '\0';
}

static long find_entry(const fv_cfg_entry *table, const char *key)
{
    for (long i = 0; table[i].name; i++)
        if (strcmp(table[i].name, key) == 0) return i;
    return -1;
}

/* Appends one line "where: text\n" to the problems. */
static void add_line(fv_cfg_load *ld, const char *where, const char *text)
{
    size_t need = strlen(where) + 2 + strlen(text) + 2;
    if (ld->len + need > ld->cap) {
        size_t cap = ld->cap ? ld->cap * 2 : 1024;
        while (cap < ld->len + need) cap *= 2;
        char *p = realloc(ld->problems, cap);
        if (!p) { /* counted all the same: the load fails either way */
            ld->nproblems++;
            return;
        }
        ld->problems = p;
        ld->cap = cap;
    }
    ld->len += (size_t)snprintf(ld->problems + ld->len, ld->cap - ld->len, "%s: %s\n", where, text);
    ld->nproblems++;
}

/* A problem at a line of the file that is about no entry (syntax, unknown section or key). */
static void line_problem(fv_cfg_load *ld, int lineno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void line_problem(fv_cfg_load *ld, int lineno, const char *fmt, ...)
{
    char where[1200], text[1024];
    snprintf(where, sizeof where, "%s:%d", ld->path, lineno);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    add_line(ld, where, text);
}

void fv_config_problem(fv_cfg_load *ld, const char *key, const char *fmt, ...)
{
    char where[1200], text[1200], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    long i = key && ld->table ? find_entry(ld->table, key) : -1;
    if (i < 0 || !ld->origin) {
        snprintf(where, sizeof where, "%s", ld->path ? ld->path : "configuration");
        snprintf(text, sizeof text, "%s%s%s", key ? key : "", key ? ": " : "", msg);
        add_line(ld, where, text);
        return;
    }
    fv_cfg_origin *o = &ld->origin[i];
    o->bad = true;
    switch (o->kind) {
    case ORIGIN_FILE: snprintf(where, sizeof where, "%s:%d", ld->path, o->line); break;
    case ORIGIN_ENV: {
        char env[128];
        env_name(key, env, sizeof env);
        snprintf(where, sizeof where, "environment %s", env);
        break;
    }
    case ORIGIN_DEFAULT: snprintf(where, sizeof where, "default"); break;
    }
    snprintf(text, sizeof text, "%s: %s", key, msg);
    add_line(ld, where, text);
}

bool fv_config_is_bad(const fv_cfg_load *ld, const char *key)
{
    long i = ld->table && ld->origin ? find_entry(ld->table, key) : -1;
    return i >= 0 && ld->origin[i].bad;
}

/* Sets entry e from text; returns 0, or -1 with the reason (without the key) in why. */
static int set_value(const fv_cfg_entry *e, const char *val, char *why, size_t whylen)
{
    switch (e->type) {
    case FV_CFG_STR: {
        char **p = e->var;
        char *copy = strdup(val);
        if (!copy) {
            snprintf(why, whylen, "out of memory");
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
            snprintf(why, whylen, "not an integer: '%s'", val);
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
            snprintf(why, whylen, "not a boolean (yes/no): '%s'", val);
            return -1;
        }
        return 0;
    }
    }
    snprintf(why, whylen, "unknown type");
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

/* Reads the file into the table, reporting every bad line and going on after it. Keys in a
 * section after a bad section header are skipped (their section is unknown). */
static void load_file(fv_cfg_load *ld)
{
    const fv_cfg_entry *table = ld->table;
    FILE *f = fopen(ld->path, "r");
    if (!f) {
        char why[256];
        snprintf(why, sizeof why, "cannot read: %s", strerror(errno));
        add_line(ld, ld->path, why);
        return;
    }
    char line[4096];
    char section[64] = "";
    int lineno = 0;
    bool skip = true;         /* keys of a section this table does not use, or a bad one */
    bool seen_header = false; /* keys before any section header are errors */
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            seen_header = true;
            skip = true;
            if (!close) {
                line_problem(ld, lineno, "unterminated section header");
                section[0] = '\0';
                continue;
            }
            *close = '\0';
            snprintf(section, sizeof section, "%s", trim(s + 1));
            if (!known_section(section)) {
                line_problem(ld, lineno, "unknown section [%s]", section);
                continue;
            }
            skip = !table_uses_section(table, section);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            line_problem(ld, lineno, "expected key = value");
            continue;
        }
        if (!seen_header) {
            line_problem(ld, lineno, "key outside any [section]");
            continue;
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
        long i = 0;
        for (; table[i].name; i++)
            if (strcmp(table[i].section, section) == 0 && strcmp(table[i].name, key) == 0) break;
        if (!table[i].name) {
            line_problem(ld, lineno, "%s: unknown key in [%s]", key, section);
            continue;
        }
        ld->origin[i].kind = ORIGIN_FILE;
        ld->origin[i].line = lineno;
        char why[512];
        if (set_value(&table[i], val, why, sizeof why) != 0) fv_config_problem(ld, key, "%s", why);
    }
    fclose(f);
}

/* "must be between 1 and 65535", "must be at least 1". */
static void range_text(const fv_cfg_entry *e, char *out, size_t outlen)
{
    if (e->max == INT_MAX) snprintf(out, outlen, "at least %d", e->min);
    else if (e->min == INT_MIN) snprintf(out, outlen, "at most %d", e->max);
    else snprintf(out, outlen, "between %d and %d", e->min, e->max);
}

int fv_config_read(fv_cfg_load *ld, const fv_cfg_entry *table, const char *path)
{
    memset(ld, 0, sizeof *ld);
    ld->table = table;
    ld->path = path;
    ld->origin = calloc(table_size(table) + 1, sizeof *ld->origin);
    if (!ld->origin) {
        add_line(ld, "configuration", "out of memory");
        return ld->nproblems;
    }
    char why[512];
    for (const fv_cfg_entry *e = table; e->name; e++)
        if (set_value(e, e->def, why, sizeof why) != 0) fv_config_problem(ld, e->name, "%s", why);
    if (path) load_file(ld);
    for (long i = 0; table[i].name; i++) {
        const fv_cfg_entry *e = &table[i];
        char env[128];
        env_name(e->name, env, sizeof env);
        const char *v = getenv(env);
        if (!v) continue;
        ld->origin[i].kind = ORIGIN_ENV;
        ld->origin[i].bad = false; /* the variable wins over the file, whatever the file said */
        if (set_value(e, v, why, sizeof why) != 0) fv_config_problem(ld, e->name, "%s", why);
    }
    for (long i = 0; table[i].name; i++) {
        const fv_cfg_entry *e = &table[i];
        if (e->type != FV_CFG_INT || (e->min == 0 && e->max == 0) || ld->origin[i].bad) continue;
        int v = *(int *)e->var;
        if (v >= e->min && v <= e->max) continue;
        char range[64];
        range_text(e, range, sizeof range);
        fv_config_problem(ld, e->name, "must be %s, not %d", range, v);
    }
    return ld->nproblems;
}

void fv_config_report(const fv_cfg_load *ld, FILE *out, const char *prefix)
{
    const char *p = ld->problems;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(out, "%s: %.*s\n", prefix, (int)n, p);
        p += n + (nl != NULL);
    }
    if (!ld->problems && ld->nproblems) fprintf(out, "%s: configuration: out of memory\n", prefix);
}

void fv_config_release(fv_cfg_load *ld)
{
    free(ld->origin);
    free(ld->problems);
    ld->origin = NULL;
    ld->problems = NULL;
    ld->len = ld->cap = 0;
}

int fv_config_load_checked(const fv_cfg_entry *table, const char *path, fv_cfg_check_fn check, char *err,
                           size_t errlen)
{
    fv_cfg_load ld;
    fv_config_read(&ld, table, path);
    if (check) check(&ld);
    int rc = ld.nproblems ? -1 : 0;
    if (rc && errlen) {
        size_t n = ld.len && ld.problems ? ld.len - 1 : 0; /* without the final newline */
        if (!ld.problems) snprintf(err, errlen, "out of memory");
        else snprintf(err, errlen, "%.*s", (int)n, ld.problems);
    }
    fv_config_release(&ld);
    return rc;
}

int fv_config_load(const fv_cfg_entry *table, const char *path, char *err, size_t errlen)
{
    return fv_config_load_checked(table, path, NULL, err, errlen);
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
            if (e->type == FV_CFG_INT && !(e->min == 0 && e->max == 0)) {
                char range[64];
                range_text(e, range, sizeof range);
                fprintf(out, "# %s%s\n", range,
                        e->reload == FV_CFG_RELOAD ? "; SIGHUP applies a change" : "");
            } else if (e->reload == FV_CFG_RELOAD) {
                fprintf(out, "# SIGHUP applies a change\n");
            }
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

/* Configuration: one table per program; the same table parses the file, applies FV_* environment
 * overrides, checks every integer's range, says what a reload may change and prints the
 * defaults. File format: `[section]` headers and `key = value` lines, `#` comments. Key names
 * are unique across sections; FV_<KEY in upper case> overrides a key. */
#ifndef FV_CONFIG_H
#define FV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
    FV_CFG_STR,  /* var is char **: owned by the table, freed by fv_config_free */
    FV_CFG_INT,  /* var is int *; the value must lie in min..max */
    FV_CFG_BOOL, /* var is bool *: yes/no/true/false/on/off/1/0 */
} fv_cfg_type;

/* What a running program does with a changed value. The zero value is the safe default. */
typedef enum {
    FV_CFG_RESTART = 0, /* read once at start: a change needs a restart */
    FV_CFG_RELOAD = 1,  /* SIGHUP applies a new value (fv-balancer: backends, log_level) */
} fv_cfg_reload;

typedef struct fv_cfg_entry {
    const char *section; /* "common", "frontend", "worker", "balancer", "fvctl" */
    const char *name;
    fv_cfg_type type;
    void *var;
    const char *def;  /* default as text; "" for an empty string */
    const char *help; /* one line, shown by --print-defaults */
    int min, max;     /* FV_CFG_INT: accepted values, both inclusive (every INT key has one) */
    fv_cfg_reload reload;
} fv_cfg_entry;

/* The rows of a table (pgbouncer's CF_ABS): every key says its default, what a reload does with
 * it, and an integer its range. FV_CFG_END closes the table. */
#define FV_CFG_STR_KEY(section, name, var, def, reload, help)               \
    {                                                                       \
        (section), (name), FV_CFG_STR, (var), (def), (help), 0, 0, (reload) \
    }
#define FV_CFG_INT_KEY(section, name, var, def, min, max, reload, help)             \
    {                                                                               \
        (section), (name), FV_CFG_INT, (var), (def), (help), (min), (max), (reload) \
    }
#define FV_CFG_BOOL_KEY(section, name, var, def, reload, help)               \
    {                                                                        \
        (section), (name), FV_CFG_BOOL, (var), (def), (help), 0, 0, (reload) \
    }
#define FV_CFG_END                                                     \
    {                                                                  \
        NULL, NULL, FV_CFG_STR, NULL, NULL, NULL, 0, 0, FV_CFG_RESTART \
    }

/* Sections any Fieldvault program knows; a program skips the ones its table does not use, so
 * all programs can share one file. An unknown section or an unknown key in a section the
 * program uses is an error naming file:line. */
extern const char *const fv_config_sections[];

/* One load of a table: where each value came from, and the problems found, one line each:
 * "FILE:LINE: key: message", "environment FV_KEY: key: message" or "default: key: message".
 * Lives on the caller's stack; fv_config_release frees what it holds (never the values). */
typedef struct fv_cfg_load {
    const fv_cfg_entry *table;
    const char *path;             /* borrowed; NULL when no file was read */
    struct fv_cfg_origin *origin; /* one per entry of table; owned */
    char *problems;               /* the lines, each ending in '\n'; owned, NULL when none */
    size_t len, cap;
    int nproblems;
} fv_cfg_load;

/* Checks a table cannot express (one key against another, addresses, files). Reports with
 * fv_config_problem, naming the key(s) at fault. */
typedef void (*fv_cfg_check_fn)(fv_cfg_load *ld);

/* Applies defaults, then the file (if path is not NULL), then FV_* environment variables, then
 * checks every integer against its range. Goes on past a problem, so that one run reports them
 * all. Returns the number of problems (0: every value loaded and in range). */
int fv_config_read(fv_cfg_load *ld, const fv_cfg_entry *table, const char *path);
/* Adds a problem about key (a name of the table, or NULL for one about no key in particular),
 * prefixed with where the key's value came from. */
void fv_config_problem(fv_cfg_load *ld, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Whether key already has a problem (a check of a bad value would only repeat it). */
bool fv_config_is_bad(const fv_cfg_load *ld, const char *key);
/* Writes every problem as one line "prefix: problem" to out. */
void fv_config_report(const fv_cfg_load *ld, FILE *out, const char *prefix);
/* Frees what ld holds; the values stay in the table's variables. */
void fv_config_release(fv_cfg_load *ld);

/* fv_config_read, then check (may be NULL), in one call. Returns 0, or -1 with every problem in
 * err, one per line (joined by '\n', no final newline; cut at errlen). */
int fv_config_load_checked(const fv_cfg_entry *table, const char *path, fv_cfg_check_fn check, char *err,
                           size_t errlen);
/* The same without a check: parse and ranges only. */
int fv_config_load(const fv_cfg_entry *table, const char *path, char *err, size_t errlen);

/* Writes every key with its current value, grouped by section, as a valid config file; each key
 * has its help, its range and whether a reload applies it in the comment above. */
void fv_config_print(const fv_cfg_entry *table, FILE *out);
/* Frees the strings the table owns. */
void fv_config_free(const fv_cfg_entry *table);

#endif

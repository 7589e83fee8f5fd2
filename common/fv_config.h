/* Configuration: one table per program; the same table parses the file, applies FV_* environment
 * overrides, and prints the defaults. File format: `[section]` headers and `key = value` lines,
 * `#` comments. Key names are unique across sections; FV_<KEY in upper case> overrides a key. */
#ifndef FV_CONFIG_H
#define FV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
    FV_CFG_STR,  /* var is char **: owned by the table, freed by fv_config_free */
    FV_CFG_INT,  /* var is int * */
    FV_CFG_BOOL, /* var is bool *: yes/no/true/false/on/off/1/0 */
} fv_cfg_type;

typedef struct fv_cfg_entry {
    const char *section; /* "common", "frontend", "worker", "balancer", "fvctl" */
    const char *name;
    fv_cfg_type type;
    void *var;
    const char *def;  /* default as text; "" for an empty string */
    const char *help; /* one line, shown by --print-defaults */
} fv_cfg_entry;

/* Sections any Fieldvault program knows; a program skips the ones its table does not use, so
 * all programs can share one file. An unknown section or an unknown key in a section the
 * program uses is an error naming file:line. */
extern const char *const fv_config_sections[];

/* Applies defaults, then the file (if path is not NULL), then FV_* environment variables.
 * Returns 0, or -1 with a message in err. The table is terminated by an entry with name NULL. */
int fv_config_load(const fv_cfg_entry *table, const char *path, char *err, size_t errlen);
/* Writes every key with its current value, grouped by section, as a valid config file. */
void fv_config_print(const fv_cfg_entry *table, FILE *out);
/* Frees the strings the table owns. */
void fv_config_free(const fv_cfg_entry *table);

#endif

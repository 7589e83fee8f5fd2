/* JSON helpers over yajl: escaping, a growable generator, tree lookups. */
#ifndef FV_JSON_H
#define FV_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/* Escapes s (len bytes) as the inside of a JSON string into out (NUL-terminated, truncated
 * safely at outlen). Returns the number of bytes written, excluding the NUL. */
size_t fv_json_escape(const char *s, size_t len, char *out, size_t outlen);

/* Parses text (NUL-terminated). Returns a tree the caller frees with yajl_tree_free, or NULL
 * with a message in err. */
yajl_val fv_json_parse(const char *text, char *err, size_t errlen);

/* Checks the \u escapes of already-parsed JSON text: returns NULL when every one stands for a
 * character we can store, else why not: "\u0000" (PostgreSQL's jsonb cannot hold it, and C
 * strings would cut the text there) or a lone surrogate (yajl would turn it into '?'). */
const char *fv_json_check_escapes(const char *text, size_t len);

/* Object member lookup (one level); NULL when absent or obj is not an object. Borrows. */
yajl_val fv_json_get(yajl_val obj, const char *key);
/* The string value of obj[key] or NULL if absent / not a string. Borrows. */
const char *fv_json_get_str(yajl_val obj, const char *key);

/* A generator with the helpers we use everywhere. Owned by the caller: fv_jgen_free. */
typedef struct fv_jgen {
    yajl_gen g;
} fv_jgen;

fv_jgen *fv_jgen_new(void);
void fv_jgen_free(fv_jgen *j);
void fv_jgen_map_open(fv_jgen *j);
void fv_jgen_map_close(fv_jgen *j);
void fv_jgen_array_open(fv_jgen *j);
void fv_jgen_array_close(fv_jgen *j);
void fv_jgen_key(fv_jgen *j, const char *key);
void fv_jgen_str(fv_jgen *j, const char *s); /* NULL -> null */
void fv_jgen_strn(fv_jgen *j, const char *s, size_t n);
void fv_jgen_int(fv_jgen *j, long long v);
void fv_jgen_double(fv_jgen *j, double v);
void fv_jgen_bool(fv_jgen *j, bool v);
void fv_jgen_null(fv_jgen *j);
/* Inserts already-serialised JSON verbatim as one value (e.g. a jsonb column's text). */
void fv_jgen_raw(fv_jgen *j, const char *json, size_t len);
/* Writes a parsed tree value. */
void fv_jgen_tree(fv_jgen *j, yajl_val v);
/* Borrows the generated text (valid until the next call on j). */
const char *fv_jgen_buf(fv_jgen *j, size_t *len);
/* v (borrowed) as JSON text: caller frees; NULL when out of memory. */
char *fv_json_text(yajl_val v);

#endif

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

/* The strict reader. Every JSON text the programs read (request bodies, stream entries, cached
 * and stored documents) goes through it, so that whatever is acknowledged can be stored: a text
 * is accepted only when it is RFC 8259 JSON (no comments, no trailing text, nothing yajl would
 * tolerate beyond the grammar), strict UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), nested at most FV_JSON_MAX_DEPTH arrays/objects deep, every number
 * one PostgreSQL 15's numeric (hence jsonb) can hold, no "\u0000" or lone surrogate escape, and
 * no object with the same key twice (yajl keeps both, lookups read the first, jsonb keeps the
 * last). The depth bound is checked before any tree is built, so every tree that exists is
 * shallow: yajl_tree_free and fv_jgen_tree recurse at most that deep. */
#define FV_JSON_MAX_DEPTH 64
/* PostgreSQL's numeric: at most this many digits before the decimal point and after it, once
 * the exponent is applied (1e131071 and 1e-16383 are the extremes; 0e999999 is 0). */
#define FV_JSON_MAX_INT_DIGITS 131072
#define FV_JSON_MAX_FRAC_DIGITS 16383

typedef enum fv_json_status {
    FV_JSON_OK = 0,
    FV_JSON_SYNTAX,        /* not JSON: grammar, comments, raw control characters, trailing text */
    FV_JSON_UTF8,          /* bytes that are not UTF-8 */
    FV_JSON_DEPTH,         /* nested deeper than FV_JSON_MAX_DEPTH */
    FV_JSON_NUMBER,        /* a number numeric cannot hold */
    FV_JSON_CHARACTER,     /* "\u0000" or a lone UTF-16 surrogate escape */
    FV_JSON_DUPLICATE_KEY, /* an object names a key twice */
    FV_JSON_NOMEM,
} fv_json_status;

/* Why a text was refused: status, the byte offset where it was noticed, and a one-line message
 * (no input quoted in it except a duplicate key, cut short). */
typedef struct fv_json_error {
    fv_json_status status;
    size_t offset;
    char msg[160];
} fv_json_error;

/* The pre-scan alone: one linear pass over len bytes, no allocation, no recursion. Checks all of
 * the above except duplicate keys. FV_JSON_OK or the first problem (also in *e when e != NULL). */
fv_json_status fv_json_scan(const char *text, size_t len, fv_json_error *e);

/* Parses len bytes of text, which need not be NUL-terminated (a NUL inside is refused): the
 * scan, then a tree built from yajl's callback parser (arrays and objects grown by doubling,
 * not yajl_tree_parse's one element per realloc), then the duplicate-key check. Returns a tree
 * the caller frees with yajl_tree_free, or NULL with why in *e (e may be NULL). */
yajl_val fv_json_parse_n(const char *text, size_t len, fv_json_error *e);
/* The same, for a caller whose text is NUL-terminated at len. */
yajl_val fv_json_parse_z(const char *text, size_t len, fv_json_error *e);

/* fv_json_parse_n on a NUL-terminated text, the message only. */
yajl_val fv_json_parse(const char *text, char *err, size_t errlen);

/* Whether len bytes of text are one JSON object the strict reader accepts (the worker's check of
 * what it will hand PostgreSQL verbatim); why not in *e (e may be NULL). */
bool fv_json_is_object(const char *text, size_t len, fv_json_error *e);

/* Checks the \u escapes of already-parsed JSON text: returns NULL when every one stands for a
 * character we can store, else why not: "\u0000" (PostgreSQL's jsonb cannot hold it, and C
 * strings would cut the text there) or a lone surrogate (yajl would turn it into '?'). */
const char *fv_json_check_escapes(const char *text, size_t len);

/* Object member lookup (one level); NULL when absent or obj is not an object. Borrows. */
yajl_val fv_json_get(yajl_val obj, const char *key);
/* The string value of obj[key] or NULL if absent / not a string. Borrows. */
const char *fv_json_get_str(yajl_val obj, const char *key);

/* A generator with the helpers we use everywhere. Owned by the caller: fv_jgen_free. Every yajl_gen
 * status is checked: the first failure (yajl's depth limit, a NaN or infinite double, a key where
 * a value must be, out of memory...) is kept, later calls do nothing, and fv_jgen_buf then gives
 * NULL rather than invalid JSON. */
typedef struct fv_jgen {
    yajl_gen g;
    yajl_gen_status status; /* the first failure, or yajl_gen_status_ok */
    int open;               /* containers opened and not yet closed */
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
/* Writes a parsed tree value (borrowed). A tree deeper than FV_JSON_MAX_DEPTH (not one the
 * strict reader made) fails the generator instead of recursing further. */
void fv_jgen_tree(fv_jgen *j, yajl_val v);
/* Whether every call so far succeeded; fv_jgen_error says why not ("" when ok). */
bool fv_jgen_ok(const fv_jgen *j);
const char *fv_jgen_error(const fv_jgen *j);
/* Borrows the generated text (valid until the next call on j): a complete JSON text, or NULL (and
 * *len = 0) when a call failed or a container is still open. Callers must check for NULL. */
const char *fv_jgen_buf(fv_jgen *j, size_t *len);
/* v (borrowed) as JSON text: caller frees; NULL when out of memory or the generator failed. */
char *fv_json_text(yajl_val v);

#endif

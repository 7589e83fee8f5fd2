/* JSON helpers over yajl: escaping, a growable generator, tree lookups. */
#include "fv_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t fv_json_escape(const char *s, size_t len, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (outlen == 0) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[7];
        size_t n;
        switch (c) {
        case '"':
            tmp[0] = '\\';
            tmp[1] = '"';
            n = 2;
            break;
        case '\\':
            tmp[0] = '\\';
            tmp[1] = '\\';
            n = 2;
            break;
        case '\n':
            tmp[0] = '\\';
            tmp[1] = 'n';
            n = 2;
            break;
        case '\r':
            tmp[0] = '\\';
            tmp[1] = 'r';
            n = 2;
            break;
        case '\t':
            tmp[0] = '\\';
            tmp[1] = 't';
            n = 2;
            break;
        default:
            if (c < 0x20) {
                tmp[0] = '\\';
                tmp[1] = 'u';
                tmp[2] = '0';
                tmp[3] = '0';
                tmp[4] = hex[c >> 4];
                tmp[5] = hex[c & 15];
                n = 6;
            } else {
                tmp[0] = (char)c;
                n = 1;
            }
        }
        if (o + n >= outlen) break;
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = '\0';
    return o;
}

yajl_val fv_json_parse(const char *text, char *err, size_t errlen)
{
    char ebuf[256];
    ebuf[0] = '\0';
    yajl_val v = yajl_tree_parse(text, ebuf, sizeof ebuf);
    if (v == NULL && err != NULL) {
        /* yajl's message spans lines and quotes the input; keep its first line only. */
        char *nl = strchr(ebuf, '\n');
        if (nl) *nl = '\0';
        snprintf(err, errlen, "%s", ebuf[0] ? ebuf : "invalid JSON");
    }
    return v;
}

static int hex4(const char *p, const char *end)
{
    if (end - p < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

const char *fv_json_check_escapes(const char *text, size_t len)
{
    /* In valid JSON a backslash only ever appears inside a string, starting an escape. */
    const char *p = text, *end = text + len;
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        if (p + 1 >= end) break;
        if (p[1] != 'u') {
            p += 2;
            continue;
        }
        int v = hex4(p + 2, end);
        if (v == 0) return "strings must not contain the NUL character (\\u0000)";
        if (v >= 0xDC00 && v <= 0xDFFF) return "a lone UTF-16 surrogate is not a character";
        if (v >= 0xD800 && v <= 0xDBFF) {
            int lo = (p + 7 < end && p[6] == '\\' && p[7] == 'u') ? hex4(p + 8, end) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) return "a lone UTF-16 surrogate is not a character";
            p += 12;
            continue;
        }
        p += 6;
    }
    return NULL;
}

yajl_val fv_json_get(yajl_val obj, const char *key)
{
    if (obj == NULL || !YAJL_IS_OBJECT(obj)) return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0) return obj->u.object.values[i];
    return NULL;
}

const char *fv_json_get_str(yajl_val obj, const char *key)
{
    yajl_val v = fv_json_get(obj, key);
    return (v && YAJL_IS_STRING(v)) ? v->u.string : NULL;
}

fv_jgen *fv_jgen_new(void)
{
    fv_jgen *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->g = yajl_gen_alloc(NULL);
    if (!j->g) {
        free(j);
        return NULL;
    }
    yajl_gen_config(j->g, yajl_gen_validate_utf8, 0);
    return j;
}

void fv_jgen_free(fv_jgen *j)
{
    if (!j) return;
    yajl_gen_free(j->g);
    free(j);
}

void fv_jgen_map_open(fv_jgen *j)
{
    yajl_gen_map_open(j->g);
}
void fv_jgen_map_close(fv_jgen *j)
{
    yajl_gen_map_close(j->g);
}
void fv_jgen_array_open(fv_jgen *j)
{
    yajl_gen_array_open(j->g);
}
void fv_jgen_array_close(fv_jgen *j)
{
    yajl_gen_array_close(j->g);
}
void fv_jgen_key(fv_jgen *j, const char *key)
{
    yajl_gen_string(j->g, (const unsigned char *)key, strlen(key));
}
void fv_jgen_str(fv_jgen *j, const char *s)
{
    if (s == NULL) yajl_gen_null(j->g);
    else yajl_gen_string(j->g, (const unsigned char *)s, strlen(s));
}
void fv_jgen_strn(fv_jgen *j, const char *s, size_t n)
{
    yajl_gen_string(j->g, (const unsigned char *)s, n);
}
void fv_jgen_int(fv_jgen *j, long long v)
{
    yajl_gen_integer(j->g, v);
}
void fv_jgen_double(fv_jgen *j, double v)
{
    yajl_gen_double(j->g, v);
}
void fv_jgen_bool(fv_jgen *j, bool v)
{
    yajl_gen_bool(j->g, v ? 1 : 0);
}
void fv_jgen_null(fv_jgen *j)
{
    yajl_gen_null(j->g);
}

void fv_jgen_raw(fv_jgen *j, const char *json, size_t len)
{
    /* yajl_gen_number writes its argument verbatim and keeps the generator's state machine in
     * step (commas, map keys), which is exactly what inserting a serialised value needs. */
    yajl_gen_number(j->g, json, len);
}

void fv_jgen_tree(fv_jgen *j, yajl_val v)
{
    if (v == NULL) {
        yajl_gen_null(j->g);
        return;
    }
    switch (v->type) {
    case yajl_t_string: fv_jgen_str(j, v->u.string); break;
    case yajl_t_number:
        if (v->u.number.r) yajl_gen_number(j->g, v->u.number.r, strlen(v->u.number.r));
        else yajl_gen_null(j->g);
        break;
    case yajl_t_object:
        yajl_gen_map_open(j->g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            fv_jgen_key(j, v->u.object.keys[i]);
            fv_jgen_tree(j, v->u.object.values[i]);
        }
        yajl_gen_map_close(j->g);
        break;
    case yajl_t_array:
        yajl_gen_array_open(j->g);
        for (size_t i = 0; i < v->u.array.len; i++) fv_jgen_tree(j, v->u.array.values[i]);
        yajl_gen_array_close(j->g);
        break;
    case yajl_t_true: yajl_gen_bool(j->g, 1); break;
    case yajl_t_false: yajl_gen_bool(j->g, 0); break;
    default: yajl_gen_null(j->g); break;
    }
}

const char *fv_jgen_buf(fv_jgen *j, size_t *len)
{
    const unsigned char *buf = NULL;
    size_t l = 0;
    yajl_gen_get_buf(j->g, &buf, &l);
    if (len) *len = l;
    return (const char *)buf;
}

char *fv_json_text(yajl_val v)
{
    fv_jgen *j = fv_jgen_new();
    if (!j) return NULL;
    fv_jgen_tree(j, v);
    char *s = strdup(fv_jgen_buf(j, NULL));
    fv_jgen_free(j);
    return s;
}

/* JSON helpers over yajl: escaping, a growable generator, tree lookups. */
#include "fv_json.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

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

/* ---- the strict reader ---------------------------------------------------------------- */

static fv_json_status fail(fv_json_error *e, fv_json_status st, const unsigned char *base,
                           const unsigned char *at, const char *what)
{
    if (e) {
        e->status = st;
        e->offset = (size_t)(at - base);
        snprintf(e->msg, sizeof e->msg, "%s at byte %zu", what, e->offset);
    }
    return st;
}

static int hexval(unsigned char c)
{
    return (c >= '0' && c <= '9')   ? c - '0'
           : (c >= 'a' && c <= 'f') ? c - 'a' + 10
           : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                    : -1;
}

/* The four hex digits at p (p + 4 <= end), or -1. */
static long hex4u(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hexval(p[i]);
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Length of the well-formed UTF-8 sequence at p (its first byte >= 0x80), or 0. The table of
 * well-formed sequences (Unicode 3.9, table 3-7; RFC 3629): no overlongs (C0, C1, E0 80-9F,
 * F0 80-8F), no surrogates (ED A0-BF), nothing above U+10FFFF (F4 90-BF, F5-FF). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* the range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if ((size_t)(end - p) < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

/* A string from the opening quote at *pp; on success *pp is just past the closing quote. */
static fv_json_status scan_string(const unsigned char **pp, const unsigned char *end,
                                  const unsigned char *base, fv_json_error *e)
{
    const unsigned char *p = *pp + 1;
    for (;;) {
        /* The common case first: printable ASCII other than the quote and the backslash. */
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
        if (p == end) return fail(e, FV_JSON_SYNTAX, base, p, "unterminated string");
        unsigned char c = *p;
        if (c == '"') {
            *pp = p + 1;
            return FV_JSON_OK;
        }
        if (c < 0x20) return fail(e, FV_JSON_SYNTAX, base, p, "control character inside a string");
        if (c >= 0x80) {
            size_t n = utf8_seq(p, end);
            if (n == 0) return fail(e, FV_JSON_UTF8, base, p, "invalid UTF-8");
            p += n;
            continue;
        }
        /* a backslash */
        if (p + 1 >= end) return fail(e, FV_JSON_SYNTAX, base, p, "unterminated string");
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't': p += 2; continue;
        case 'u': break;
        default: return fail(e, FV_JSON_SYNTAX, base, p, "invalid escape in a string");
        }
        long v = hex4u(p + 2, end);
        if (v < 0) return fail(e, FV_JSON_SYNTAX, base, p, "invalid \\u escape in a string");
        if (v == 0)
            return fail(e, FV_JSON_CHARACTER, base, p,
                        "strings must not contain the NUL character (\\u0000)");
        if (v >= 0xDC00 && v <= 0xDFFF)
            return fail(e, FV_JSON_CHARACTER, base, p, "a lone UTF-16 surrogate is not a character");
        if (v >= 0xD800 && v <= 0xDBFF) {
            long lo = (end - p >= 12 && p[6] == '\\' && p[7] == 'u') ? hex4u(p + 8, end) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return fail(e, FV_JSON_CHARACTER, base, p, "a lone UTF-16 surrogate is not a character");
            p += 12;
            continue;
        }
        p += 6;
    }
}

/* The exponent's magnitude at which PostgreSQL refuses even a zero (INT_MAX / 2). */
#define EXP_LIMIT 1073741823LL

/* A number from *pp (a '-' or a digit). Checks the grammar and that numeric can hold it:
 * PostgreSQL refuses (does not round) a value with more than FV_JSON_MAX_FRAC_DIGITS digits after
 * the point or more than FV_JSON_MAX_INT_DIGITS before it, counted after applying the exponent. */
static fv_json_status scan_number(const unsigned char **pp, const unsigned char *end,
                                  const unsigned char *base, fv_json_error *e)
{
    const unsigned char *p = *pp, *start = p;
    if (*p == '-') p++;
    if (p == end || *p < '0' || *p > '9') return fail(e, FV_JSON_SYNTAX, base, start, "invalid number");
    /* lead: digits from the first non-zero one of the integer part; first_frac: 1-based position
     * of the first non-zero digit after the point (0: none) */
    long long lead = 0, nfrac = 0, first_frac = 0;
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9')
            return fail(e, FV_JSON_SYNTAX, base, start, "invalid number (leading zero)");
    } else {
        while (p < end && *p >= '0' && *p <= '9') p++, lead++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p == end || *p < '0' || *p > '9')
            return fail(e, FV_JSON_SYNTAX, base, start, "invalid number (digits must follow '.')");
        while (p < end && *p >= '0' && *p <= '9') {
            nfrac++;
            if (first_frac == 0 && *p != '0') first_frac = nfrac;
            p++;
        }
    }
    long long exp = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool neg = false;
        if (p < end && (*p == '+' || *p == '-')) neg = *p++ == '-';
        if (p == end || *p < '0' || *p > '9')
            return fail(e, FV_JSON_SYNTAX, base, start, "invalid number (digits must follow 'e')");
        while (p < end && *p >= '0' && *p <= '9') {
            if (exp <= EXP_LIMIT) exp = exp * 10 + (*p - '0'); /* saturates past the limit */
            p++;
        }
        if (neg) exp = -exp;
    }
    *pp = p;
    /* Every count is at most the text's length (< 2^40) and |exp| <= 10 * EXP_LIMIT + 9: no
     * overflow below. */
    if (exp >= EXP_LIMIT || exp <= -EXP_LIMIT)
        return fail(e, FV_JSON_NUMBER, base, start, "number out of range (exponent too large)");
    long long scale = nfrac - exp;
    if (scale > FV_JSON_MAX_FRAC_DIGITS)
        return fail(e, FV_JSON_NUMBER, base, start,
                    "number out of range (more than 16383 digits after the decimal point)");
    /* the power of ten of the first significant digit */
    bool nonzero = lead > 0 || first_frac > 0;
    long long top = lead > 0 ? lead - 1 + exp : -first_frac + exp;
    if (nonzero && top >= FV_JSON_MAX_INT_DIGITS)
        return fail(e, FV_JSON_NUMBER, base, start,
                    "number out of range (more than 131072 digits before the decimal point)");
    return FV_JSON_OK;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

fv_json_status fv_json_scan(const char *text, size_t len, fv_json_error *e)
{
    const unsigned char *base = (const unsigned char *)text, *p = base, *end = base + len;
    /* bit d of kind: the container at depth d+1 is an object (1) or an array (0) */
    uint64_t kind = 0;
    _Static_assert(FV_JSON_MAX_DEPTH <= 64, "one bit per level in kind");
    unsigned depth = 0;
    fv_json_status st;
    if (e) {
        e->status = FV_JSON_OK;
        e->offset = 0;
        e->msg[0] = '\0';
    }

value:
    while (p < end && is_ws(*p)) p++;
    if (p == end) return fail(e, FV_JSON_SYNTAX, base, p, "a value is missing");
    switch (*p) {
    case '{':
    case '[':
        if (depth == FV_JSON_MAX_DEPTH)
            return fail(e, FV_JSON_DEPTH, base, p, "nested more than 64 arrays or objects deep");
        if (*p == '{') kind |= (uint64_t)1 << depth;
        else kind &= ~((uint64_t)1 << depth);
        depth++;
        p++;
        while (p < end && is_ws(*p)) p++;
        if (p < end && *p == (kind >> (depth - 1) & 1 ? '}' : ']')) {
            depth--;
            p++;
            goto after;
        }
        if (kind >> (depth - 1) & 1) goto key;
        goto value;
    case '"':
        if ((st = scan_string(&p, end, base, e)) != FV_JSON_OK) return st;
        goto after;
    case 't':
        if (end - p < 4 || memcmp(p, "true", 4) != 0) break;
        p += 4;
        goto after;
    case 'f':
        if (end - p < 5 || memcmp(p, "false", 5) != 0) break;
        p += 5;
        goto after;
    case 'n':
        if (end - p < 4 || memcmp(p, "null", 4) != 0) break;
        p += 4;
        goto after;
    default:
        if (*p == '-' || (*p >= '0' && *p <= '9')) {
            if ((st = scan_number(&p, end, base, e)) != FV_JSON_OK) return st;
            goto after;
        }
        break;
    }
    if (*p == '/') return fail(e, FV_JSON_SYNTAX, base, p, "comments are not JSON");
    if (*p >= 0x80 && utf8_seq(p, end) == 0) return fail(e, FV_JSON_UTF8, base, p, "invalid UTF-8");
    return fail(e, FV_JSON_SYNTAX, base, p, "unexpected character");

key:
    /* p is at the first non-blank byte after '{' or ',' in an object */
    if (p == end || *p != '"') return fail(e, FV_JSON_SYNTAX, base, p, "an object key must be a string");
    if ((st = scan_string(&p, end, base, e)) != FV_JSON_OK) return st;
    while (p < end && is_ws(*p)) p++;
    if (p == end || *p != ':')
        return fail(e, FV_JSON_SYNTAX, base, p, "':' expected after an object key");
    p++;
    goto value;

after:
    while (p < end && is_ws(*p)) p++;
    if (depth == 0) {
        if (p == end) return FV_JSON_OK;
        if (*p == '/') return fail(e, FV_JSON_SYNTAX, base, p, "comments are not JSON");
        return fail(e, FV_JSON_SYNTAX, base, p, "trailing garbage after the JSON value");
    }
    if (p == end) return fail(e, FV_JSON_SYNTAX, base, p, "unexpected end of the text");
    bool in_object = kind >> (depth - 1) & 1;
    if (*p == ',') {
        p++;
        while (p < end && is_ws(*p)) p++;
        if (in_object) goto key;
        goto value;
    }
    if (*p == (in_object ? '}' : ']')) {
        depth--;
        p++;
        goto after;
    }
    if (*p == '/') return fail(e, FV_JSON_SYNTAX, base, p, "comments are not JSON");
    return fail(e, FV_JSON_SYNTAX, base, p, in_object ? "',' or '}' expected" : "',' or ']' expected");
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key named twice in an object of v, or NULL; *oom on out of memory. Recursion is
 * bounded by the depth the scan allowed. A small object is compared pairwise; a larger one
 * through a sorted copy of its key pointers (O(n log n): 100,000 keys must not take n^2). */
static const char *duplicate_key(yajl_val v, bool *oom)
{
    if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++) {
            const char *d = duplicate_key(v->u.array.values[i], oom);
            if (d || *oom) return d;
        }
        return NULL;
    }
    if (!YAJL_IS_OBJECT(v)) return NULL;
    size_t n = v->u.object.len;
    const char **keys = (const char **)v->u.object.keys;
    if (n <= 8) {
        for (size_t i = 1; i < n; i++)
            for (size_t k = 0; k < i; k++)
                if (strcmp(keys[i], keys[k]) == 0) return keys[i];
    } else {
        const char **sorted = malloc(n * sizeof *sorted); /* freed below */
        if (!sorted) {
            *oom = true;
            return NULL;
        }
        memcpy(sorted, keys, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_key);
        const char *d = NULL;
        for (size_t i = 1; i < n && !d; i++)
            if (strcmp(sorted[i], sorted[i - 1]) == 0) d = sorted[i];
        free(sorted);
        if (d) return d;
    }
    for (size_t i = 0; i < n; i++) {
        const char *d = duplicate_key(v->u.object.values[i], oom);
        if (d || *oom) return d;
    }
    return NULL;
}

/* ---- the tree builder ---------------------------------------------------------------------
 * yajl's own tree parser grows every array and object by one element per realloc (quadratic
 * copying for 200,000 elements wherever realloc cannot grow in place, e.g. under ASan, where
 * one such body took a minute) and would allow comments. This builds the same yajl_val trees
 * (yajl_tree_free frees them) from yajl's callback parser, doubling capacities. */

typedef struct builder {
    yajl_val root;                    /* owns the whole tree, attached as it is built */
    yajl_val open[FV_JSON_MAX_DEPTH]; /* the containers being filled, borrowed from root */
    size_t cap[FV_JSON_MAX_DEPTH];    /* their capacities */
    int depth;
    char *key; /* owned: the key of the next member of the innermost object */
    bool oom;
} builder;

/* Hands v (taken) to the innermost container, or makes it the root. 0 (and v freed) when out of
 * memory or deeper than the scan allows, which stops yajl. */
static int attach(builder *b, yajl_val v)
{
    if (v == NULL) goto failed;
    if (b->depth == 0) {
        if (b->root) goto failed; /* a second top-level value: yajl refuses it first anyway */
        b->root = v;
        return 1;
    }
    yajl_val top = b->open[b->depth - 1];
    size_t *cap = &b->cap[b->depth - 1];
    bool object = top->type == yajl_t_object;
    size_t len = object ? top->u.object.len : top->u.array.len;
    if (object && b->key == NULL) goto failed;
    if (len == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        yajl_val *values = object ? top->u.object.values : top->u.array.values;
        values = realloc(values, ncap * sizeof *values);
        if (!values) goto failed;
        if (object) {
            top->u.object.values = values;
            const char **keys = realloc(top->u.object.keys, ncap * sizeof *keys);
            if (!keys) goto failed;
            top->u.object.keys = keys;
        } else {
            top->u.array.values = values;
        }
        *cap = ncap;
    }
    if (object) {
        top->u.object.keys[len] = b->key; /* handed over */
        b->key = NULL;
        top->u.object.values[len] = v;
        top->u.object.len++;
    } else {
        top->u.array.values[len] = v;
        top->u.array.len++;
    }
    return 1;
failed:
    b->oom = true;
    if (v) yajl_tree_free(v);
    return 0;
}

static yajl_val node(yajl_type t)
{
    yajl_val v = calloc(1, sizeof *v);
    if (v) v->type = t;
    return v;
}

static int cb_null(void *ctx)
{
    return attach(ctx, node(yajl_t_null));
}

static int cb_boolean(void *ctx, int b)
{
    return attach(ctx, node(b ? yajl_t_true : yajl_t_false));
}

/* yajl_parse_integer's rule, which yajl_tree_parse applies (not exported): digits only, an
 * optional sign, within long long (and, as there, -2^63 counts as out of range). */
static bool integer(const char *s, size_t n, long long *out)
{
    const char *p = s, *end = s + n;
    long long sign = 1, v = 0;
    if (p < end && *p == '-') sign = -1, p++;
    if (p == end) return false;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || v > LLONG_MAX / 10) return false;
        v *= 10;
        if (LLONG_MAX - v < *p - '0') return false;
        v += *p - '0';
    }
    *out = sign * v;
    return true;
}

static int cb_number(void *ctx, const char *s, size_t n)
{
    yajl_val v = node(yajl_t_number);
    if (!v || !(v->u.number.r = malloc(n + 1))) {
        free(v);
        return attach(ctx, NULL);
    }
    memcpy(v->u.number.r, s, n);
    v->u.number.r[n] = '\0';
    /* the flags as yajl_tree_parse sets them */
    if (integer(s, n, &v->u.number.i)) v->u.number.flags |= YAJL_NUMBER_INT_VALID;
    char *endp = NULL;
    errno = 0;
    v->u.number.d = strtod(v->u.number.r, &endp);
    if (errno == 0 && endp && *endp == '\0') v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
    return attach(ctx, v);
}

static char *copy_text(const unsigned char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

static int cb_string(void *ctx, const unsigned char *s, size_t n)
{
    yajl_val v = node(yajl_t_string);
    if (!v || !(v->u.string = copy_text(s, n))) {
        free(v);
        return attach(ctx, NULL);
    }
    return attach(ctx, v);
}

static int cb_key(void *ctx, const unsigned char *s, size_t n)
{
    builder *b = ctx;
    free(b->key);
    if ((b->key = copy_text(s, n)) == NULL) return attach(b, NULL);
    return 1;
}

static int open_container(builder *b, yajl_type t)
{
    if (b->depth == FV_JSON_MAX_DEPTH) return attach(b, NULL); /* the scan refused this already */
    yajl_val v = node(t);
    if (!attach(b, v)) return 0; /* the node now belongs to its parent (or is the root) */
    b->open[b->depth] = v;
    b->cap[b->depth] = 0;
    b->depth++;
    return 1;
}

static int close_container(void *ctx)
{
    builder *b = ctx;
    if (b->depth > 0) b->depth--;
    return 1;
}

static int cb_start_map(void *ctx)
{
    return open_container(ctx, yajl_t_object);
}

static int cb_start_array(void *ctx)
{
    return open_container(ctx, yajl_t_array);
}

static const yajl_callbacks build_callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_boolean,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_key,
    .yajl_end_map = close_container,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = close_container,
};

/* Builds the tree of text, which the scan accepted. NULL when memory ran out (*oom) or, never
 * expected, yajl disagrees with the scan. */
static yajl_val build(const char *text, size_t len, bool *oom)
{
    builder b;
    memset(&b, 0, sizeof b);
    *oom = false;
    yajl_handle h = yajl_alloc(&build_callbacks, NULL, &b);
    if (!h) {
        *oom = true;
        return NULL;
    }
    /* Comments stay off (yajl's default); the scan has checked the UTF-8 more strictly. */
    yajl_config(h, yajl_dont_validate_strings, 1);
    bool ok = yajl_parse(h, (const unsigned char *)text, len) == yajl_status_ok &&
              yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    free(b.key);
    if (ok && b.root && b.depth == 0) return b.root;
    *oom = b.oom;
    if (b.root) yajl_tree_free(b.root);
    return NULL;
}

static yajl_val parse(const char *text, size_t len, fv_json_error *e)
{
    fv_json_error local;
    if (!e) e = &local;
    if (fv_json_scan(text, len, e) != FV_JSON_OK) return NULL;
    bool nomem;
    yajl_val v = build(text, len, &nomem);
    if (v == NULL) {
        const unsigned char *t = (const unsigned char *)text;
        fail(e, nomem ? FV_JSON_NOMEM : FV_JSON_SYNTAX, t, t,
             nomem ? "out of memory" : "not JSON (the parser disagrees with the scan)");
        return NULL;
    }
    bool oom = false;
    const char *dup = duplicate_key(v, &oom);
    if (dup || oom) {
        if (oom) {
            fail(e, FV_JSON_NOMEM, (const unsigned char *)text, (const unsigned char *)text,
                 "out of memory");
        } else {
            char shown[48];
            size_t n = fv_json_escape(dup, strlen(dup), shown, sizeof shown);
            /* A long key is cut short: never in the middle of a character (the message must
             * stay UTF-8, it goes into a JSON reply). */
            const unsigned char *q = (const unsigned char *)shown, *qend = q + n;
            while (q < qend) {
                size_t k = *q < 0x80 ? 1 : utf8_seq(q, qend);
                if (k == 0) break;
                q += k;
            }
            shown[q - (const unsigned char *)shown] = '\0';
            e->status = FV_JSON_DUPLICATE_KEY;
            e->offset = 0;
            snprintf(e->msg, sizeof e->msg, "an object has the key \"%s\" twice", shown);
        }
        yajl_tree_free(v);
        return NULL;
    }
    return v;
}

yajl_val fv_json_parse_n(const char *text, size_t len, fv_json_error *e)
{
    return parse(text, len, e);
}

yajl_val fv_json_parse_z(const char *text, size_t len, fv_json_error *e)
{
    return parse(text, len, e);
}

yajl_val fv_json_parse(const char *text, char *err, size_t errlen)
{
    fv_json_error e;
    yajl_val v = parse(text, strlen(text), &e);
    if (v == NULL && err != NULL) snprintf(err, errlen, "%s", e.msg[0] ? e.msg : "invalid JSON");
    return v;
}

bool fv_json_is_object(const char *text, size_t len, fv_json_error *e)
{
    fv_json_error local;
    if (!e) e = &local;
    yajl_val v = fv_json_parse_n(text, len, e);
    if (v == NULL) return false;
    bool obj = YAJL_IS_OBJECT(v);
    yajl_tree_free(v);
    if (!obj) {
        e->status = FV_JSON_SYNTAX;
        e->offset = 0;
        snprintf(e->msg, sizeof e->msg, "not a JSON object");
    }
    return obj;
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
    j->status = yajl_gen_status_ok;
    yajl_gen_config(j->g, yajl_gen_validate_utf8, 0);
    return j;
}

void fv_jgen_free(fv_jgen *j)
{
    if (!j) return;
    yajl_gen_free(j->g);
    free(j);
}

/* Keeps the first failure; true when j may go on. */
static bool note(fv_jgen *j, yajl_gen_status st)
{
    if (st != yajl_gen_status_ok && j->status == yajl_gen_status_ok) j->status = st;
    return j->status == yajl_gen_status_ok;
}

/* Every helper: nothing once j has failed (yajl would go on writing after some failures, e.g.
 * yajl_gen_invalid_number, and the result would not be JSON). */
#define GEN(call)                                           \
    do {                                                    \
        if (j->status == yajl_gen_status_ok) note(j, call); \
    } while (0)

void fv_jgen_map_open(fv_jgen *j)
{
    GEN(yajl_gen_map_open(j->g));
    j->open++;
}
void fv_jgen_map_close(fv_jgen *j)
{
    GEN(yajl_gen_map_close(j->g));
    j->open--;
}
void fv_jgen_array_open(fv_jgen *j)
{
    GEN(yajl_gen_array_open(j->g));
    j->open++;
}
void fv_jgen_array_close(fv_jgen *j)
{
    GEN(yajl_gen_array_close(j->g));
    j->open--;
}
void fv_jgen_key(fv_jgen *j, const char *key)
{
    GEN(yajl_gen_string(j->g, (const unsigned char *)key, strlen(key)));
}
void fv_jgen_str(fv_jgen *j, const char *s)
{
    if (s == NULL) GEN(yajl_gen_null(j->g));
    else GEN(yajl_gen_string(j->g, (const unsigned char *)s, strlen(s)));
}
void fv_jgen_strn(fv_jgen *j, const char *s, size_t n)
{
    GEN(yajl_gen_string(j->g, (const unsigned char *)s, n));
}
void fv_jgen_int(fv_jgen *j, long long v)
{
    GEN(yajl_gen_integer(j->g, v));
}
void fv_jgen_double(fv_jgen *j, double v)
{
    GEN(yajl_gen_double(j->g, v));
}
void fv_jgen_bool(fv_jgen *j, bool v)
{
    GEN(yajl_gen_bool(j->g, v ? 1 : 0));
}
void fv_jgen_null(fv_jgen *j)
{
    GEN(yajl_gen_null(j->g));
}

void fv_jgen_raw(fv_jgen *j, const char *json, size_t len)
{
    /* yajl_gen_number writes its argument verbatim and keeps the generator's state machine in
     * step (commas, map keys), which is exactly what inserting a serialised value needs. */
    GEN(yajl_gen_number(j->g, json, len));
}

static void gen_tree(fv_jgen *j, yajl_val v, int depth)
{
    if (j->status != yajl_gen_status_ok) return;
    if (v == NULL) {
        fv_jgen_null(j);
        return;
    }
    switch (v->type) {
    case yajl_t_string: fv_jgen_str(j, v->u.string); break;
    case yajl_t_number:
        if (v->u.number.r) GEN(yajl_gen_number(j->g, v->u.number.r, strlen(v->u.number.r)));
        else fv_jgen_null(j);
        break;
    case yajl_t_object:
    case yajl_t_array:
        if (depth >= FV_JSON_MAX_DEPTH) {
            /* Not a tree of the strict reader's: refuse it rather than recurse without bound. */
            note(j, yajl_max_depth_exceeded);
            return;
        }
        if (v->type == yajl_t_object) {
            fv_jgen_map_open(j);
            for (size_t i = 0; i < v->u.object.len && j->status == yajl_gen_status_ok; i++) {
                fv_jgen_key(j, v->u.object.keys[i]);
                gen_tree(j, v->u.object.values[i], depth + 1);
            }
            fv_jgen_map_close(j);
        } else {
            fv_jgen_array_open(j);
            for (size_t i = 0; i < v->u.array.len && j->status == yajl_gen_status_ok; i++)
                gen_tree(j, v->u.array.values[i], depth + 1);
            fv_jgen_array_close(j);
        }
        break;
    case yajl_t_true: fv_jgen_bool(j, true); break;
    case yajl_t_false: fv_jgen_bool(j, false); break;
    default: fv_jgen_null(j); break;
    }
}

void fv_jgen_tree(fv_jgen *j, yajl_val v)
{
    gen_tree(j, v, 0);
}

bool fv_jgen_ok(const fv_jgen *j)
{
    return j->status == yajl_gen_status_ok;
}

const char *fv_jgen_error(const fv_jgen *j)
{
    switch (j->status) {
    case yajl_gen_status_ok: return "";
    case yajl_gen_keys_must_be_strings: return "a value where an object key must be";
    case yajl_max_depth_exceeded: return "nested too deep";
    case yajl_gen_in_error_state: return "the generator is in an error state";
    case yajl_gen_generation_complete: return "a second value after a complete one";
    case yajl_gen_invalid_number: return "a number that is NaN or infinite";
    case yajl_gen_no_buf: return "no buffer";
    case yajl_gen_invalid_string: return "a string that is not UTF-8";
    }
    return "generator failure";
}

const char *fv_jgen_buf(fv_jgen *j, size_t *len)
{
    if (len) *len = 0;
    if (j->status != yajl_gen_status_ok || j->open != 0) return NULL;
    const unsigned char *buf = NULL;
    size_t l = 0;
    if (!note(j, yajl_gen_get_buf(j->g, &buf, &l))) return NULL;
    if (l == 0) return NULL; /* nothing generated: not a JSON text */
    if (len) *len = l;
    return (const char *)buf;
}

char *fv_json_text(yajl_val v)
{
    fv_jgen *j = fv_jgen_new();
    if (!j) return NULL;
    fv_jgen_tree(j, v);
    const char *t = fv_jgen_buf(j, NULL);
    char *s = t ? strdup(t) : NULL;
    fv_jgen_free(j);
    return s;
}

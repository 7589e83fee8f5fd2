/* Form definitions: compiling a survey's question list and validating answers against it. */
#include "fv_form.h"

#include "fv_check.h"
#include "fv_json.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

typedef enum fv_form_type {
    FV_FORM_TEXT,
    FV_FORM_INTEGER,
    FV_FORM_DECIMAL,
    FV_FORM_SELECT_ONE,
    FV_FORM_SELECT_MULTIPLE,
    FV_FORM_DATE,
    FV_FORM_DATETIME,
    FV_FORM_GEOPOINT,
    FV_FORM_NOTE,
} fv_form_type;

static const char *const type_names[] = {
    [FV_FORM_TEXT] = "text",
    [FV_FORM_INTEGER] = "integer",
    [FV_FORM_DECIMAL] = "decimal",
    [FV_FORM_SELECT_ONE] = "select_one",
    [FV_FORM_SELECT_MULTIPLE] = "select_multiple",
    [FV_FORM_DATE] = "date",
    [FV_FORM_DATETIME] = "datetime",
    [FV_FORM_GEOPOINT] = "geopoint",
    [FV_FORM_NOTE] = "note",
};

/* Number bound texts longer than this are printed with %.17g in reasons instead of verbatim. */
#define BOUND_TXT_MAX 32

/* The memory one pattern's compilation may still take (see capped_malloc). */
typedef struct capped_heap {
    size_t used, limit;
} capped_heap;

typedef struct fv_form_question {
    char *name; /* owned */
    fv_form_type type;
    bool required;
    bool confidential;
    bool has_min, has_max;
    double min, max;                 /* text: characters; select_multiple: selections */
    char min_txt[BOUND_TXT_MAX + 1]; /* the bound as written, for reasons */
    char max_txt[BOUND_TXT_MAX + 1];
    pcre2_code *re;   /* owned (pcre2_code_free); NULL without a pattern */
    capped_heap heap; /* re's allocator state: re points at it */
    bool re_refused;  /* stored form: the pattern is refused today, so is every answer */
    char **choices;   /* owned, each owned; sorted by strcmp for bsearch */
    size_t nchoices;
    /* The repeats it is inside (indices into fv_form.repeats), outermost first; NULL and 0 for a
     * question outside every repeat. Its answer is then a list with one item per instance of the
     * outermost repeat, lists of lists for nested ones (fv_instance.h). */
    size_t *chain; /* owned */
    size_t nchain;
} fv_form_question;

struct fv_form {
    fv_form_question *q; /* owned, nq entries in definition order */
    size_t nq;
    size_t *by_name;    /* owned: indices into q sorted by name */
    size_t max_choices; /* largest nchoices (scratch size for validation) */
    size_t compiled;    /* bytes of every compiled pattern */
    size_t source;      /* bytes of every pattern compiled */
    char **repeats;     /* owned, each owned: the distinct xform.repeat paths, sorted by strcmp */
    size_t nrep;
};

/* ---- errors ------------------------------------------------------------------------------ */

void fv_form_errors_init(fv_form_errors *e)
{
    memset(e, 0, sizeof *e);
}

void fv_form_errors_free(fv_form_errors *e)
{
    if (e == NULL) return;
    for (size_t i = 0; i < e->n; i++) {
        free(e->items[i].field);
        free(e->items[i].reason);
    }
    free(e->items);
    fv_form_errors_init(e);
}

bool fv_form_errors_add(fv_form_errors *e, const char *field, const char *reason)
{
    if (e->n == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 8;
        struct fv_form_error *ni = realloc(e->items, ncap * sizeof *ni);
        if (ni == NULL) goto oom;
        e->items = ni;
        e->cap = ncap;
    }
    char *f = strdup(field);
    char *r = strdup(reason);
    if (f == NULL || r == NULL) {
        free(f);
        free(r);
        goto oom;
    }
    e->items[e->n].field = f;
    e->items[e->n].reason = r;
    e->n++;
    return true;
oom:
    e->dropped++;
    return false;
}

const char *fv_form_errors_get(const fv_form_errors *e, const char *field)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->items[i].field, field) == 0) return e->items[i].reason;
    return NULL;
}

/* ---- numbers ------------------------------------------------------------------------------- */

typedef enum num_result {
    NUM_OK,
    NUM_FRACTIONAL, /* a finite number that is not an integer */
    NUM_RANGE,      /* an integer outside int64 */
} num_result;

/* Converts the raw text of a JSON number (yajl has checked the grammar:
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?) to int64 exactly, without going through
 * double: "1.0", "15e-1" is fractional, "1.5e1" is 15, "1e19" is out of range. */
static num_result json_int64(const char *r, long long *out)
{
    const char *p = r;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    const char *mant = p, *end = p;
    size_t nfrac = 0;
    bool infrac = false;
    while (*end && *end != 'e' && *end != 'E') {
        if (*end == '.') infrac = true;
        else if (infrac) nfrac++;
        end++;
    }
    long exp = 0;
    if (*end) {
        const char *x = end + 1;
        bool eneg = false;
        if (*x == '+' || *x == '-') eneg = (*x++ == '-');
        for (; *x >= '0' && *x <= '9'; x++)
            if (exp < 1000000) exp = exp * 10 + (*x - '0'); /* clamp: beyond this, all the same */
        if (eneg) exp = -exp;
    }
    const char *first = NULL, *last = NULL;
    for (const char *q = mant; q < end; q++)
        if (*q >= '1' && *q <= '9') {
            if (first == NULL) first = q;
            last = q;
        }
    if (first == NULL) { /* every digit is zero */
        *out = 0;
        return NUM_OK;
    }
    size_t tz = 0, nd = 0;
    for (const char *q = last + 1; q < end; q++)
        if (*q != '.') tz++;
    for (const char *q = first; q <= last; q++)
        if (*q != '.') nd++;
    /* value = D * 10^e with D = the significant digits first..last (last one non-zero). */
    long long e = (long long)exp - (long long)nfrac + (long long)tz;
    if (e < 0) return NUM_FRACTIONAL;
    if ((long long)nd + e > 19) return NUM_RANGE;
    unsigned long long m = 0;
    for (const char *q = first; q <= last; q++)
        if (*q != '.') m = m * 10 + (unsigned long long)(*q - '0'); /* <= 19 digits: fits */
    for (long long i = 0; i < e; i++) {
        if (m > ULLONG_MAX / 10) return NUM_RANGE;
        m *= 10;
    }
    if (!neg && m > (unsigned long long)LLONG_MAX) return NUM_RANGE;
    if (neg && m > (unsigned long long)LLONG_MAX + 1) return NUM_RANGE;
    if (neg) *out = (m == (unsigned long long)LLONG_MAX + 1) ? LLONG_MIN : -(long long)m;
    else *out = (long long)m;
    return NUM_OK;
}

/* A JSON number's value as a finite double (false for non-numbers and overflow to infinity;
 * underflow to zero is accepted). Uses the raw text, as yajl drops DOUBLE_VALID on ERANGE. */
static bool json_double(yajl_val v, double *out)
{
    if (!YAJL_IS_NUMBER(v) || v->u.number.r == NULL) return false;
    double d = strtod(v->u.number.r, NULL);
    if (!isfinite(d)) return false;
    *out = d;
    return true;
}

/* Exact comparisons of an int64 with a double bound (2^63 is exactly representable). Rounds by
 * hand: fvcommon does not link libm. In range, the cast truncates toward zero exactly. */
static bool int_ge(long long v, double d)
{
    if (d >= 9223372036854775808.0) return false;
    if (d <= -9223372036854775808.0) return true;
    long long t = (long long)d; /* |d| < 2^63 */
    if ((double)t < d) t++;     /* ceil; t <= 2^63 - 1024 here, no overflow */
    return v >= t;
}

static bool int_le(long long v, double d)
{
    if (d >= 9223372036854775808.0) return true;
    if (d < -9223372036854775808.0) return false;
    long long t = (long long)d; /* -2^63 <= d < 2^63 */
    if ((double)t > d) t--;     /* floor; d > t >= -2^63 + 1 here */
    return v <= t;
}

/* ---- dates --------------------------------------------------------------------------------- */

/* ---- compile ------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* qsort_r comparator of question indices; arg is the question array. */
static int cmp_by_name(const void *a, const void *b, void *arg)
{
    const fv_form_question *sort_base = arg;
    size_t ia = *(const size_t *)a, ib = *(const size_t *)b;
    int c = strcmp(sort_base[ia].name, sort_base[ib].name);
    if (c != 0) return c;
    return (ia > ib) - (ia < ib); /* stable: the first occurrence sorts first */
}

/* A name is one segment ^[A-Za-z_][A-Za-z0-9_]{0,63}$, or a path of such segments joined by '/'
 * (a question inside a group or repeat of an XForm, "grp/age"), at most FV_FORM_MAX_PATH_LEN. */
static bool valid_name(const char *s)
{
    size_t n = strlen(s), seg = 0;
    if (n == 0 || n > FV_FORM_MAX_PATH_LEN) return false;
    for (size_t i = 0; i < n; i++, seg++) {
        char c = s[i];
        if (c == '/') {
            if (seg == 0 || i + 1 == n) return false;
            seg = (size_t)-1;
            continue;
        }
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        if (!alpha && !(seg > 0 && c >= '0' && c <= '9')) return false;
        if (seg >= FV_FORM_MAX_NAME_LEN) return false;
    }
    return true;
}

/* An optional member: NULL when absent or null. */
static yajl_val opt(yajl_val obj, const char *key)
{
    yajl_val v = fv_json_get(obj, key);
    return YAJL_IS_NULL(v) ? NULL : v;
}

#define OOM "out of memory"

/* Fills q->choices from a choices list. Returns NULL or the (static) reason it is bad. */
static const char *compile_choices(fv_form_question *q, yajl_val list)
{
    if (!YAJL_IS_ARRAY(list) || list->u.array.len == 0) return "choices must be a non-empty list";
    if (list->u.array.len > FV_FORM_MAX_CHOICES)
        return "too many choices (max " STR(FV_FORM_MAX_CHOICES) ")";
    q->choices = calloc(list->u.array.len, sizeof *q->choices);
    if (q->choices == NULL) return OOM;
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val c = list->u.array.values[i];
        const char *s = YAJL_IS_STRING(c) ? c->u.string : fv_json_get_str(c, "name");
        if (s == NULL || s[0] == '\0' || strlen(s) > FV_FORM_MAX_CHOICE_LEN) return "invalid choice";
        if ((q->choices[q->nchoices] = strdup(s)) == NULL) return OOM;
        q->nchoices++;
    }
    qsort(q->choices, q->nchoices, sizeof *q->choices, cmp_str);
    for (size_t i = 1; i < q->nchoices; i++)
        if (strcmp(q->choices[i - 1], q->choices[i]) == 0) return "duplicate choice";
    return NULL;
}

/* Reads constraint.min or .max into *val / txt. count: must be a non-negative integer. */
static const char *compile_bound(yajl_val c, const char *key, bool count, bool *has, double *val,
                                 char txt[BOUND_TXT_MAX + 1])
{
    yajl_val v = opt(c, key);
    if (v == NULL) return NULL;
    bool is_min = strcmp(key, "min") == 0;
    if (!json_double(v, val))
        return is_min ? "constraint min must be a number" : "constraint max must be a number";
    if (count) {
        long long n;
        if (json_int64(v->u.number.r, &n) != NUM_OK || n < 0 || n > INT32_MAX)
            return is_min ? "constraint min must be a non-negative integer"
                          : "constraint max must be a non-negative integer";
        *val = (double)n;
        snprintf(txt, BOUND_TXT_MAX + 1, "%lld", n);
    } else if (strlen(v->u.number.r) <= BOUND_TXT_MAX) {
        snprintf(txt, BOUND_TXT_MAX + 1, "%s", v->u.number.r);
    } else {
        snprintf(txt, BOUND_TXT_MAX + 1, "%.17g", *val);
    }
    *has = true;
    return NULL;
}

/* ---- patterns ------------------------------------------------------------------------------ */

/* PCRE2 with the meaning of today's whole-answer POSIX match: anchored at both ends, `.` matches a
 * newline and `$` only the very end (as in POSIX without REG_NEWLINE), UTF-8 code points. No
 * numbered captures (nothing reads them; smaller backtracking frames; `\1` does not compile) and
 * no `\C` (it could split a UTF-8 character). */
#define PATTERN_OPTIONS                                                                     \
    (PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY | \
     PCRE2_NO_AUTO_CAPTURE | PCRE2_NEVER_BACKSLASH_C)

#define TOO_COMPLEX FV_FORM_PATTERN_TOO_COMPLEX
#define TOO_COMPLEX_COMPILE                                                                \
    TOO_COMPLEX " (its compiled size, nesting or memory is over the limits: at most " STR( \
        FV_FORM_MAX_PATTERN_COMPILED) " bytes compiled, " STR(FV_FORM_MAX_PATTERN_NEST) " nested groups)"
#define TOO_COMPLEX_FORM                                               \
    TOO_COMPLEX " (the form's patterns together are longer than " STR( \
        FV_FORM_MAX_PATTERNS_SOURCE) " bytes or compile to more than " STR(FV_FORM_MAX_PATTERNS_COMPILED) " bytes)"

/* A heap cap for one compilation: PCRE2 allocates through capped_malloc, so compiling a pattern
 * cannot take more than FV_FORM_PATTERN_COMPILE_MEMORY in all (freed blocks are not counted off:
 * the cap is on everything allocated). The compiled code keeps a pointer to its question's
 * capped_heap (q->heap) for later frees, so it lives in the question; after compilation the cap
 * is lifted. */
static void *capped_malloc(size_t n, void *data)
{
    capped_heap *h = data;
    if (n > h->limit - h->used) return NULL;
    void *p = malloc(n);
    if (p != NULL) h->used += n;
    return p;
}

static void capped_free(void *block, void *data)
{
    (void)data;
    free(block);
}

/* Compiles pattern (a JSON string: yajl has checked its UTF-8, PCRE2 checks it again) into q->re,
 * counting its length and compiled size into the form's totals. Once a total is reached, later
 * patterns are refused without being compiled, so the work of compiling a form is bounded by
 * FV_FORM_MAX_PATTERNS_SOURCE bytes parsed and FV_FORM_MAX_PATTERNS_COMPILED (plus one pattern)
 * bytes generated. Returns NULL or the (static) reason it is refused.
 * A compile error of PCRE2 about size, nesting or memory is "too complex"; any other is "invalid
 * pattern" (a syntax error). */
static const char *compile_pattern(fv_form_question *q, const char *pattern, fv_form *f)
{
    size_t len = strlen(pattern);
    if (len > FV_FORM_MAX_PATTERN)
        return "constraint pattern too long (max " STR(FV_FORM_MAX_PATTERN) " bytes)";
    /* Back-references made glibc's matcher exponential; PCRE2 bounds them, but they are not
     * regular and the dialect keeps refusing them with this clear reason. */
    for (const char *b = pattern; *b; b++) {
        if (*b == '\\' && b[1] >= '1' && b[1] <= '9')
            return "back-references are not allowed in a pattern";
        if (*b == '\\' && b[1]) b++;
    }
    if (f->source + len > FV_FORM_MAX_PATTERNS_SOURCE || f->compiled >= FV_FORM_MAX_PATTERNS_COMPILED)
        return TOO_COMPLEX_FORM;
    f->source += len;
    q->heap = (capped_heap){.used = 0, .limit = FV_FORM_PATTERN_COMPILE_MEMORY};
    pcre2_general_context *gctx = pcre2_general_context_create(capped_malloc, capped_free, &q->heap);
    pcre2_compile_context *cctx = gctx ? pcre2_compile_context_create(gctx) : NULL;
    if (cctx == NULL) {
        pcre2_general_context_free(gctx);
        return OOM;
    }
    pcre2_set_max_pattern_length(cctx, FV_FORM_MAX_PATTERN);
    pcre2_set_parens_nest_limit(cctx, FV_FORM_MAX_PATTERN_NEST);
    int errcode = 0;
    PCRE2_SIZE erroffset = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, PATTERN_OPTIONS, &errcode, &erroffset,
                                   cctx);
    pcre2_compile_context_free(cctx);
    pcre2_general_context_free(gctx); /* the code has its own copy of the memory functions */
    q->heap.limit = SIZE_MAX;         /* later frees (and nothing else) go through them */
    const char *why = NULL;
    if (re == NULL) {
        switch (errcode) {
        case PCRE2_ERROR_PATTERN_TOO_LARGE:
        case PCRE2_ERROR_PARENTHESES_NEST_TOO_DEEP:
        case PCRE2_ERROR_HEAP_FAILED:
        case PCRE2_ERROR_PATTERN_STRING_TOO_LONG:
        case PCRE2_ERROR_PATTERN_TOO_COMPLICATED:
        case PCRE2_ERROR_TOO_MANY_NAMED_SUBPATTERNS: why = TOO_COMPLEX_COMPILE; break;
        default: why = "invalid pattern";
        }
        return why;
    }
    size_t size = q->heap.used; /* what the compilation allocated, at least the code's size */
    pcre2_pattern_info(re, PCRE2_INFO_SIZE, &size);
    /* Charged even when refused: it is work done, and the form's total bounds that work. */
    f->compiled += size;
    if (size > FV_FORM_MAX_PATTERN_COMPILED) why = TOO_COMPLEX_COMPILE;
    else if (f->compiled > FV_FORM_MAX_PATTERNS_COMPILED) why = TOO_COMPLEX_FORM;
    if (why != NULL) {
        pcre2_code_free(re);
        return why;
    }
    q->re = re;
    return NULL;
}

static const char *compile_constraint(fv_form_question *q, yajl_val c, bool stored, fv_form *f)
{
    if (!YAJL_IS_OBJECT(c)) return "constraint must be an object";
    bool ranged = q->type == FV_FORM_TEXT || q->type == FV_FORM_INTEGER || q->type == FV_FORM_DECIMAL ||
                  q->type == FV_FORM_SELECT_MULTIPLE;
    bool count = q->type == FV_FORM_TEXT || q->type == FV_FORM_SELECT_MULTIPLE;
    if ((opt(c, "min") || opt(c, "max")) && !ranged)
        return "constraint min/max not supported for this type";
    const char *why;
    if ((why = compile_bound(c, "min", count, &q->has_min, &q->min, q->min_txt))) return why;
    if ((why = compile_bound(c, "max", count, &q->has_max, &q->max, q->max_txt))) return why;
    if (q->has_min && q->has_max && q->min > q->max) return "constraint min is greater than max";
    yajl_val p = opt(c, "pattern");
    if (p != NULL) {
        if (q->type != FV_FORM_TEXT) return "constraint pattern is only for text questions";
        if (!YAJL_IS_STRING(p)) return "constraint pattern must be a string";
        why = compile_pattern(q, p->u.string, f);
        /* A stored form keeps loading: the question then refuses every answer (fails closed). */
        if (why != NULL && stored && strcmp(why, OOM) != 0) {
            q->re_refused = true;
            why = NULL;
        }
        if (why != NULL) return why;
    }
    return NULL;
}

/* Compiles one question into q (already zeroed; q owns what it gets even on error). Returns NULL
 * or the first (static) reason the question is bad. */
static const char *compile_question(fv_form_question *q, yajl_val qv, bool stored, fv_form *f)
{
    if (!YAJL_IS_OBJECT(qv)) return "expected an object";
    yajl_val v = opt(qv, "name");
    if (v == NULL) return "name is required";
    if (!YAJL_IS_STRING(v) || !valid_name(v->u.string))
        return "invalid name (letters, digits, _; max " STR(FV_FORM_MAX_NAME_LEN) ")";
    if ((q->name = strdup(v->u.string)) == NULL) return OOM;

    v = opt(qv, "type");
    if (v == NULL) return "type is required";
    size_t t = 0;
    if (YAJL_IS_STRING(v))
        for (; t < sizeof type_names / sizeof type_names[0]; t++)
            if (strcmp(v->u.string, type_names[t]) == 0) break;
    if (!YAJL_IS_STRING(v) || t == sizeof type_names / sizeof type_names[0]) return "unknown type";
    q->type = (fv_form_type)t;

    v = opt(qv, "label");
    if (v != NULL && !YAJL_IS_STRING(v)) return "label must be a string";
    v = opt(qv, "required");
    if (v != NULL && !YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) return "required must be true or false";
    q->required = YAJL_IS_TRUE(v);
    if (q->required && q->type == FV_FORM_NOTE) return "a note cannot be required";
    v = opt(qv, "confidential");
    if (v != NULL && !YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) return "confidential must be true or false";
    q->confidential = YAJL_IS_TRUE(v);

    bool select = q->type == FV_FORM_SELECT_ONE || q->type == FV_FORM_SELECT_MULTIPLE;
    v = opt(qv, "choices");
    if (select && v == NULL) return "choices are required";
    if (!select && v != NULL) return "choices are only for select questions";
    const char *why;
    if (select && (why = compile_choices(q, v))) return why;

    v = opt(qv, "constraint");
    if (v != NULL && (why = compile_constraint(q, v, stored, f))) return why;
    return NULL;
}

/* Adds an error for question i: its name when usable, else "questions[i]". */
static void question_error(fv_form_errors *errs, const char *name, size_t i, const char *why)
{
    char field[32];
    if (name == NULL) snprintf(field, sizeof field, "questions[%zu]", i);
    fv_form_errors_add(errs, name ? name : field, why);
}

/* The repeats of an XForm's derived definition (fv_xform.h): each question may carry
 * xform.repeat, the path of the innermost repeat around it. The form's repeats are those paths;
 * a question's chain is every repeat whose path is a whole-segment prefix of its name, outermost
 * first (as fv_instance.c reads an instance). A repeat that is no such prefix of its question
 * only counts for the questions it is a prefix of. Bounded work: one bsearch per segment of a
 * name. NULL, or OOM. */
static const char *compile_repeats(fv_form *f, yajl_val list)
{
    f->repeats = calloc(f->nq, sizeof *f->repeats);
    if (f->repeats == NULL) return OOM;
    for (size_t i = 0; i < f->nq; i++) {
        yajl_val x = opt(list->u.array.values[i], "xform");
        yajl_val r = YAJL_IS_OBJECT(x) ? opt(x, "repeat") : NULL;
        if (!YAJL_IS_STRING(r) || !valid_name(r->u.string)) continue;
        if ((f->repeats[f->nrep] = strdup(r->u.string)) == NULL) return OOM;
        f->nrep++;
    }
    if (f->nrep == 0) return NULL;
    qsort(f->repeats, f->nrep, sizeof *f->repeats, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < f->nrep; i++) {
        if (k > 0 && strcmp(f->repeats[k - 1], f->repeats[i]) == 0) free(f->repeats[i]);
        else f->repeats[k++] = f->repeats[i];
    }
    f->nrep = k;
    for (size_t i = 0; i < f->nq; i++) {
        fv_form_question *q = &f->q[i];
        if (q->name == NULL) continue;
        char prefix[FV_FORM_MAX_PATH_LEN + 1];
        const char *key = prefix;
        for (const char *slash = strchr(q->name, '/'); slash; slash = strchr(slash + 1, '/')) {
            size_t len = (size_t)(slash - q->name); /* < FV_FORM_MAX_PATH_LEN: a valid name */
            memcpy(prefix, q->name, len);
            prefix[len] = '\0';
            char **hit = bsearch(&key, f->repeats, f->nrep, sizeof *f->repeats, cmp_str);
            if (hit == NULL) continue;
            if (q->chain == NULL) {
                size_t segs = 0;
                for (const char *c = q->name; *c; c++) segs += *c == '/';
                if ((q->chain = calloc(segs, sizeof *q->chain)) == NULL) return OOM;
            }
            q->chain[q->nchain++] = (size_t)(hit - f->repeats);
        }
    }
    return NULL;
}

static fv_form *compile_form(yajl_val definition, fv_form_errors *errs, bool stored)
{
    size_t before = errs->n + errs->dropped;
    const char **why = NULL; /* per question: NULL or its first problem (static text) */
    bool *name_ok = NULL;    /* per question: its name may be used as the error field */
    fv_form *f = calloc(1, sizeof *f);
    if (f == NULL) {
        fv_form_errors_add(errs, "", OOM);
        return NULL;
    }
    if (!YAJL_IS_OBJECT(definition)) {
        fv_form_errors_add(errs, "", "definition must be an object");
        goto fail;
    }
    /* Confidential mode (migration 024): the survey's flag and the radius of its GPS
     * displacement, checked alongside the questions (every bad field reported at once). */
    yajl_val cmode = opt(definition, "confidential_mode");
    if (cmode != NULL && !YAJL_IS_TRUE(cmode) && !YAJL_IS_FALSE(cmode))
        fv_form_errors_add(errs, "confidential_mode", "must be true or false");
    yajl_val radius = opt(definition, "confidential_gps_radius_m");
    if (radius != NULL && (!YAJL_IS_DOUBLE(radius) || !isfinite(YAJL_GET_DOUBLE(radius)) ||
                           YAJL_GET_DOUBLE(radius) < FV_FORM_MIN_GPS_RADIUS ||
                           YAJL_GET_DOUBLE(radius) > FV_FORM_MAX_GPS_RADIUS))
        fv_form_errors_add(errs, "confidential_gps_radius_m",
                           "must be a number of metres from " STR(FV_FORM_MIN_GPS_RADIUS) " to " STR(
                               FV_FORM_MAX_GPS_RADIUS));
    yajl_val list = opt(definition, "questions");
    if (!YAJL_IS_ARRAY(list) || list->u.array.len == 0) {
        fv_form_errors_add(errs, "questions", "must be a non-empty list");
        goto fail;
    }
    if (list->u.array.len > FV_FORM_MAX_QUESTIONS) {
        fv_form_errors_add(errs, "questions", "too many questions (max " STR(FV_FORM_MAX_QUESTIONS) ")");
        goto fail;
    }
    size_t n = list->u.array.len;
    f->q = calloc(n, sizeof *f->q);
    f->by_name = calloc(n, sizeof *f->by_name);
    why = calloc(n, sizeof *why);
    name_ok = calloc(n, sizeof *name_ok);
    if (f->q == NULL || f->by_name == NULL || why == NULL || name_ok == NULL) {
        fv_form_errors_add(errs, "questions", OOM);
        goto fail;
    }
    f->nq = n;
    size_t named = 0;
    for (size_t i = 0; i < n; i++) {
        why[i] = compile_question(&f->q[i], list->u.array.values[i], stored, f);
        if (f->q[i].name != NULL) f->by_name[named++] = i;
        if (f->q[i].nchoices > f->max_choices) f->max_choices = f->q[i].nchoices;
    }
    /* Duplicates: the first occurrence keeps its name as error field, later ones are "duplicate
     * name" under questions[i] (their name is ambiguous). */
    qsort_r(f->by_name, named, sizeof *f->by_name, cmp_by_name, f->q);
    for (size_t k = 0; k < named; k++) {
        size_t i = f->by_name[k];
        bool dup = k > 0 && strcmp(f->q[f->by_name[k - 1]].name, f->q[i].name) == 0;
        name_ok[i] = !dup;
        if (dup && why[i] == NULL) why[i] = "duplicate name";
    }
    for (size_t i = 0; i < n; i++)
        if (why[i] != NULL) question_error(errs, name_ok[i] ? f->q[i].name : NULL, i, why[i]);
    if (errs->n + errs->dropped != before) goto fail;
    const char *rwhy = compile_repeats(f, list);
    if (rwhy != NULL) {
        fv_form_errors_add(errs, "questions", rwhy);
        goto fail;
    }
    free(why);
    free(name_ok);
    return f;
fail:
    if (errs->n + errs->dropped == before) fv_form_errors_add(errs, "", "invalid definition");
    free(why);
    free(name_ok);
    fv_form_free(f);
    return NULL;
}

fv_form *fv_form_compile(yajl_val definition, fv_form_errors *errs)
{
    return compile_form(definition, errs, false);
}

fv_form *fv_form_compile_stored(yajl_val definition, fv_form_errors *errs)
{
    return compile_form(definition, errs, true);
}

bool fv_form_errors_pattern_too_complex(const fv_form_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        if (!strncmp(e->items[i].reason, TOO_COMPLEX, strlen(TOO_COMPLEX))) return true;
    return false;
}

void fv_form_free(fv_form *f)
{
    if (f == NULL) return;
    for (size_t i = 0; i < f->nq; i++) {
        fv_form_question *q = &f->q[i];
        free(q->name);
        for (size_t c = 0; c < q->nchoices; c++) free(q->choices[c]);
        free(q->choices);
        free(q->chain);
        pcre2_code_free(q->re); /* NULL is fine */
    }
    for (size_t r = 0; r < f->nrep; r++) free(f->repeats[r]);
    free(f->repeats);
    free(f->q);
    free(f->by_name);
    free(f);
}

size_t fv_form_question_count(const fv_form *f)
{
    return f ? f->nq : 0;
}

long fv_form_find(const fv_form *f, const char *name)
{
    size_t lo = 0, hi = f->nq;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->q[f->by_name[mid]].name);
        if (c == 0) return (long)f->by_name[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return -1;
}

const char *fv_form_question_name(const fv_form *f, size_t i)
{
    return (f && i < f->nq) ? f->q[i].name : NULL;
}

bool fv_form_question_confidential(const fv_form *f, size_t i)
{
    return f && i < f->nq && f->q[i].confidential;
}

/* ---- validate ------------------------------------------------------------------------------ */

/* Characters (UTF-8 code points; yajl has checked the encoding) in s. */
static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static long choice_index(const fv_form_question *q, const char *s)
{
    char *const *hit = bsearch(&s, q->choices, q->nchoices, sizeof *q->choices, cmp_str);
    return hit ? (long)(hit - q->choices) : -1;
}

/* Writes "<prefix><bound><suffix>" into buf and returns buf. */
static const char *bound_reason(char *buf, size_t len, const char *prefix, const char *bound,
                                const char *suffix)
{
    snprintf(buf, len, "%s%s%s", prefix, bound, suffix);
    return buf;
}

/* Matches a text answer against q's pattern (the whole answer must match) within the form's
 * limits. NULL when it matches, else the reason it is refused: an answer the limits stop is
 * refused, never accepted unchecked. PCRE2 checks the answer's UTF-8 itself (no
 * PCRE2_NO_UTF_CHECK): the JSON reader's checks are not relied on. */
static const char *check_pattern(const fv_form_question *q, const char *s, pcre2_match_data *md,
                                 pcre2_match_context *mctx)
{
    size_t n = strlen(s);
    if (n > FV_FORM_MAX_PATTERN_ANSWER)
        return "too long to be checked against the pattern (max " STR(
            FV_FORM_MAX_PATTERN_ANSWER) " bytes)";
    if (md == NULL || mctx == NULL) return OOM;
    int rc = pcre2_match(q->re, (PCRE2_SPTR)s, n, 0, 0, md, mctx);
    if (rc >= 0) return NULL; /* 0: matched, the 1-pair ovector was too small for the captures */
    switch (rc) {
    case PCRE2_ERROR_NOMATCH:
    case PCRE2_ERROR_PARTIAL: return "does not match pattern";
    case PCRE2_ERROR_MATCHLIMIT:
    case PCRE2_ERROR_DEPTHLIMIT:
    case PCRE2_ERROR_HEAPLIMIT:
        return "cannot be checked: " TOO_COMPLEX " for this answer (the check hit its limits); refused";
    case PCRE2_ERROR_NOMEMORY: return OOM;
    default:
        if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21) return "not valid UTF-8";
        return "cannot be checked against the pattern; refused";
    }
}

/* Checks one answer v (non-null) to q. Returns NULL when valid, else the reason, which is static
 * or written into buf. seen: scratch of q->nchoices bytes, zeroed by the caller. */
static const char *check_answer(const fv_form_question *q, yajl_val v, char *buf, size_t len,
                                unsigned char *seen, pcre2_match_data *md, pcre2_match_context *mctx)
{
    switch (q->type) {
    case FV_FORM_NOTE: return "a note cannot be answered";
    case FV_FORM_TEXT: {
        if (!YAJL_IS_STRING(v)) return "expected text";
        size_t n = utf8_len(v->u.string);
        if (q->has_min && (double)n < q->min)
            return bound_reason(buf, len, "must be at least ", q->min_txt, " characters");
        if (q->has_max && (double)n > q->max)
            return bound_reason(buf, len, "must be at most ", q->max_txt, " characters");
        if (q->re_refused)
            return "cannot be checked: this question's pattern is no longer accepted (" TOO_COMPLEX
                   " or invalid); every answer is refused until the form is corrected";
        if (q->re != NULL) return check_pattern(q, v->u.string, md, mctx);
        return NULL;
    }
    case FV_FORM_INTEGER: {
        long long i;
        if (!YAJL_IS_NUMBER(v) || v->u.number.r == NULL) return "expected integer";
        num_result r = json_int64(v->u.number.r, &i);
        if (r == NUM_FRACTIONAL) return "expected integer";
        if (r == NUM_RANGE) return "integer out of range";
        if (q->has_min && !int_ge(i, q->min))
            return bound_reason(buf, len, "must be at least ", q->min_txt, "");
        if (q->has_max && !int_le(i, q->max))
            return bound_reason(buf, len, "must be at most ", q->max_txt, "");
        return NULL;
    }
    case FV_FORM_DECIMAL: {
        double d;
        if (!YAJL_IS_NUMBER(v)) return "expected number";
        if (!json_double(v, &d)) return "number out of range";
        if (q->has_min && d < q->min) return bound_reason(buf, len, "must be at least ", q->min_txt, "");
        if (q->has_max && d > q->max) return bound_reason(buf, len, "must be at most ", q->max_txt, "");
        return NULL;
    }
    case FV_FORM_SELECT_ONE:
        if (!YAJL_IS_STRING(v)) return "expected a choice";
        return choice_index(q, v->u.string) < 0 ? "not one of the choices" : NULL;
    case FV_FORM_SELECT_MULTIPLE: {
        if (!YAJL_IS_ARRAY(v)) return "expected a list of choices";
        size_t n = v->u.array.len;
        /* More selections than choices cannot be distinct: refuse before looking (huge arrays). */
        if (n > q->nchoices) return "too many selections";
        for (size_t k = 0; k < n; k++) {
            yajl_val c = v->u.array.values[k];
            if (!YAJL_IS_STRING(c)) return "expected a list of choices";
            long ci = choice_index(q, c->u.string);
            if (ci < 0) return "not one of the choices";
            if (seen[ci]++) return "duplicate choice";
        }
        if (q->has_min && (double)n < q->min)
            return bound_reason(buf, len, "must select at least ", q->min_txt, "");
        if (q->has_max && (double)n > q->max)
            return bound_reason(buf, len, "must select at most ", q->max_txt, "");
        return NULL;
    }
    case FV_FORM_DATE: return (YAJL_IS_STRING(v) && fv_check_date(v->u.string)) ? NULL : "invalid date";
    case FV_FORM_DATETIME:
        return (YAJL_IS_STRING(v) && fv_check_datetime(v->u.string)) ? NULL : "invalid datetime";
    case FV_FORM_GEOPOINT: return fv_check_geopoint(v, NULL);
    }
    return "unknown type";
}

/* Null, "" and [] are "not answered". */
static bool unanswered(yajl_val v)
{
    return v == NULL || YAJL_IS_NULL(v) || (YAJL_IS_STRING(v) && v->u.string[0] == '\0') ||
           (YAJL_IS_ARRAY(v) && v->u.array.len == 0);
}

/* True when field was added to errs at or after index from. */
static bool has_field_since(const fv_form_errors *e, size_t from, const char *field)
{
    for (size_t i = from; i < e->n; i++)
        if (strcmp(e->items[i].field, field) == 0) return true;
    return false;
}

/* ---- repeats ------------------------------------------------------------------------------- */

/* The scratch of one validation: the checks' shared state and the repeat position being looked
 * at ("2.3": the second instance of the outer repeat, its third inner one). */
typedef struct vctx {
    unsigned char *seen;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    char pos[256]; /* truncated when nesting is absurdly deep: a reason, never a bound */
} vctx;

/* Appends item i's position (1-based) to c->pos; returns the length to cut it back to. */
static size_t pos_push(vctx *c, size_t i)
{
    size_t at = strlen(c->pos);
    if (at < sizeof c->pos) snprintf(c->pos + at, sizeof c->pos - at, at ? ".%zu" : "%zu", i + 1);
    return at;
}

/* The number of items of a list (null, absent and anything else: none). */
static size_t items_of(yajl_val v)
{
    return YAJL_IS_ARRAY(v) ? v->u.array.len : 0;
}

/* Checks v, q's answer at repeat level `level` (0: the whole list; q->nchain: one item, an answer
 * to q). NULL, or the reason (static, or in buf); c->pos then names the item. */
static const char *check_nested(const fv_form_question *q, yajl_val v, size_t level, vctx *c, char *buf,
                                size_t len)
{
    if (level == q->nchain) {
        if (unanswered(v)) return q->required ? "required" : NULL;
        if (q->type == FV_FORM_SELECT_MULTIPLE) memset(c->seen, 0, q->nchoices);
        return check_answer(q, v, buf, len, c->seen, c->md, c->mctx);
    }
    if (level > 0 && YAJL_IS_NULL(v)) return NULL; /* no instances of this inner repeat here */
    if (!YAJL_IS_ARRAY(v))
        return level == 0 ? "expected a list (one item per instance of its repeat)"
                          : "expected a list (one item per instance of its inner repeat)";
    for (size_t i = 0; i < v->u.array.len; i++) {
        size_t at = pos_push(c, i);
        const char *why = check_nested(q, v->u.array.values[i], level + 1, c, buf, len);
        if (why != NULL) return why; /* one error per question: the first bad item */
        c->pos[at] = '\0';
    }
    return NULL;
}

/* The answered items of q's list v (a pattern check each). */
static size_t answered_items(const fv_form_question *q, yajl_val v, size_t level)
{
    if (level == q->nchain) return unanswered(v) ? 0 : 1;
    size_t n = 0;
    for (size_t i = 0; i < items_of(v); i++) n += answered_items(q, v->u.array.values[i], level + 1);
    return n;
}

/* Whether lists a and b have the same instances down `levels` repeat levels; else false with
 * c->pos naming the list where they differ and *na, *nb its lengths. */
static bool same_instances(yajl_val a, yajl_val b, size_t levels, vctx *c, size_t *na, size_t *nb)
{
    *na = items_of(a), *nb = items_of(b);
    if (*na != *nb) return false;
    if (levels == 1) return true;
    for (size_t i = 0; i < *na; i++) {
        size_t at = pos_push(c, i);
        if (!same_instances(a->u.array.values[i], b->u.array.values[i], levels - 1, c, na, nb))
            return false;
        c->pos[at] = '\0';
    }
    return true;
}

/* Whether list v has an instance at depth `levels` (the first one's position into c->pos). */
static bool first_instance(yajl_val v, size_t levels, vctx *c)
{
    for (size_t i = 0; i < items_of(v); i++) {
        size_t at = pos_push(c, i);
        if (levels == 1 || first_instance(v->u.array.values[i], levels - 1, c)) return true;
        c->pos[at] = '\0';
    }
    return false;
}

/* Stores "#<pos>: why" (or why) as q's reason in *slot (owned; NULL when memory runs out: the
 * caller then records OOM). */
static void set_reason(char **slot, const char *pos, const char *why)
{
    size_t n = strlen(why) + strlen(pos) + 4;
    *slot = malloc(n);
    if (*slot == NULL) return;
    if (pos[0]) snprintf(*slot, n, "#%s: %s", pos, why);
    else snprintf(*slot, n, "%s", why);
}

/* The repeats' own rules, once each answer is checked: every question of one repeat answers
 * the same instances (the first present one of the definition is the reference); a required
 * question left out while its repeat has instances is required in the first of them. */
static void check_repeat_shapes(const fv_form *f, yajl_val *ans, const unsigned char *count,
                                char **reason, bool *oom)
{
    size_t *ref = malloc(f->nrep * sizeof *ref);
    if (ref == NULL) {
        *oom = true;
        return;
    }
    for (size_t r = 0; r < f->nrep; r++) ref[r] = SIZE_MAX;
    vctx c;
    for (size_t i = 0; i < f->nq; i++) {
        const fv_form_question *q = &f->q[i];
        if (q->nchain == 0 || count[i] != 1 || reason[i] != NULL || unanswered(ans[i])) continue;
        for (size_t k = 0; k < q->nchain; k++) {
            size_t r = q->chain[k];
            if (ref[r] == SIZE_MAX) {
                ref[r] = i;
                continue;
            }
            size_t here, there;
            c.pos[0] = '\0';
            if (same_instances(ans[i], ans[ref[r]], k + 1, &c, &here, &there)) continue;
            char why[2 * FV_FORM_MAX_PATH_LEN + 96];
            snprintf(why, sizeof why, "%zu instances of the repeat %s here, %zu in %s", here,
                     f->repeats[r], there, f->q[ref[r]].name);
            set_reason(&reason[i], c.pos, why);
            if (reason[i] == NULL) *oom = true;
            break;
        }
    }
    for (size_t i = 0; i < f->nq; i++) {
        const fv_form_question *q = &f->q[i];
        if (q->nchain == 0 || !q->required || count[i] > 1 || reason[i] != NULL || !unanswered(ans[i]))
            continue;
        size_t r = q->chain[q->nchain - 1], from = ref[r];
        c.pos[0] = '\0';
        if (from == SIZE_MAX || !first_instance(ans[from], q->nchain, &c)) continue;
        set_reason(&reason[i], c.pos, "required");
        if (reason[i] == NULL) *oom = true;
    }
    free(ref);
}

size_t fv_form_validate(const fv_form *f, yajl_val data, fv_form_errors *errs)
{
    size_t before = errs->n + errs->dropped;
    if (!YAJL_IS_OBJECT(data)) {
        fv_form_errors_add(errs, "", "expected an object");
        return errs->n + errs->dropped - before;
    }
    /* Scratch, freed below: the answer to each question, how often it was given, the selections
     * seen for one select_multiple, and each question's reason. */
    yajl_val *ans = calloc(f->nq ? f->nq : 1, sizeof *ans);
    unsigned char *count = calloc(f->nq ? f->nq : 1, 1);
    unsigned char *seen = malloc(f->max_choices ? f->max_choices : 1);
    char **reason = calloc(f->nq ? f->nq : 1, sizeof *reason);
    vctx c = {.seen = seen};
    if (ans == NULL || count == NULL || seen == NULL || reason == NULL) {
        fv_form_errors_add(errs, "", OOM);
        goto out;
    }
    size_t unknown = 0;
    for (size_t k = 0; k < data->u.object.len; k++) {
        long i = fv_form_find(f, data->u.object.keys[k]);
        if (i < 0) {
            unknown++;
            continue;
        }
        ans[i] = data->u.object.values[k];
        if (count[i] < 2) count[i]++;
    }
    /* The budget of pattern checks is shared by the answers that will be checked (each question
     * once, each answered item of a repeat question once), so all the checks of one submission
     * together stay under FV_FORM_PATTERN_BUDGET. */
    size_t nchecks = 0;
    for (size_t i = 0; i < f->nq; i++)
        if (f->q[i].re != NULL && count[i] == 1 && !unanswered(ans[i]))
            nchecks += f->q[i].nchain ? answered_items(&f->q[i], ans[i], 0) : 1;
    if (nchecks > 0) {
        size_t per = FV_FORM_PATTERN_BUDGET / nchecks;
        if (per > FV_FORM_PATTERN_MATCH_LIMIT) per = FV_FORM_PATTERN_MATCH_LIMIT;
        if (per < 1) per = 1;
        /* One match block for every check (its backtracking frames grow to the heap limit at
         * most); both freed below. */
        c.md = pcre2_match_data_create(1, NULL);
        c.mctx = pcre2_match_context_create(NULL);
        if (c.md != NULL && c.mctx != NULL) {
            pcre2_set_match_limit(c.mctx, (uint32_t)per);
            pcre2_set_depth_limit(c.mctx, FV_FORM_PATTERN_DEPTH_LIMIT);
            pcre2_set_heap_limit(c.mctx, FV_FORM_PATTERN_HEAP_KIB);
        } /* else each check answers "out of memory": refused, never accepted unchecked */
    }
    /* At most one error per question, in definition order. */
    bool oom = false;
    for (size_t i = 0; i < f->nq; i++) {
        const fv_form_question *q = &f->q[i];
        char buf[96];
        const char *why = NULL;
        c.pos[0] = '\0';
        if (count[i] > 1) why = "duplicate answer";
        else if (q->nchain > 0)
            why = unanswered(ans[i]) ? NULL : check_nested(q, ans[i], 0, &c, buf, sizeof buf);
        else if (unanswered(ans[i])) why = q->required ? "required" : NULL;
        else {
            if (q->type == FV_FORM_SELECT_MULTIPLE) memset(seen, 0, q->nchoices);
            why = check_answer(q, ans[i], buf, sizeof buf, seen, c.md, c.mctx);
        }
        if (why == NULL) continue;
        set_reason(&reason[i], c.pos, why);
        if (reason[i] == NULL) oom = true;
    }
    if (f->nrep > 0) check_repeat_shapes(f, ans, count, reason, &oom);
    for (size_t i = 0; i < f->nq; i++)
        if (reason[i] != NULL) fv_form_errors_add(errs, f->q[i].name, reason[i]);
    if (oom) fv_form_errors_add(errs, "", OOM);
    /* Then unknown keys, which may repeat (fields stay unique) and are listed up to a limit,
     * after which one summary error under "" stands for the rest. */
    size_t listed = 0, examined = 0, ufirst = errs->n;
    for (size_t k = 0; unknown > 0 && k < data->u.object.len; k++) {
        const char *key = data->u.object.keys[k];
        if (fv_form_find(f, key) >= 0) continue;
        /* Dedup costs up to `listed` comparisons, so only the first keys get it. */
        bool cheap = ++examined <= 10 * FV_FORM_MAX_UNKNOWN_REPORTED;
        if (cheap && has_field_since(errs, ufirst, key)) continue; /* the same key again */
        if (listed == FV_FORM_MAX_UNKNOWN_REPORTED || !cheap) {
            if (!has_field_since(errs, ufirst, ""))
                fv_form_errors_add(errs, "", "too many unknown questions");
            break;
        }
        fv_form_errors_add(errs, key, "unknown question");
        listed++;
    }
out:
    for (size_t i = 0; reason != NULL && i < f->nq; i++) free(reason[i]);
    free(reason);
    free(ans);
    free(count);
    free(seen);
    pcre2_match_data_free(c.md); /* NULL is fine */
    pcre2_match_context_free(c.mctx);
    return errs->n + errs->dropped - before;
}

fv_form *fv_form_compile_text(const char *definition)
{
    char err[128];
    yajl_val def = fv_json_parse(definition, err, sizeof err);
    if (!def) return NULL;
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    fv_form *form = fv_form_compile_stored(def, &errs);
    fv_form_errors_free(&errs);
    yajl_tree_free(def);
    return form;
}

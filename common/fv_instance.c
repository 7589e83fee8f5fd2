/* OpenRosa submission instances: expat into typed answers (fv_instance.h). */
#include "fv_instance.h"

#define XML_DTD 1 /* Debian's libexpat1 is built with it: the amplification protection API */
#include <ctype.h>
#include <expat.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_json.h"
#include "fv_mem.h"

#define PATH_MAX_BYTES 1024

typedef enum { T_TEXT, T_INTEGER, T_DECIMAL, T_SELECT_MULTIPLE, T_GEOPOINT, T_NOTE } qtype;

typedef struct question {
    const char *name; /* borrowed from the definition */
    size_t len;
    qtype type;
    int chain[FV_INSTANCE_MAX_DEPTH]; /* the repeats above it, outermost first */
    int nchain;
    long last;    /* depth 0: its last leaf (index into leaves), -1 */
    long *leaves; /* in a repeat: its leaves in document order (owned) */
    size_t nleaves, capleaves;
} question;

typedef struct leaf {
    long q;     /* question index, or -1 (unknown path: path kept) */
    long inst;  /* the innermost repeat instance around it (0: none) */
    char *text; /* owned */
    char *path; /* owned, unknown leaves only */
} leaf;

typedef struct inst {
    int repeat; /* index into repeats; -1 for the root */
    long parent;
    long first_child, next_sibling; /* -1 */
    long last_child;
} inst;

typedef struct parser {
    XML_Parser p;
    bool failed, head_only;
    char *why;
    size_t whylen;
    fv_instance *out;
    /* the element stack */
    int depth;
    size_t plen[FV_INSTANCE_MAX_DEPTH + 1];
    long sinst[FV_INSTANCE_MAX_DEPTH + 1];
    bool has_child[FV_INSTANCE_MAX_DEPTH + 1];
    char path[PATH_MAX_BYTES + 1];
    char *text;
    size_t tlen, tcap;
    size_t nodes;
    /* the definition */
    question *qs;
    size_t nq;
    const char **repeats; /* borrowed names */
    size_t *rlen;
    size_t nrep;
    /* what was read */
    leaf *leaves;
    size_t nleaves, capleaves;
    inst *insts;
    size_t ninsts, capinsts;
} parser;

__attribute__((format(printf, 2, 3))) static void pfail(parser *b, const char *fmt, ...)
{
    if (b->failed) return;
    b->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->why, b->whylen, fmt, ap);
    va_end(ap);
    XML_StopParser(b->p, XML_FALSE);
}

static const char *local_name(const char *n)
{
    const char *c = strrchr(n, ':');
    return c ? c + 1 : n;
}

static long find_question(parser *b, const char *path, size_t len)
{
    for (size_t i = 0; i < b->nq; i++)
        if (b->qs[i].len == len && memcmp(b->qs[i].name, path, len) == 0) return (long)i;
    return -1;
}

static int find_repeat(parser *b, const char *path, size_t len)
{
    for (size_t i = 0; i < b->nrep; i++)
        if (b->rlen[i] == len && memcmp(b->repeats[i], path, len) == 0) return (int)i;
    return -1;
}

static void on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    parser *b = ud;
    if (b->failed) return;
    if (++b->nodes > FV_INSTANCE_MAX_NODES) {
        pfail(b, "XML: more than %s elements", "50000");
        return;
    }
    if (b->depth >= FV_INSTANCE_MAX_DEPTH) {
        pfail(b, "XML: elements nest more than %s deep", "64");
        return;
    }
    if (b->depth > 0) b->has_child[b->depth] = true;
    const char *ln = local_name(name);
    size_t base = b->depth > 0 ? b->plen[b->depth] : 0, nl = strlen(ln);
    if (b->depth == 0) {
        for (int i = 0; atts[i]; i += 2) {
            char *dst = NULL;
            if (strcmp(local_name(atts[i]), "id") == 0) dst = b->out->form_id;
            else if (strcmp(local_name(atts[i]), "version") == 0) dst = b->out->version;
            if (!dst) continue;
            if (strlen(atts[i + 1]) > FV_INSTANCE_MAX_ID) {
                pfail(b, "the root's %s attribute is too long", atts[i]);
                return;
            }
            strcpy(dst, atts[i + 1]);
        }
        b->depth = 1;
        b->plen[1] = 0;
        b->sinst[1] = 0;
        b->has_child[1] = false;
        b->tlen = 0;
        return;
    }
    size_t np = base + (base ? 1 : 0) + nl;
    if (np > PATH_MAX_BYTES) {
        pfail(b, "XML: an element path is longer than %s bytes", "1024");
        return;
    }
    if (base) b->path[base] = '/';
    memcpy(b->path + base + (base ? 1 : 0), ln, nl);
    b->path[np] = '\0';
    long parent_inst = b->sinst[b->depth];
    b->depth++;
    b->plen[b->depth] = np;
    b->has_child[b->depth] = false;
    b->sinst[b->depth] = parent_inst;
    b->tlen = 0;
    if (b->head_only) return;
    int r = find_repeat(b, b->path, np);
    if (r >= 0) {
        if (b->ninsts == b->capinsts) {
            size_t cap = b->capinsts * 2;
            inst *n = realloc(b->insts, cap * sizeof *n);
            if (!n) {
                pfail(b, "%s", "out of memory");
                return;
            }
            b->insts = n, b->capinsts = cap;
        }
        long id = (long)b->ninsts++;
        b->insts[id] = (inst){r, parent_inst, -1, -1, -1};
        inst *pa = &b->insts[parent_inst];
        if (pa->last_child < 0) pa->first_child = id;
        else b->insts[pa->last_child].next_sibling = id;
        pa->last_child = id;
        b->sinst[b->depth] = id;
    }
}

static void on_text(void *ud, const XML_Char *s, int len)
{
    parser *b = ud;
    if (b->failed || b->depth < 2) return;
    if (b->tlen + (size_t)len > FV_INSTANCE_MAX_TEXT) {
        pfail(b, "XML: an element's text is longer than %s bytes", "65536");
        return;
    }
    if (b->tlen + (size_t)len + 1 > b->tcap) {
        size_t cap = b->tcap ? b->tcap : 256;
        while (cap < b->tlen + (size_t)len + 1) cap *= 2;
        char *n = realloc(b->text, cap);
        if (!n) {
            pfail(b, "%s", "out of memory");
            return;
        }
        b->text = n, b->tcap = cap;
    }
    memcpy(b->text + b->tlen, s, (size_t)len);
    b->tlen += (size_t)len;
}

static bool is_meta(const char *path, size_t len, const char *what)
{
    size_t w = strlen(what);
    return len == 5 + w && memcmp(path, "meta/", 5) == 0 && memcmp(path + 5, what, w) == 0;
}

static void on_end(void *ud, const XML_Char *name)
{
    (void)name;
    parser *b = ud;
    if (b->failed) return;
    int d = b->depth;
    if (d >= 2 && !b->has_child[d]) {
        size_t len = b->plen[d];
        const char *text = b->tlen ? b->text : "";
        size_t tl = b->tlen;
        char *meta = is_meta(b->path, len, "instanceID")     ? b->out->instance_id
                     : is_meta(b->path, len, "deprecatedID") ? b->out->deprecated_id
                                                             : NULL;
        if (meta) {
            while (tl && isspace((unsigned char)text[0])) text++, tl--;
            while (tl && isspace((unsigned char)text[tl - 1])) tl--;
            if (tl > FV_INSTANCE_MAX_ID) {
                pfail(b, "%s is too long",
                      is_meta(b->path, len, "instanceID") ? "instanceID" : "deprecatedID");
                return;
            }
            memcpy(meta, text, tl);
            meta[tl] = '\0';
            text = b->tlen ? b->text : "";
            tl = b->tlen;
        }
        if (!b->head_only) {
            if (b->nleaves == b->capleaves) {
                size_t cap = b->capleaves ? b->capleaves * 2 : 64;
                leaf *n = realloc(b->leaves, cap * sizeof *n);
                if (!n) {
                    pfail(b, "%s", "out of memory");
                    return;
                }
                b->leaves = n, b->capleaves = cap;
            }
            leaf *l = &b->leaves[b->nleaves];
            l->q = find_question(b, b->path, len);
            l->inst = b->sinst[d];
            l->text = fv_memdup0(text, tl);
            l->path = l->q < 0 ? fv_memdup0(b->path, len) : NULL;
            if (!l->text || (l->q < 0 && !l->path)) {
                free(l->text), free(l->path);
                pfail(b, "%s", "out of memory");
                return;
            }
            long li = (long)b->nleaves++;
            if (l->q >= 0) {
                question *q = &b->qs[l->q];
                if (q->nchain == 0) {
                    q->last = li;
                } else {
                    if (q->nleaves == q->capleaves) {
                        size_t cap = q->capleaves ? q->capleaves * 2 : 8;
                        long *n = realloc(q->leaves, cap * sizeof *n);
                        if (!n) {
                            pfail(b, "%s", "out of memory");
                            return;
                        }
                        q->leaves = n, q->capleaves = cap;
                    }
                    q->leaves[q->nleaves++] = li;
                }
            }
        }
    }
    b->tlen = 0;
    if (d >= 1) b->depth--;
}

static void on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                       int has_internal)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal;
    pfail(ud, "XML: a DOCTYPE is not allowed%s", "");
}

static void on_entity(void *ud, const XML_Char *name, int pe, const XML_Char *v, int vlen,
                      const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
                      const XML_Char *notation)
{
    (void)name, (void)pe, (void)v, (void)vlen, (void)base, (void)sysid, (void)pubid, (void)notation;
    pfail(ud, "XML: an entity declaration is not allowed%s", "");
}

static int on_external(XML_Parser p, const XML_Char *context, const XML_Char *base,
                       const XML_Char *sysid, const XML_Char *pubid)
{
    (void)p, (void)context, (void)base, (void)sysid, (void)pubid;
    return XML_STATUS_ERROR; /* never fetched */
}

static int run(parser *b, const char *xml, size_t len)
{
    if (len > (size_t)0x7fffffff) {
        snprintf(b->why, b->whylen, "XML: the document is too large");
        return -1;
    }
    b->p = XML_ParserCreate("UTF-8");
    if (!b->p) {
        snprintf(b->why, b->whylen, "out of memory");
        return -1;
    }
    XML_SetUserData(b->p, b);
    XML_SetElementHandler(b->p, on_start, on_end);
    XML_SetCharacterDataHandler(b->p, on_text);
    XML_SetStartDoctypeDeclHandler(b->p, on_doctype);
    XML_SetEntityDeclHandler(b->p, on_entity);
    XML_SetExternalEntityRefHandler(b->p, on_external);
    XML_SetParamEntityParsing(b->p, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 4)
    XML_SetBillionLaughsAttackProtectionMaximumAmplification(b->p, 4.0f);
    XML_SetBillionLaughsAttackProtectionActivationThreshold(b->p, 65536);
#endif
    enum XML_Status st = XML_Parse(b->p, xml, (int)len, XML_TRUE);
    if (st != XML_STATUS_OK && !b->failed) {
        b->failed = true;
        snprintf(b->why, b->whylen, "XML: %s at line %lu", XML_ErrorString(XML_GetErrorCode(b->p)),
                 (unsigned long)XML_GetCurrentLineNumber(b->p));
    }
    XML_ParserFree(b->p);
    return b->failed ? -1 : 0;
}

int fv_instance_head(const char *xml, size_t len, fv_instance *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    parser b = {0};
    b.why = why, b.whylen = whylen, b.out = out, b.head_only = true;
    int rc = run(&b, xml, len);
    free(b.text);
    return rc;
}

/* ---- typing ---- */

static bool json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-') i++;
    if (i >= n) return false;
    if (s[i] == '0') i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (i < n && isdigit((unsigned char)s[i])) i++;
    else return false;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !isdigit((unsigned char)s[i])) return false;
        while (i < n && isdigit((unsigned char)s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !isdigit((unsigned char)s[i])) return false;
        while (i < n && isdigit((unsigned char)s[i])) i++;
    }
    return i == n && n <= 64;
}

static bool blank(const char *t)
{
    for (; *t; t++)
        if (!isspace((unsigned char)*t)) return false;
    return true;
}

static void emit_value(fv_jgen *j, qtype type, const char *text)
{
    const char *t = text;
    size_t n = strlen(t);
    while (n && isspace((unsigned char)t[0])) t++, n--;
    while (n && isspace((unsigned char)t[n - 1])) n--;
    switch (type) {
    case T_INTEGER: {
        const char *d = t;
        size_t dn = n;
        if (dn && d[0] == '+') d++, dn--;
        bool ok = dn > 0 && dn <= 19;
        for (size_t i = (dn && d[0] == '-') ? 1 : 0; ok && i < dn; i++)
            ok = isdigit((unsigned char)d[i]);
        if (ok && !(dn == 1 && d[0] == '-')) {
            /* JSON has no leading zeros: "007" is 7 */
            char buf[24];
            size_t k = 0, i = 0;
            if (d[0] == '-') buf[k++] = '-', i = 1;
            while (i + 1 < dn && d[i] == '0') i++;
            memcpy(buf + k, d + i, dn - i);
            fv_jgen_raw(j, buf, k + dn - i);
        } else {
            fv_jgen_strn(j, t, n);
        }
        return;
    }
    case T_DECIMAL: {
        if (json_number(t, n)) {
            fv_jgen_raw(j, t, n);
            return;
        }
        char buf[72];
        if (n < sizeof buf) {
            memcpy(buf, t, n);
            buf[n] = '\0';
            char *end;
            double v = strtod(buf, &end);
            if (n && *end == '\0' && isfinite(v) && !isalpha((unsigned char)buf[n - 1]) &&
                strpbrk(buf, "xXnN") == NULL) {
                fv_jgen_double(j, v);
                return;
            }
        }
        fv_jgen_strn(j, t, n);
        return;
    }
    case T_SELECT_MULTIPLE: {
        fv_jgen_array_open(j);
        size_t i = 0;
        while (i < n) {
            while (i < n && isspace((unsigned char)t[i])) i++;
            size_t s = i;
            while (i < n && !isspace((unsigned char)t[i])) i++;
            if (i > s) fv_jgen_strn(j, t + s, i - s);
        }
        fv_jgen_array_close(j);
        return;
    }
    case T_GEOPOINT: {
        double v[4];
        int k = 0;
        char buf[160];
        if (n < sizeof buf) {
            memcpy(buf, t, n);
            buf[n] = '\0';
            char *p = buf, *end;
            while (k < 4) {
                while (isspace((unsigned char)*p)) p++;
                if (!*p) break;
                v[k] = strtod(p, &end);
                if (end == p || !isfinite(v[k]) || (*end && !isspace((unsigned char)*end))) {
                    k = -1;
                    break;
                }
                k++;
                p = end;
            }
            while (k >= 0 && isspace((unsigned char)*p)) p++;
            if (k >= 2 && *p == '\0') {
                static const char *const keys[] = {"lat", "lon", "altitude", "accuracy"};
                fv_jgen_map_open(j);
                for (int i = 0; i < k; i++) {
                    fv_jgen_key(j, keys[i]);
                    fv_jgen_double(j, v[i]);
                }
                fv_jgen_map_close(j);
                return;
            }
        }
        fv_jgen_strn(j, t, n);
        return;
    }
    default: fv_jgen_str(j, text); return;
    }
}

/* Emits question q's nested list at chain level `level` below instance parent; *pos walks q's
 * leaves in document order. */
static void emit_repeat(parser *b, fv_jgen *j, question *q, int level, long parent, size_t *pos)
{
    fv_jgen_array_open(j);
    for (long c = b->insts[parent].first_child; c >= 0; c = b->insts[c].next_sibling) {
        if (b->insts[c].repeat != q->chain[level]) continue;
        if (level + 1 < q->nchain) {
            emit_repeat(b, j, q, level + 1, c, pos);
            continue;
        }
        const char *text = NULL;
        while (*pos < q->nleaves && b->leaves[q->leaves[*pos]].inst < c) (*pos)++;
        while (*pos < q->nleaves && b->leaves[q->leaves[*pos]].inst == c)
            text = b->leaves[q->leaves[(*pos)++]].text;
        if (text && !blank(text)) emit_value(j, q->type, text);
        else fv_jgen_null(j);
    }
    fv_jgen_array_close(j);
}

static bool repeat_has_instances(parser *b, const question *q)
{
    for (long c = b->insts[0].first_child; c >= 0; c = b->insts[c].next_sibling)
        if (b->insts[c].repeat == q->chain[0]) return true;
    return false;
}

/* ---- validation ---- */

/* The answers (json, len bytes) checked by fv_form_validate, which knows the repeats (a repeat
 * question's list item by item, its instances against its siblings'); the number of problems. */
static size_t validate(const fv_form *form, const char *json, size_t len, fv_form_errors *errs)
{
    fv_json_error je;
    yajl_val tree = fv_json_parse_n(json, len, &je);
    if (!tree) {
        fv_form_errors_add(errs, "", "the answers cannot be read back");
        return 1;
    }
    size_t n = fv_form_validate(form, tree, errs);
    yajl_tree_free(tree);
    return n;
}

/* ---- the definition ---- */

static qtype type_of(const char *t)
{
    if (!t) return T_TEXT;
    if (!strcmp(t, "integer")) return T_INTEGER;
    if (!strcmp(t, "decimal")) return T_DECIMAL;
    if (!strcmp(t, "select_multiple")) return T_SELECT_MULTIPLE;
    if (!strcmp(t, "geopoint")) return T_GEOPOINT;
    if (!strcmp(t, "note")) return T_NOTE;
    return T_TEXT;
}

/* True when prefix is path's ancestor (whole segments). */
static bool ancestor(const char *prefix, size_t pl, const char *path)
{
    return strlen(path) > pl && strncmp(path, prefix, pl) == 0 && path[pl] == '/';
}

static int load_definition(parser *b, yajl_val def)
{
    yajl_val qs = fv_json_get(def, "questions");
    if (!qs || !YAJL_IS_ARRAY(qs)) return -1;
    b->nq = qs->u.array.len;
    b->qs = calloc(b->nq ? b->nq : 1, sizeof *b->qs);
    b->repeats = calloc(b->nq ? b->nq : 1, sizeof *b->repeats);
    b->rlen = calloc(b->nq ? b->nq : 1, sizeof *b->rlen);
    if (!b->qs || !b->repeats || !b->rlen) return -1;
    for (size_t i = 0; i < b->nq; i++) {
        yajl_val q = qs->u.array.values[i];
        yajl_val name = fv_json_get(q, "name"), type = fv_json_get(q, "type");
        yajl_val xf = fv_json_get(q, "xform");
        yajl_val rp = xf ? fv_json_get(xf, "repeat") : NULL;
        question *d = &b->qs[i];
        d->name = name && YAJL_IS_STRING(name) ? name->u.string : "";
        d->len = strlen(d->name);
        d->type = type_of(type && YAJL_IS_STRING(type) ? type->u.string : NULL);
        d->last = -1;
        if (rp && YAJL_IS_STRING(rp) && rp->u.string[0] &&
            find_repeat(b, rp->u.string, strlen(rp->u.string)) < 0) {
            b->repeats[b->nrep] = rp->u.string;
            b->rlen[b->nrep++] = strlen(rp->u.string);
        }
    }
    /* each question's chain: the repeats that are its ancestors, outermost (shortest) first */
    for (size_t i = 0; i < b->nq; i++) {
        question *d = &b->qs[i];
        for (size_t len = 1; len <= d->len; len++) {
            for (size_t r = 0; r < b->nrep; r++)
                if (b->rlen[r] == len && ancestor(b->repeats[r], len, d->name) &&
                    d->nchain < FV_INSTANCE_MAX_DEPTH)
                    d->chain[d->nchain++] = (int)r;
        }
    }
    return 0;
}

static void parser_free(parser *b)
{
    for (size_t i = 0; i < b->nleaves; i++) free(b->leaves[i].text), free(b->leaves[i].path);
    free(b->leaves);
    for (size_t i = 0; b->qs && i < b->nq; i++) free(b->qs[i].leaves);
    free(b->qs);
    free(b->repeats);
    free(b->rlen);
    free(b->insts);
    free(b->text);
}

int fv_instance_parse(const char *xml, size_t len, yajl_val definition, const fv_form *form,
                      fv_instance *out, fv_form_errors *errs, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    parser b = {0};
    b.why = why, b.whylen = whylen, b.out = out;
    int rc = -1;
    fv_jgen *j = NULL;
    b.capinsts = 16;
    b.insts = malloc(b.capinsts * sizeof *b.insts);
    if (!b.insts || load_definition(&b, definition) != 0) {
        snprintf(why, whylen, "the form's definition cannot be read (or out of memory)");
        goto done;
    }
    b.insts[0] = (inst){-1, -1, -1, -1, -1};
    b.ninsts = 1;
    if (run(&b, xml, len) != 0) goto done;
    j = fv_jgen_new();
    if (!j) {
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    fv_jgen_map_open(j);
    for (size_t i = 0; i < b.nq; i++) {
        question *q = &b.qs[i];
        if (q->type == T_NOTE || !q->name[0]) continue;
        if (q->nchain == 0) {
            if (q->last < 0 || blank(b.leaves[q->last].text)) continue;
            fv_jgen_key(j, q->name);
            emit_value(j, q->type, b.leaves[q->last].text);
        } else if (repeat_has_instances(&b, q)) {
            size_t pos = 0;
            fv_jgen_key(j, q->name);
            emit_repeat(&b, j, q, 0, 0, &pos);
        }
    }
    /* leaves that are no question: kept as text, once per path (validation names them) */
    size_t unknown = 0;
    const char *emitted[FV_FORM_MAX_UNKNOWN_REPORTED + 1];
    for (size_t i = 0; i < b.nleaves && unknown < FV_FORM_MAX_UNKNOWN_REPORTED + 1; i++) {
        leaf *l = &b.leaves[i];
        /* the OpenRosa meta block is the client's (deprecatedID, instanceName, audit, ...) */
        if (l->q >= 0 || blank(l->text) || strncmp(l->path, "meta/", 5) == 0) continue;
        bool seen = false;
        for (size_t k = 0; k < unknown && !seen; k++) seen = strcmp(emitted[k], l->path) == 0;
        if (seen) continue;
        fv_jgen_key(j, l->path);
        fv_jgen_str(j, l->text);
        emitted[unknown++] = l->path;
    }
    fv_jgen_map_close(j);
    size_t dlen;
    const char *text = fv_jgen_buf(j, &dlen);
    if (!text || !(out->data = fv_memdup0(text, dlen))) {
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    rc = (int)validate(form, out->data, dlen, errs);
done:
    fv_jgen_free(j);
    parser_free(&b);
    if (rc < 0) {
        free(out->data);
        out->data = NULL;
    }
    return rc;
}

void fv_instance_clear(fv_instance *in)
{
    free(in->data);
    in->data = NULL;
}

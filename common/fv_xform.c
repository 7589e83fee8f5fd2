/* XForms: expat parse into a small bounded tree, derivation of Fieldvault's question list, and
 * generation of an XForm from a JSON definition (fv_xform.h). */
#include "fv_xform.h"

#define XML_DTD 1 /* Debian's libexpat1 is built with it: the amplification protection API */
#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_json.h"
#include "fv_mem.h"

#define NS_JR "http://openrosa.org/javarosa"
#define NS_ORX "http://openrosa.org/xforms"
/* Fieldvault's own attributes (confidential mode, migration 024): ignored by every other client */
#define NS_FV "https://fieldvault.org/xforms"
#define NS_SEP '|'

/* ---- a growable string ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void sb_add(sbuf *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}
/* Appends s with the five XML special characters escaped (text and attribute values). */
static void sb_xml(sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_add(b, "&amp;"); break;
        case '<': sb_add(b, "&lt;"); break;
        case '>': sb_add(b, "&gt;"); break;
        case '"': sb_add(b, "&quot;"); break;
        case '\'': sb_add(b, "&apos;"); break;
        default: sb_addn(b, s, 1);
        }
    }
}

/* ---- the tree ---- */

typedef struct node {
    char *ns, *name; /* namespace URI ("" for none) and local name; both owned */
    char **attr;     /* ns1, local1, value1, ns2, ...; NULL-terminated; owned */
    sbuf text;       /* character data directly inside */
    struct node *parent, *child, *last, *next;
} node;

typedef struct builder {
    XML_Parser p;
    node *root, *cur;
    size_t depth, nodes;
    char *why;
    size_t whylen;
    bool failed;
} builder;

static void node_free(node *n)
{
    while (n) {
        node *next = n->next;
        node_free(n->child);
        free(n->ns);
        free(n->name);
        if (n->attr)
            for (char **a = n->attr; *a; a++) free(*a);
        free(n->attr);
        free(n->text.p);
        free(n);
        n = next;
    }
}

__attribute__((format(printf, 2, 3))) static void fail(builder *b, const char *fmt, ...)
{
    if (!b->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->why, b->whylen, fmt, ap);
        va_end(ap);
        b->failed = true;
    }
    XML_StopParser(b->p, XML_FALSE);
}

/* Splits "uri|local" (or "local") into owned copies. False when out of memory. */
static bool split_name(const char *full, char **ns, char **local)
{
    const char *sep = strrchr(full, NS_SEP);
    *ns = sep ? fv_memdup0(full, (size_t)(sep - full)) : strdup("");
    *local = strdup(sep ? sep + 1 : full);
    return *ns && *local;
}

static void on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    builder *b = ud;
    if (b->failed) return;
    if (++b->depth > FV_XFORM_MAX_DEPTH)
        return fail(b, "XML: nested more than %d deep", FV_XFORM_MAX_DEPTH);
    if (++b->nodes > FV_XFORM_MAX_NODES)
        return fail(b, "XML: more than %d elements", FV_XFORM_MAX_NODES);
    node *n = calloc(1, sizeof *n);
    if (!n) return fail(b, "out of memory");
    /* Linked in first so node_free reaches it whatever fails below. */
    n->parent = b->cur;
    if (!b->cur) b->root = n;
    else if (b->cur->last) b->cur->last->next = n, b->cur->last = n;
    else b->cur->child = b->cur->last = n;
    b->cur = n;
    size_t na = 0;
    while (atts[na]) na++;
    n->attr = calloc(na / 2 * 3 + 1, sizeof *n->attr);
    if (!n->attr || !split_name(name, &n->ns, &n->name)) return fail(b, "out of memory");
    for (size_t i = 0, k = 0; i < na; i += 2, k += 3) {
        if (strlen(atts[i + 1]) > FV_XFORM_MAX_ATTR)
            return fail(b, "XML: an attribute value is over %d bytes", FV_XFORM_MAX_ATTR);
        if (!split_name(atts[i], &n->attr[k], &n->attr[k + 1]) ||
            !(n->attr[k + 2] = strdup(atts[i + 1])))
            return fail(b, "out of memory");
    }
}

static void on_end(void *ud, const XML_Char *name)
{
    (void)name;
    builder *b = ud;
    if (b->failed || !b->cur) return;
    b->cur = b->cur->parent;
    b->depth--;
}

static void on_text(void *ud, const XML_Char *s, int len)
{
    builder *b = ud;
    if (b->failed || !b->cur) return;
    if (b->cur->text.n + (size_t)len > FV_XFORM_MAX_TEXT)
        return fail(b, "XML: a text is over %d bytes", FV_XFORM_MAX_TEXT);
    sb_addn(&b->cur->text, s, (size_t)len);
    if (b->cur->text.oom) fail(b, "out of memory");
}

static void on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                       int internal)
{
    (void)name, (void)sysid, (void)pubid, (void)internal;
    fail(ud, "XML: a DOCTYPE is not allowed");
}

static void on_entity(void *ud, const XML_Char *name, int pe, const XML_Char *v, int vlen,
                      const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
                      const XML_Char *notation)
{
    (void)name, (void)pe, (void)v, (void)vlen, (void)base, (void)sysid, (void)pubid, (void)notation;
    fail(ud, "XML: entity declarations are not allowed");
}

static int on_external(XML_Parser p, const XML_Char *context, const XML_Char *base,
                       const XML_Char *sysid, const XML_Char *pubid)
{
    (void)p, (void)context, (void)base, (void)sysid, (void)pubid;
    return XML_STATUS_ERROR; /* never fetched */
}

/* Parses xml into a tree (caller frees with node_free), or NULL with b->why set. */
static node *build(const char *xml, size_t len, char *why, size_t whylen)
{
    builder b = {.why = why, .whylen = whylen};
    if (len > FV_XFORM_MAX_BYTES || len > (size_t)INT32_MAX) {
        snprintf(why, whylen, "XML: over %u bytes", FV_XFORM_MAX_BYTES);
        return NULL;
    }
    /* The encoding is fixed: a declaration naming another one is overridden. */
    b.p = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (!b.p) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    XML_SetUserData(b.p, &b);
    XML_SetElementHandler(b.p, on_start, on_end);
    XML_SetCharacterDataHandler(b.p, on_text);
    XML_SetStartDoctypeDeclHandler(b.p, on_doctype);
    XML_SetEntityDeclHandler(b.p, on_entity);
    XML_SetExternalEntityRefHandler(b.p, on_external);
    XML_SetParamEntityParsing(b.p, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 4)
    XML_SetBillionLaughsAttackProtectionMaximumAmplification(b.p, 4.0f);
    XML_SetBillionLaughsAttackProtectionActivationThreshold(b.p, 65536);
#endif
    enum XML_Status st = XML_Parse(b.p, xml, (int)len, XML_TRUE);
    if (st != XML_STATUS_OK && !b.failed) {
        snprintf(why, whylen, "XML: %s at line %lu", XML_ErrorString(XML_GetErrorCode(b.p)),
                 (unsigned long)XML_GetCurrentLineNumber(b.p));
        b.failed = true;
    }
    XML_ParserFree(b.p);
    if (b.failed || !b.root) {
        if (!b.failed) snprintf(why, whylen, "XML: no root element");
        node_free(b.root);
        return NULL;
    }
    return b.root;
}

/* ---- tree helpers ---- */

static const char *attr_ns(const node *n, const char *ns, const char *local)
{
    for (char **a = n->attr; a && *a; a += 3)
        if (strcmp(a[1], local) == 0 && (!ns || strcmp(a[0], ns) == 0)) return a[2];
    return NULL;
}
static const char *attr(const node *n, const char *local)
{
    return attr_ns(n, "", local);
}

static const node *child(const node *n, const char *local)
{
    for (const node *c = n ? n->child : NULL; c; c = c->next)
        if (strcmp(c->name, local) == 0) return c;
    return NULL;
}

/* The text of n with leading and trailing white space removed, into out (owned by caller). */
static char *trimmed(const node *n)
{
    const char *s = n && n->text.p ? n->text.p : "";
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    return fv_memdup0(s, len);
}

/* "/data/orx:meta/orx:instanceID" -> "/data/meta/instanceID" (prefixes dropped); owned. */
static char *norm_path(const char *p)
{
    sbuf b = {0};
    sb_add(&b, "");
    while (p && *p) {
        const char *slash = strchr(p, '/');
        size_t seg = slash ? (size_t)(slash - p) : strlen(p);
        const char *colon = memchr(p, ':', seg);
        const char *s = colon ? colon + 1 : p;
        sb_addn(&b, s, seg - (size_t)(s - p));
        if (slash) sb_add(&b, "/");
        p = slash ? slash + 1 : NULL;
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- the parsed form ---- */

typedef struct field {
    char *path;       /* below the root: "grp/age" */
    char *abs;        /* "/data/grp/age" */
    char *repeat;     /* the innermost repeat above it (relative path), or NULL */
    const node *bind; /* borrowed from the tree */
    const node *ctl;  /* the body control, or NULL */
} field;

struct fv_xform {
    node *tree;
    char *id, *version, *title, *root;
    field *f;
    size_t n, cap;
    const node *model, *body, *itext;
    const node
        *data; /* the primary instance's root (fv:confidential_mode, fv:confidential_gps_radius_m) */
    char **repeats; /* absolute paths of repeats (body <repeat nodeset>) */
    size_t nrep;
    /* control lookup: ref (absolute, normalised) -> node */
    char **ctl_ref;
    const node **ctl;
    size_t nctl, capctl;
    /* bind lookup: nodeset (normalised) -> node, built once */
    char **bind_ref;
    const node **bind;
    size_t nbind;
    char *why;
    size_t whylen;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void xfail(fv_xform *x, const char *fmt, ...)
{
    if (x->failed) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->why, x->whylen, fmt, ap);
    va_end(ap);
    x->failed = true;
}

void fv_xform_free(fv_xform *x)
{
    if (!x) return;
    for (size_t i = 0; i < x->n; i++) free(x->f[i].path), free(x->f[i].abs), free(x->f[i].repeat);
    free(x->f);
    for (size_t i = 0; i < x->nrep; i++) free(x->repeats[i]);
    free(x->repeats);
    for (size_t i = 0; i < x->nctl; i++) free(x->ctl_ref[i]);
    free(x->ctl_ref);
    free(x->ctl);
    for (size_t i = 0; i < x->nbind; i++) free(x->bind_ref[i]);
    free(x->bind_ref);
    free(x->bind);
    free(x->id), free(x->version), free(x->title), free(x->root);
    node_free(x->tree);
    free(x);
}

const char *fv_xform_id(const fv_xform *x)
{
    return x->id;
}
const char *fv_xform_version(const fv_xform *x)
{
    return x->version;
}
const char *fv_xform_title(const fv_xform *x)
{
    return x->title;
}

const char *fv_xform_public_key(const fv_xform *x)
{
    for (const node *c = x->model ? x->model->child : NULL; c; c = c->next)
        if (strcmp(c->name, "submission") == 0 && attr(c, "base64RsaPublicKey"))
            return attr(c, "base64RsaPublicKey");
    return NULL;
}
size_t fv_xform_field_count(const fv_xform *x)
{
    return x->n;
}

static bool valid_segment(const char *s)
{
    if (!*s || strlen(s) > 64) return false;
    for (const char *c = s; *c; c++) {
        bool alpha = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || *c == '_';
        if (!alpha && !(c > s && *c >= '0' && *c <= '9')) return false;
    }
    return true;
}

static bool is_repeat(const fv_xform *x, const char *abs)
{
    for (size_t i = 0; i < x->nrep; i++)
        if (strcmp(x->repeats[i], abs) == 0) return true;
    return false;
}

/* Normalises every bind's nodeset once (find_bind then compares strings only). */
static void index_binds(fv_xform *x)
{
    size_t n = 0;
    for (const node *c = x->model->child; c; c = c->next)
        if (strcmp(c->name, "bind") == 0) n++;
    x->bind_ref = calloc(n ? n : 1, sizeof *x->bind_ref);
    x->bind = calloc(n ? n : 1, sizeof *x->bind);
    if (!x->bind_ref || !x->bind) return xfail(x, "out of memory");
    for (const node *c = x->model->child; c; c = c->next) {
        if (strcmp(c->name, "bind") != 0 || !attr(c, "nodeset")) continue;
        if (!(x->bind_ref[x->nbind] = norm_path(attr(c, "nodeset")))) return xfail(x, "out of memory");
        x->bind[x->nbind++] = c;
    }
}

static const node *find_bind(const fv_xform *x, const char *abs)
{
    for (size_t i = 0; i < x->nbind; i++)
        if (strcmp(x->bind_ref[i], abs) == 0) return x->bind[i];
    return NULL;
}

static const node *find_ctl(const fv_xform *x, const char *abs)
{
    for (size_t i = 0; i < x->nctl; i++)
        if (strcmp(x->ctl_ref[i], abs) == 0) return x->ctl[i];
    return NULL;
}

/* Walks the primary instance below n (its absolute path abs, relative rel, innermost repeat). */
static void walk_instance(fv_xform *x, const node *n, const char *abs, const char *rel,
                          const char *repeat)
{
    for (const node *c = n->child; c && !x->failed; c = c->next) {
        /* Later siblings of the same name are more repeat instances (or the template's copies). */
        bool dup = false;
        for (const node *e = n->child; e != c; e = e->next)
            if (strcmp(e->name, c->name) == 0) dup = true;
        if (dup) continue;
        if (!valid_segment(c->name))
            return xfail(x, "unsupported name \"%s\" (letters, digits, _; at most 64)", c->name);
        size_t la = strlen(abs) + strlen(c->name) + 2, lr = strlen(rel) + strlen(c->name) + 2;
        char *cabs = malloc(la), *crel = malloc(lr);
        if (!cabs || !crel) {
            free(cabs), free(crel);
            return xfail(x, "out of memory");
        }
        snprintf(cabs, la, "%s/%s", abs, c->name);
        snprintf(crel, lr, "%s%s%s", rel, *rel ? "/" : "", c->name);
        if (strlen(crel) > 255) {
            xfail(x, "unsupported path \"%s\" (over 255 bytes)", crel);
        } else if (c->child) {
            bool rep = is_repeat(x, cabs) || attr_ns(c, NS_JR, "template");
            walk_instance(x, c, cabs, crel, rep ? crel : repeat);
        } else {
            if (x->n == x->cap) {
                size_t cap = x->cap ? x->cap * 2 : 32;
                field *f = realloc(x->f, cap * sizeof *f);
                if (!f) {
                    free(cabs), free(crel);
                    return xfail(x, "out of memory");
                }
                x->f = f, x->cap = cap;
            }
            if (x->n >= 2000) xfail(x, "unsupported form: more than 2000 fields");
            field *f = &x->f[x->n++];
            *f = (field){.path = crel,
                         .abs = cabs,
                         .bind = find_bind(x, cabs),
                         .ctl = find_ctl(x, cabs)};
            f->repeat = repeat ? strdup(repeat) : NULL;
            if (repeat && !f->repeat) xfail(x, "out of memory");
            continue;
        }
        free(cabs), free(crel);
    }
}

static void add_ctl(fv_xform *x, const char *ref, const node *n)
{
    if (x->nctl == x->capctl) {
        size_t cap = x->capctl ? x->capctl * 2 : 32;
        char **r = realloc(x->ctl_ref, cap * sizeof *r);
        if (r) x->ctl_ref = r;
        const node **c = realloc(x->ctl, cap * sizeof *c);
        if (c) x->ctl = c;
        if (!r || !c) return xfail(x, "out of memory");
        x->capctl = cap;
    }
    x->ctl_ref[x->nctl] = (char *)ref;
    x->ctl[x->nctl++] = n;
}

/* Resolves a body ref against the enclosing group's (absolute, normalised); owned or NULL. */
static char *resolve(const char *ref, const char *base)
{
    if (!ref) return NULL;
    if (ref[0] == '/') return norm_path(ref);
    size_t l = strlen(base) + strlen(ref) + 2;
    char *s = malloc(l);
    if (!s) return NULL;
    snprintf(s, l, "%s/%s", base, ref);
    char *n = norm_path(s);
    free(s);
    return n;
}

static const char *const controls[] = {"input", "select1", "select", "upload", "trigger", "range"};

static void walk_body(fv_xform *x, const node *n, const char *base)
{
    for (const node *c = n->child; c && !x->failed; c = c->next) {
        if (strcmp(c->name, "label") == 0 || strcmp(c->name, "hint") == 0) continue;
        bool group = strcmp(c->name, "group") == 0, repeat = strcmp(c->name, "repeat") == 0;
        bool ctl = false;
        for (size_t i = 0; i < sizeof controls / sizeof controls[0]; i++)
            if (strcmp(c->name, controls[i]) == 0) ctl = true;
        if (!group && !repeat && !ctl)
            return xfail(x, "unsupported construct: body element <%s>", c->name);
        const char *ref = attr(c, repeat ? "nodeset" : "ref");
        char *abs = ref ? resolve(ref, base) : strdup(base);
        if (!abs) return xfail(x, "out of memory");
        if (repeat) {
            char **r = realloc(x->repeats, (x->nrep + 1) * sizeof *r);
            if (!r) {
                free(abs);
                return xfail(x, "out of memory");
            }
            x->repeats = r;
            if (!(x->repeats[x->nrep] = strdup(abs))) {
                free(abs);
                return xfail(x, "out of memory");
            }
            x->nrep++;
        }
        if (ctl) {
            if (!ref) {
                free(abs);
                return xfail(x, "unsupported construct: <%s> without ref", c->name);
            }
            add_ctl(x, abs, c); /* takes abs */
            if (x->failed) free(abs);
        } else {
            walk_body(x, c, abs);
            free(abs);
        }
    }
}

static const char *bind_type(const node *bind);

/* The bind types Fieldvault knows (without their xsd: prefix). */
static const char *const known_types[] = {"string", "int",      "integer",  "decimal",  "date",
                                          "time",   "dateTime", "geopoint", "geotrace", "geoshape",
                                          "binary", "barcode",  "boolean",  "select",   "select1"};

fv_xform *fv_xform_parse(const char *xml, size_t len, char *why, size_t whylen)
{
    node *t = build(xml, len, why, whylen);
    if (!t) return NULL;
    fv_xform *x = calloc(1, sizeof *x);
    if (!x) {
        node_free(t);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    x->tree = t, x->why = why, x->whylen = whylen;
    const node *head = child(t, "head");
    x->model = child(head, "model");
    x->body = child(t, "body");
    const node *inst = NULL;
    for (const node *c = x->model ? x->model->child : NULL; c; c = c->next)
        if (strcmp(c->name, "instance") == 0 && !attr(c, "id")) {
            inst = c;
            break;
        }
    const node *data = inst ? inst->child : NULL;
    if (strcmp(t->name, "html") != 0 || !x->model || !data) {
        xfail(x,
              "not an XForm: expected <h:html> with <h:head><model><instance> and a primary instance");
        goto out;
    }
    x->itext = child(x->model, "itext");
    const char *id = attr(data, "id"), *version = attr(data, "version");
    if (!version) version = attr_ns(data, NS_ORX, "version"); /* older forms: orx:version */
    if (!id || !*id || strlen(id) > FV_XFORM_MAX_ID) {
        xfail(x, "the primary instance needs an id of 1 to %d bytes (the formID)", FV_XFORM_MAX_ID);
        goto out;
    }
    if (version && strlen(version) > FV_XFORM_MAX_ID) {
        xfail(x, "the version is over %d bytes", FV_XFORM_MAX_ID);
        goto out;
    }
    char *title = child(head, "title") ? trimmed(child(head, "title")) : strdup("");
    x->id = strdup(id), x->version = strdup(version ? version : ""), x->title = title;
    size_t rl = strlen(data->name) + 2;
    if ((x->root = malloc(rl))) snprintf(x->root, rl, "/%s", data->name);
    if (!x->id || !x->version || !x->title || !x->root) {
        xfail(x, "out of memory");
        goto out;
    }
    x->data = data;
    index_binds(x);
    if (x->body && !x->failed) walk_body(x, x->body, x->root);
    if (!x->failed) walk_instance(x, data, x->root, "", NULL);
    if (!x->failed && x->n == 0) xfail(x, "the primary instance has no fields");
    for (size_t i = 0; i < x->n && !x->failed; i++) {
        const char *bt = bind_type(x->f[i].bind);
        bool known = false;
        for (size_t k = 0; k < sizeof known_types / sizeof known_types[0]; k++)
            if (strcmp(bt, known_types[k]) == 0) known = true;
        if (!known) xfail(x, "unsupported construct: type \"%s\" of %s", bt, x->f[i].abs);
    }
out:
    if (x->failed) {
        fv_xform_free(x);
        return NULL;
    }
    return x;
}

/* ---- derivation ---- */

/* The text of a label node: its own text, or the itext it names (jr:itext('id')). Owned. */
static char *label_text(const fv_xform *x, const node *label)
{
    if (!label) return NULL;
    const char *ref = attr(label, "ref");
    if (ref && strncmp(ref, "jr:itext('", 10) == 0 && x->itext) {
        const char *s = ref + 10, *e = strchr(s, '\'');
        size_t l = e ? (size_t)(e - s) : 0;
        const node *tr = child(x->itext, "translation");
        for (const node *t = tr ? tr->child : NULL; t; t = t->next) {
            const char *tid = attr(t, "id");
            if (strcmp(t->name, "text") == 0 && tid && strlen(tid) == l && strncmp(tid, s, l) == 0) {
                for (const node *v = t->child; v; v = v->next)
                    if (strcmp(v->name, "value") == 0 && !attr(v, "form")) return trimmed(v);
                return t->child ? trimmed(t->child) : NULL;
            }
        }
        return NULL;
    }
    return trimmed(label);
}

static const char *bind_type(const node *bind)
{
    const char *t = bind ? attr(bind, "type") : NULL;
    if (!t) return "string";
    const char *colon = strchr(t, ':');
    return colon ? colon + 1 : t;
}

static bool is_true(const char *xp)
{
    return xp && (strcmp(xp, "true()") == 0 || strcmp(xp, "true") == 0);
}

/* Whether the field at abs may be not relevant: its bind, or the bind of a group or repeat
 * above it, has a relevant expression other than true(). The server does not evaluate XPath, so
 * such a field is never required here (a client leaves it empty when it is not relevant: ODK
 * Collect sends the empty element, and refusing that would keep the submission on the phone). */
static bool maybe_irrelevant(const fv_xform *x, const field *f)
{
    const char *rel = f->bind ? attr(f->bind, "relevant") : NULL;
    if (rel && !is_true(rel)) return true;
    char prefix[512];
    size_t root = strlen(x->root ? x->root : "") + 1; /* "/data" */
    for (const char *slash = strchr(f->abs + root, '/'); slash; slash = strchr(slash + 1, '/')) {
        size_t len = (size_t)(slash - f->abs);
        if (len >= sizeof prefix) break;
        memcpy(prefix, f->abs, len);
        prefix[len] = '\0';
        const node *b = find_bind(x, prefix);
        rel = b ? attr(b, "relevant") : NULL;
        if (rel && !is_true(rel)) return true;
    }
    return false;
}

/* Emits the inline items or the itemset's items of a select control as "choices". */
static void emit_choices(fv_jgen *j, const fv_xform *x, const node *ctl)
{
    fv_jgen_key(j, "choices");
    fv_jgen_array_open(j);
    for (const node *c = ctl->child; c; c = c->next) {
        if (strcmp(c->name, "item") == 0) {
            char *v = trimmed(child(c, "value"));
            if (v) fv_jgen_str(j, v);
            free(v);
        } else if (strcmp(c->name, "itemset") == 0) {
            /* nodeset="instance('id')/root/item[...]" value ref="name" */
            const char *ns = attr(c, "nodeset"), *vr = attr(child(c, "value"), "ref");
            const char *s = ns ? strstr(ns, "instance('") : NULL;
            if (!s || !vr) continue;
            s += 10;
            const char *e = strchr(s, '\'');
            if (!e) continue;
            size_t l = (size_t)(e - s);
            for (const node *in = x->model->child; in; in = in->next) {
                const char *iid = attr(in, "id");
                if (strcmp(in->name, "instance") != 0 || !iid || strlen(iid) != l || strncmp(iid, s, l))
                    continue;
                const node *root = in->child;
                for (const node *it = root ? root->child : NULL; it; it = it->next) {
                    char *v = trimmed(child(it, vr));
                    if (v) fv_jgen_str(j, v);
                    free(v);
                }
            }
        }
    }
    fv_jgen_array_close(j);
}

/* Whether a select control's choices can be listed (inline items, or an itemset from an
 * instance in the form rather than an external file). */
static bool choices_known(const fv_xform *x, const node *ctl)
{
    size_t n = 0;
    for (const node *c = ctl->child; c; c = c->next) {
        if (strcmp(c->name, "item") == 0) n++;
        if (strcmp(c->name, "itemset") == 0) {
            const char *ns = attr(c, "nodeset");
            const char *s = ns ? strstr(ns, "instance('") : NULL;
            if (!s) return false;
            s += 10;
            const char *e = strchr(s, '\'');
            for (const node *in = x->model->child; e && in; in = in->next) {
                const char *iid = attr(in, "id");
                if (strcmp(in->name, "instance") == 0 && iid && strlen(iid) == (size_t)(e - s) &&
                    strncmp(iid, s, (size_t)(e - s)) == 0 && in->child && in->child->child)
                    n++;
            }
        }
    }
    return n > 0;
}

static void emit_kept(fv_jgen *j, const char *key, const char *v)
{
    if (!v) return;
    fv_jgen_key(j, key);
    fv_jgen_str(j, v);
}

char *fv_xform_definition(const fv_xform *x)
{
    fv_jgen *j = fv_jgen_new();
    if (!j) return NULL;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "questions");
    fv_jgen_array_open(j);
    for (size_t i = 0; i < x->n; i++) {
        const field *f = &x->f[i];
        const char *xt = bind_type(f->bind);
        const char *kind = f->ctl ? f->ctl->name : NULL;
        const char *ro = f->bind ? attr(f->bind, "readonly") : NULL;
        const char *calc = f->bind ? attr(f->bind, "calculate") : NULL;
        const char *req = f->bind ? attr(f->bind, "required") : NULL;
        const char *conf = f->bind ? attr_ns(f->bind, NS_FV, "confidential") : NULL;
        const char *ft = "text";
        bool select = false;
        if (kind && (strcmp(kind, "select1") == 0 || strcmp(kind, "select") == 0) &&
            choices_known(x, f->ctl)) {
            ft = strcmp(kind, "select1") == 0 ? "select_one" : "select_multiple";
            select = true;
        } else if (strcmp(xt, "int") == 0 || strcmp(xt, "integer") == 0) ft = "integer";
        else if (strcmp(xt, "decimal") == 0) ft = "decimal";
        else if (strcmp(xt, "date") == 0) ft = "date";
        else if (strcmp(xt, "dateTime") == 0) ft = "datetime";
        else if (strcmp(xt, "geopoint") == 0) ft = "geopoint";
        else if (kind && strcmp(kind, "input") == 0 && is_true(ro) && !calc && strcmp(xt, "string") == 0)
            ft = "note";
        fv_jgen_map_open(j);
        fv_jgen_key(j, "name");
        fv_jgen_str(j, f->path);
        fv_jgen_key(j, "type");
        fv_jgen_str(j, ft);
        char *label = f->ctl ? label_text(x, child(f->ctl, "label")) : NULL;
        if (label && *label) emit_kept(j, "label", label);
        free(label);
        if (is_true(req) && strcmp(ft, "note") != 0 && !maybe_irrelevant(x, f)) {
            fv_jgen_key(j, "required");
            fv_jgen_bool(j, true);
        }
        if (is_true(conf)) { /* fv:confidential="true()" on the bind */
            fv_jgen_key(j, "confidential");
            fv_jgen_bool(j, true);
        }
        if (select) emit_choices(j, x, f->ctl);
        fv_jgen_key(j, "xform");
        fv_jgen_map_open(j);
        emit_kept(j, "path", f->abs);
        emit_kept(j, "type", xt);
        emit_kept(j, "control", kind);
        emit_kept(j, "repeat", f->repeat);
        if (f->bind) {
            emit_kept(j, "required", req);
            emit_kept(j, "relevant", attr(f->bind, "relevant"));
            emit_kept(j, "constraint", attr(f->bind, "constraint"));
            emit_kept(j, "constraint_msg", attr_ns(f->bind, NS_JR, "constraintMsg"));
            emit_kept(j, "readonly", ro);
            emit_kept(j, "calculate", calc);
            emit_kept(j, "preload", attr_ns(f->bind, NS_JR, "preload"));
        }
        if (f->ctl) {
            emit_kept(j, "appearance", attr(f->ctl, "appearance"));
            emit_kept(j, "mediatype", attr(f->ctl, "mediatype"));
        }
        fv_jgen_map_close(j);
        fv_jgen_map_close(j);
    }
    fv_jgen_array_close(j);
    /* confidential mode on the primary instance's root: fv:confidential_mode="true()" and
     * fv:confidential_gps_radius_m="N" (checked as a JSON definition's, common/fv_form.c) */
    const char *cmode = x->data ? attr_ns(x->data, NS_FV, "confidential_mode") : NULL;
    const char *radius = x->data ? attr_ns(x->data, NS_FV, "confidential_gps_radius_m") : NULL;
    if (is_true(cmode)) {
        fv_jgen_key(j, "confidential_mode");
        fv_jgen_bool(j, true);
    }
    if (radius) {
        char *end;
        long r = strtol(radius, &end, 10);
        fv_jgen_key(j, "confidential_gps_radius_m");
        if (*radius && !*end && r >= -1000000000L && r <= 1000000000L) fv_jgen_int(j, r);
        else fv_jgen_str(j, radius); /* not a number: fv_form reports it */
    }
    fv_jgen_key(j, "xform");
    fv_jgen_map_open(j);
    emit_kept(j, "form_id", x->id);
    emit_kept(j, "version", x->version);
    fv_jgen_map_close(j);
    fv_jgen_map_close(j);
    char *out = NULL;
    size_t len;
    if (fv_jgen_ok(j)) {
        const char *buf = fv_jgen_buf(j, &len);
        out = buf ? fv_memdup0(buf, len) : NULL;
    }
    fv_jgen_free(j);
    return out;
}

/* ---- generation ---- */

static const char *xform_type(const char *t)
{
    if (!t) return "string";
    if (strcmp(t, "integer") == 0) return "int";
    if (strcmp(t, "decimal") == 0) return "decimal";
    if (strcmp(t, "date") == 0) return "date";
    if (strcmp(t, "datetime") == 0) return "dateTime";
    if (strcmp(t, "geopoint") == 0) return "geopoint";
    return "string";
}

/* Opens and closes instance elements so that the open ones are the first k segments of path's
 * parent ("a/b/c": a, b). stack holds the open segments (owned copies). */
static void instance_move(sbuf *b, char **stack, size_t *depth, const char *path, size_t indent)
{
    char *segs[16];
    size_t n = 0;
    char *copy = strdup(path);
    if (!copy) {
        b->oom = true;
        return;
    }
    for (char *s = strtok(copy, "/"); s && n < 16; s = strtok(NULL, "/")) segs[n++] = s;
    size_t common = 0;
    while (common < *depth && common + 1 < n && strcmp(stack[common], segs[common]) == 0) common++;
    while (*depth > common) {
        (*depth)--;
        for (size_t i = 0; i < indent + *depth * 2; i++) sb_add(b, " ");
        sb_add(b, "</");
        sb_add(b, stack[*depth]);
        sb_add(b, ">\n");
        free(stack[*depth]);
    }
    for (; *depth + 1 < n && *depth < 16; (*depth)++) {
        for (size_t i = 0; i < indent + *depth * 2; i++) sb_add(b, " ");
        sb_add(b, "<");
        sb_add(b, segs[*depth]);
        sb_add(b, ">\n");
        stack[*depth] = strdup(segs[*depth]);
        if (!stack[*depth]) b->oom = true;
    }
    if (n) {
        for (size_t i = 0; i < indent + *depth * 2; i++) sb_add(b, " ");
        sb_add(b, "<");
        sb_add(b, segs[n - 1]);
        sb_add(b, "/>\n");
    }
    free(copy);
}

char *fv_xform_generate(yajl_val def, const char *form_id, const char *version, const char *title)
{
    return fv_xform_generate_keyed(def, form_id, version, title, NULL);
}

char *fv_xform_generate_keyed(yajl_val def, const char *form_id, const char *version, const char *title,
                              const char *public_key_b64)
{
    yajl_val qs = fv_json_get(def, "questions");
    if (!qs || !YAJL_IS_ARRAY(qs)) return NULL;
    size_t nq = qs->u.array.len;
    bool has_id = false;
    for (size_t i = 0; i < nq; i++) {
        const char *name = fv_json_get_str(qs->u.array.values[i], "name");
        if (name && strcmp(name, "meta/instanceID") == 0) has_id = true;
    }
    sbuf b = {0};
    sb_add(
        &b,
        "<?xml version=\"1.0\"?>\n"
        "<h:html xmlns=\"http://www.w3.org/2002/xforms\" xmlns:ev=\"http://www.w3.org/2001/xml-events\" "
        "xmlns:h=\"http://www.w3.org/1999/xhtml\" xmlns:jr=\"http://openrosa.org/javarosa\" "
        "xmlns:odk=\"http://www.opendatakit.org/xforms\" xmlns:orx=\"http://openrosa.org/xforms\" "
        "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:fv=\"" NS_FV
        "\">\n  <h:head>\n    <h:title>");
    sb_xml(&b, title ? title : "");
    sb_add(
        &b,
        "</h:title>\n    <model odk:xforms-version=\"1.0.0\">\n      <instance>\n        <data id=\"");
    sb_xml(&b, form_id);
    sb_add(&b, "\" version=\"");
    sb_xml(&b, version ? version : "");
    sb_add(&b, "\"");
    if (YAJL_IS_TRUE(fv_json_get(def, "confidential_mode")))
        sb_add(&b, " fv:confidential_mode=\"true()\"");
    yajl_val radius = fv_json_get(def, "confidential_gps_radius_m");
    if (YAJL_IS_INTEGER(radius)) {
        char num[64];
        snprintf(num, sizeof num, " fv:confidential_gps_radius_m=\"%lld\"", YAJL_GET_INTEGER(radius));
        sb_add(&b, num);
    }
    sb_add(&b, ">\n");
    char *stack[16];
    size_t depth = 0;
    for (size_t i = 0; i < nq; i++) {
        const char *name = fv_json_get_str(qs->u.array.values[i], "name");
        if (name) instance_move(&b, stack, &depth, name, 10);
    }
    instance_move(&b, stack, &depth, "x", 10); /* closes every open group ... */
    b.n -= strlen("          <x/>\n");         /* ... and drops the placeholder */
    if (!has_id) sb_add(&b, "          <meta>\n            <instanceID/>\n          </meta>\n");
    sb_add(&b, "        </data>\n      </instance>\n");
    for (size_t i = 0; i < nq; i++) {
        yajl_val q = qs->u.array.values[i];
        const char *name = fv_json_get_str(q, "name"), *type = fv_json_get_str(q, "type");
        yajl_val xf = fv_json_get(q, "xform");
        if (!name) continue;
        const char *xt = fv_json_get_str(xf, "type");
        sb_add(&b, "      <bind nodeset=\"/data/");
        sb_xml(&b, name);
        sb_add(&b, "\" type=\"");
        sb_xml(&b, xt ? xt : xform_type(type));
        sb_add(&b, "\"");
        if (YAJL_IS_TRUE(fv_json_get(q, "required"))) sb_add(&b, " required=\"true()\"");
        if (YAJL_IS_TRUE(fv_json_get(q, "confidential"))) sb_add(&b, " fv:confidential=\"true()\"");
        if (type && strcmp(type, "note") == 0) sb_add(&b, " readonly=\"true()\"");
        static const char *const kept[] = {"relevant", "constraint", "calculate"};
        for (size_t k = 0; k < 3; k++) {
            const char *v = fv_json_get_str(xf, kept[k]);
            if (!v) continue;
            sb_add(&b, " ");
            sb_add(&b, kept[k]);
            sb_add(&b, "=\"");
            sb_xml(&b, v);
            sb_add(&b, "\"");
        }
        sb_add(&b, "/>\n");
    }
    if (!has_id)
        sb_add(&b,
               "      <bind jr:preload=\"uid\" nodeset=\"/data/meta/instanceID\" readonly=\"true()\" "
               "type=\"string\"/>\n");
    if (public_key_b64) {
        /* ODK encryption (common/fv_odkcrypt.h): clients encrypt each submission to this key */
        sb_add(&b, "      <submission method=\"post\" base64RsaPublicKey=\"");
        sb_xml(&b, public_key_b64);
        sb_add(&b, "\"/>\n");
    }
    sb_add(&b, "    </model>\n  </h:head>\n  <h:body>\n");
    for (size_t i = 0; i < nq; i++) {
        yajl_val q = qs->u.array.values[i];
        const char *name = fv_json_get_str(q, "name"), *type = fv_json_get_str(q, "type");
        const char *label = fv_json_get_str(q, "label");
        yajl_val xf = fv_json_get(q, "xform");
        if (!name || !type) continue;
        const char *ctl = fv_json_get_str(xf, "control");
        if (!ctl && fv_json_get_str(xf, "calculate")) continue; /* hidden */
        if (!ctl && strncmp(name, "meta/", 5) == 0) continue;
        if (!ctl)
            ctl = strcmp(type, "select_one") == 0        ? "select1"
                  : strcmp(type, "select_multiple") == 0 ? "select"
                                                         : "input";
        sb_add(&b, "    <");
        sb_add(&b, ctl);
        sb_add(&b, " ref=\"/data/");
        sb_xml(&b, name);
        sb_add(&b, "\"");
        const char *mt = fv_json_get_str(xf, "mediatype");
        if (mt) {
            sb_add(&b, " mediatype=\"");
            sb_xml(&b, mt);
            sb_add(&b, "\"");
        }
        sb_add(&b, ">\n      <label>");
        sb_xml(&b, label ? label : name);
        sb_add(&b, "</label>\n");
        yajl_val ch = fv_json_get(q, "choices");
        for (size_t k = 0; ch && YAJL_IS_ARRAY(ch) && k < ch->u.array.len; k++) {
            yajl_val c = ch->u.array.values[k];
            const char *v = YAJL_IS_STRING(c) ? c->u.string : fv_json_get_str(c, "name");
            const char *l = YAJL_IS_STRING(c) ? NULL : fv_json_get_str(c, "label");
            if (!v) continue;
            sb_add(&b, "      <item>\n        <label>");
            sb_xml(&b, l ? l : v);
            sb_add(&b, "</label>\n        <value>");
            sb_xml(&b, v);
            sb_add(&b, "</value>\n      </item>\n");
        }
        sb_add(&b, "    </");
        sb_add(&b, ctl);
        sb_add(&b, ">\n");
    }
    sb_add(&b, "  </h:body>\n</h:html>\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

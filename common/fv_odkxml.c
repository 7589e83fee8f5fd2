/* Flattening a decrypted ODK submission.xml into its leaf answers (expat, hardened). */
#include "fv_odkxml.h"

#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_mem.h"

/* Parse state: the open elements' path, the current element's text, and the result. */
typedef struct parse {
    XML_Parser p;
    fv_odkxml *x;
    char *path; /* "a/b/c" of the open elements below the root (owned) */
    size_t plen, pcap;
    size_t stack[FV_ODKXML_MAX_DEPTH + 1]; /* plen before each open element */
    bool had_child[FV_ODKXML_MAX_DEPTH + 1];
    int depth;
    char *text; /* the open element's text so far (owned) */
    size_t tlen, tcap;
    bool failed;
    char *why;
    size_t whylen;
} parse;

__attribute__((format(printf, 2, 3))) static void fail(parse *ps, const char *fmt, ...)
{
    if (!ps->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->why, ps->whylen, fmt, ap);
        va_end(ap);
    }
    ps->failed = true;
    XML_StopParser(ps->p, XML_FALSE);
}

/* The name without its prefix ("h:x" -> "x"); a name ending in ':' (no local part: not
 * well-formed under XML namespaces, but expat without them takes it) stays whole, so no answer's
 * path is ever empty (found by fuzz_odkcrypt). */
static const char *local(const char *name)
{
    const char *c = strrchr(name, ':');
    return c && c[1] ? c + 1 : name;
}

static bool grow(char **b, size_t *cap, size_t need)
{
    if (need <= *cap) return true;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    char *q = realloc(*b, n);
    if (!q) return false;
    *b = q, *cap = n;
    return true;
}

static void XMLCALL on_start(void *ud, const char *name, const char **atts)
{
    parse *ps = ud;
    if (ps->failed) return;
    if (ps->depth >= FV_ODKXML_MAX_DEPTH) {
        fail(ps, "elements nest deeper than %d", FV_ODKXML_MAX_DEPTH);
        return;
    }
    if (ps->depth == 0) {
        for (size_t i = 0; atts[i]; i += 2) {
            char **dst = strcmp(atts[i], "id") == 0        ? &ps->x->form_id
                         : strcmp(atts[i], "version") == 0 ? &ps->x->version
                                                           : NULL;
            if (dst) {
                free(*dst);
                if (!(*dst = strdup(atts[i + 1]))) fail(ps, "out of memory");
            }
        }
    } else {
        ps->had_child[ps->depth - 1] = true;
    }
    ps->stack[ps->depth] = ps->plen;
    ps->had_child[ps->depth] = false;
    if (ps->depth > 0) {
        const char *l = local(name);
        size_t ll = strlen(l), sep = ps->plen ? 1 : 0;
        if (!grow(&ps->path, &ps->pcap, ps->plen + sep + ll + 1)) {
            fail(ps, "out of memory");
            return;
        }
        if (sep) ps->path[ps->plen++] = '/';
        memcpy(ps->path + ps->plen, l, ll + 1);
        ps->plen += ll;
    }
    ps->depth++;
    ps->tlen = 0;
}

static void XMLCALL on_end(void *ud, const char *name)
{
    parse *ps = ud;
    if (ps->failed) return;
    ps->depth--;
    if (ps->depth > 0 && !ps->had_child[ps->depth]) {
        fv_odkxml *x = ps->x;
        if (x->n >= FV_ODKXML_MAX_FIELDS) {
            fail(ps, "more than %d answers", FV_ODKXML_MAX_FIELDS);
            return;
        }
        if (x->n == x->cap) {
            size_t nc = x->cap ? x->cap * 2 : 32;
            fv_odkxml_field *nf = realloc(x->f, nc * sizeof *nf);
            if (!nf) {
                fail(ps, "out of memory");
                return;
            }
            x->f = nf, x->cap = nc;
        }
        char *path = fv_memdup0(ps->path, ps->plen),
             *value = fv_memdup0(ps->text ? ps->text : "", ps->tlen);
        if (!path || !value) {
            free(path), free(value);
            fail(ps, "out of memory");
            return;
        }
        x->f[x->n].path = path, x->f[x->n].value = value, x->n++;
        if (strcmp(path, "meta/instanceID") == 0) {
            free(x->instance_id);
            if (!(x->instance_id = strdup(value))) fail(ps, "out of memory");
        }
    }
    ps->plen = ps->stack[ps->depth];
    ps->tlen = 0;
}

static void XMLCALL on_text(void *ud, const char *s, int len)
{
    parse *ps = ud;
    if (ps->failed || ps->depth == 0) return;
    if (ps->tlen + (size_t)len > FV_ODKXML_MAX_TEXT) {
        fail(ps, "an answer is over %u bytes", FV_ODKXML_MAX_TEXT);
        return;
    }
    if (!grow(&ps->text, &ps->tcap, ps->tlen + (size_t)len + 1)) {
        fail(ps, "out of memory");
        return;
    }
    memcpy(ps->text + ps->tlen, s, (size_t)len);
    ps->tlen += (size_t)len;
}

static void XMLCALL on_doctype(void *ud, const char *n, const char *sys, const char *pub, int internal)
{
    fail(ud, "XML: a DOCTYPE is refused");
}

static void XMLCALL on_entity(void *ud, const char *n, int param, const char *v, int vl,
                              const char *base, const char *sys, const char *pub, const char *notation)
{
    fail(ud, "XML: entity declarations are refused");
}

bool fv_odkxml_parse(const char *xml, size_t len, fv_odkxml *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    if (len > FV_ODKXML_MAX_BYTES) {
        snprintf(why, whylen, "submission.xml is over %u bytes", FV_ODKXML_MAX_BYTES);
        return false;
    }
    parse ps = {.x = out, .why = why, .whylen = whylen};
    ps.p = XML_ParserCreate("UTF-8");
    if (!ps.p) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    XML_SetUserData(ps.p, &ps);
    XML_SetElementHandler(ps.p, on_start, on_end);
    XML_SetCharacterDataHandler(ps.p, on_text);
    XML_SetStartDoctypeDeclHandler(ps.p, on_doctype);
    XML_SetEntityDeclHandler(ps.p, on_entity);
    XML_SetParamEntityParsing(ps.p, XML_PARAM_ENTITY_PARSING_NEVER);
    if (XML_Parse(ps.p, xml, (int)len, XML_TRUE) != XML_STATUS_OK && !ps.failed) {
        snprintf(why, whylen, "XML: %s at line %lu", XML_ErrorString(XML_GetErrorCode(ps.p)),
                 (unsigned long)XML_GetCurrentLineNumber(ps.p));
        ps.failed = true;
    }
    XML_ParserFree(ps.p);
    free(ps.path), free(ps.text);
    if (!ps.failed && (!out->form_id && !(out->form_id = strdup("")))) ps.failed = true;
    if (!ps.failed && (!out->version && !(out->version = strdup("")))) ps.failed = true;
    if (!ps.failed && (!out->instance_id && !(out->instance_id = strdup("")))) ps.failed = true;
    if (ps.failed) {
        fv_odkxml_free(out);
        return false;
    }
    return true;
}

void fv_odkxml_free(fv_odkxml *x)
{
    if (!x) return;
    for (size_t i = 0; i < x->n; i++) free(x->f[i].path), free(x->f[i].value);
    free(x->f), free(x->form_id), free(x->version), free(x->instance_id);
    memset(x, 0, sizeof *x);
}

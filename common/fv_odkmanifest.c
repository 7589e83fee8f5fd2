/* The cleartext manifest of an encrypted ODK submission (fv_odkmanifest.h). */
#include "fv_odkmanifest.h"

#define XML_DTD 1 /* Debian's libexpat1 is built with it: the amplification protection API */
#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 16

typedef enum { E_OTHER, E_KEY, E_SIG, E_IID, E_XMLFILE, E_FILE } elem;

typedef struct mparser {
    XML_Parser p;
    fv_odkmanifest *out;
    bool failed;
    char *why;
    size_t whylen;
    int depth;
    char names[MAX_DEPTH + 1][32]; /* local names on the stack (cut to 31 bytes) */
    elem cur;                      /* the element whose text is being read */
    char text[FV_ODKMANIFEST_MAX_TEXT + 1];
    size_t tlen;
} mparser;

__attribute__((format(printf, 2, 3))) static void mfail(mparser *b, const char *fmt, ...)
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

static void on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    mparser *b = ud;
    if (b->failed) return;
    /* deeper elements are no manifest's: passed over (expat is linear, nothing is kept) */
    const char *ln = local_name(name);
    if (b->depth <= MAX_DEPTH) snprintf(b->names[b->depth], sizeof b->names[0], "%s", ln);
    b->cur = E_OTHER;
    b->tlen = 0;
    if (b->depth == 0) {
        for (int i = 0; atts[i]; i += 2) {
            const char *an = local_name(atts[i]), *v = atts[i + 1];
            char *dst = strcmp(an, "id") == 0        ? b->out->form_id
                        : strcmp(an, "version") == 0 ? b->out->version
                                                     : NULL;
            if (dst) {
                if (strlen(v) > FV_ODKCRYPT_MAX_ID) {
                    mfail(b, "XML: the root's %s is longer than 255 bytes", an);
                    return;
                }
                snprintf(dst, FV_ODKCRYPT_MAX_ID + 1, "%s", v);
            } else if (strcmp(an, "encrypted") == 0) {
                b->out->encrypted = strcmp(v, "yes") == 0 || strcmp(v, "true") == 0;
            }
        }
    } else if (b->depth == 1) {
        if (strcmp(ln, "base64EncryptedKey") == 0) b->cur = E_KEY;
        else if (strcmp(ln, "base64EncryptedElementSignature") == 0) b->cur = E_SIG;
        else if (strcmp(ln, "encryptedXmlFile") == 0) b->cur = E_XMLFILE;
    } else if (b->depth == 2) {
        if (strcmp(b->names[1], "meta") == 0 && strcmp(ln, "instanceID") == 0) b->cur = E_IID;
        else if (strcmp(b->names[1], "media") == 0 && strcmp(ln, "file") == 0) b->cur = E_FILE;
    }
    b->depth++;
}

static void on_text(void *ud, const XML_Char *s, int len)
{
    mparser *b = ud;
    if (b->failed || b->cur == E_OTHER) return;
    if (b->tlen + (size_t)len > FV_ODKMANIFEST_MAX_TEXT) {
        mfail(b, "XML: an element's text is longer than %d bytes", FV_ODKMANIFEST_MAX_TEXT);
        return;
    }
    memcpy(b->text + b->tlen, s, (size_t)len);
    b->tlen += (size_t)len;
    b->text[b->tlen] = '\0';
}

/* the text without surrounding white space */
static char *trimmed(mparser *b)
{
    b->text[b->tlen] = '\0';
    char *s = b->text;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static void set_name(mparser *b, char *dst, size_t max, const char *v, const char *what)
{
    if (dst[0]) {
        mfail(b, "XML: the manifest gives %s twice", what);
        return;
    }
    if (!v[0] || strlen(v) > max) {
        mfail(b, "XML: the manifest's %s is empty or longer than %zu bytes", what, max);
        return;
    }
    memcpy(dst, v, strlen(v) + 1);
}

static void set_b64(mparser *b, char **dst, const char *v, const char *what)
{
    if (*dst) {
        mfail(b, "XML: the manifest gives %s twice", what);
        return;
    }
    if (!(*dst = strdup(v))) mfail(b, "out of memory%s", "");
}

static void on_end(void *ud, const XML_Char *name)
{
    (void)name;
    mparser *b = ud;
    if (b->failed) return;
    b->depth--;
    elem e = b->cur;
    b->cur = E_OTHER;
    if (e == E_OTHER) return;
    char *v = trimmed(b);
    fv_odkmanifest *m = b->out;
    switch (e) {
    case E_KEY: set_b64(b, &m->b64_key, v, "base64EncryptedKey"); break;
    case E_SIG: set_b64(b, &m->b64_sig, v, "base64EncryptedElementSignature"); break;
    case E_IID: set_name(b, m->instance_id, FV_ODKCRYPT_MAX_ID, v, "meta/instanceID"); break;
    case E_XMLFILE: set_name(b, m->xml_file, FV_ODKCRYPT_MAX_NAME, v, "encryptedXmlFile"); break;
    case E_FILE: {
        if (m->nmedia >= FV_ODKCRYPT_MAX_MEDIA) {
            mfail(b, "XML: more than %d media files", FV_ODKCRYPT_MAX_MEDIA);
            return;
        }
        if (!v[0] || strlen(v) > FV_ODKCRYPT_MAX_NAME) {
            mfail(b, "XML: a media file's name is empty or longer than %d bytes", FV_ODKCRYPT_MAX_NAME);
            return;
        }
        void *n = realloc(m->media, (m->nmedia + 1) * sizeof *m->media);
        if (!n) {
            mfail(b, "out of memory%s", "");
            return;
        }
        m->media = n;
        memcpy(m->media[m->nmedia++], v, strlen(v) + 1);
        break;
    }
    default: break;
    }
    b->tlen = 0;
}

static void on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                       int has_internal)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal;
    mfail(ud, "XML: a DOCTYPE is not allowed%s", "");
}

static void on_entity(void *ud, const XML_Char *name, int pe, const XML_Char *v, int vlen,
                      const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
                      const XML_Char *notation)
{
    (void)name, (void)pe, (void)v, (void)vlen, (void)base, (void)sysid, (void)pubid, (void)notation;
    mfail(ud, "XML: an entity declaration is not allowed%s", "");
}

static int on_external(XML_Parser p, const XML_Char *context, const XML_Char *base,
                       const XML_Char *sysid, const XML_Char *pubid)
{
    (void)p, (void)context, (void)base, (void)sysid, (void)pubid;
    return XML_STATUS_ERROR; /* never fetched */
}

int fv_odkmanifest_parse(const char *xml, size_t len, fv_odkmanifest *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    if (len > (size_t)0x7fffffff) {
        snprintf(why, whylen, "XML: the document is too large");
        return -1;
    }
    mparser *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    b->out = out, b->why = why, b->whylen = whylen;
    b->p = XML_ParserCreate("UTF-8");
    if (!b->p) {
        free(b);
        snprintf(why, whylen, "out of memory");
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
        snprintf(why, whylen, "XML: %s at line %lu", XML_ErrorString(XML_GetErrorCode(b->p)),
                 (unsigned long)XML_GetCurrentLineNumber(b->p));
    }
    XML_ParserFree(b->p);
    int rc = b->failed ? -1 : 0;
    free(b);
    return rc;
}

void fv_odkmanifest_clear(fv_odkmanifest *m)
{
    free(m->b64_key);
    free(m->b64_sig);
    free(m->media);
    m->b64_key = m->b64_sig = NULL;
    m->media = NULL;
    m->nmedia = 0;
}

/* The names of a response's attachments: one rule (fv_attachment.h). */
#include "fv_attachment.h"

#include <stdbool.h>
#include <string.h>

/* The length of the strict UTF-8 sequence at p (RFC 3629: no overlong forms, surrogates or code
 * points above U+10FFFF) and its code point in *cp, or 0 when p holds none. */
static int utf8_seq(const unsigned char *p, unsigned int *cp)
{
    unsigned char c = p[0];
    int n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 0 || c == 0xc0 || c == 0xc1 || c > 0xf4) return 0;
    unsigned int v = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0; /* the NUL that ends the string stops here too */
        v = v << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10ffff)) ||
        (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

const char *fv_attachment_name_problem(const char *name)
{
    size_t n = strlen(name);
    if (n == 0) return "an attachment's name is empty";
    if (n > FV_ATTACHMENT_NAME_MAX) return "an attachment's name is longer than 255 bytes";
    if (strcmp(name, ".") == 0) return "an attachment's name is \".\"";
    /* ".." alone only: a name is never a path (no "/" or "\\" below), so "x..jpg" is a name */
    if (strcmp(name, "..") == 0) return "an attachment's name is \"..\"";
    for (const unsigned char *p = (const unsigned char *)name; *p;) {
        unsigned int cp = 0;
        int len = utf8_seq(p, &cp);
        if (len == 0) return "an attachment's name is not UTF-8";
        if (cp == '/' || cp == '\\') return "an attachment's name holds / or \\";
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return "an attachment's name holds a control character";
        p += len;
    }
    return NULL;
}

_Static_assert(FV_ATTACHMENT_NAME_MAX == 255, "fv_attachment_name_problem's reason names 255 bytes");

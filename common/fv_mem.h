/* Small memory helpers shared by every program. */
#ifndef FV_MEM_H
#define FV_MEM_H

#include <stdlib.h>
#include <string.h>

/* A NUL-terminated copy of the n bytes at p (caller frees), or NULL when out of memory. Unlike
 * strndup it never reads past p[n - 1]: for buffers that are not C strings (an XML parser's text
 * buffer, a field inside an opened sealed payload), where strndup's search for the NUL would
 * read beyond them (the sanitizer's strict_string_checks reports it). */
static inline char *fv_memdup0(const void *p, size_t n)
{
    char *out = malloc(n + 1);
    if (!out) return NULL;
    if (n) memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

#endif

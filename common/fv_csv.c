/* CSV cells with formula neutralisation (fv_csv.h). */
#include "fv_csv.h"

#include <stdlib.h>
#include <string.h>

void fv_csv_buf_free(fv_csv_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void fv_csv_buf_reset(fv_csv_buf *b)
{
    b->len = 0;
}

static bool reserve(fv_csv_buf *b, size_t more)
{
    if (more > ((size_t)-1) / 2 - b->len) return false;
    if (b->len + more <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

/* A plain decimal number: -?digits(.digits)? */
static bool plain_number(const char *v, size_t len)
{
    size_t i = 0;
    if (i < len && v[i] == '-') i++;
    size_t d = i;
    while (i < len && v[i] >= '0' && v[i] <= '9') i++;
    if (i == d) return false;
    if (i < len && v[i] == '.') {
        size_t f = ++i;
        while (i < len && v[i] >= '0' && v[i] <= '9') i++;
        if (i == f) return false;
    }
    return i == len;
}

bool fv_csv_needs_neutralising(const char *v, size_t len)
{
    if (!v || len == 0) return false;
    switch (v[0]) {
    case '=':
    case '+':
    case '@':
    case '\t':
    case '\r': return true;
    case '-': return !plain_number(v, len);
    default: return false;
    }
}

bool fv_csv_cell(fv_csv_buf *b, const char *v, size_t len, bool first)
{
    if (!v) len = 0;
    size_t quotes = 0;
    for (size_t i = 0; i < len; i++)
        if (v[i] == '"') quotes++;
    /* comma, apostrophe, two quotes around, the doubled quotes */
    if (len > ((size_t)-1) / 4 || !reserve(b, len + quotes + 4)) return false;
    if (!first) b->p[b->len++] = ',';
    b->p[b->len++] = '"';
    if (fv_csv_needs_neutralising(v, len)) b->p[b->len++] = '\'';
    for (size_t i = 0; i < len; i++) {
        if (v[i] == '"') b->p[b->len++] = '"';
        b->p[b->len++] = v[i];
    }
    b->p[b->len++] = '"';
    return true;
}

bool fv_csv_end_row(fv_csv_buf *b)
{
    if (!reserve(b, 2)) return false;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
    return true;
}

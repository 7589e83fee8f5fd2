/* Paging of lists: the limit parser, the cursor codec of each kind, and reading them (fe_page.h). */
#include "fe_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_reply.h"
#include "fv_check.h"

int fe_page_limit(const char *text)
{
    if (!text) return FE_PAGE_DEFAULT;
    if (text[0] < '0' || text[0] > '9') return -1; /* strtol would take " 5" and "+5" */
    char *end;
    long v = strtol(text, &end, 10);
    return end == text || *end || v < 1 || v > FE_PAGE_MAX ? -1 : (int)v;
}

/* A positive decimal integer of at most 18 digits, no leading zero (a bigint id). */
static bool int_key_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 18 || s[0] == '0') return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Splits key "<date-time>|<UUID>" into pg's after fields; false unless both parts are valid. */
static bool ts_key_split(const char *key, fe_page *pg)
{
    const char *bar = strchr(key, '|');
    if (!bar || !fv_id_valid(bar + 1)) return false;
    size_t n = (size_t)(bar - key);
    if (n >= sizeof pg->after) return false;
    memcpy(pg->after, key, n);
    pg->after[n] = '\0';
    if (!fv_check_datetime(pg->after)) return false;
    memcpy(pg->after_id, bar + 1, FV_UUID_STRLEN + 1);
    return true;
}

static void clear_after(fe_page *pg)
{
    pg->has_after = false;
    pg->after[0] = '\0';
    pg->after_id[0] = '\0';
}

bool fe_page_decode(fe_page_kind kind, const char *cursor, fe_page *pg)
{
    clear_after(pg);
    if (!cursor) return false;
    size_t n = strlen(cursor);
    bool ok = false;
    switch (kind) {
    case FE_PAGE_UUID:
        ok = fv_id_valid(cursor);
        if (ok) memcpy(pg->after, cursor, FV_UUID_STRLEN + 1);
        break;
    case FE_PAGE_INT:
        ok = int_key_ok(cursor);
        if (ok) memcpy(pg->after, cursor, n + 1);
        break;
    case FE_PAGE_TS_UUID: {
        char key[FE_PAGE_KEY_MAX];
        if (n == 0 || n % 2 || n / 2 >= sizeof key) break;
        ok = true;
        for (size_t i = 0; ok && i < n / 2; i++) {
            int hi = hex_digit(cursor[2 * i]), lo = hex_digit(cursor[2 * i + 1]);
            int v = hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
            ok = v >= 0x20 && v < 0x7f; /* printable ASCII: no NUL, no control bytes */
            key[i] = (char)v;
        }
        if (!ok) break;
        key[n / 2] = '\0';
        ok = ts_key_split(key, pg);
        break;
    }
    }
    if (!ok) {
        clear_after(pg);
        return false;
    }
    pg->has_after = true;
    return true;
}

bool fe_page_encode(fe_page_kind kind, const char *key, char *out, size_t outlen)
{
    if (outlen) out[0] = '\0';
    if (!key) return false;
    size_t n = strlen(key);
    fe_page check;
    switch (kind) {
    case FE_PAGE_UUID:
    case FE_PAGE_INT:
        if (kind == FE_PAGE_UUID ? !fv_id_valid(key) : !int_key_ok(key)) return false;
        if (n >= outlen) return false;
        memcpy(out, key, n + 1);
        return true;
    case FE_PAGE_TS_UUID:
        if (n >= FE_PAGE_KEY_MAX || 2 * n >= outlen || !ts_key_split(key, &check)) return false;
        for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", (unsigned char)key[i]);
        out[2 * n] = '\0';
        return true;
    }
    return false;
}

size_t fe_page_parse(fe_page *pg, fe_page_kind kind, const char *after, const char *limit,
                     const char **bad, const char **why)
{
    size_t nbad = 0;
    pg->kind = kind;
    clear_after(pg);
    if (after && !fe_page_decode(kind, after, pg))
        bad[nbad] = "after", why[nbad++] = FE_PAGE_CURSOR_REASON;
    pg->limit = fe_page_limit(limit);
    if (pg->limit < 0) bad[nbad] = "limit", why[nbad++] = FE_PAGE_LIMIT_REASON;
    snprintf(pg->limit_text, sizeof pg->limit_text, "%d", pg->limit);
    return nbad;
}

bool fe_page_read(fe_req *r, fe_page_kind kind, fe_page *pg)
{
    char *a = fe_query_param(r, "after"), *l = fe_query_param(r, "limit");
    const char *bad[2], *why[2];
    size_t nbad = fe_page_parse(pg, kind, a, l, bad, why);
    free(a);
    free(l);
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", nbad, bad, why);
        return false;
    }
    return true;
}

const char *fe_page_after(const fe_page *pg)
{
    return pg->has_after ? pg->after : NULL;
}

const char *fe_page_after_id(const fe_page *pg)
{
    return pg->has_after && pg->after_id[0] ? pg->after_id : NULL;
}

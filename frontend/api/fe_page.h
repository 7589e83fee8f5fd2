/* Paging of lists: `?after=<cursor>&limit=`, the kinds of cursor and their codec. The codec and
 * the limit parser are pure (no request) so they can be tested alone; fe_page_read reads them
 * from a request. The statements of lists are FE_VERDICT_PAGE_SQL (fe_verdict.h). */
#ifndef FE_PAGE_H
#define FE_PAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "fv_id.h"

struct fe_req;

/* Lists take ?limit= from 1 to FE_PAGE_MAX, FE_PAGE_DEFAULT when absent. */
#define FE_PAGE_DEFAULT 50
#define FE_PAGE_MAX 500
#define FE_PAGE_LIMIT_REASON "must be an integer from 1 to 500"
#define FE_PAGE_CURSOR_REASON "not a cursor this server returned"

/* What a cursor holds: the sort key of the last item of the page before. */
typedef enum fe_page_kind {
    FE_PAGE_UUID,    /* the last id (a UUID), as it is */
    FE_PAGE_INT,     /* the last id, a positive integer (audit entries), as it is */
    FE_PAGE_TS_UUID, /* the last (created_at, id): hex of "<RFC 3339 date-time>|<UUID>" */
} fe_page_kind;

/* The longest sort key ("<date-time>|<UUID>") and the longest cursor a server returns. */
#define FE_PAGE_KEY_MAX 80
#define FE_PAGE_CURSOR_MAX (2 * FE_PAGE_KEY_MAX)

/* One page asked for. after/after_id are the statement's parameters (fe_page_after*). */
typedef struct fe_page {
    fe_page_kind kind;
    int limit;                         /* 1..FE_PAGE_MAX */
    char limit_text[12];               /* limit as text, for a statement parameter */
    bool has_after;                    /* a cursor was given */
    char after[FE_PAGE_KEY_MAX];       /* the UUID, the integer, or (TS_UUID) the date-time */
    char after_id[FV_UUID_STRLEN + 1]; /* TS_UUID: the UUID; else "" */
} fe_page;

/* The page size asked for by the ?limit= value text (NULL: absent), or -1 when invalid. */
int fe_page_limit(const char *text);

/* Decodes cursor (a NUL-terminated string) of kind into pg's after fields and sets has_after;
 * false (pg's after fields cleared) when it is not a cursor this server returns. */
bool fe_page_decode(fe_page_kind kind, const char *cursor, fe_page *pg);

/* Encodes key, the sort key of a page's last item as the statement gives it (the id, or
 * "<date-time>|<UUID>" for TS_UUID), into out (outlen bytes, at least FE_PAGE_CURSOR_MAX + 1).
 * False when key does not fit or is not of that kind. */
bool fe_page_encode(fe_page_kind kind, const char *key, char *out, size_t outlen);

/* Fills pg from the texts of ?after= and ?limit= (each NULL when absent). Appends the name and
 * reason of each problem to bad/why (room for 2) and returns how many it appended. */
size_t fe_page_parse(fe_page *pg, fe_page_kind kind, const char *after, const char *limit,
                     const char **bad, const char **why);

/* fe_page_parse of r's query; answers 422 and returns false when invalid (r is then gone). */
bool fe_page_read(struct fe_req *r, fe_page_kind kind, fe_page *pg);

/* The cursor's parameters for a statement: NULL when no cursor was given. Borrowed from pg. */
const char *fe_page_after(const fe_page *pg);
const char *fe_page_after_id(const fe_page *pg);

#endif

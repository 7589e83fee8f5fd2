/* Fuzz target: the pager (frontend/api/fe_page.c): the query string parsed as fe_page_read gets
 * it (libevent's evhttp_parse_query_str, as fe_query_param), its after= and limit= through
 * fe_page_parse for each kind of cursor, and the raw input decoded as a cursor of each kind. A
 * cursor that decodes encodes again (fe_page_encode) into one that decodes to the same key.
 *
 * Input: a query string ("after=...&limit=..."), or a cursor. */
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "fe_page.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

static const fe_page_kind kinds[] = {FE_PAGE_UUID, FE_PAGE_INT, FE_PAGE_TS_UUID};

static void decode_all(const char *cursor)
{
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        fe_page pg;
        memset(&pg, 0, sizeof pg);
        if (!fe_page_decode(kinds[k], cursor, &pg)) {
            if (pg.has_after || pg.after[0] || pg.after_id[0]) abort(); /* cleared on refusal */
            continue;
        }
        if (!pg.has_after || !memchr(pg.after, '\0', sizeof pg.after)) abort();
        char key[FE_PAGE_KEY_MAX + FV_UUID_STRLEN + 2];
        if (kinds[k] == FE_PAGE_TS_UUID) snprintf(key, sizeof key, "%s|%s", pg.after, pg.after_id);
        else snprintf(key, sizeof key, "%s", pg.after);
        char out[FE_PAGE_CURSOR_MAX + 1];
        if (!fe_page_encode(kinds[k], key, out, sizeof out)) abort();
        fe_page back;
        if (!fe_page_decode(kinds[k], out, &back) || strcmp(back.after, pg.after) != 0 ||
            strcmp(back.after_id, pg.after_id) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size, false);
    if (!text) return -1;
    decode_all(text);
    (void)fe_page_limit(text);
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (evhttp_parse_query_str(text, &params) == 0) {
        const char *after = evhttp_find_header(&params, "after");
        const char *limit = evhttp_find_header(&params, "limit");
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            fe_page pg;
            const char *bad[2], *why[2];
            size_t nbad = fe_page_parse(&pg, kinds[k], after, limit, bad, why);
            if (nbad > 2 || (nbad == 0 && (pg.limit < 1 || pg.limit > FE_PAGE_MAX))) abort();
            if (nbad == 0 && (after != NULL) != (fe_page_after(&pg) != NULL)) abort();
        }
        if (after) decode_all(after);
    }
    evhttp_clear_headers(&params);
    free(text);
    return 0;
}

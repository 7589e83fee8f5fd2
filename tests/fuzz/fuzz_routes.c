/* Fuzz target: the route matcher (frontend/http/fe_routes.c fe_route_match) over the whole route
 * table, on the path as the dispatcher gets it (frontend/http/fe_dispatch.c: the request target
 * parsed by libevent, evhttp_uri_get_path) and on the raw input as a path. A parameter a route
 * captures is non-empty, shorter than FE_PARAM_MAX and holds no '/'.
 *
 * Input: a request target, e.g. "/v1/orgs/x/members/y?limit=5". */
#include <event2/http.h>

#include "fe_http.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

static void match_all(const char *path)
{
    for (int i = 0; i < fe_nroutes; i++) {
        char param[FE_MAX_PARAMS][FE_PARAM_MAX];
        memset(param, 0x5a, sizeof param); /* no NUL: an unterminated parameter shows */
        if (!fe_route_match(fe_routes[i].pattern, path, param)) continue;
        int want = 0;
        for (const char *p = fe_routes[i].pattern; *p; p++) want += p[0] == ':' && p[-1] == '/';
        for (int k = 0; k < want; k++) {
            size_t n = strnlen(param[k], FE_PARAM_MAX);
            if (n == 0 || n >= FE_PARAM_MAX || strchr(param[k], '/')) abort();
        }
        (void)fe_route_name(i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *target = fuzz_cstr(data, size, false);
    if (!target) return -1; /* a request line cannot carry a NUL */
    match_all(target);
    /* What the dispatcher does: libevent's parse of the request target, then its path. */
    struct evhttp_uri *uri = evhttp_uri_parse_with_flags(target, 0);
    if (uri) {
        const char *path = evhttp_uri_get_path(uri);
        if (path && path[0] == '/') match_all(path);
        evhttp_uri_free(uri);
    }
    free(target);
    return 0;
}

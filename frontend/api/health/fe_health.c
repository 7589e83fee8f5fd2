/* Health endpoints: liveness, readiness (for the balancer and monitoring) and metrics. */
#include <stdlib.h>

#include "fe_handlers.h"
#include "fe_metrics.h"
#include "fe_metrics_http.h"
#include "fe_queue.h"
#include <string.h>

void fe_health_healthz(fe_req *r)
{
    static const char body[] = "{\"status\":\"ok\"}";
    fe_reply_text(r, 200, "application/json", body, sizeof body - 1);
}

/* ready: everything up. degraded: still accepting submissions, but PostgreSQL is down (they
 * wait in Redis) or Redis is (they go to the local spool), or a spool backlog is being
 * replayed. 503 only when submissions cannot be accepted at all. */
void fe_health_readyz(fe_req *r)
{
    bool db = fe_pg_up();
    const char *queue = fe_queue_state();
    uint64_t spooled = fe_metrics_spool_pending_total();
    bool accepting = strcmp(queue, "down") != 0;
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "status");
    fv_jgen_str(j, !accepting                               ? "unavailable"
                   : db && !strcmp(queue, "up") && !spooled ? "ready"
                                                            : "degraded");
    fv_jgen_key(j, "db");
    fv_jgen_str(j, db ? "up" : "down");
    fv_jgen_key(j, "queue");
    fv_jgen_str(j, queue);
    fv_jgen_key(j, "spool_pending");
    fv_jgen_int(j, (long long)spooled);
    fv_jgen_map_close(j);
    if (!accepting) evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Retry-After", "5");
    fe_reply_gen_send(r, accepting ? 200 : 503, j);
}

void fe_health_metrics(fe_req *r)
{
    /* On the API port only with the token of metrics_token_file: without one configured the
     * route does not exist here (metrics_listen serves them). */
    if (!fe_metrics_token.set) {
        fe_reply_error(r, 404, "not_found", "no such resource");
        return;
    }
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Authorization");
    if (!fv_bearer_matches(&fe_metrics_token, h)) {
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), "WWW-Authenticate",
                          "Bearer realm=\"fieldvault-metrics\"");
        fe_reply_error(r, 401, "unauthenticated", "send Authorization: Bearer <metrics token>");
        return;
    }
    size_t len = 0;
    char *text = fe_metrics_render(fe_route_name, fe_nroutes + 1, &len);
    if (!text) {
        fe_reply_oom(r);
        return;
    }
    fe_reply_text(r, 200, "text/plain; version=0.0.4", text, len);
    free(text);
}

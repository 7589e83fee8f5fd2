/* The route table: every endpoint of the front end, in one place. */
#include "fe_handlers.h"

#define GET EVHTTP_REQ_GET
#define POST EVHTTP_REQ_POST

const fe_route fe_routes[] = {
    /* method, pattern, handler, auth, body, metrics name */
    {GET, "/healthz", fe_health_healthz, false, false, "healthz"},
    {GET, "/readyz", fe_health_readyz, false, false, "readyz"},
    {GET, "/metrics", fe_health_metrics, false, false, "metrics"},
    {GET, "/v1/me", fe_me_get, true, false, "me"},
    {POST, "/v1/orgs", fe_orgs_create, true, true, "orgs_create"},
    {POST, "/v1/surveys", fe_surveys_create, true, true, "surveys_create"},
    {GET, "/v1/surveys/:id", fe_surveys_get, true, false, "surveys_get"},
    {POST, "/v1/surveys/:id/deployments", fe_deployments_create, true, true, "deployments_create"},
    {GET, "/v1/surveys/:id/responses", fe_responses_list, true, false, "responses_list"},
    {POST, "/v1/deployments/:id/responses", fe_responses_submit, true, true, "responses_submit"},
    {GET, "/v1/responses/:id", fe_responses_get, true, false, "responses_get"},
};

const int fe_nroutes = (int)(sizeof fe_routes / sizeof fe_routes[0]);

/* Metrics labels: one per route, then "unmatched" for requests no route took. */
static const char *const route_names[] = {
    "healthz", "readyz", "metrics", "me", "orgs_create", "surveys_create", "surveys_get",
    "deployments_create", "responses_list", "responses_submit", "responses_get", "unmatched",
};
const char *const *fe_route_names = route_names;

_Static_assert(sizeof route_names / sizeof route_names[0] == sizeof fe_routes / sizeof fe_routes[0] + 1,
               "every route needs a metrics label, plus one for unmatched requests");

/* Session tokens: verification of a bearer "fvs_..." token. Placeholder until sessions land:
 * every session token is refused. */
#include <event2/http.h>

#include "fe_auth.h"

void fe_session_authenticate(fe_req *r, const char *token, fe_handler next)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "WWW-Authenticate",
                      "Bearer realm=\"fieldvault\"");
    fe_reply_error(r, 401, "invalid_token", "the session token is not valid");
}

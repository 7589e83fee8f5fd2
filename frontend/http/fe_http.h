/* The request: what a handler gets and the router that dispatches to it (replies: fe_reply.h).
 *
 * Lifecycle of a request (fe_req.phase):
 *   FE_REQ_ROUTED  matched to a route; the evhttp request is borrowed from libevent
 *   FE_REQ_AUTH    waiting for the API key lookup (fe_auth)
 *   FE_REQ_HANDLER the handler owns it, possibly across PostgreSQL or Redis callbacks
 *   (answered)     fe_reply_* sent the reply, logged it and freed the fe_req: no pointer to it
 *                  may be used afterwards. Every request is answered exactly once. */
#ifndef FE_HTTP_H
#define FE_HTTP_H

#include <event2/http.h>
#include <stdbool.h>
#include <time.h>

#include "fe_pg.h"
#include "fv_attachment.h"
#include "fv_id.h"
#include "fv_json.h"

/* How the caller proved who they are. FE_CRED_BASIC and FE_CRED_APP_USER exist only on the
 * OpenRosa routes (frontend/auth/fe_openrosa_auth.h). */
typedef enum {
    FE_CRED_API_KEY,
    FE_CRED_SESSION,
    FE_CRED_BASIC,   /* HTTP Basic: email and password */
    FE_CRED_APP_USER /* an app-user token in the path; cred_id is its deployment's id */
} fe_cred_kind;

typedef struct fe_user {
    char id[FV_UUID_STRLEN + 1];
    fe_cred_kind cred;                /* API key or session token */
    char cred_id[FV_UUID_STRLEN + 1]; /* the API key's id or the session's id ("" if unknown) */
    bool mfa;                         /* the session was opened with a TOTP code */
    char *email;                      /* owned */
    char *name;                       /* owned */
    bool is_admin;
} fe_user;

typedef struct fe_req fe_req;
typedef void (*fe_handler)(fe_req *r);

typedef enum { FE_AUTH_NONE, FE_AUTH_REQUIRED, FE_AUTH_OPTIONAL, FE_AUTH_OPENROSA } fe_auth_mode;

typedef struct fe_route {
    enum evhttp_cmd_type method;
    const char *pattern; /* "/v1/surveys/:id/responses": ':' segments are parameters */
    fe_handler handler;
    fe_auth_mode auth; /* NONE: anonymous; REQUIRED: 401 without a valid bearer token;
                          * OPTIONAL: authenticated when an Authorization header is sent;
                          * OPENROSA: fe_openrosa_authenticate (Basic, Bearer, or an app-user
                          * token: only these routes exist under /v1/key/{token}/) */
    bool body;         /* expects a JSON body (Content-Type application/json) */
    const char *name;  /* the route's label in metrics and the access log */
} fe_route;

typedef enum { FE_REQ_ROUTED, FE_REQ_AUTH, FE_REQ_HANDLER } fe_req_phase;

#define FE_MAX_PARAMS 3
/* Bytes of one path parameter, with its NUL: an attachment's name percent-encoded (UUIDs and
 * tokens are far shorter, and checked by their handlers). */
#define FE_PARAM_MAX (3 * FV_ATTACHMENT_NAME_MAX + 1)

struct fe_req {
    struct evhttp_request *ev; /* borrowed from evhttp until the reply */
    fe_req_phase phase;
    int route; /* index into fe_routes */
    char param[FE_MAX_PARAMS][FE_PARAM_MAX];
    char
        app_token[64]; /* the {token} of /v1/key/{token}/... (a longer one: 404); "" otherwise (a secret:
                                   * wiped when r is freed, never logged) */
    struct timespec start;
    char req_id[32];
    char address[64];
    fe_user *user; /* owned; NULL until authenticated */
    yajl_val body; /* owned; the parsed JSON body for routes with body */
    bool openrosa; /* answers in the OpenRosa envelope (fe_reply_openrosa), errors too */
    void *state;   /* handler's own state, freed with state_free at the reply */
    void (*state_free)(void *);
};

extern const fe_route fe_routes[];
extern const int fe_nroutes;
/* The metrics label of route i; i == fe_nroutes is "unmatched". */
const char *fe_route_name(int i);
/* Matches path against a route pattern ("/v1/surveys/:id"), copying each ':' segment into
 * param (at most FE_MAX_PARAMS, each shorter than FE_PARAM_MAX, else no match). fe_routes.c. */
bool fe_route_match(const char *pattern, const char *path, char param[FE_MAX_PARAMS][FE_PARAM_MAX]);

/* Number of requests received and not yet answered (the drain waits for 0). */
extern int fe_http_inflight;
/* Replies handed to libevent and not yet written to their sockets (the drain waits for 0, a
 * little while: a reply whose connection failed is never counted off). */
extern int fe_http_unflushed;
/* Set while draining: replies carry Connection: close. */
extern bool fe_http_draining;

/* evhttp's general callback: routes every request. arg is unused. fe_dispatch.c. */
void fe_http_dispatch(struct evhttp_request *ev, void *arg);

#endif

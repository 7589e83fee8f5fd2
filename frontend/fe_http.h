/* The request: what a handler gets, how it answers, and the router that dispatches to it.
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
#include "fv_id.h"
#include "fv_json.h"

/* How the caller proved who they are. */
typedef enum { FE_CRED_API_KEY, FE_CRED_SESSION } fe_cred_kind;

typedef struct fe_user {
    char id[FV_UUID_STRLEN + 1];
    fe_cred_kind cred;                          /* API key or session token */
    char cred_id[FV_UUID_STRLEN + 1];           /* the API key's id or the session's id ("" if unknown) */
    bool mfa;                                   /* the session was opened with a TOTP code */
    char *email; /* owned */
    char *name;  /* owned */
    bool is_admin;
} fe_user;

typedef struct fe_req fe_req;
typedef void (*fe_handler)(fe_req *r);

typedef enum { FE_AUTH_NONE, FE_AUTH_REQUIRED, FE_AUTH_OPTIONAL } fe_auth_mode;

typedef struct fe_route {
    enum evhttp_cmd_type method;
    const char *pattern; /* "/v1/surveys/:id/responses": ':' segments are parameters */
    fe_handler handler;
    fe_auth_mode auth;   /* NONE: anonymous; REQUIRED: 401 without a valid bearer token;
                          * OPTIONAL: authenticated when an Authorization header is sent */
    bool body;           /* expects a JSON body (Content-Type application/json) */
    const char *name;    /* the route's label in metrics and the access log */
} fe_route;

typedef enum { FE_REQ_ROUTED, FE_REQ_AUTH, FE_REQ_HANDLER } fe_req_phase;

#define FE_MAX_PARAMS 3

struct fe_req {
    struct evhttp_request *ev; /* borrowed from evhttp until the reply */
    fe_req_phase phase;
    int route;                 /* index into fe_routes */
    char param[FE_MAX_PARAMS][64];
    struct timespec start;
    char req_id[32];
    char address[64];
    fe_user *user;             /* owned; NULL until authenticated */
    yajl_val body;             /* owned; the parsed JSON body for routes with body */
    void *state;               /* handler's own state, freed with state_free at the reply */
    void (*state_free)(void *);
};

extern const fe_route fe_routes[];
extern const int fe_nroutes;
/* The metrics label of route i; i == fe_nroutes is "unmatched". */
const char *fe_route_name(int i);

/* Number of requests received and not yet answered (the drain waits for 0). */
extern int fe_http_inflight;
/* Replies handed to libevent and not yet written to their sockets (the drain waits for 0, a
 * little while: a reply whose connection failed is never counted off). */
extern int fe_http_unflushed;
/* Set while draining: replies carry Connection: close. */
extern bool fe_http_draining;

/* evhttp's general callback: routes every request. arg is unused. */
void fe_http_dispatch(struct evhttp_request *ev, void *arg);

/* Replies; each sends, logs, counts and frees r (takes ownership of r). */
void fe_reply_json(fe_req *r, int status, fv_jgen *body); /* borrows body */
/* A generator for r's reply body, or NULL after r was answered 503 (out of memory): then the
 * caller just returns. Hand it back with fe_reply_gen_send. */
fv_jgen *fe_reply_gen(fe_req *r);
/* Sends j as r's JSON reply with status; takes ownership of j (and of r, like every reply). */
void fe_reply_gen_send(fe_req *r, int status, fv_jgen *j);
void fe_reply_text(fe_req *r, int status, const char *content_type, const char *body, size_t len);
void fe_reply_error(fe_req *r, int status, const char *code, const char *message);
/* An error with Retry-After: retry_after_s (at least 1); fe_reply_error's 429 and 503 say 5. */
void fe_reply_error_retry(fe_req *r, int status, const char *code, const char *message, int retry_after_s);
/* A 422-style error whose "fields" maps each name to its reason (parallel arrays). */
void fe_reply_error_fields(fe_req *r, int status, const char *code, const char *message,
                           size_t n, const char *const *names, const char *const *reasons);
/* A 422 listing every problem in errs (borrowed; a struct fv_form_errors). */
struct fv_form_errors;
void fe_reply_form_errors(fe_req *r, const char *message, const struct fv_form_errors *errs);
/* Maps a failed PostgreSQL query to 503 (+ Retry-After) or the fitting 4xx. */
void fe_reply_pg_failure(fe_req *r, const fe_pg_result *res);

/* The decoded value of query parameter `name` (caller frees), or NULL. */
char *fe_query_param(fe_req *r, const char *name);

/* Lists take ?limit= from 1 to FE_LIST_MAX, FE_LIST_DEFAULT when absent. */
#define FE_LIST_DEFAULT 50
#define FE_LIST_MAX 500
#define FE_LIST_LIMIT_REASON "must be an integer from 1 to 500"
/* The page size asked for by the ?limit= value text (NULL: absent), or -1 when invalid. */
int fe_list_limit(const char *text);

#endif

/* Replies: how a handler answers its request. Every reply sends, logs, counts and frees the
 * request: no pointer to it may be used afterwards. fe_reply.c. */
#ifndef FE_REPLY_H
#define FE_REPLY_H

#include "fe_http.h"

/* Replies; each sends, logs, counts and frees r (takes ownership of r). */
void fe_reply_json(fe_req *r, int status, fv_jgen *body); /* borrows body */
/* A generator for r's reply body, or NULL after r was answered 503 (out of memory): then the
 * caller just returns. Hand it back with fe_reply_gen_send. */
fv_jgen *fe_reply_gen(fe_req *r);
/* Sends j as r's JSON reply with status; takes ownership of j (and of r, like every reply). */
void fe_reply_gen_send(fe_req *r, int status, fv_jgen *j);
void fe_reply_text(fe_req *r, int status, const char *content_type, const char *body, size_t len);
/* 304 Not Modified: the headers set so far (ETag, X-OpenRosa-Version, ...) and the common ones,
 * no content (fe_etag.h). */
void fe_reply_not_modified(fe_req *r);
void fe_reply_error(fe_req *r, int status, const char *code, const char *message);
/* An error with Retry-After: retry_after_s (at least 1); fe_reply_error's 429 and 503 say 5. */
void fe_reply_error_retry(fe_req *r, int status, const char *code, const char *message,
                          int retry_after_s);
/* A 422-style error whose "fields" maps each name to its reason (parallel arrays). */
void fe_reply_error_fields(fe_req *r, int status, const char *code, const char *message, size_t n,
                           const char *const *names, const char *const *reasons);
/* A 422 listing every problem in errs (borrowed; a struct fv_form_errors). */
struct fv_form_errors;
void fe_reply_form_errors(fe_req *r, const char *message, const struct fv_form_errors *errs);
/* As fe_reply_form_errors with another error code than validation_failed (a string literal). */
void fe_reply_form_errors_code(fe_req *r, const char *code, const char *message,
                               const struct fv_form_errors *errs);
/* An OpenRosa answer: <OpenRosaResponse xmlns="http://openrosa.org/http/response"><message
 * nature="nature">message</message></OpenRosaResponse> (text/xml, message escaped) with
 * X-OpenRosa-Version: 1.0. For a request with r->openrosa every error reply takes this form
 * (nature "error", the message followed by the fields' reasons, the code in X-Fieldvault-Error). */
void fe_reply_openrosa(fe_req *r, int status, const char *nature, const char *message);
/* 503 overloaded "out of memory; retry later" (with Retry-After): the one out-of-memory reply. */
void fe_reply_oom(fe_req *r);
/* Adds "request_id": r's X-Request-Id to the error object being written in j: every error body
 * names the request, so a user can quote it and an operator find it in the access log. */
void fe_reply_request_id(fe_req *r, fv_jgen *j);
/* Maps a failed PostgreSQL query to 503 (+ Retry-After) or the fitting 4xx. */
void fe_reply_pg_failure(fe_req *r, const fe_pg_result *res);

/* Streamed replies (a download of unbounded size, sent chunk by chunk with bounded memory):
 * fe_reply_stream_start sends 200 with the usual headers, content_type and Content-Disposition
 * (chunked transfer) and returns the stream (NULL after answering 503: r is gone). r stays alive
 * (and counted in flight) until fe_reply_stream_end(stream, complete), which logs and frees r
 * and the stream; complete false cuts the connection without the last chunk. When the
 * connection closes first, gone(arg) is called once: the caller must then call
 * fe_reply_stream_end (at once, or when its pending work ends) and never chunk again.
 * fe_reply_stream_chunk moves buf's bytes out (false when the connection is gone); sent(evcon,
 * arg) runs once they were all written to the socket, never if the connection closes first. */
struct evbuffer;
void *fe_reply_stream_start(fe_req *r, const char *content_type, const char *disposition,
                            void (*gone)(void *), void *arg);
bool fe_reply_stream_chunk(void *stream, struct evbuffer *buf,
                           void (*sent)(struct evhttp_connection *, void *), void *arg);
void fe_reply_stream_end(void *stream, bool complete);

/* Strict-Transport-Security on every reply: one year, subdomains included. */
#define FE_HSTS "max-age=31536000; includeSubDomains"

/* Draws this child's random request-id prefix (call once at child start, after fork); false
 * when the random generator fails. */
bool fe_reqid_seed(void);
/* Writes the next request id, "<12 hex digits>-<counter in hex>" (at most 29 characters). */
void fe_reqid_next(char *out, size_t n);

/* The decoded value of query parameter `name` (caller frees), or NULL. */
char *fe_query_param(fe_req *r, const char *name);


#endif

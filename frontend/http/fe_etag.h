/* Entity tags of the answers that have one (the OpenRosa form list, form and manifest): strong
 * validators (RFC 9110 8.8.3) and If-None-Match (13.1.2), so that a client keeping its copy asks
 * again without downloading it (304). */
#ifndef FE_ETAG_H
#define FE_ETAG_H
#include <stdbool.h>

#include "fe_http.h"

#define FE_ETAG_MAX 35 /* "\"" 32 hex digits "\"", its NUL */

/* The strong entity tag of an MD5 in hex (32 digits, borrowed) into out: "\"<md5>\"". False
 * (out "") when md5 is not 32 hex digits. */
bool fe_etag_of_md5(const char *md5, char out[FE_ETAG_MAX]);

/* Whether an If-None-Match field value (NULL when absent; borrowed) names etag (a strong tag as
 * fe_etag_of_md5 writes it) by the weak comparison GET and HEAD use: "*", or a comma-separated
 * list holding it with or without "W/". A malformed member matches nothing and ends the scan
 * (the answer is then the whole representation, never a wrong 304); linear in the value. */
bool fe_etag_none_match(const char *if_none_match, const char *etag);

/* Sets ETag: etag on r's answer; when r's If-None-Match names it, answers 304 Not Modified
 * (no body) and returns true: r is then gone. */
bool fe_etag_answer(fe_req *r, const char *etag);

#endif

/* Who may read /metrics: the bearer token of metrics_token_file on the API port, and the
 * separate plain-HTTP listener of metrics_listen. fe_metrics_http.c. */
#ifndef FE_METRICS_HTTP_H
#define FE_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "fv_bearer.h"

struct event_base;

/* The token of metrics_token_file (not set: /metrics on the API port answers 404). Loaded by
 * the master (fe_metrics_access_load), inherited by the children. */
extern fv_bearer fe_metrics_token;
/* The metrics_listen socket, bound by the master and shared by the children; -1 when off. */
extern int fe_metrics_listen_fd;

/* Loads metrics_token_file (when set) into fe_metrics_token; false with the reason in err. */
bool fe_metrics_access_load(char *err, size_t errlen) __attribute__((warn_unused_result));
/* Splits metrics_listen ("IP:port", "[IPv6]:port") into addr (at least 64 bytes) and *port;
 * false when it is not that. */
bool fe_metrics_listen_parse(const char *text, char *addr, size_t addrlen, int *port);
/* In a child: serves GET /metrics on fe_metrics_listen_fd (plain HTTP) on base; true when off. */
bool fe_metrics_http_start(struct event_base *base) __attribute__((warn_unused_result));
void fe_metrics_http_free(void);

#endif

/* Metrics shared by all children of one front end: a MAP_SHARED region the master maps before
 * forking, one slot per child (single writer each), summed when /metrics is read. */
#ifndef FE_METRICS_H
#define FE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fv_json.h"

#define FE_METRICS_MAX_CHILDREN 64
#define FE_METRICS_MAX_ROUTES 128
#define FE_METRICS_NSTATUS 18
#define FE_METRICS_NBUCKETS 14

/* Maps the shared region (called once in the master before forking); returns 0 or -1. */
int fe_metrics_init(void);
/* Chooses this process's slot (the child index). */
void fe_metrics_set_slot(int slot);
/* Counts one request on route index `route` with `status`, taking `seconds`. */
void fe_metrics_request(int route, int status, double seconds);
void fe_metrics_submission_accepted(void);
void fe_metrics_submission_rejected(void);
void fe_metrics_submission_spooled(void);
/* One OpenRosa HTTP Basic check: answered from the cache, or by PBKDF2 on the work pool. */
void fe_metrics_basic_auth(bool cache_hit);
/* This child's spool backlog (a gauge), and the sum over all children of the instance. */
void fe_metrics_spool_pending(uint64_t n);
uint64_t fe_metrics_spool_pending_total(void);
/* Renders Prometheus text into buf; route_names[i] names route index i. Caller frees the
 * returned evbuffer-free plain malloc'd string. */
char *fe_metrics_render(const char *(*route_name)(int route), int nroutes, size_t *len);

#endif

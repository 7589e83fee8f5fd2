/* Metrics shared by all children of one front end, rendered in the Prometheus text format. */
#include "fe_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const int status_codes[FE_METRICS_NSTATUS] = {200, 201, 202, 204, 400, 401, 403, 404, 405,
                                                     409, 413, 415, 422, 429, 500, 503, 504, 0};
static const double bucket_le[FE_METRICS_NBUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                          0.025,  0.05,  0.1,    0.25,  0.5,
                                                          1,      2.5,   5};

typedef struct fe_metrics_slot {
    uint64_t requests[FE_METRICS_MAX_ROUTES][FE_METRICS_NSTATUS];
    uint64_t buckets[FE_METRICS_MAX_ROUTES][FE_METRICS_NBUCKETS]; /* last one is +Inf */
    uint64_t micros_sum[FE_METRICS_MAX_ROUTES];
    uint64_t accepted;
    uint64_t rejected;
    uint64_t spooled;
    uint64_t spool_pending; /* gauge */
    uint64_t basic_checks;  /* OpenRosa HTTP Basic: PBKDF2 checks run */
    uint64_t basic_hits;    /* OpenRosa HTTP Basic: answered from the cache */
} fe_metrics_slot;

static fe_metrics_slot *shm; /* FE_METRICS_MAX_CHILDREN slots, owned by the mapping */
static fe_metrics_slot *mine;

int fe_metrics_init(void)
{
    void *p = mmap(NULL, sizeof(fe_metrics_slot) * FE_METRICS_MAX_CHILDREN, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    shm = p;
    mine = &shm[0];
    return 0;
}

void fe_metrics_set_slot(int slot)
{
    if (shm && slot >= 0 && slot < FE_METRICS_MAX_CHILDREN) mine = &shm[slot];
}

static int status_index(int status)
{
    for (int i = 0; i < FE_METRICS_NSTATUS - 1; i++)
        if (status_codes[i] == status) return i;
    return FE_METRICS_NSTATUS - 1;
}

#define ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)

void fe_metrics_request(int route, int status, double seconds)
{
    if (!mine || route < 0 || route >= FE_METRICS_MAX_ROUTES) return;
    ADD(&mine->requests[route][status_index(status)], 1);
    int b = 0;
    while (b < FE_METRICS_NBUCKETS - 1 && seconds > bucket_le[b]) b++;
    ADD(&mine->buckets[route][b], 1);
    ADD(&mine->micros_sum[route], (uint64_t)(seconds * 1e6));
}

void fe_metrics_submission_accepted(void)
{
    if (mine) ADD(&mine->accepted, 1);
}

void fe_metrics_submission_rejected(void)
{
    if (mine) ADD(&mine->rejected, 1);
}

void fe_metrics_submission_spooled(void)
{
    if (mine) ADD(&mine->spooled, 1);
}

void fe_metrics_basic_auth(bool cache_hit)
{
    if (mine) ADD(cache_hit ? &mine->basic_hits : &mine->basic_checks, 1);
}

void fe_metrics_spool_pending(uint64_t n)
{
    if (mine) __atomic_store_n(&mine->spool_pending, n, __ATOMIC_RELAXED);
}

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

uint64_t fe_metrics_spool_pending_total(void)
{
    uint64_t n = 0;
    for (int c = 0; shm && c < FE_METRICS_MAX_CHILDREN; c++) n += LOAD(&shm[c].spool_pending);
    return n;
}

typedef struct strbuf {
    char *s;
    size_t len, cap;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap * 2 + (size_t)n;
        char *ns = realloc(b->s, ncap);
        if (!ns) return;
        b->s = ns;
        b->cap = ncap;
    }
}

char *fe_metrics_render(const char *(*route_name)(int route), int nroutes, size_t *len)
{
    strbuf b = {malloc(16384), 0, 16384};
    if (!b.s) return NULL;
    b.s[0] = '\0';
    if (nroutes > FE_METRICS_MAX_ROUTES) nroutes = FE_METRICS_MAX_ROUTES;

    sb_printf(&b, "# HELP fv_http_requests_total HTTP requests answered, by route and status.\n"
                  "# TYPE fv_http_requests_total counter\n");
    for (int r = 0; r < nroutes; r++)
        for (int s = 0; s < FE_METRICS_NSTATUS; s++) {
            uint64_t n = 0;
            for (int c = 0; c < FE_METRICS_MAX_CHILDREN; c++) n += LOAD(&shm[c].requests[r][s]);
            if (n == 0) continue;
            if (status_codes[s])
                sb_printf(&b, "fv_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", route_name(r),
                          status_codes[s], (unsigned long long)n);
            else
                sb_printf(&b, "fv_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                          route_name(r), (unsigned long long)n);
        }

    sb_printf(&b, "# HELP fv_http_request_duration_seconds Time from request parsed to reply queued.\n"
                  "# TYPE fv_http_request_duration_seconds histogram\n");
    for (int r = 0; r < nroutes; r++) {
        uint64_t cum = 0, counts[FE_METRICS_NBUCKETS] = {0};
        double sum = 0;
        for (int c = 0; c < FE_METRICS_MAX_CHILDREN; c++) {
            for (int k = 0; k < FE_METRICS_NBUCKETS; k++) counts[k] += LOAD(&shm[c].buckets[r][k]);
            sum += (double)LOAD(&shm[c].micros_sum[r]) / 1e6;
        }
        uint64_t total = 0;
        for (int k = 0; k < FE_METRICS_NBUCKETS; k++) total += counts[k];
        if (total == 0) continue;
        for (int k = 0; k < FE_METRICS_NBUCKETS; k++) {
            cum += counts[k];
            if (k < FE_METRICS_NBUCKETS - 1)
                sb_printf(&b, "fv_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                          route_name(r), bucket_le[k], (unsigned long long)cum);
            else
                sb_printf(&b, "fv_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                          route_name(r), (unsigned long long)cum);
        }
        sb_printf(&b, "fv_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_name(r), sum);
        sb_printf(&b, "fv_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route_name(r),
                  (unsigned long long)total);
    }

    uint64_t acc = 0, rej = 0, spooled = 0, bchecks = 0, bhits = 0;
    for (int c = 0; c < FE_METRICS_MAX_CHILDREN; c++) {
        bchecks += LOAD(&shm[c].basic_checks);
        bhits += LOAD(&shm[c].basic_hits);
        acc += LOAD(&shm[c].accepted);
        rej += LOAD(&shm[c].rejected);
        spooled += LOAD(&shm[c].spooled);
    }
    sb_printf(
        &b,
        "# HELP fv_submissions_accepted_total Submissions acknowledged with 202 (Redis took them).\n"
        "# TYPE fv_submissions_accepted_total counter\n"
        "fv_submissions_accepted_total %llu\n",
        (unsigned long long)acc);
    sb_printf(&b,
              "# HELP fv_submissions_rejected_total Submissions refused by validation (422).\n"
              "# TYPE fv_submissions_rejected_total counter\n"
              "fv_submissions_rejected_total %llu\n",
              (unsigned long long)rej);
    sb_printf(
        &b,
        "# HELP fv_submissions_spooled_total Submissions acknowledged from the local spool (Redis away).\n"
        "# TYPE fv_submissions_spooled_total counter\n"
        "fv_submissions_spooled_total %llu\n",
        (unsigned long long)spooled);
    sb_printf(
        &b,
        "# HELP fv_openrosa_basic_auth_total OpenRosa HTTP Basic credentials checked, by how: "
        "pbkdf2 (the password hashed on the work pool) or cache (a recent or running check reused).\n"
        "# TYPE fv_openrosa_basic_auth_total counter\n"
        "fv_openrosa_basic_auth_total{check=\"pbkdf2\"} %llu\n"
        "fv_openrosa_basic_auth_total{check=\"cache\"} %llu\n",
        (unsigned long long)bchecks, (unsigned long long)bhits);
    sb_printf(&b,
              "# HELP fv_spool_pending Spooled submissions not yet replayed into Redis.\n"
              "# TYPE fv_spool_pending gauge\n"
              "fv_spool_pending %llu\n",
              (unsigned long long)fe_metrics_spool_pending_total());
    *len = b.len;
    return b.s;
}

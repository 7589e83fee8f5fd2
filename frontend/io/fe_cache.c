/* A per-child cache: chained hash table with expiry and a size cap. */
#include "fe_cache.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 4096

typedef struct entry {
    struct entry *next;
    char *key;
    void *value;
    time_t fresh_until;
    time_t expires;
} entry;

struct fe_cache {
    entry *buckets[NBUCKETS];
    size_t n, max;
    fe_cache_free_fn free_fn;
    fe_cache_evict_fn evict_fn;
    time_t evicted_until;
};

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

time_t fe_cache_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

fe_cache *fe_cache_new(size_t max_entries, fe_cache_free_fn free_fn)
{
    fe_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->max = max_entries;
    c->free_fn = free_fn;
    return c;
}

static void entry_free(fe_cache *c, entry *e)
{
    if (c->free_fn && e->value) c->free_fn(e->value);
    free(e->key);
    free(e);
    c->n--;
}

static void sweep(fe_cache *c, time_t now, int all)
{
    for (size_t b = 0; b < NBUCKETS; b++) {
        entry **pp = &c->buckets[b];
        while (*pp) {
            entry *e = *pp;
            if (all || e->expires <= now) {
                *pp = e->next;
                entry_free(c, e);
            } else {
                pp = &e->next;
            }
        }
    }
}

void fe_cache_free(fe_cache *c)
{
    if (!c) return;
    sweep(c, 0, 1);
    free(c);
}

void *fe_cache_get(fe_cache *c, const char *key, time_t now, bool *fresh)
{
    entry **pp = &c->buckets[hash(key) % NBUCKETS];
    for (; *pp; pp = &(*pp)->next) {
        entry *e = *pp;
        if (strcmp(e->key, key) != 0) continue;
        if (e->expires <= now) {
            *pp = e->next;
            entry_free(c, e);
            return NULL;
        }
        if (fresh) *fresh = now < e->fresh_until;
        return e->value;
    }
    return NULL;
}

void fe_cache_del(fe_cache *c, const char *key)
{
    entry **pp = &c->buckets[hash(key) % NBUCKETS];
    for (; *pp; pp = &(*pp)->next) {
        entry *e = *pp;
        if (strcmp(e->key, key) == 0) {
            *pp = e->next;
            entry_free(c, e);
            return;
        }
    }
}

void fe_cache_del_prefix(fe_cache *c, const char *prefix)
{
    size_t plen = strlen(prefix);
    for (size_t b = 0; b < NBUCKETS; b++) {
        entry **pp = &c->buckets[b];
        while (*pp) {
            entry *e = *pp;
            if (strncmp(e->key, prefix, plen) == 0) {
                *pp = e->next;
                entry_free(c, e);
            } else {
                pp = &e->next;
            }
        }
    }
}

size_t fe_cache_count(const fe_cache *c)
{
    return c->n;
}

time_t fe_cache_evicted_until(const fe_cache *c)
{
    return c->evicted_until;
}

void fe_cache_on_evict(fe_cache *c, fe_cache_evict_fn fn)
{
    c->evict_fn = fn;
}

/* The k-th smallest (0-based) of v[n] (reorders v): quickselect, O(n) on average. */
static time_t kth_smallest(time_t *v, size_t n, size_t k)
{
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
    while (lo < hi) {
        time_t pivot = v[lo + (hi - lo) / 2];
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                time_t t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        /* now v[lo..j] <= pivot <= v[i..hi], and v[j+1..i-1] == pivot */
        if (kk <= j) hi = j;
        else if (kk >= i) lo = i;
        else return v[kk];
    }
    return v[kk];
}

/* Full of live entries: evicts the `want` entries nearest the end of their usable life. Falls
 * back to one pass evicting the single nearest when the scratch array cannot be allocated. */
static void evict_nearest(fe_cache *c, size_t want)
{
    time_t *ex = malloc(c->n * sizeof *ex), limit;
    if (ex) {
        size_t m = 0;
        for (size_t b = 0; b < NBUCKETS; b++)
            for (entry *e = c->buckets[b]; e; e = e->next) ex[m++] = e->expires;
        limit = kth_smallest(ex, m, want - 1);
        free(ex);
    } else {
        want = 1;
        limit = (time_t)INT64_MAX;
        for (size_t b = 0; b < NBUCKETS; b++)
            for (entry *e = c->buckets[b]; e; e = e->next)
                if (e->expires < limit) limit = e->expires;
    }
    /* entries ending before the limit first, then as many ending at it as are still wanted */
    for (int pass = 0; pass < 2 && want; pass++)
        for (size_t b = 0; b < NBUCKETS && want; b++) {
            entry **pp = &c->buckets[b];
            while (*pp && want) {
                entry *e = *pp;
                if (pass == 0 ? e->expires < limit : e->expires == limit) {
                    *pp = e->next;
                    if (e->expires > c->evicted_until) c->evicted_until = e->expires;
                    if (c->evict_fn) c->evict_fn(e->key, e->value, e->expires);
                    entry_free(c, e);
                    want--;
                } else {
                    pp = &e->next;
                }
            }
        }
}

void fe_cache_put(fe_cache *c, const char *key, void *value, time_t now, int fresh_ttl, int usable_ttl)
{
    fe_cache_del(c, key);
    if (c->n >= c->max) {
        sweep(c, now, 0);
        if (c->n >= c->max && c->n > 0) /* still full of live entries: drop the nearest to expiry */
            evict_nearest(c, c->n / 8 > 0 ? c->n / 8 : 1);
    }
    entry *e = malloc(sizeof *e);
    char *k = strdup(key);
    if (!e || !k) {
        free(e);
        free(k);
        if (c->free_fn && value) c->free_fn(value);
        return;
    }
    e->key = k;
    e->value = value;
    e->fresh_until = now + fresh_ttl;
    e->expires = now + (usable_ttl > fresh_ttl ? usable_ttl : fresh_ttl);
    uint32_t b = hash(key) % NBUCKETS;
    e->next = c->buckets[b];
    c->buckets[b] = e;
    c->n++;
}

/* A per-child cache: chained hash table with expiry and a size cap. */
#include "fe_cache.h"

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

void fe_cache_put(fe_cache *c, const char *key, void *value, time_t now, int fresh_ttl, int usable_ttl)
{
    fe_cache_del(c, key);
    if (c->n >= c->max) {
        sweep(c, now, 0);
        if (c->n >= c->max) sweep(c, now, 1); /* still full of live entries: start over */
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

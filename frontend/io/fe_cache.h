/* A per-child cache: string keys, values with a destructor, a time to live and a size cap. */
#ifndef FE_CACHE_H
#define FE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef struct fe_cache fe_cache;
typedef void (*fe_cache_free_fn)(void *value);

/* The caches' clock: monotonic seconds. */
time_t fe_cache_now(void);

/* A cache of at most max_entries; free_fn frees values (may be NULL). Caller frees the cache. */
fe_cache *fe_cache_new(size_t max_entries, fe_cache_free_fn free_fn);
void fe_cache_free(fe_cache *c);
/* Borrows the value for key, or NULL when absent or past its usable life (now is the monotonic
 * second). *fresh (may be NULL) says whether it is still within its fresh time: a stale value
 * is for when the source of truth cannot be asked (PostgreSQL down). */
void *fe_cache_get(fe_cache *c, const char *key, time_t now, bool *fresh);
/* Stores value under key, fresh for fresh_ttl seconds and usable for usable_ttl (>= fresh_ttl);
 * takes ownership of value (freed on replace or expiry). */
void fe_cache_put(fe_cache *c, const char *key, void *value, time_t now, int fresh_ttl, int usable_ttl);
/* Drops key if present. */
void fe_cache_del(fe_cache *c, const char *key);
/* Drops every key that starts with prefix ("" drops everything). */
void fe_cache_del_prefix(fe_cache *c, const char *prefix);
/* Number of entries held (live or not yet swept). */
size_t fe_cache_count(const fe_cache *c);

#endif

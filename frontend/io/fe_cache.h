/* A per-child cache: string keys, values with a destructor, a time to live and a size cap. */
#ifndef FE_CACHE_H
#define FE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef struct fe_cache fe_cache;
typedef void (*fe_cache_free_fn)(void *value);
/* Told of a live entry evicted to make room (before its value is freed; both borrowed). */
typedef void (*fe_cache_evict_fn)(const char *key, void *value, time_t expires);

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
 * takes ownership of value (freed on replace or expiry). A cache full of live entries evicts
 * the ones nearest the end of their usable life (an eighth of the cap at a time), never the
 * whole cache: what is forgotten early is what would have been forgotten soonest anyway, and
 * fe_cache_evicted_until says until when (callers that must not forget, such as revocations,
 * fail closed on anything that ends before it). */
void fe_cache_put(fe_cache *c, const char *key, void *value, time_t now, int fresh_ttl, int usable_ttl);
/* Drops key if present. */
void fe_cache_del(fe_cache *c, const char *key);
/* Drops every key that starts with prefix ("" drops everything). */
void fe_cache_del_prefix(fe_cache *c, const char *prefix);
/* Number of entries held (live or not yet swept). */
size_t fe_cache_count(const fe_cache *c);
/* The latest end of usable life (monotonic second) of any live entry evicted to make room, or 0
 * when none ever was: an entry that would have lived until then may have been forgotten. */
time_t fe_cache_evicted_until(const fe_cache *c);
/* Calls fn for every live entry evicted to make room from now on (NULL: nobody). */
void fe_cache_on_evict(fe_cache *c, fe_cache_evict_fn fn);

#endif

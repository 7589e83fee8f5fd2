/* A per-child cache: string keys, values with a destructor, a time to live and a size cap. */
#ifndef FE_CACHE_H
#define FE_CACHE_H

#include <stddef.h>
#include <time.h>

typedef struct fe_cache fe_cache;
typedef void (*fe_cache_free_fn)(void *value);

/* A cache of at most max_entries; free_fn frees values (may be NULL). Caller frees the cache. */
fe_cache *fe_cache_new(size_t max_entries, fe_cache_free_fn free_fn);
void fe_cache_free(fe_cache *c);
/* Borrows the value for key, or NULL when absent or expired (now is the monotonic second). */
void *fe_cache_get(fe_cache *c, const char *key, time_t now);
/* Stores value under key until now + ttl; takes ownership of value (freed on replace/expiry). */
void fe_cache_put(fe_cache *c, const char *key, void *value, time_t now, int ttl);
/* Drops key if present. */
void fe_cache_del(fe_cache *c, const char *key);

#endif

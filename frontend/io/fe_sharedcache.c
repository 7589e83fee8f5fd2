/* MACed, versioned lookups shared through Redis (see fe_sharedcache.h). */
#include "fe_sharedcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fe_config.h"
#include "fe_redis.h"
#include "fv_log.h"
#include "fv_shared.h"

#define BAD_LOG_INTERVAL_S 60

static struct {
    fv_shared_keys keys;
    bool ready, failed;
    time_t bad_logged;
    long bad_unlogged;
} sc;

/* The subkeys, derived from fe_keys on first use (the child's key set does not change). */
static const fv_shared_keys *keys(void)
{
    if (!sc.ready && !sc.failed) {
        if (fv_shared_keys_init(&sc.keys, &fe_keys) == 0) {
            sc.ready = true;
        } else {
            sc.failed = true;
            fv_error("shared cache: cannot derive its MAC keys; nothing is shared");
        }
    }
    return sc.ready ? &sc.keys : NULL;
}

void fe_sharedcache_shutdown(void)
{
    fv_shared_keys_clear(&sc.keys);
    memset(&sc, 0, sizeof sc);
}

static char *wrap(const char *key, const char *field, long long version, const char *payload, size_t len,
                  int ttl_s)
{
    const fv_shared_keys *k = keys();
    if (!k || version < 0) return NULL;
    return fv_shared_wrap(k, key, field ? field : "", version, (int64_t)time(NULL) + ttl_s, payload,
                          len);
}

void fe_shared_set(const char *key, long long version, const char *payload, size_t len, int ttl_s)
{
    char *v = wrap(key, NULL, version, payload, len, ttl_s); /* owned here */
    if (!v) return;
    fe_redis_set_ex(key, v, strlen(v), ttl_s);
    free(v);
}

void fe_shared_hset(const char *key, const char *field, long long version, const char *payload,
                    size_t len, int ttl_s)
{
    char *v = wrap(key, field, version, payload, len, ttl_s); /* owned here */
    if (!v) return;
    const char *hset[] = {"HSET", key, field, v};
    size_t hlens[] = {4, strlen(key), strlen(field), strlen(v)};
    fe_redis_fire(4, hset, hlens);
    free(v);
    /* The hash's TTL only bounds its memory: each field carries its own expiry and version. */
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *expire[] = {"EXPIRE", key, ttl};
    size_t elens[] = {6, strlen(key), strlen(ttl)};
    fe_redis_fire(3, expire, elens);
}

const char *fe_shared_open(const char *key, const char *field, const char *text, size_t len,
                           long long *version, size_t *plen)
{
    const fv_shared_keys *k = keys();
    if (!k) return NULL;
    const char *payload = NULL;
    fv_shared_result r = fv_shared_open(k, key, field ? field : "", text, len, (int64_t)time(NULL),
                                        version, &payload, plen);
    if (r == FV_SHARED_OK) return payload;
    if (r == FV_SHARED_BAD_MAC || r == FV_SHARED_MALFORMED) {
        /* forged, altered, or written by an older version: a miss, and worth knowing of */
        time_t now = time(NULL);
        if (now - sc.bad_logged >= BAD_LOG_INTERVAL_S) {
            fv_warn("shared cache: %s entry in Redis key %s refused (%ld more since the last report)",
                    r == FV_SHARED_BAD_MAC ? "a forged or altered" : "an unMACed or malformed", key,
                    sc.bad_unlogged);
            sc.bad_logged = now;
            sc.bad_unlogged = 0;
        } else {
            sc.bad_unlogged++;
        }
    }
    return NULL;
}

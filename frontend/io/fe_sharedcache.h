/* The lookups front ends share through Redis, MACed (common/fv_shared.h) under a subkey of the key
 * file and versioned by the revocations (fe_revoke_version), so that neither write access to
 * Redis nor a lost or overtaken DEL makes a stale or forged answer count: an entry that does not
 * verify, is past its own expiry, or (checked by the caller with fe_revoke_unchanged_since) is
 * older than its subject's newest revocation is a miss. Bad MACs are logged, at most once a
 * minute per child with a count. */
#ifndef FE_SHAREDCACHE_H
#define FE_SHAREDCACHE_H

#include <stdbool.h>
#include <stddef.h>

/* SET key <MACed payload> EX ttl_s, best effort; nothing is sent when version < 0. */
void fe_shared_set(const char *key, long long version, const char *payload, size_t len, int ttl_s);
/* HSET key field <MACed payload>, then EXPIRE key ttl_s, best effort; nothing when version < 0. */
void fe_shared_hset(const char *key, const char *field, long long version, const char *payload,
                    size_t len, int ttl_s);
/* Opens text[len] as read from key (and field, NULL for a plain key). Returns the payload
 * (borrowed from text, *plen bytes) and its version in *version, or NULL when the entry is not
 * good (unMACed, forged, another key's, expired). */
const char *fe_shared_open(const char *key, const char *field, const char *text, size_t len,
                           long long *version, size_t *plen);
void fe_sharedcache_shutdown(void);

#endif

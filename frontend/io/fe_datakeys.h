/* A front-end child's data keys (envelope encryption at rest, common/fv_datakey.h; migrations
 * 025 and 026): the unwrapped keys it has needed, in a bounded ring made from the master key file
 * (fe_keys) at first use. A reader gets the wrapped key in the same query as the sealed value
 * (fv_dk_wrapped), so opening never costs another round trip; a writer gets its org's current
 * key with fe_datakeys_current. Loop thread only. */
#ifndef FE_DATAKEYS_H
#define FE_DATAKEYS_H

#include <stddef.h>

#include "fv_datakey.h"

/* The org argument naming the global data key (users' own data: migration 028) instead of an
 * organisation's. */
#define FE_DATAKEYS_GLOBAL "global"

/* The child's ring (NULL when out of memory), for fv_pii_cell_open and fv_pii_json_open. */
fv_dkring *fe_datakeys_ring(void);

/* The key of org's version, from the ring or unwrapped from wrapped (NULL when the caller has no
 * wrapped text: then only the ring can answer). Valid until the next call. NULL with why. */
const unsigned char *fe_datakeys_get(const char *org, int version, const char *wrapped, char *err,
                                     size_t errlen);

/* Opens sealed[len] (a bytea value: fv_dk_version names its version) of org under aad into a new
 * buffer (the caller frees it; *outlen its length; a NUL after it). A value with no version is in
 * clear (stored before migration 026 and not yet sealed by the workers' sweep): copied as it is.
 * NULL with why (never a plaintext byte) when the key or the tag fails. */
unsigned char *fe_datakeys_open(const char *org, const char *wrapped, const char *aad,
                                const unsigned char *sealed, size_t len, size_t *outlen, char *err,
                                size_t errlen);

/* The org's current data key: cb(key, version, arg) with key NULL when PostgreSQL failed (why in
 * err). Creates version 1 when the org has none (as the worker does, wk_seal.c). The key is
 * valid during the callback only; copy it. cb is called exactly once: from a query's callback,
 * or at once (before this returns) when out of memory. */
typedef void (*fe_datakeys_cb)(const unsigned char *key, int version, const char *err, void *arg);
void fe_datakeys_current(const char *org, fe_datakeys_cb cb, void *arg);

#endif

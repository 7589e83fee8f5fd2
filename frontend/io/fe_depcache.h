/* The deployment cache: what a submission needs to be checked without PostgreSQL in its way.
 * Per child: each deployment's survey and compiled form, and each user's permission on it.
 * Across children and front ends: the same lookups shared through Redis (the deployment's form
 * under fv:cache:deployment:<id>, one hash per user fv:cache:enumerator:<user> mapping
 * deployment id to a FE_PERM_* character), so a membership change deletes one key. What is
 * shared is MACed and versioned (fe_sharedcache.h): a permission answer carries the revocation
 * version (fe_revoke_version) taken before PostgreSQL was asked, and is used, locally or from
 * Redis, only while no `permissions` revocation of its user newer than that is known, so an
 * answer read before a removal committed never outlives the removal's revocation row. The same
 * holds for `deployment` revocations (principals changed, closed or reopened) and `survey` ones
 * (archived or unarchived, grants changed): an entry about the deployment or its survey older
 * than such a row is not used, locally or from Redis.
 *
 * This is the submission path's one exception to "permission answers come from SQL statements
 * through fe_verdict": its answers are SQL's (fv_has_deployment_role, fv_can_see_deployment),
 * cached, and dropped on every `permissions` revocation (fe_revoke). */
#ifndef FE_DEPCACHE_H
#define FE_DEPCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "fv_form.h"
#include "fv_id.h"
#include "fv_instance.h"

/* A user's permission to submit to a deployment, as one character (also the value shared in
 * Redis): may submit; sees the deployment but may not submit (403); may not see it (404). */
#define FE_PERM_ENUMERATOR '1'
#define FE_PERM_VISIBLE '0'
#define FE_PERM_HIDDEN 'h'

/* Redis key buffers: "fv:cache:deployment:<uuid>" and "fv:cache:enumerator:<uuid>". */
#define FE_DEPCACHE_KEY_MAX 64
/* A permission key "<user id>:<deployment id>". */
#define FE_DEPCACHE_PERM_KEY_MAX (2 * FV_UUID_STRLEN + 2)

/* A deployment's survey and compiled form; `missing` marks a deployment that does not exist.
 * closed/archived: the deployment is closed, its survey archived (submissions answer 409).
 * rversion: the revocation version the answer was taken at (fe_revoke_version before asking
 * PostgreSQL, or the shared entry's); the entry is used only while no `deployment` revocation of
 * it and no `survey` revocation of its survey newer than that is known (fe_depcache_dep_current). */
typedef struct fe_dep_info {
    bool missing;
    bool closed, archived;
    char survey_id[FV_UUID_STRLEN + 1];
    int version;
    long long rversion;
    fv_form *form;    /* owned */
    char *definition; /* owned: the definition as JSON text (OpenRosa instances are typed by it) */
    int key_bytes;    /* the version's RSA modulus in bytes (an encrypted survey), 0: in clear */
    /* the definition's xform.form_id and xform.version ("" when absent: a survey defined in
     * JSON), read when the entry is built so that a submission need not parse the definition */
    char xform_form_id[FV_INSTANCE_MAX_ID + 1], xform_version[FV_INSTANCE_MAX_ID + 1];
} fe_dep_info;

/* Creates the caches and subscribes to `permissions` revocations. 0, or -1 (out of memory). */
int fe_depcache_init(void);
void fe_depcache_shutdown(void);

/* Writes the permission key of user_id on dep_id into key. */
void fe_depcache_perm_key(const char *user_id, const char *dep_id, char key[FE_DEPCACHE_PERM_KEY_MAX]);

/* This child's deployment dep_id, borrowed from the cache (valid until the next cache call), or
 * NULL (also when a `deployment` or `survey` revocation newer than the entry is known: it is
 * dropped). *fresh (may be NULL) says whether it is within its fresh time. */
fe_dep_info *fe_depcache_dep(const char *dep_id, bool *fresh);
/* This child's permission under perm_key on dep (borrowed, from fe_depcache_dep) into *perm;
 * false when unknown, past its life, or older than a `deployment` revocation of dep or a `survey`
 * revocation of its survey. */
bool fe_depcache_perm(const char *perm_key, const fe_dep_info *dep, char *perm, bool *fresh);
/* True when an answer about deployment dep_id of survey survey_id taken at revocation version
 * version is still good: no `deployment` revocation of it and no `survey` revocation of its
 * survey newer than version is known (and the revocations are loaded). */
bool fe_depcache_dep_current(const char *dep_id, const char *survey_id, long long version);

/* Caches dep (takes ownership) under dep_id unless it is older than a known revocation of it or
 * its survey (then it is freed), and perm under perm_key unless perm_key is NULL or the answer
 * (taken at revocation version `version`) is older than a known revocation of its user, of the
 * deployment or of its survey. */
void fe_depcache_remember(const char *dep_id, fe_dep_info *dep, const char *perm_key, char perm,
                          long long version);
/* Caches that dep_id does not exist, for a few seconds. Returns the entry (borrowed), or NULL
 * when out of memory. */
fe_dep_info *fe_depcache_remember_missing(const char *dep_id);

/* A deployment built from its stored definition text (survey_id borrowed), closed and archived as
 * stored, asked at revocation version rversion; NULL when it does not compile or memory runs
 * out. Caller owns the result (fe_dep_info_free). */
fe_dep_info *fe_dep_info_from_definition(const char *survey_id, int version, const char *definition,
                                         bool closed, bool archived, long long rversion, int key_bytes);
/* A deployment from its Redis-shared text (MACed JSON, as read from fv:cache:deployment:<dep_id>);
 * NULL when malformed, not MACed by us, or expired. Caller owns the result. */
fe_dep_info *fe_dep_info_from_shared(const char *dep_id, const char *text, size_t len);
/* A permission from its Redis-shared text (the HGET of fv:cache:enumerator:<user_id> dep_id) into
 * *perm and its revocation version into *version; false when not MACed by us, expired, or older
 * than a revocation of user_id, of dep_id or of its survey survey_id this child knows (or the
 * revocations are not loaded yet). */
bool fe_depcache_shared_perm(const char *dep_id, const char *user_id, const char *survey_id,
                             const char *text, size_t len, char *perm, long long *version);
void fe_dep_info_free(void *dep);

/* The Redis keys of the shared lookups of user_id on dep_id. */
void fe_depcache_redis_keys(const char *dep_id, const char *user_id, char dep_key[FE_DEPCACHE_KEY_MAX],
                            char perm_key[FE_DEPCACHE_KEY_MAX]);
/* Shares a PostgreSQL lookup (dep, borrowed, with its definition text), asked at revocation
 * version dep->rversion, with the other children and front ends (fire and forget; nothing when
 * the version is < 0 or already stale). */
void fe_depcache_share(const char *dep_id, const char *user_id, const fe_dep_info *dep,
                       const char *definition, size_t deflen, char perm);
/* After this child changed deployment dep_id (PATCH): drops this child's entry of it and deletes
 * the one shared through Redis (best effort; every child drops its own through fe_revoke's
 * `deployment` rows, and an older entry is refused by its version anyway). */
void fe_depcache_forget_deployment(const char *dep_id);
/* After a membership or role change of user_id: deletes the permissions shared through Redis
 * (best effort; every child drops its own through fe_revoke's permissions rows). */
void fe_depcache_forget_user_shared(const char *user_id);

#endif

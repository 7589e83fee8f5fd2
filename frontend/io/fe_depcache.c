/* The deployment cache of the submission path: per child, and shared through Redis. */
#include "fe_depcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_cache.h"
#include "fe_config.h"
#include "fe_redis.h"
#include "fe_revoke.h"
#include "fe_sharedcache.h"
#include "fv_json.h"
#include "fv_log.h"

/* A deployment that does not exist is remembered this long (s). */
#define FE_NEGATIVE_TTL_S 5

/* Owned by perm_cache. */
typedef struct perm_info {
    char perm;          /* FE_PERM_* */
    long long rversion; /* the revocation version it was taken at */
} perm_info;

static fe_cache *dep_cache, *perm_cache;

void fe_dep_info_free(void *p)
{
    fe_dep_info *d = p;
    if (!d) return;
    fv_form_free(d->form);
    free(d->definition);
    free(d);
}

/* A user's memberships or roles changed: forget their cached permissions in this child (keys
 * are "<user id>:<deployment id>"), and delete the Redis-shared ones again (the writer's DEL may
 * have been lost or overtaken by an older answer; entries older than the revocation would be
 * refused by their version anyway, this only frees them). Not while the revocations are first
 * loaded: a day of rows would be a burst of DELs for nothing. */
static void permissions_changed(const char *user_id)
{
    char prefix[FV_UUID_STRLEN + 2];
    snprintf(prefix, sizeof prefix, "%s:", user_id);
    fe_cache_del_prefix(perm_cache, prefix);
    if (fe_revoke_get_state() == FE_REVOKE_CURRENT) fe_depcache_forget_user_shared(user_id);
}

/* A deployment's principals changed, or it was closed or reopened: its entry here is dropped at
 * once (the version check of fe_depcache_dep_current would refuse it anyway; this frees it), as
 * is the one shared in Redis. Permissions on it are refused by their version when next read. */
static void deployment_changed(const char *dep_id)
{
    if (fe_revoke_get_state() == FE_REVOKE_CURRENT) fe_depcache_forget_deployment(dep_id);
    else fe_cache_del(dep_cache, dep_id);
}

void fe_depcache_forget_deployment(const char *dep_id)
{
    fe_cache_del(dep_cache, dep_id);
    if (!fv_id_valid(dep_id)) return;
    char key[FE_DEPCACHE_KEY_MAX];
    snprintf(key, sizeof key, "fv:cache:deployment:%s", dep_id);
    const char *argv[] = {"DEL", key};
    size_t lens[] = {3, strlen(key)};
    fe_redis_fire(2, argv, lens);
}

int fe_depcache_init(void)
{
    dep_cache = fe_cache_new(10000, fe_dep_info_free);
    perm_cache = fe_cache_new(200000, free);
    if (!dep_cache || !perm_cache) return -1;
    fe_revoke_on(FE_REVOKE_PERMISSIONS, permissions_changed);
    fe_revoke_on(FE_REVOKE_DEPLOYMENT, deployment_changed);
    return 0;
}

bool fe_depcache_dep_current(const char *dep_id, const char *survey_id, long long version)
{
    return fe_revoke_unchanged_since(FE_REVOKE_DEPLOYMENT, dep_id, version) &&
           fe_revoke_unchanged_since(FE_REVOKE_SURVEY, survey_id, version);
}

void fe_depcache_shutdown(void)
{
    fe_cache_free(dep_cache);
    fe_cache_free(perm_cache);
    dep_cache = perm_cache = NULL;
}

void fe_depcache_perm_key(const char *user_id, const char *dep_id, char key[FE_DEPCACHE_PERM_KEY_MAX])
{
    snprintf(key, FE_DEPCACHE_PERM_KEY_MAX, "%s:%s", user_id, dep_id);
}

fe_dep_info *fe_depcache_dep(const char *dep_id, bool *fresh)
{
    fe_dep_info *dep = fe_cache_get(dep_cache, dep_id, fe_cache_now(), fresh);
    if (dep && !dep->missing && !fe_depcache_dep_current(dep_id, dep->survey_id, dep->rversion)) {
        fe_cache_del(dep_cache, dep_id); /* older than a change of the deployment or its survey */
        return NULL;
    }
    return dep;
}

bool fe_depcache_perm(const char *perm_key, const fe_dep_info *dep, char *perm, bool *fresh)
{
    perm_info *p = fe_cache_get(perm_cache, perm_key, fe_cache_now(), fresh);
    if (!p || strlen(perm_key) != 2 * FV_UUID_STRLEN + 1) return false;
    if (!fe_depcache_dep_current(perm_key + FV_UUID_STRLEN + 1, dep->survey_id, p->rversion)) {
        fe_cache_del(perm_cache, perm_key);
        return false;
    }
    *perm = p->perm;
    return true;
}

void fe_depcache_remember(const char *dep_id, fe_dep_info *dep, const char *perm_key, char perm,
                          long long version)
{
    time_t now = fe_cache_now();
    char user_id[FV_UUID_STRLEN + 1] = "";
    if (perm_key) snprintf(user_id, sizeof user_id, "%.*s", FV_UUID_STRLEN, perm_key);
    /* an answer older than a revocation of its user this child has read is not kept */
    if (perm_key && fe_revoke_unchanged_since(FE_REVOKE_PERMISSIONS, user_id, version)) {
        perm_info *p = calloc(1, sizeof *p);
        if (p) {
            p->perm = perm;
            p->rversion = version;
            fe_cache_put(perm_cache, perm_key, p, now, fe_cfg.deployment_cache_ttl_s,
                         fe_cfg.cache_stale_s);
        }
    }
    fe_cache_put(dep_cache, dep_id, dep, now, fe_cfg.deployment_cache_ttl_s, fe_cfg.cache_stale_s);
}

fe_dep_info *fe_depcache_remember_missing(const char *dep_id)
{
    fe_dep_info *dep = calloc(1, sizeof *dep);
    if (!dep) return NULL;
    dep->missing = true;
    fe_cache_put(dep_cache, dep_id, dep, fe_cache_now(), FE_NEGATIVE_TTL_S, FE_NEGATIVE_TTL_S);
    return dep;
}

/* The form id and version the definition def names ({"xform": {...}}) into dep ("" when absent;
 * cut at FV_INSTANCE_MAX_ID bytes). */
static void dep_xform(fe_dep_info *dep, yajl_val def)
{
    yajl_val x = fv_json_get(def, "xform");
    const char *f = x ? fv_json_get_str(x, "form_id") : NULL,
               *v = x ? fv_json_get_str(x, "version") : NULL;
    snprintf(dep->xform_form_id, sizeof dep->xform_form_id, "%s", f ? f : "");
    snprintf(dep->xform_version, sizeof dep->xform_version, "%s", v ? v : "");
}

fe_dep_info *fe_dep_info_from_definition(const char *survey_id, int version, const char *definition,
                                         bool closed, bool archived, long long rversion, int key_bytes)
{
    fe_dep_info *dep = calloc(1, sizeof *dep);
    if (!dep) return NULL;
    dep->key_bytes = key_bytes;
    dep->closed = closed;
    dep->archived = archived;
    dep->rversion = rversion;
    char err[128];
    yajl_val def = fv_json_parse(definition, err, sizeof err); /* owned here */
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    dep->form = def ? fv_form_compile_stored(def, &errs) : NULL;
    fv_form_errors_free(&errs);
    if (def) {
        dep_xform(dep, def);
        yajl_tree_free(def);
    }
    dep->definition = strdup(definition);
    if (!dep->form || !dep->definition) {
        fv_form_free(dep->form);
        free(dep->definition);
        free(dep);
        return NULL;
    }
    snprintf(dep->survey_id, sizeof dep->survey_id, "%s", survey_id);
    dep->version = version;
    return dep;
}

/* def as JSON text (caller frees), or NULL. */
static char *def_text(yajl_val def)
{
    fv_jgen *j = fv_jgen_new();
    if (!j) return NULL;
    fv_jgen_tree(j, def);
    const char *t = fv_jgen_buf(j, NULL);
    char *out = t ? strdup(t) : NULL;
    fv_jgen_free(j);
    return out;
}

/* A deployment from its JSON text (json[len] need not be NUL-terminated), shared at revocation
 * version rversion. An entry without `closed`, `archived` or `key_bytes` (shared by an older
 * front end) is not used: an encrypted survey's entry must never pass for one in clear. */
static fe_dep_info *dep_from_json(const char *json, size_t len, long long rversion)
{
    char err[64], *text = strndup(json, len); /* owned here */
    yajl_val v = text ? fv_json_parse(text, err, sizeof err) : NULL;
    free(text);
    const char *survey_id = fv_json_get_str(v, "survey_id");
    yajl_val version = fv_json_get(v, "version"), def = fv_json_get(v, "definition");
    yajl_val closed = fv_json_get(v, "closed"), archived = fv_json_get(v, "archived");
    yajl_val kb = fv_json_get(v, "key_bytes");
    fe_dep_info *dep = calloc(1, sizeof *dep);
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    if (dep && survey_id && fv_id_valid(survey_id) && version && YAJL_IS_INTEGER(version) &&
        YAJL_GET_INTEGER(version) >= 1 && closed && (YAJL_IS_TRUE(closed) || YAJL_IS_FALSE(closed)) &&
        archived && (YAJL_IS_TRUE(archived) || YAJL_IS_FALSE(archived)) && kb && YAJL_IS_INTEGER(kb) &&
        YAJL_GET_INTEGER(kb) >= 0 && YAJL_GET_INTEGER(kb) <= 1024 && def &&
        (dep->form = fv_form_compile_stored(def, &errs)) && (dep->definition = def_text(def))) {
        snprintf(dep->survey_id, sizeof dep->survey_id, "%s", survey_id);
        dep->version = (int)YAJL_GET_INTEGER(version);
        dep->closed = YAJL_IS_TRUE(closed);
        dep->archived = YAJL_IS_TRUE(archived);
        dep->rversion = rversion;
        dep->key_bytes = (int)YAJL_GET_INTEGER(kb);
        dep_xform(dep, def);
    } else {
        if (dep) fv_form_free(dep->form);
        free(dep);
        dep = NULL;
    }
    fv_form_errors_free(&errs);
    if (v) yajl_tree_free(v);
    return dep;
}

void fe_depcache_redis_keys(const char *dep_id, const char *user_id, char dep_key[FE_DEPCACHE_KEY_MAX],
                            char perm_key[FE_DEPCACHE_KEY_MAX])
{
    snprintf(dep_key, FE_DEPCACHE_KEY_MAX, "fv:cache:deployment:%s", dep_id);
    snprintf(perm_key, FE_DEPCACHE_KEY_MAX, "fv:cache:enumerator:%s", user_id);
}

fe_dep_info *fe_dep_info_from_shared(const char *dep_id, const char *text, size_t len)
{
    char key[FE_DEPCACHE_KEY_MAX];
    snprintf(key, sizeof key, "fv:cache:deployment:%s", dep_id);
    long long version;
    size_t plen;
    const char *json = fe_shared_open(key, NULL, text, len, &version, &plen);
    return json ? dep_from_json(json, plen, version) : NULL;
}

bool fe_depcache_shared_perm(const char *dep_id, const char *user_id, const char *survey_id,
                             const char *text, size_t len, char *perm, long long *version)
{
    char key[FE_DEPCACHE_KEY_MAX];
    snprintf(key, sizeof key, "fv:cache:enumerator:%s", user_id);
    size_t plen;
    const char *p = fe_shared_open(key, dep_id, text, len, version, &plen);
    if (!p || plen != 1 ||
        (p[0] != FE_PERM_ENUMERATOR && p[0] != FE_PERM_VISIBLE && p[0] != FE_PERM_HIDDEN))
        return false;
    /* shared before a revocation of this user that this child has read: stale */
    if (!fe_revoke_unchanged_since(FE_REVOKE_PERMISSIONS, user_id, *version)) return false;
    /* shared before the deployment's principals changed, it closed, or its survey changed */
    if (!fe_depcache_dep_current(dep_id, survey_id, *version)) return false;
    *perm = p[0];
    return true;
}

void fe_depcache_forget_user_shared(const char *user_id)
{
    char key[FE_DEPCACHE_KEY_MAX];
    snprintf(key, sizeof key, "fv:cache:enumerator:%s", user_id);
    const char *argv[] = {"DEL", key};
    size_t lens[] = {3, strlen(key)};
    fe_redis_fire(2, argv, lens);
}

void fe_depcache_share(const char *dep_id, const char *user_id, const fe_dep_info *dep,
                       const char *definition, size_t deflen, char perm)
{
    long long rversion = dep->rversion;
    /* not shared when already known stale here (the others would refuse it too) */
    if (!fe_revoke_unchanged_since(FE_REVOKE_PERMISSIONS, user_id, rversion) ||
        !fe_depcache_dep_current(dep_id, dep->survey_id, rversion))
        return;
    char dep_key[FE_DEPCACHE_KEY_MAX], perm_key[FE_DEPCACHE_KEY_MAX];
    fe_depcache_redis_keys(dep_id, user_id, dep_key, perm_key);
    fv_jgen *j = fv_jgen_new();
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "survey_id");
    fv_jgen_str(j, dep->survey_id);
    fv_jgen_key(j, "version");
    fv_jgen_int(j, dep->version);
    fv_jgen_key(j, "closed");
    fv_jgen_bool(j, dep->closed);
    fv_jgen_key(j, "archived");
    fv_jgen_bool(j, dep->archived);
    fv_jgen_key(j, "key_bytes");
    fv_jgen_int(j, dep->key_bytes);
    fv_jgen_key(j, "definition");
    fv_jgen_raw(j, definition, deflen);
    fv_jgen_map_close(j);
    size_t len;
    const char *json = fv_jgen_buf(j, &len);
    if (json) fe_shared_set(dep_key, rversion, json, len, fe_cfg.redis_cache_ttl_s);
    else fv_error("deployment cache entry not shared: %s", fv_jgen_error(j));
    fv_jgen_free(j);
    const char value[2] = {perm, '\0'};
    fe_shared_hset(perm_key, dep_id, rversion, value, 1, fe_cfg.redis_cache_ttl_s);
}

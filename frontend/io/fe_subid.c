/* Submission id claims in Redis (fe_subid.h). */
#include "fe_subid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_config.h"
#include "fe_redis.h"
#include "fv_id.h"
#include "fv_log.h"

#define KEY_MAX (sizeof "fv:subid:" + FV_UUID_STRLEN)
#define VALUE_MAX (2 * FV_UUID_STRLEN + 2)

/* One claim or lookup in flight: owned by the Redis callback, freed there. */
typedef struct claim {
    char value[VALUE_MAX]; /* "<submitter>:<deployment>", or "<user>:" for a lookup */
    fe_subid_cb cb;
    fe_subid_lookup_cb lookup_cb;
    void *arg;
} claim;

static void key_of(const char *id, char key[KEY_MAX])
{
    snprintf(key, KEY_MAX, "fv:subid:%s", id);
}

/* An error reply (an old Redis without SET NX GET, an ACL refusing the key, out of memory) is
 * logged once per child: submissions go on unclaimed, the worker still refuses conflicts. */
static void warn_error_once(const redisReply *reply)
{
    static bool warned;
    if (warned) return;
    warned = true;
    fv_warn("submission id claims unavailable (the worker still refuses conflicts): %.*s",
            (int)(reply->len < 200 ? reply->len : 200), reply->str ? reply->str : "");
}

static void claimed(redisReply *reply, const char *error, void *arg)
{
    claim *c = arg;
    fe_subid_outcome out = FE_SUBID_UNKNOWN;
    if (reply && reply->type == REDIS_REPLY_NIL) {
        out = FE_SUBID_NEW;
    } else if (reply && reply->type == REDIS_REPLY_STRING) {
        out = reply->len == strlen(c->value) && memcmp(reply->str, c->value, reply->len) == 0
                  ? FE_SUBID_RETRY
                  : FE_SUBID_TAKEN;
    } else if (reply && reply->type == REDIS_REPLY_ERROR) {
        warn_error_once(reply);
    }
    fe_subid_cb cb = c->cb;
    void *cb_arg = c->arg;
    free(c);
    cb(out, cb_arg);
}

void fe_subid_claim(const char *id, const char *submitter, const char *deployment, fe_subid_cb cb,
                    void *arg)
{
    if (fe_cfg.submission_claim_ttl_s <= 0 || !fe_redis_ready()) {
        cb(FE_SUBID_UNKNOWN, arg);
        return;
    }
    claim *c = calloc(1, sizeof *c);
    if (!c) {
        cb(FE_SUBID_UNKNOWN, arg);
        return;
    }
    snprintf(c->value, sizeof c->value, "%s:%s", submitter, deployment);
    c->cb = cb;
    c->arg = arg;
    char key[KEY_MAX], ttl[16];
    key_of(id, key);
    snprintf(ttl, sizeof ttl, "%d", fe_cfg.submission_claim_ttl_s);
    const char *argv[] = {"SET", key, c->value, "NX", "GET", "EX", ttl};
    size_t lens[] = {3, strlen(key), strlen(c->value), 2, 3, 2, strlen(ttl)};
    if (!fe_cfg.submission_claim_wait) {
        /* Sent ahead of the XADD on the same connection, not waited for: no added latency. */
        fe_redis_fire(7, argv, lens);
        free(c);
        cb(FE_SUBID_UNKNOWN, arg);
        return;
    }
    if (fe_redis_command(7, argv, lens, claimed, c) != 0) {
        free(c); /* not sent: claimed() will not run */
        cb(FE_SUBID_UNKNOWN, arg);
    }
}

static void looked_up(redisReply *reply, const char *error, void *arg)
{
    claim *c = arg;
    fe_subid_holder h = FE_SUBID_CANNOT_TELL;
    if (reply && reply->type == REDIS_REPLY_NIL) {
        h = FE_SUBID_NOT_USERS;
    } else if (reply && reply->type == REDIS_REPLY_STRING) {
        size_t n = strlen(c->value); /* "<user>:" */
        h = reply->len > n && memcmp(reply->str, c->value, n) == 0 ? FE_SUBID_HELD_BY_USER
                                                                   : FE_SUBID_NOT_USERS;
    } else if (reply && reply->type == REDIS_REPLY_ERROR) {
        warn_error_once(reply);
    }
    fe_subid_lookup_cb cb = c->lookup_cb;
    void *cb_arg = c->arg;
    free(c);
    cb(h, cb_arg);
}

void fe_subid_lookup(const char *id, const char *user, fe_subid_lookup_cb cb, void *arg)
{
    if (fe_cfg.submission_claim_ttl_s <= 0) {
        cb(FE_SUBID_NOT_USERS, arg); /* no claims are made: nothing queued can be told */
        return;
    }
    claim *c = fe_redis_ready() ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        cb(FE_SUBID_CANNOT_TELL, arg);
        return;
    }
    snprintf(c->value, sizeof c->value, "%s:", user);
    c->lookup_cb = cb;
    c->arg = arg;
    char key[KEY_MAX];
    key_of(id, key);
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, strlen(key)};
    if (fe_redis_command(2, argv, lens, looked_up, c) != 0) {
        free(c);
        cb(FE_SUBID_CANNOT_TELL, arg);
    }
}

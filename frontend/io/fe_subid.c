/* Submission id claims in Redis (fe_subid.h). */
#include "fe_subid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_config.h"
#include "fe_redis.h"
#include "fv_envelope.h"
#include "fv_id.h"
#include "fv_log.h"

#define KEY_MAX FE_SUBID_KEY_MAX
#define VALUE_MAX FE_SUBID_VALUE_MAX

/* One lookup in flight: owned by the Redis callback, freed there. */
typedef struct claim {
    char value[VALUE_MAX]; /* "<user>:" */
    fe_subid_lookup_cb lookup_cb;
    void *arg;
} claim;

static void key_of(const char *id, char key[KEY_MAX])
{
    snprintf(key, KEY_MAX, FV_SUBID_KEY_PREFIX "%s", id);
}

/* An error reply (an ACL refusing the key, out of memory) is logged once per child. */
static void warn_error_once(const redisReply *reply)
{
    static bool warned;
    if (warned) return;
    warned = true;
    fv_warn("submission id claims cannot be read: %.*s", (int)(reply->len < 200 ? reply->len : 200),
            reply->str ? reply->str : "");
}

bool fe_subid_enabled(void)
{
    return fe_cfg.submission_claim_ttl_s > 0;
}

void fe_subid_claim_of(const char *id, const char *submitter, const char *deployment,
                       char key[FE_SUBID_KEY_MAX], char value[FE_SUBID_VALUE_MAX])
{
    key_of(id, key);
    snprintf(value, FE_SUBID_VALUE_MAX, "%s:%s", submitter, deployment);
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

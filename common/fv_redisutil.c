/* Blocking hiredis helpers: connect with timeouts and AUTH, uniform error text. */
#include "fv_redisutil.h"

#include <stdio.h>

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

void fv_redisutil_error(const redisContext *c, const redisReply *r, char *err, size_t errlen)
{
    if (r && r->type == REDIS_REPLY_ERROR) snprintf(err, errlen, "%s", r->str);
    else if (c && c->err) snprintf(err, errlen, "%s", c->errstr);
    else if (r) snprintf(err, errlen, "unexpected reply type %d", r->type);
    else snprintf(err, errlen, "no reply");
}

redisContext *fv_redisutil_connect(const char *host, int port, const char *user, const char *password,
                                   int connect_timeout_ms, int command_timeout_ms, char *err,
                                   size_t errlen)
{
    redisReply *r = NULL;
    redisContext *c = redisConnectWithTimeout(host, port, ms_to_tv(connect_timeout_ms));
    if (c == NULL) {
        snprintf(err, errlen, "redisConnectWithTimeout: out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "connect %s:%d: %s", host, port, c->errstr);
        goto failed;
    }
    if (redisSetTimeout(c, ms_to_tv(command_timeout_ms)) != REDIS_OK) {
        snprintf(err, errlen, "redisSetTimeout: %s", c->errstr);
        goto failed;
    }
    (void)redisEnableKeepAlive(c);
    if (password && *password) {
        r = user && *user ? redisCommand(c, "AUTH %s %s", user, password)
                          : redisCommand(c, "AUTH %s", password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            char why[256];
            fv_redisutil_error(c, r, why, sizeof why);
            snprintf(err, errlen, "AUTH: %s", why);
            goto failed;
        }
        freeReplyObject(r);
    }
    return c;
failed:
    if (r) freeReplyObject(r);
    redisFree(c);
    return NULL;
}

/* Blocking hiredis helpers for the programs that may block (fv-worker, fvctl). */
#ifndef FV_REDISUTIL_H
#define FV_REDISUTIL_H

#include <hiredis/hiredis.h>
#include <stddef.h>

/* Connects to host:port within connect_timeout_ms, sets command_timeout_ms as the read/write
 * timeout, enables TCP keep-alive and sends AUTH when password is not empty (AUTH user password
 * when user is not empty either: a Redis 6+ ACL user). Returns a context the caller frees with
 * redisFree, or NULL with a reason in err. */
redisContext *fv_redisutil_connect(const char *host, int port, const char *user, const char *password,
                                   int connect_timeout_ms, int command_timeout_ms, char *err,
                                   size_t errlen);

/* Describes a failed command: the context's I/O error, or an error reply, into err. */
void fv_redisutil_error(const redisContext *c, const redisReply *r, char *err, size_t errlen);

#endif

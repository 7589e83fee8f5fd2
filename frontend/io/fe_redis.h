/* Non-blocking Redis for a front-end child: one hiredis async connection on the child's event
 * loop (commands pipeline naturally), a deadline per command, reconnect with backoff. */
#ifndef FE_REDIS_H
#define FE_REDIS_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

/* reply is borrowed (freed by hiredis after the callback); NULL when the command failed
 * (disconnected, timed out), in which case error says why. An error reply is passed as is. */
typedef void (*fe_redis_cb)(redisReply *reply, const char *error, void *arg);

/* Connects to ip:port (no DNS); AUTH [user] password when password is not empty. Returns 0 or -1. */
int fe_redis_init(struct event_base *base, const char *ip, int port, const char *user,
                  const char *password, int timeout_ms);
void fe_redis_shutdown(void);
bool fe_redis_ready(void);
/* Sends a command. Returns 0 when sent (cb will be called exactly once, never before this
 * returns), or -1 when Redis is not connected or overloaded (cb is not called). argv is copied. */
int fe_redis_command(int argc, const char **argv, const size_t *lens, fe_redis_cb cb, void *arg);
/* Sends MULTI, the n commands (argcs[i], argvs[i], lenss[i]) and EXEC back to back on the one
 * connection, so no other command can fall between them and Redis runs them as one step (and
 * writes them to the append-only file as one). Same contract as fe_redis_command; cb gets EXEC's
 * reply (an array of the n replies, or an error such as EXECABORT when Redis refused one of them
 * while queueing: then none ran). */
int fe_redis_transaction(int n, const int *argcs, const char *const *const *argvs,
                         const size_t *const *lenss, fe_redis_cb cb, void *arg);

/* SET key value EX ttl_s, best effort: nothing is reported (used to share cached lookups). */
void fe_redis_set_ex(const char *key, const char *value, size_t len, int ttl_s);
/* Any command, best effort: sent when connected, the reply ignored (argv is copied). */
void fe_redis_fire(int argc, const char **argv, const size_t *lens);

#endif

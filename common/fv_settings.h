/* Settings every program shares ([common] section): where PostgreSQL and Redis are, logging. */
#ifndef FV_SETTINGS_H
#define FV_SETTINGS_H

#include "fv_config.h"

typedef struct fv_common_settings {
    char *pg_dsn;         /* libpq connection string */
    char *redis_host;     /* an IP address (no DNS on the event loop) */
    int redis_port;
    char *redis_user;     /* the ACL user for AUTH; empty: AUTH <password> (Redis' `default`) */
    char *redis_password; /* AUTH when not empty */
    char *stream;         /* the submissions stream */
    char *dead_stream;    /* where entries that keep failing go */
    char *group;          /* the workers' consumer group */
    char *log_level;
    char *key_file;       /* the master key file (fv_keys.h) */
} fv_common_settings;

extern fv_common_settings fv_common;

/* Expands to the [common] entries of a program's table. */
#define FV_COMMON_CFG_ENTRIES                                                                  \
    {"common", "pg_dsn", FV_CFG_STR, &fv_common.pg_dsn,                                        \
     "host=127.0.0.1 port=5432 dbname=fieldvault user=fieldvault",                             \
     "libpq connection string of the primary PostgreSQL"},                                     \
    {"common", "redis_host", FV_CFG_STR, &fv_common.redis_host, "127.0.0.1",                   \
     "Redis address (an IP address: no DNS lookups on the event loop)"},                       \
    {"common", "redis_port", FV_CFG_INT, &fv_common.redis_port, "6379", "Redis port"},         \
    {"common", "redis_user", FV_CFG_STR, &fv_common.redis_user, "",                            \
     "Redis ACL user; empty for a password-only AUTH (the user named default)"},                \
    {"common", "redis_password", FV_CFG_STR, &fv_common.redis_password, "",                    \
     "Redis AUTH password; empty for none"},                                                   \
    {"common", "stream", FV_CFG_STR, &fv_common.stream, "fv:submissions",                      \
     "Redis stream that carries submissions from front ends to workers"},                      \
    {"common", "dead_stream", FV_CFG_STR, &fv_common.dead_stream, "fv:dead",                   \
     "Redis stream for entries that failed max_deliveries times"},                             \
    {"common", "group", FV_CFG_STR, &fv_common.group, "workers",                               \
     "consumer group the workers read the stream with"},                                       \
    {"common", "log_level", FV_CFG_STR, &fv_common.log_level, "info",                          \
     "error, warn, info or debug"},                                                            \
    {"common", "key_file", FV_CFG_STR, &fv_common.key_file, "/etc/fieldvault/keys/master.key", \
     "master key file: 64 hex characters per line, current key first (mode 600)"}

#endif

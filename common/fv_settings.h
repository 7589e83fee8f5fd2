/* Settings every program shares ([common] section): where PostgreSQL and Redis are, logging. */
#ifndef FV_SETTINGS_H
#define FV_SETTINGS_H

#include "fv_config.h"

typedef struct fv_common_settings {
    char *pg_dsn;     /* libpq connection string */
    char *redis_host; /* an IP address (no DNS on the event loop) */
    int redis_port;
    char *redis_user;     /* the ACL user for AUTH; empty: AUTH <password> (Redis' `default`) */
    char *redis_password; /* AUTH when not empty */
    char *stream;         /* the submissions stream */
    char *dead_stream;    /* where entries that keep failing go */
    char *group;          /* the workers' consumer group */
    char *log_level;
    char *key_file; /* the master key file (fv_keys.h) */
} fv_common_settings;

extern fv_common_settings fv_common;

/* Checks the [common] values a range cannot (log_level is a level name). Every program's check
 * function calls it first. */
void fv_common_check(fv_cfg_load *ld);

/* Expands to the [common] entries of a program's table; log_reload says whether the program
 * applies a new log_level on SIGHUP (only fv-balancer does). */
#define FV_COMMON_CFG_ENTRIES FV_COMMON_CFG_ENTRIES_WITH(FV_CFG_RESTART)
#define FV_COMMON_CFG_ENTRIES_WITH(log_reload)                                                          \
    FV_CFG_STR_KEY("common", "pg_dsn", &fv_common.pg_dsn,                                               \
                   "host=127.0.0.1 port=5432 dbname=fieldvault user=fieldvault", FV_CFG_RESTART,        \
                   "libpq connection string of the primary PostgreSQL"),                                \
        FV_CFG_STR_KEY("common", "redis_host", &fv_common.redis_host, "127.0.0.1", FV_CFG_RESTART,      \
                       "Redis address (an IP address: no DNS lookups on the event loop)"),              \
        FV_CFG_INT_KEY("common", "redis_port", &fv_common.redis_port, "6379", 1, 65535, FV_CFG_RESTART, \
                       "Redis port"),                                                                   \
        FV_CFG_STR_KEY("common", "redis_user", &fv_common.redis_user, "", FV_CFG_RESTART,               \
                       "Redis ACL user; empty for a password-only AUTH (the user named default)"),      \
        FV_CFG_STR_KEY("common", "redis_password", &fv_common.redis_password, "", FV_CFG_RESTART,       \
                       "Redis AUTH password; empty for none"),                                          \
        FV_CFG_STR_KEY("common", "stream", &fv_common.stream, "fv:submissions", FV_CFG_RESTART,         \
                       "Redis stream that carries submissions from front ends to workers"),             \
        FV_CFG_STR_KEY("common", "dead_stream", &fv_common.dead_stream, "fv:dead", FV_CFG_RESTART,      \
                       "Redis stream for entries that failed max_deliveries times"),                    \
        FV_CFG_STR_KEY("common", "group", &fv_common.group, "workers", FV_CFG_RESTART,                  \
                       "consumer group the workers read the stream with"),                              \
        FV_CFG_STR_KEY("common", "log_level", &fv_common.log_level, "info", (log_reload),               \
                       "error, warn, info or debug"),                                                   \
        FV_CFG_STR_KEY("common", "key_file", &fv_common.key_file, "/etc/fieldvault/keys/master.key",    \
                       FV_CFG_RESTART,                                                                  \
                       "master key file: 64 hex characters per line, current key first (mode 600)")

#endif

/* fv-worker's configuration table: the one place its keys, defaults and help live. */
#include "wk_config.h"

#include <stdio.h>

wk_settings wk_cfg;

const fv_cfg_entry wk_config_table[] = {
    FV_COMMON_CFG_ENTRIES,
    {"worker", "batch_size", FV_CFG_INT, &wk_cfg.batch_size, "500",
     "stream entries read at once and written in one PostgreSQL transaction"},
    {"worker", "block_ms", FV_CFG_INT, &wk_cfg.block_ms, "1000",
     "how long one XREADGROUP waits for new entries, in ms"},
    {"worker", "claim_idle_ms", FV_CFG_INT, &wk_cfg.claim_idle_ms, "30000",
     "entries pending this long (ms) in any consumer's list are taken over with XAUTOCLAIM"},
    {"worker", "max_deliveries", FV_CFG_INT, &wk_cfg.max_deliveries, "5",
     "an entry that failed after this many deliveries moves to the dead-letter stream"},
    {"worker", "consumer_name", FV_CFG_STR, &wk_cfg.consumer_name, "",
     "this worker's name in the consumer group; empty means <hostname>:<pid>"},
    {"worker", "pg_retry_max_ms", FV_CFG_INT, &wk_cfg.pg_retry_max_ms, "5000",
     "longest wait (ms) between reconnection attempts to PostgreSQL and Redis"},
    {"worker", "pg_statement_timeout_ms", FV_CFG_INT, &wk_cfg.pg_statement_timeout_ms, "60000",
     "statement_timeout (ms) of the worker's PostgreSQL session; 0 for none"},
    {"worker", "io_timeout_ms", FV_CFG_INT, &wk_cfg.io_timeout_ms, "5000",
     "connect timeout (ms) for PostgreSQL and Redis; a Redis reply may take this long past block_ms"},
    {NULL, NULL, 0, NULL, NULL, NULL},
};

int wk_config_validate(char *err, size_t errlen)
{
    const char *bad = NULL;
    if (wk_cfg.batch_size < 1 || wk_cfg.batch_size > 100000) bad = "batch_size must be 1..100000";
    else if (wk_cfg.block_ms < 1) bad = "block_ms must be at least 1 (0 would block forever)";
    else if (wk_cfg.claim_idle_ms < 1) bad = "claim_idle_ms must be at least 1";
    else if (wk_cfg.max_deliveries < 1) bad = "max_deliveries must be at least 1";
    else if (wk_cfg.pg_retry_max_ms < 1) bad = "pg_retry_max_ms must be at least 1";
    else if (wk_cfg.pg_statement_timeout_ms < 0) bad = "pg_statement_timeout_ms must not be negative";
    else if (wk_cfg.io_timeout_ms < 1) bad = "io_timeout_ms must be at least 1";
    else if (fv_common.redis_port < 1 || fv_common.redis_port > 65535) bad = "redis_port must be 1..65535";
    if (bad) {
        snprintf(err, errlen, "%s", bad);
        return -1;
    }
    return 0;
}

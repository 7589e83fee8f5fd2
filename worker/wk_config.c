/* fv-worker's configuration table: the one place its keys, defaults and help live. */
#include "wk_config.h"

#include <limits.h>

wk_settings wk_cfg;

const fv_cfg_entry wk_config_table[] = {
    FV_COMMON_CFG_ENTRIES,
    FV_CFG_INT_KEY("worker", "batch_size", &wk_cfg.batch_size, "500", 1, 100000, FV_CFG_RESTART,
                   "stream entries read at once and written in one PostgreSQL transaction"),
    FV_CFG_INT_KEY("worker", "block_ms", &wk_cfg.block_ms, "1000", 1, INT_MAX, FV_CFG_RESTART,
                   "how long one XREADGROUP waits for new entries, in ms"),
    FV_CFG_INT_KEY(
        "worker", "claim_idle_ms", &wk_cfg.claim_idle_ms, "30000", 1, INT_MAX, FV_CFG_RESTART,
        "entries pending this long (ms) in any consumer's list are taken over with XAUTOCLAIM"),
    FV_CFG_INT_KEY("worker", "max_deliveries", &wk_cfg.max_deliveries, "5", 1, INT_MAX, FV_CFG_RESTART,
                   "an entry that failed after this many deliveries moves to the dead-letter stream"),
    FV_CFG_STR_KEY("worker", "consumer_name", &wk_cfg.consumer_name, "", FV_CFG_RESTART,
                   "this worker's name in the consumer group; empty means <hostname>:<pid>"),
    FV_CFG_INT_KEY("worker", "pg_retry_max_ms", &wk_cfg.pg_retry_max_ms, "5000", 1, INT_MAX,
                   FV_CFG_RESTART,
                   "longest wait (ms) between reconnection attempts to PostgreSQL and Redis"),
    FV_CFG_INT_KEY("worker", "pg_statement_timeout_ms", &wk_cfg.pg_statement_timeout_ms, "60000", 0,
                   INT_MAX, FV_CFG_RESTART,
                   "statement_timeout (ms) of the worker's PostgreSQL session; 0 for none"),
    FV_CFG_INT_KEY(
        "worker", "io_timeout_ms", &wk_cfg.io_timeout_ms, "5000", 1, INT_MAX, FV_CFG_RESTART,
        "connect timeout (ms) for PostgreSQL and Redis; a Redis reply may take this long past block_ms"),
    FV_CFG_INT_KEY(
        "worker", "jobs_poll_ms", &wk_cfg.jobs_poll_ms, "1000", 10, 3600000, FV_CFG_RESTART,
        "how often (ms) a worker holding no job looks for one (queued, or its lease expired)"),
    FV_CFG_INT_KEY("worker", "jobs_lease_ms", &wk_cfg.jobs_lease_ms, "30000", 100, 3600000,
                   FV_CFG_RESTART,
                   "a job's lease (ms), renewed by every step: a job whose worker died is taken over "
                   "by another once it expires"),
    FV_CFG_INT_KEY("worker", "jobs_step_items", &wk_cfg.jobs_step_items, "50", 1, 10000, FV_CFG_RESTART,
                   "objects one step of a job handles in one transaction, between two batches"),
    FV_CFG_INT_KEY("worker", "jobs_max_attempts", &wk_cfg.jobs_max_attempts, "5", 1, 1000,
                   FV_CFG_RESTART,
                   "a job claimed this many times (its workers crashed) or whose step failed this "
                   "many times in a row ends failed"),
    FV_CFG_INT_KEY("worker", "export_ttl_s", &wk_cfg.export_ttl_s, "86400", 1, 31536000, FV_CFG_RESTART,
                   "an organisation export can be downloaded for this long (s) after it was built; "
                   "then its bytes are deleted and downloads answer 410 export_expired"),
    FV_CFG_INT_KEY("worker", "export_chunk_bytes", &wk_cfg.export_chunk_bytes, "1048576", 65536, 8388608,
                   FV_CFG_RESTART,
                   "bytes of one chunk of an export's zip stored in PostgreSQL (export_chunks)"),
    FV_CFG_INT_KEY("worker", "export_step_rows", &wk_cfg.export_step_rows, "5000", 1, 1000000,
                   FV_CFG_RESTART, "rows one step of an export job reads (in batches) and writes"),
    FV_CFG_INT_KEY("worker", "export_sweep_ms", &wk_cfg.export_sweep_ms, "60000", 100, 3600000,
                   FV_CFG_RESTART, "how often (ms) a worker deletes expired and failed exports"),
    FV_CFG_INT_KEY("worker", "reseal_sweep_ms", &wk_cfg.reseal_sweep_ms, "10000", 100, 3600000,
                   FV_CFG_RESTART,
                   "how often (ms) a worker looks for stored values to seal again: OpenRosa XML "
                   "and attachments in clear (stored before migration 026) or under an older data "
                   "key of their organisation (fvctl rotate-data-key); sooner while some are left"),
    FV_CFG_INT_KEY("worker", "reseal_sweep_rows", &wk_cfg.reseal_sweep_rows, "100", 1, 10000,
                   FV_CFG_RESTART, "values one re-seal sweep seals at most (each its own transaction)"),
    FV_CFG_BOOL_KEY("worker", "queue_accept_unsealed", &wk_cfg.queue_accept_unsealed, "yes",
                    FV_CFG_RESTART,
                    "accept stream entries whose payload is not sealed (from a front end older than "
                    "queue sealing); turn off once every front end seals, so only sealed entries "
                    "are stored and any other is dead-lettered"),
    FV_CFG_END,
};

void wk_config_check(fv_cfg_load *ld)
{
    /* Every integer's range is in the table; no key depends on another. */
    fv_common_check(ld);
}

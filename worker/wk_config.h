/* fv-worker's settings: its configuration table and where the values live. */
#ifndef WK_CONFIG_H
#define WK_CONFIG_H

#include "fv_config.h"
#include "fv_settings.h"

typedef struct wk_settings {
    int batch_size;              /* entries per XREADGROUP / XAUTOCLAIM and per transaction */
    int block_ms;                /* XREADGROUP BLOCK */
    int claim_idle_ms;           /* pending entries idle this long are taken over */
    int max_deliveries;          /* deliveries before an entry goes to the dead-letter stream */
    char *consumer_name;         /* "" = "<hostname>:<pid>"; owned by the table */
    int pg_retry_max_ms;         /* backoff cap when reconnecting to PostgreSQL or Redis */
    int pg_statement_timeout_ms; /* statement_timeout of the worker's session */
    int io_timeout_ms;           /* connect timeouts, and a Redis reply's allowance past block_ms */
    int jobs_poll_ms;            /* how often an idle worker looks for a job (wk_jobs.h) */
    int jobs_lease_ms;           /* a job whose worker renewed its lease this long ago is taken over */
    int jobs_step_items;         /* objects one step of a job handles (one transaction) */
    int jobs_max_attempts;       /* claims (crashes) or failed steps before a job ends failed */
    int export_ttl_s;            /* a ready export is deleted this long after it was built */
    int export_chunk_bytes;      /* bytes of one stored chunk of an export's zip */
    int export_step_rows;        /* rows one step of an export job reads and writes */
    int export_sweep_ms;         /* how often expired exports are looked for */
    int reseal_sweep_ms;         /* how often values to seal again are looked for (wk_seal.h) */
    int reseal_sweep_rows;       /* values one re-seal sweep seals at most */
    bool queue_accept_unsealed;  /* take entries without a sealed payload (older front ends) */
} wk_settings;

extern wk_settings wk_cfg;
extern const fv_cfg_entry wk_config_table[];

/* Checks what the table's ranges cannot (the [common] values); reports on the key at fault. */
void wk_config_check(fv_cfg_load *ld);

#endif

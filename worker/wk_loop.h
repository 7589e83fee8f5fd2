/* The worker's consumer loop: moves one batch at a time through read, write, commit, ack. */
#ifndef WK_LOOP_H
#define WK_LOOP_H

#include <signal.h>

#include "wk_batch.h"
#include "wk_jobs.h"
#include "wk_store.h"
#include "wk_stream.h"

typedef struct wk_loop {
    wk_stream stream;                  /* owned connection to Redis */
    wk_store store;                    /* owned connection to PostgreSQL */
    wk_batch batch;                    /* the one batch in flight */
    wk_jobs jobs;                      /* the job being run between batches (on store) */
    const volatile sig_atomic_t *stop; /* borrowed: set by SIGTERM/SIGINT */
    bool own_pending;                  /* still re-reading this consumer's pending list */
    char own_cursor[64];               /* ... after this id */
    long long last_claim_ms;           /* when XAUTOCLAIM last ran */
    bool claim_more;                   /* the last XAUTOCLAIM scan did not reach the end */
    unsigned long long written, dead;  /* totals for the log */
    unsigned long long dead_at_read;   /* L->dead when the batch in flight was read */
    unsigned pg_failures;              /* consecutive PostgreSQL failures: only the first warns */
} wk_loop;

/* Sets up L from wk_cfg and fv_common (which must outlive it); stop is the shutdown flag. */
void wk_loop_init(wk_loop *L, const char *consumer, const volatile sig_atomic_t *stop);
/* Runs until *stop, finishing the batch in flight first. Returns the exit status. */
int wk_loop_run(wk_loop *L);
/* Closes the connections and frees the batch. */
void wk_loop_free(wk_loop *L);

#endif

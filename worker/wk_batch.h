/* A worker batch: the stream entries one read delivered, their parse, and where each stands. */
#ifndef WK_BATCH_H
#define WK_BATCH_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "fv_envelope.h"
#include "fv_qseal.h"

/* Where one entry of a batch stands. */
typedef enum wk_entry_state {
    WK_ENTRY_NEW,     /* parsed and valid, not yet written to PostgreSQL */
    WK_ENTRY_POISON,  /* malformed: goes to the dead-letter stream without any write */
    WK_ENTRY_GONE,    /* deleted from the stream while pending (nil fields): needs only its XACK */
    WK_ENTRY_WRITTEN, /* committed in PostgreSQL (or already there): to be acked and deleted */
    WK_ENTRY_FAILED,  /* PostgreSQL refused it: stays pending for a later delivery or dead-letters */
    WK_ENTRY_DONE,    /* acked, dead-lettered or left pending on purpose: nothing more to do */
} wk_entry_state;

typedef struct wk_entry {
    const char *stream_id;    /* borrowed from the batch's reply */
    const redisReply *fields; /* borrowed: the field/value array; NULL when GONE */
    fv_envelope env;          /* borrows from fields; valid when state was NEW */
    wk_entry_state state;
    long long deliveries; /* delivery count from the stream; 0 while unknown */
    bool id_taken;        /* its id's claim is another submitter's or deployment's: kept as
                             refused, never stored (wk_stream_id_holders) */
    char error[256];      /* why it is POISON or FAILED */
    unsigned char *plain; /* owned: the opened payload env points into (sealed entries), wiped and
                             freed by wk_batch_reset */
    size_t plain_len;
} wk_entry;

/* The lifecycle of a batch; the loop in wk_loop.c moves it forward one state at a time. */
typedef enum wk_batch_state {
    WK_BATCH_EMPTY,     /* holds nothing: the next step reads (own pending, XAUTOCLAIM, or new) */
    WK_BATCH_READ,      /* delivered to this consumer and parsed; poison ones are dead-lettered
                           here, nothing is written yet, nothing acked */
    WK_BATCH_WRITE,     /* the INSERT transaction is being run; on a PostgreSQL outage the batch
                           stays here (unacked) and is retried after a backoff */
    WK_BATCH_COMMITTED, /* written entries are durable in PostgreSQL but still pending in Redis:
                           they must be acked (XACK + XDEL) before the batch is dropped */
    WK_BATCH_ACKED,     /* written ones acked and deleted, failed ones dead-lettered or left
                           pending for another delivery: the batch can be freed */
} wk_batch_state;

typedef struct wk_batch {
    wk_batch_state state;
    redisReply *reply; /* owned: the read's reply, which entries borrow from */
    wk_entry *entries; /* owned array of n */
    size_t n;
    bool redelivered; /* from XAUTOCLAIM or a re-read of our pending list: counts unknown */
} wk_batch;

/* The sealed-payload opener every batch uses (borrowed: the caller keeps it alive while batches
 * are filled), and whether an entry without a sealed payload is taken (queue_accept_unsealed). An
 * entry that does not open is POISON with a reason naming it, and its payload is never read. */
void wk_batch_set_seal(fv_qseal *qs, bool accept_unsealed);
void wk_batch_init(wk_batch *b);
/* Takes ownership of reply; list (inside reply) is an array of [id, fields] items. Parses every
 * entry and leaves the batch in state READ (or EMPTY when list holds nothing). Returns 0, or -1
 * when list does not have the shape of stream entries (the batch is then reset). */
int wk_batch_fill(wk_batch *b, redisReply *reply, const redisReply *list, bool redelivered, char *err,
                  size_t errlen);
/* Frees what the batch holds and sets it back to EMPTY. */
void wk_batch_reset(wk_batch *b);
/* Counts entries in state s. */
size_t wk_batch_count(const wk_batch *b, wk_entry_state s);

/* Checks that text (len bytes) is one JSON object the strict reader accepts (fv_json.h: syntax,
 * strict UTF-8, depth, numbers, no duplicate keys), nothing after it. */
bool wk_json_is_object(const char *text, size_t len);

#endif

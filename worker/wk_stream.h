/* The worker's side of the Redis stream: group, reads, claims, acks and the dead-letter stream. */
#ifndef WK_STREAM_H
#define WK_STREAM_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "wk_batch.h"

typedef struct wk_stream {
    redisContext *c;  /* owned; NULL while disconnected */
    const char *host; /* the rest is borrowed from the configuration */
    int port;
    const char *user; /* borrowed: Redis ACL user, or empty */
    const char *password;
    const char *stream;
    const char *dead;
    const char *group;
    const char *consumer;
    int connect_timeout_ms;
    int command_timeout_ms; /* must exceed the XREADGROUP BLOCK time */
    char claim_cursor[64];  /* XAUTOCLAIM resumes its scan of the pending list here */
} wk_stream;

/* Every function below returns 0, or -1 with a reason in err; on -1 the connection has been
 * dropped (c == NULL) and the caller reconnects with wk_stream_connect after a backoff. */

/* Connects, authenticates and creates the consumer group if missing (MKSTREAM). */
int wk_stream_connect(wk_stream *s, char *err, size_t errlen);
void wk_stream_close(wk_stream *s);

/* XREADGROUP from id: ">" for new entries (waiting up to block_ms), or an id to re-read this
 * consumer's own pending entries after it (no wait). Fills b (takes the reply). */
int wk_stream_read(wk_stream *s, const char *id, int count, int block_ms, wk_batch *b, char *err,
                   size_t errlen);
/* XAUTOCLAIM entries idle at least min_idle_ms from any consumer (this one included), resuming
 * the scan at claim_cursor. Fills b; *more is true when the scan has not reached the end. */
int wk_stream_claim(wk_stream *s, int min_idle_ms, int count, wk_batch *b, bool *more, char *err,
                    size_t errlen);
/* Looks up the delivery count of the entries of b in state `which` (XPENDING, pipelined). An
 * entry no longer pending for this consumer gets 0. */
int wk_stream_deliveries(wk_stream *s, wk_batch *b, wk_entry_state which, char *err, size_t errlen);
/* Reads the submission id claims of b's entries in state NEW (one MGET, FV_SUBID_KEY_PREFIX):
 * sets id_taken on each whose claim is held by another submitter or for another deployment.
 * The front end answered 409 to such an entry, or spooled it while Redis was away and another
 * submitter claimed the id meanwhile: either way the claim's holder owns the id. */
int wk_stream_id_holders(wk_stream *s, wk_batch *b, char *err, size_t errlen);
/* XACK + XDEL (pipelined) the entries of b in state WRITTEN or GONE, then marks them DONE. */
int wk_stream_ack(wk_stream *s, wk_batch *b, char *err, size_t errlen);
/* Moves e to the dead-letter stream with its fields plus error, stream_id and deliveries, and
 * XACK + XDEL it from the main stream, all in one MULTI/EXEC; marks it DONE. */
int wk_stream_dead_letter(wk_stream *s, wk_entry *e, const char *error, char *err, size_t errlen);
/* Resets the idle time of the entries of b in state NEW (XCLAIM ... JUSTID), so other workers
 * do not take over a batch this one is still retrying. */
int wk_stream_touch(wk_stream *s, wk_batch *b, char *err, size_t errlen);

/* On a clean stop: removes this consumer from the group when it holds no pending entry (so
 * <hostname>:<pid> names do not pile up across restarts); one that still holds entries stays,
 * for XAUTOCLAIM or a restart under the same name. Sets *removed. */
int wk_stream_leave(wk_stream *s, bool *removed, char *err, size_t errlen);

#endif

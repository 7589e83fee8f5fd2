/* Where an accepted submission goes: the Redis stream, or (while Redis is down or refusing) the
 * child's local spool, replayed into Redis when it is back. Either way the callback runs only
 * once the submission is durable: Redis replied (appendfsync always), or the spool fdatasync'd. */
#ifndef FE_QUEUE_H
#define FE_QUEUE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "fv_envelope.h"

typedef enum {
    FE_QUEUED_REDIS,   /* in the stream */
    FE_QUEUED_SPOOL,   /* on the local disk, to be replayed */
    FE_QUEUE_FAILED,   /* neither took it: answer 503 */
    FE_QUEUE_ID_TAKEN, /* the id's claim is another submitter's (fe_subid.h): answer 409; the entry
                          went to the stream with the claim and the worker refuses it */
} fe_queue_outcome;

typedef void (*fe_queue_cb)(fe_queue_outcome outcome, void *arg);

/* Opens this child's spool (spool_dir/spool-<port>-<index>.log) and starts the replay timer. */
int fe_queue_init(struct event_base *base, int child_index, char *err, size_t errlen);
void fe_queue_shutdown(void);
/* Queues e (copied); cb runs exactly once, never before this returns. With claim_key (NULL for
 * none), the id's claim (SET NX GET EX claim_ttl_s) is sent just before the XADD on the same
 * connection (no script, no MULTI: both cost Redis more than the two commands): when the
 * key already holds another value cb gets FE_QUEUE_ID_TAKEN, and the entry, added all the same,
 * is refused by the worker, which decides by the claim's holder (worker/wk_subid.h). One round
 * trip, one fsync: the claim costs the submission no latency. Spooled entries are not claimed. */
void fe_queue_submit(const fv_envelope *e, const char *claim_key, const char *claim_value,
                     int claim_ttl_s, fe_queue_cb cb, void *arg);
/* "up" (Redis), "spool" (Redis down, the spool takes submissions) or "down" (neither). */
const char *fe_queue_state(void);
/* Records in this child's spool not yet replayed. */
uint64_t fe_queue_spool_pending(void);

#endif

/* Fixed-window rate-limit arithmetic (pure: no I/O, unit-tested alone). A window is
 * [idx * len, (idx + 1) * len) in Unix seconds, so every front end agrees on its bounds. */
#ifndef FE_RATEWINDOW_H
#define FE_RATEWINDOW_H

#include <stdint.h>

typedef enum {
    FE_RW_ALLOW,        /* within the limit */
    FE_RW_REFUSE,       /* over the limit: 429 */
    FE_RW_REFUSE_STRIKE /* the first refusal of this window: 429, and it counts as a strike */
} fe_rw_verdict;

/* The window (index) that holds Unix time now; len < 1 is taken as 1. */
int64_t fe_rw_index(int64_t now, int len);
/* Seconds from now to the end of its window (1..len), for Retry-After. */
int fe_rw_retry_after(int64_t now, int len);
/* The verdict for the count-th request of a window (count >= 1, as INCR returns it) against
 * limit (> 0): the limit+1-th is the one refusal per window that is a strike. */
fe_rw_verdict fe_rw_verdict_for(long long count, int limit);
/* True when strikes (as INCR returned it) reach suspend_after (0 = never suspend). */
int fe_rw_suspends(long long strikes, int suspend_after);

#endif

/* Caps on submissions accepted unverified (PostgreSQL down, nobody can check the submitter's
 * permission): per user, a count and a number of bytes per fixed window (unverified_window_s,
 * aligned to Unix time so every front end agrees), counted in Redis across front ends
 *
 *     fv:unverified:<user id>:<window>:n    INCR          (+ EXPIRE)
 *     fv:unverified:<user id>:<window>:b    INCRBY bytes  (+ EXPIRE)
 *
 * and in this child's memory; the larger count wins, so with Redis down as well each child still
 * caps (a user then gets up to the cap per child). Beyond unverified_max_per_user or
 * unverified_max_bytes_per_user the submission is refused (429 unverified_limit, Retry-After: the
 * window's end) before it is queued: one account cannot fill the stream and the spool while the
 * database is down. */
#ifndef FE_UNVERIFIED_H
#define FE_UNVERIFIED_H

#include <stddef.h>

/* retry_after_s: 0 = admitted (already counted); else the seconds until the window ends. */
typedef void (*fe_unverified_cb)(int retry_after_s, void *arg);

/* Counts one unverified submission of bytes for user_id (borrowed) and says whether it is within
 * the caps. cb is called exactly once, possibly before this returns. */
void fe_unverified_admit(const char *user_id, size_t bytes, fe_unverified_cb cb, void *arg);
/* Frees this child's counts (at exit). */
void fe_unverified_shutdown(void);

#endif

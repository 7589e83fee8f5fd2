/* Login throttling: sign-in attempts counted per account and per client address over a window
 * (login_window_s, fixed from the first attempt), shared by every front end through Redis:
 *
 *     fv:throttle:acct:<SHA-256 hex of the lower-cased email>   INCR (+ EXPIRE NX)
 *     fv:throttle:addr:<client address>
 *
 * Every attempt is counted when it starts, before any password work (so a burst of parallel
 * attempts cannot all pass a check made before the first one failed); a successful one is taken
 * back: the account's count is cleared and the address's decremented. So the counts are the
 * failed (and still running) attempts. An account at login_max_failures_account, or an address at
 * login_max_failures_address, is refused (429 + Retry-After), whether the email exists or not
 * (the key is the email's hash, never whether it is known). Each child also counts in memory and
 * a check takes the larger count, so with Redis down the limits still hold per child.
 *
 * Signed-in users proving a factor again (current password, TOTP code) are counted under their
 * user id instead of an email. */
#ifndef FE_THROTTLE_H
#define FE_THROTTLE_H

/* retry_after_s: 0 = allowed; else seconds until the window ends (>= 1). */
typedef void (*fe_throttle_cb)(int retry_after_s, void *arg);

int fe_throttle_init(void);
void fe_throttle_shutdown(void);
/* Counts an attempt for subject (an email, or a user id; borrowed) from address and says whether
 * it may proceed. cb is called exactly once, possibly before this returns (Redis not connected). */
void fe_throttle_begin(const char *subject, const char *address, fe_throttle_cb cb, void *arg);
/* The attempt succeeded: the subject's count starts again, the address's attempt is taken back. */
void fe_throttle_success(const char *subject, const char *address);

#endif

/* Login throttling: failed logins counted per account and per client address over a window
 * (login_window_s, fixed from the first failure), shared by every front end through Redis:
 *
 *     fv:throttle:acct:<SHA-256 hex of the lower-cased email>   INCR + EXPIRE NX
 *     fv:throttle:addr:<client address>
 *
 * An account with login_max_failures_account failures, or an address with
 * login_max_failures_address, is refused (429 + Retry-After) before any password work, whether
 * the email exists or not (the key is the email's hash, never whether it is known). Each child
 * also counts in memory and a check takes the larger count, so with Redis down the limits still
 * hold per child. A successful login clears the account's count (not the address's). */
#ifndef FE_THROTTLE_H
#define FE_THROTTLE_H

/* retry_after_s: 0 = allowed; else seconds until the window ends (>= 1). */
typedef void (*fe_throttle_cb)(int retry_after_s, void *arg);

int fe_throttle_init(void);
void fe_throttle_shutdown(void);
/* Asks whether a login for email (borrowed) from address may proceed. Signed-in users proving a
 * factor again (current password, TOTP code) are counted under their user id instead of email. cb is called exactly once,
 * possibly before this returns (Redis not connected). */
void fe_throttle_check(const char *email, const char *address, fe_throttle_cb cb, void *arg);
/* Counts a failed login (wrong password, unknown email, wrong TOTP code). */
void fe_throttle_failure(const char *email, const char *address);
/* A successful login: the account's count starts again. */
void fe_throttle_success(const char *email);

#endif

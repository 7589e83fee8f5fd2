/* Login throttling: sign-in attempts (and signed-in users proving their password or a TOTP code
 * again, counted under their user id) are limited on three counts of FAILED attempts, shared by
 * every front end through Redis, over login_window_s (fixed from the first failure):
 *
 *     fv:throttle:fail:pair:<acct>:<address>   failures for this account from this address
 *     fv:throttle:fail:addr:<address>          failures from this address, any account
 *     fv:throttle:fail:acct:<acct>             failures for this account, any address
 *
 * (<acct>: SHA-256 hex of the lower-cased email or user id; never whether the email exists.)
 *
 *   - pair past login_max_failures_account, or address past login_max_failures_address (0: no
 *     such limit): 429 + Retry-After, before any password work. A stranger failing for someone's
 *     email thus locks out only himself (his address), never the owner elsewhere.
 *   - account at login_account_delay_after or more: each attempt for the account, from anywhere,
 *     waits login_account_delay_ms, doubling per further failure up to login_account_delay_max_ms,
 *     before its password is checked. It is never refused on this count: a spread-out guesser is
 *     slowed, the owner still gets in.
 *
 * Only fe_throttle_failure adds to the failures; fe_throttle_success clears the pair's and the
 * account's but never the address's (a sprayer's own good logins do not wash out his failures).
 * Attempts still running are counted as pending (fv:throttle:pend:pair:..., :addr:..., INCR at
 * the start, DECR at the end, kept 30 s) so a burst of parallel attempts cannot all pass a check
 * made before the first one failed. Each child keeps the same counts in memory and a check takes
 * the larger, so with Redis down the limits hold per child. */
#ifndef FE_THROTTLE_H
#define FE_THROTTLE_H

#include <event2/event.h>
#include <stdbool.h>

/* retry_after_s: 0 = allowed (then the caller ends the attempt with fe_throttle_success,
 * fe_throttle_failure or fe_throttle_abandon, or lets it lapse: its pending count expires after
 * 30 s); else seconds until it may retry (>= 1). */
typedef void (*fe_throttle_cb)(int retry_after_s, void *arg);

/* base (borrowed) runs the delays' timers. */
int fe_throttle_init(struct event_base *base);
void fe_throttle_shutdown(void);
/* An attempt for subject (an email, or a user id; borrowed) from address: says whether it may
 * proceed, after the account's delay if any. cb is called exactly once, possibly before this
 * returns (Redis not connected); the strings need not outlive this call. */
void fe_throttle_begin(const char *subject, const char *address, fe_throttle_cb cb, void *arg);
/* The attempt succeeded: it is no longer pending; the pair's and the account's failures are
 * cleared, the address's stay. */
void fe_throttle_success(const char *subject, const char *address);
/* The attempt failed (wrong password, unknown email, wrong code): it is no longer pending and
 * counts on the pair, the address and the account. */
void fe_throttle_failure(const char *subject, const char *address);
/* The attempt ended with neither (PostgreSQL down, the pool full, shutting down): it is no longer
 * pending and counts nowhere. */
void fe_throttle_abandon(const char *subject, const char *address);
/* One attempt the throttle let in, kept in a request's state so that it is ended exactly once:
 * fe_throttle_opened when the callback said 0, fe_throttle_close with the outcome, and
 * fe_throttle_close(.., FE_THROTTLE_ABANDON) from the state's free function (a no-op once
 * closed), so an attempt answered any other way (503, 409, out of memory) is not left pending. */
typedef enum { FE_THROTTLE_SUCCESS, FE_THROTTLE_FAILURE, FE_THROTTLE_ABANDON } fe_throttle_outcome;
typedef struct fe_throttle_open {
    bool open;
    char subject[256]; /* an email (<= 254) or a user id */
    char address[64];
} fe_throttle_open;
void fe_throttle_opened(fe_throttle_open *o, const char *subject, const char *address);
void fe_throttle_close(fe_throttle_open *o, fe_throttle_outcome outcome);

/* An anonymous sign-up from address: 0 when allowed, else the seconds until one may be
 * (signup_max_per_address per address, signup_max_per_child in all, per signup_window_s, in this
 * child's memory). */
int fe_throttle_signup(const char *address);

#endif

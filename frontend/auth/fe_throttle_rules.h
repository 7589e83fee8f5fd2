/* The arithmetic of login throttling (pure: no I/O, no clock; unit-tested alone). fe_throttle.c
 * gathers the counts (Redis and this child's memory) and asks these. */
#ifndef FE_THROTTLE_RULES_H
#define FE_THROTTLE_RULES_H

/* Whether an attempt is refused by a limit: failures already counted plus the attempts still
 * running (pending, this one included: at least 1) past limit. limit <= 0: no limit. */
int fe_tr_refused(long long failures, long long pending, int limit);

/* The delay (ms) before the password of an account with failures failed logins (from every
 * address) is checked: 0 below after; then base_ms, doubling with each further failure, at most
 * max_ms. The attempt always goes ahead: the delay slows a guesser, it never locks the owner
 * out. */
int fe_tr_delay_ms(long long failures, int after, int base_ms, int max_ms);

/* Retry-After for a refused attempt: the seconds left in the failures' window (ttl_s, as Redis's
 * TTL answers it: -2 no key, -1 no expiry) when the failures alone reach the limit; else (only
 * attempts still running made the count) 1. window_s when the TTL is unknown. */
int fe_tr_retry_after(long long failures, int limit, long long ttl_s, int window_s);

#endif

/* Re-authentication before a change a stolen session must not be able to make on its own
 * (minting an API key, enrolling or switching off TOTP): the caller's current password again, and
 * their current TOTP code when the account has TOTP on and the operation asks for it. Counted by
 * the login throttle under the user id (fe_throttle), the password checked on the work pool
 * (never on the event loop), a TOTP code accepted once (its step stored like a login's).
 *
 * Body fields read: "current_password" (1 to 1024 bytes) and "totp" (6 digits). Answers, when the
 * check fails: 422 validation_failed (current_password missing; totp missing while TOTP is on),
 * 403 wrong_password, 422 invalid_code (field totp: wrong, expired or used), 429, 503. */
#ifndef FE_REAUTH_H
#define FE_REAUTH_H

#include <stdbool.h>

#include "fe_reply.h"

typedef void (*fe_reauth_fn)(fe_req *r);

/* Checks r's current password (and, with with_totp, its TOTP code when TOTP is on); on success
 * calls next(r) with r->state free for next to use; else answers r. Takes over r->state. */
void fe_reauth(fe_req *r, bool with_totp, fe_reauth_fn next);

#endif

/* Password strength through libzxcvbn (zxcvbn-c): a score 0..4 with zxcvbn's own thresholds on
 * the estimated guesses, and feedback derived from the kinds of pattern found.
 *
 * ZxcvbnMatch gives the entropy in bits; guesses = 2^bits; score 0: < 1e3, 1: < 1e6, 2: < 1e8,
 * 3: < 1e10, 4: otherwise (zxcvbn's guesses_to_score without its "delta"). The user's email (and
 * its local part) and name words are passed as the user dictionary, so a password made of them
 * scores low. Only the first FV_STRENGTH_MAX_EVAL bytes are evaluated (zxcvbn is superlinear in
 * the length; the rest only adds strength). CPU work: call it off the event loop. */
#ifndef FV_STRENGTH_H
#define FV_STRENGTH_H

#include <stddef.h>

#define FV_STRENGTH_MAX_EVAL 100
#define FV_STRENGTH_MAX_SUGGESTIONS 4

typedef struct fv_strength {
    int score;                                            /* 0..4 */
    double guesses_log10;                                 /* log10 of the estimated guesses */
    const char *warning;                                  /* static text, "" when none */
    const char *suggestions[FV_STRENGTH_MAX_SUGGESTIONS]; /* static texts */
    int nsuggestions;
} fv_strength;

/* Estimates pw[len] with email and name (both may be NULL or "") as user dictionary. Returns 0,
 * or -1 when out of memory. */
int fv_strength_estimate(const char *pw, size_t len, const char *email, const char *name,
                         fv_strength *out);

#endif

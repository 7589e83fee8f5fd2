/* Rate limit for repeated log lines: at most `burst` lines per `window_s` seconds from one
 * limiter; the lines held back are counted and reported with the next line let through
 * ("... (suppressed N similar messages)"). One limiter per kind of message, owned by its caller;
 * not thread-safe (one per event loop). */
#ifndef FV_LOGRATE_H
#define FV_LOGRATE_H

#include <stdbool.h>

#include "fv_log.h"

typedef struct fv_lograte {
    double window_s;     /* length of a window; <= 0 means 1 s */
    unsigned burst;      /* lines let through per window; 0 means 1 */
    double window_start; /* start of the current window (caller's clock, seconds) */
    unsigned in_window;  /* lines let through in the current window */
    unsigned long held;  /* lines held back since the last line let through */
    bool started;
} fv_lograte;

#define FV_LOGRATE_INIT(window, burst_lines)    \
    {                                           \
        (window), (burst_lines), 0, 0, 0, false \
    }

/* Whether a line may be written at time now (seconds, any monotonic clock). When it may,
 * *suppressed is set to the number of lines held back before it (and that count restarts);
 * when not, the line is counted as held back. */
bool fv_lograte_allow(fv_lograte *lr, double now, unsigned long *suppressed);

/* The monotonic clock in seconds, for fv_lograte_allow. */
double fv_lograte_now(void);

/* Logs at level through lr: "msg" or "msg (suppressed N similar messages)". */
#define fv_log_limited(lr, level, fmt, ...)                                                    \
    do {                                                                                       \
        unsigned long fv_lr_held_;                                                             \
        if ((int)(level) <= fv_log_current_level &&                                            \
            fv_lograte_allow((lr), fv_lograte_now(), &fv_lr_held_)) {                          \
            if (fv_lr_held_)                                                                   \
                fv_log_write((level), fmt " (suppressed %lu similar messages)", ##__VA_ARGS__, \
                             fv_lr_held_);                                                     \
            else fv_log_write((level), fmt, ##__VA_ARGS__);                                    \
        }                                                                                      \
    } while (0)

#endif

/* Rate limit for repeated log lines (fv_lograte.h). */
#include "fv_lograte.h"

#include <time.h>

bool fv_lograte_allow(fv_lograte *lr, double now, unsigned long *suppressed)
{
    double window = lr->window_s > 0 ? lr->window_s : 1.0;
    unsigned burst = lr->burst ? lr->burst : 1;
    if (!lr->started || now - lr->window_start >= window || now < lr->window_start) {
        lr->started = true;
        lr->window_start = now;
        lr->in_window = 0;
    }
    if (lr->in_window >= burst) {
        lr->held++;
        return false;
    }
    lr->in_window++;
    *suppressed = lr->held;
    lr->held = 0;
    return true;
}

double fv_lograte_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

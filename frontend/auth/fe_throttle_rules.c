/* Login throttling arithmetic (see fe_throttle_rules.h). */
#include "fe_throttle_rules.h"

int fe_tr_refused(long long failures, long long pending, int limit)
{
    if (limit <= 0) return 0;
    if (failures < 0) failures = 0;
    if (pending < 1) pending = 1; /* a DECR that outlived its key leaves -1: never below this one */
    return failures + pending > limit;
}

int fe_tr_delay_ms(long long failures, int after, int base_ms, int max_ms)
{
    if (failures < after || base_ms <= 0 || max_ms <= 0) return 0;
    long long d = base_ms;
    for (long long i = after; i < failures && d < max_ms; i++) d *= 2;
    return d > max_ms ? max_ms : (int)d;
}

int fe_tr_retry_after(long long failures, int limit, long long ttl_s, int window_s)
{
    if (failures < limit) return 1;
    if (ttl_s > 0) return ttl_s > window_s ? window_s : (int)ttl_s;
    return window_s > 0 ? window_s : 1;
}

/* Fixed-window rate-limit arithmetic (see fe_ratewindow.h). */
#include "fe_ratewindow.h"

int64_t fe_rw_index(int64_t now, int len)
{
    if (len < 1) len = 1;
    if (now < 0) now = 0;
    return now / len;
}

int fe_rw_retry_after(int64_t now, int len)
{
    if (len < 1) len = 1;
    if (now < 0) now = 0;
    return (int)((fe_rw_index(now, len) + 1) * len - now);
}

fe_rw_verdict fe_rw_verdict_for(long long count, int limit)
{
    if (limit <= 0 || count <= limit) return FE_RW_ALLOW;
    return count == (long long)limit + 1 ? FE_RW_REFUSE_STRIKE : FE_RW_REFUSE;
}

int fe_rw_suspends(long long strikes, int suspend_after)
{
    return suspend_after > 0 && strikes >= suspend_after;
}

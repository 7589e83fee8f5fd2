/* Settings every program shares: storage for the [common] section, and its checks. */
#include "fv_settings.h"

#include "fv_log.h"

fv_common_settings fv_common;

void fv_common_check(fv_cfg_load *ld)
{
    if (fv_common.log_level && fv_log_parse_level(fv_common.log_level) < 0)
        fv_config_problem(ld, "log_level", "unknown level '%s' (error, warn, info or debug)",
                          fv_common.log_level);
}

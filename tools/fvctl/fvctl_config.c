/* fvctl's configuration table: the [common] keys and its own [fvctl] section. */
#include <sys/stat.h>

#include "fvctl.h"

fvctl_settings fvctl_cfg;

const fv_cfg_entry fvctl_config_table[] = {
    FV_COMMON_CFG_ENTRIES,
    FV_CFG_STR_KEY(
        "fvctl", "sql_dir", &fvctl_cfg.sql_dir, "", FV_CFG_RESTART,
        "directory of the numbered migrations for fvctl migrate; empty: next to the fvctl executable"),
    FV_CFG_STR_KEY("fvctl", "status_balancer", &fvctl_cfg.status_balancer, "127.0.0.1:9400",
                   FV_CFG_RESTART,
                   "the balancer's admin listener (IP:port) fvctl status asks; empty: no balancer"),
    FV_CFG_STR_KEY("fvctl", "status_spool_dir", &fvctl_cfg.status_spool_dir, "/var/lib/fieldvault/spool",
                   FV_CFG_RESTART, "the front ends' spool_dir fvctl status looks at; empty: not shown"),
    FV_CFG_END,
};

void fvctl_config_check(fv_cfg_load *ld)
{
    fv_common_check(ld);
}

void fvctl_config_check_files(fv_cfg_load *ld)
{
    struct stat st;
    if (fvctl_cfg.sql_dir[0] && (stat(fvctl_cfg.sql_dir, &st) == -1 || !S_ISDIR(st.st_mode)))
        fv_config_problem(ld, "sql_dir", "'%s' is not a directory", fvctl_cfg.sql_dir);
}

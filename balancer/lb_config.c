/* fv-balancer's configuration table: the one place its keys, defaults and help live. */
#include "lb_config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb_addr.h"

lb_settings lb_cfg;

const fv_cfg_entry lb_config_table[] = {
    FV_COMMON_CFG_ENTRIES_WITH(FV_CFG_RELOAD), /* log_level: SIGHUP applies it */
    FV_CFG_STR_KEY(
        "balancer", "proxy_addr", &lb_cfg.proxy_addr, "0.0.0.0", FV_CFG_RESTART,
        "address clients connect to (an IP address); TLS is passed through to the front ends"),
    FV_CFG_INT_KEY("balancer", "proxy_port", &lb_cfg.proxy_port, "443", 1, 65535, FV_CFG_RESTART,
                   "port clients connect to"),
    FV_CFG_STR_KEY(
        "balancer", "admin_addr", &lb_cfg.admin_addr, "127.0.0.1", FV_CFG_RESTART,
        "address of the plain-HTTP admin listener (/status, /metrics, /backends): loopback only"),
    FV_CFG_INT_KEY("balancer", "admin_port", &lb_cfg.admin_port, "9400", 1, 65535, FV_CFG_RESTART,
                   "port of the admin listener"),
    FV_CFG_STR_KEY("balancer", "backends", &lb_cfg.backends, "127.0.0.1:8443", FV_CFG_RELOAD,
                   "front ends as IP:port, comma-separated (no host names); SIGHUP reloads this list"),
    FV_CFG_INT_KEY(
        "balancer", "check_interval_ms", &lb_cfg.check_interval_ms, "2000", 10, INT_MAX, FV_CFG_RESTART,
        "milliseconds between two health checks of a backend (GET /readyz over HTTPS), +-10% jitter"),
    FV_CFG_INT_KEY("balancer", "check_timeout_ms", &lb_cfg.check_timeout_ms, "1000", 10, INT_MAX,
                   FV_CFG_RESTART, "a health check not answered within this many milliseconds fails"),
    FV_CFG_INT_KEY("balancer", "rise", &lb_cfg.rise, "2", 1, 1000, FV_CFG_RESTART,
                   "good checks in a row that put a backend in rotation"),
    FV_CFG_INT_KEY("balancer", "fall", &lb_cfg.fall, "3", 1, 1000, FV_CFG_RESTART,
                   "failed checks in a row that take a backend out of rotation"),
    FV_CFG_STR_KEY("balancer", "check_ca_file", &lb_cfg.check_ca_file, "", FV_CFG_RESTART,
                   "CA file (PEM) the checks verify the front ends' certificates against; empty: "
                   "the system's trusted CAs"),
    FV_CFG_INT_KEY("balancer", "connect_timeout_ms", &lb_cfg.connect_timeout_ms, "1000", 1, INT_MAX,
                   FV_CFG_RESTART,
                   "a connect to a backend slower than this is retried on another backend"),
    FV_CFG_INT_KEY("balancer", "min_backends", &lb_cfg.min_backends, "1", 0, 1024, FV_CFG_RESTART,
                   "fewer healthy backends than this makes the balancer run spawn_command"),
    FV_CFG_INT_KEY("balancer", "max_backends", &lb_cfg.max_backends, "8", 1, 1024, FV_CFG_RESTART,
                   "most backends (config, runtime and spawned together)"),
    FV_CFG_STR_KEY("balancer", "spawn_command", &lb_cfg.spawn_command, "", FV_CFG_RESTART,
                   "shell command that starts a front end on port {port}; empty: never spawn"),
    FV_CFG_STR_KEY("balancer", "spawn_addr", &lb_cfg.spawn_addr, "127.0.0.1", FV_CFG_RESTART,
                   "IP address a spawned front end listens on (the new backend is spawn_addr:{port})"),
    FV_CFG_INT_KEY("balancer", "spawn_port_base", &lb_cfg.spawn_port_base, "9443", 1, 65535,
                   FV_CFG_RESTART, "spawned front ends get the first free port from this one upwards"),
    FV_CFG_INT_KEY("balancer", "spawn_conn_threshold", &lb_cfg.spawn_conn_threshold, "500", 1, INT_MAX,
                   FV_CFG_RESTART,
                   "spawn when the active connections per healthy backend pass this average"),
    FV_CFG_INT_KEY(
        "balancer", "spawn_cooldown_ms", &lb_cfg.spawn_cooldown_ms, "30000", 0, INT_MAX, FV_CFG_RESTART,
        "milliseconds after a spawn before the next one (a new front end needs time to boot)"),
    FV_CFG_INT_KEY(
        "balancer", "high_water_bytes", &lb_cfg.high_water_bytes, "262144", 4096, INT_MAX,
        FV_CFG_RESTART,
        "bytes buffered toward one side of a connection before reading from the other pauses"),
    FV_CFG_INT_KEY("balancer", "drain_timeout_s", &lb_cfg.drain_timeout_s, "30", 0, INT_MAX,
                   FV_CFG_RESTART,
                   "on SIGTERM, open connections get this long to finish before the balancer exits"),
    FV_CFG_BOOL_KEY("balancer", "check_tls_verify", &lb_cfg.check_tls_verify, "yes", FV_CFG_RESTART,
                    "verify the front ends' certificates during checks (no: a backend with any "
                    "certificate is checked; only for testing)"),
    FV_CFG_STR_KEY("balancer", "check_server_name", &lb_cfg.check_server_name, "", FV_CFG_RESTART,
                   "host name the front ends' certificates must carry (also sent as SNI); empty: "
                   "the backend's IP address"),
    FV_CFG_STR_KEY("balancer", "admin_token_file", &lb_cfg.admin_token_file, "", FV_CFG_RESTART,
                   "file (mode 0600) holding the bearer token POST /backends and DELETE "
                   "/backends/ADDR require; empty: those are refused"),
    FV_CFG_END,
};

void lb_config_check(fv_cfg_load *ld)
{
    lb_addr a;
    fv_common_check(ld);
    if (!fv_config_is_bad(ld, "proxy_port") &&
        !lb_addr_from_ip(lb_cfg.proxy_addr, lb_cfg.proxy_port, &a))
        fv_config_problem(ld, "proxy_addr", "'%s' is not an IP address", lb_cfg.proxy_addr);
    if (!fv_config_is_bad(ld, "admin_port")) {
        if (!lb_addr_from_ip(lb_cfg.admin_addr, lb_cfg.admin_port, &a))
            fv_config_problem(ld, "admin_addr", "'%s' is not an IP address", lb_cfg.admin_addr);
        else if (!lb_addr_is_loopback(&a))
            fv_config_problem(ld, "admin_addr",
                              "%s is not a loopback address (the admin listener is plain "
                              "HTTP: use 127.0.0.1 or ::1)",
                              lb_cfg.admin_addr);
    }
    if (!fv_config_is_bad(ld, "min_backends") && !fv_config_is_bad(ld, "max_backends") &&
        lb_cfg.min_backends > lb_cfg.max_backends)
        fv_config_problem(ld, "min_backends", "%d is more than max_backends (%d)", lb_cfg.min_backends,
                          lb_cfg.max_backends);
    if (lb_cfg.spawn_command[0]) {
        if (!strstr(lb_cfg.spawn_command, "{port}"))
            fv_config_problem(ld, "spawn_command", "no {port} in '%s'", lb_cfg.spawn_command);
        if (!fv_config_is_bad(ld, "spawn_port_base") &&
            !lb_addr_from_ip(lb_cfg.spawn_addr, lb_cfg.spawn_port_base, &a))
            fv_config_problem(ld, "spawn_addr", "'%s' is not an IP address", lb_cfg.spawn_addr);
    }
    if (fv_config_is_bad(ld, "max_backends")) return;
    char lerr[256];
    lb_addr *list = calloc((size_t)lb_cfg.max_backends, sizeof *list);
    if (!list) {
        fv_config_problem(ld, "backends", "out of memory");
        return;
    }
    int n = lb_addr_parse_list(lb_cfg.backends, list, lb_cfg.max_backends, lerr, sizeof lerr);
    free(list);
    if (n < 0) fv_config_problem(ld, "backends", "%s (max_backends = %d)", lerr, lb_cfg.max_backends);
}

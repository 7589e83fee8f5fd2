/* fv-balancer's configuration table: the one place its keys, defaults and help live. */
#include "lb_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb_addr.h"

lb_settings lb_cfg;

const fv_cfg_entry lb_config_table[] = {
    FV_COMMON_CFG_ENTRIES,
    {"balancer", "proxy_addr", FV_CFG_STR, &lb_cfg.proxy_addr, "0.0.0.0",
     "address clients connect to (an IP address); TLS is passed through to the front ends"},
    {"balancer", "proxy_port", FV_CFG_INT, &lb_cfg.proxy_port, "443", "port clients connect to"},
    {"balancer", "admin_addr", FV_CFG_STR, &lb_cfg.admin_addr, "127.0.0.1",
     "address of the plain-HTTP admin listener (/status, /metrics, /backends): loopback only"},
    {"balancer", "admin_port", FV_CFG_INT, &lb_cfg.admin_port, "9400", "port of the admin listener"},
    {"balancer", "backends", FV_CFG_STR, &lb_cfg.backends, "127.0.0.1:8443",
     "front ends as IP:port, comma-separated (no host names); SIGHUP reloads this list"},
    {"balancer", "check_interval_ms", FV_CFG_INT, &lb_cfg.check_interval_ms, "2000",
     "milliseconds between two health checks of a backend (GET /readyz over HTTPS), +-10% jitter"},
    {"balancer", "check_timeout_ms", FV_CFG_INT, &lb_cfg.check_timeout_ms, "1000",
     "a health check not answered within this many milliseconds fails"},
    {"balancer", "rise", FV_CFG_INT, &lb_cfg.rise, "2",
     "good checks in a row that put a backend in rotation"},
    {"balancer", "fall", FV_CFG_INT, &lb_cfg.fall, "3",
     "failed checks in a row that take a backend out of rotation"},
    {"balancer", "check_ca_file", FV_CFG_STR, &lb_cfg.check_ca_file, "",
     "CA file to verify the front ends' certificates during checks; empty: not verified"},
    {"balancer", "connect_timeout_ms", FV_CFG_INT, &lb_cfg.connect_timeout_ms, "1000",
     "a connect to a backend slower than this is retried on another backend"},
    {"balancer", "min_backends", FV_CFG_INT, &lb_cfg.min_backends, "1",
     "fewer healthy backends than this makes the balancer run spawn_command"},
    {"balancer", "max_backends", FV_CFG_INT, &lb_cfg.max_backends, "8",
     "most backends (config, runtime and spawned together)"},
    {"balancer", "spawn_command", FV_CFG_STR, &lb_cfg.spawn_command, "",
     "shell command that starts a front end on port {port}; empty: never spawn"},
    {"balancer", "spawn_addr", FV_CFG_STR, &lb_cfg.spawn_addr, "127.0.0.1",
     "IP address a spawned front end listens on (the new backend is spawn_addr:{port})"},
    {"balancer", "spawn_port_base", FV_CFG_INT, &lb_cfg.spawn_port_base, "9443",
     "spawned front ends get the first free port from this one upwards"},
    {"balancer", "spawn_conn_threshold", FV_CFG_INT, &lb_cfg.spawn_conn_threshold, "500",
     "spawn when the active connections per healthy backend pass this average"},
    {"balancer", "spawn_cooldown_ms", FV_CFG_INT, &lb_cfg.spawn_cooldown_ms, "30000",
     "milliseconds after a spawn before the next one (a new front end needs time to boot)"},
    {"balancer", "high_water_bytes", FV_CFG_INT, &lb_cfg.high_water_bytes, "262144",
     "bytes buffered toward one side of a connection before reading from the other pauses"},
    {"balancer", "drain_timeout_s", FV_CFG_INT, &lb_cfg.drain_timeout_s, "30",
     "on SIGTERM, open connections get this long to finish before the balancer exits"},
    {NULL, NULL, 0, NULL, NULL, NULL},
};

const char *const lb_config_reloadable[] = {"backends", "log_level", NULL};

int lb_config_validate(char *err, size_t errlen)
{
    lb_addr a;
    if (!lb_addr_from_ip(lb_cfg.proxy_addr, lb_cfg.proxy_port, &a)) {
        snprintf(err, errlen, "proxy_addr/proxy_port: '%s' port %d is not an IP address and port",
                 lb_cfg.proxy_addr, lb_cfg.proxy_port);
        return -1;
    }
    if (!lb_addr_from_ip(lb_cfg.admin_addr, lb_cfg.admin_port, &a)) {
        snprintf(err, errlen, "admin_addr/admin_port: '%s' port %d is not an IP address and port",
                 lb_cfg.admin_addr, lb_cfg.admin_port);
        return -1;
    }
    if (!lb_addr_is_loopback(&a)) {
        snprintf(err, errlen, "admin_addr: %s is not a loopback address (the admin listener has no "
                 "authentication: use 127.0.0.1 or ::1)", lb_cfg.admin_addr);
        return -1;
    }
    if (lb_cfg.rise < 1 || lb_cfg.fall < 1 || lb_cfg.rise > 1000 || lb_cfg.fall > 1000) {
        snprintf(err, errlen, "rise and fall must be between 1 and 1000");
        return -1;
    }
    if (lb_cfg.check_interval_ms < 10 || lb_cfg.check_timeout_ms < 10 || lb_cfg.connect_timeout_ms < 1) {
        snprintf(err, errlen, "check_interval_ms and check_timeout_ms must be >= 10, connect_timeout_ms >= 1");
        return -1;
    }
    if (lb_cfg.max_backends < 1 || lb_cfg.max_backends > 1024 || lb_cfg.min_backends < 0 ||
        lb_cfg.min_backends > lb_cfg.max_backends) {
        snprintf(err, errlen, "need 0 <= min_backends <= max_backends <= 1024 and max_backends >= 1");
        return -1;
    }
    if (lb_cfg.high_water_bytes < 4096) {
        snprintf(err, errlen, "high_water_bytes must be >= 4096");
        return -1;
    }
    if (lb_cfg.drain_timeout_s < 0 || lb_cfg.spawn_cooldown_ms < 0 || lb_cfg.spawn_conn_threshold < 1) {
        snprintf(err, errlen, "drain_timeout_s and spawn_cooldown_ms must be >= 0, spawn_conn_threshold >= 1");
        return -1;
    }
    if (lb_cfg.spawn_command[0]) {
        if (!strstr(lb_cfg.spawn_command, "{port}")) {
            snprintf(err, errlen, "spawn_command: no {port} in '%s'", lb_cfg.spawn_command);
            return -1;
        }
        if (lb_cfg.spawn_port_base < 1 || lb_cfg.spawn_port_base > 65535 ||
            !lb_addr_from_ip(lb_cfg.spawn_addr, lb_cfg.spawn_port_base, &a)) {
            snprintf(err, errlen, "spawn_addr/spawn_port_base: '%s' port %d is not an IP address and port",
                     lb_cfg.spawn_addr, lb_cfg.spawn_port_base);
            return -1;
        }
    }
    char lerr[256];
    lb_addr *list = calloc((size_t)lb_cfg.max_backends, sizeof *list);
    if (!list) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n = lb_addr_parse_list(lb_cfg.backends, list, lb_cfg.max_backends, lerr, sizeof lerr);
    free(list);
    if (n < 0) {
        snprintf(err, errlen, "backends: %s (max_backends = %d)", lerr, lb_cfg.max_backends);
        return -1;
    }
    return 0;
}

/* fv-balancer's settings: its configuration table, where the values live, and their checks. */
#ifndef LB_CONFIG_H
#define LB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "fv_config.h"
#include "fv_settings.h"

typedef struct lb_settings {
    char *proxy_addr; /* where clients connect (TLS passes through) */
    int proxy_port;
    char *admin_addr; /* loopback only */
    int admin_port;
    char *backends; /* "IP:port,IP:port" */
    int check_interval_ms;
    int check_timeout_ms;
    int rise;
    int fall;
    char *check_ca_file; /* "" = the system's trusted CAs */
    int connect_timeout_ms;
    int min_backends;
    int max_backends;
    char *spawn_command; /* "" = never spawn; {port} is replaced */
    char *spawn_addr;    /* the IP a spawned front end listens on */
    int spawn_port_base;
    int spawn_conn_threshold;
    int spawn_cooldown_ms;
    int high_water_bytes;
    int drain_timeout_s;
    bool check_tls_verify;   /* false: the checks accept any certificate (testing only) */
    char *check_server_name; /* "" = the certificate must name the backend's IP */
    char *admin_token_file;  /* "" = the admin API's changes are refused */
} lb_settings;

extern lb_settings lb_cfg;
extern const fv_cfg_entry lb_config_table[];
/* Checks addresses (IP only, admin on loopback), min_backends against max_backends, spawn_command
 * and the backends list; the ranges are in the table. Reports each problem on its key. SIGHUP
 * applies only the keys the table marks FV_CFG_RELOAD (backends, log_level). */
void lb_config_check(fv_cfg_load *ld);

#endif

/* fv-balancer: a TCP proxy passing TLS through to the front ends, with health checks, a
 * spawner and a loopback admin listener; one process, one event loop. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "fv_bearer.h"
#include "fv_cli.h"
#include "fv_log.h"
#include "lb_admin.h"
#include "lb_check.h"
#include "lb_config.h"
#include "lb_proxy.h"
#include "lb_server.h"
#include "lb_spawn.h"

/* --check-config and the start: check_ca_file and admin_token_file load (the start then loads
 * them again). */
static void check_files(fv_cfg_load *ld)
{
    char err[512];
    SSL_CTX *ctx = lb_check_ctx_new(lb_cfg.check_ca_file, lb_cfg.check_tls_verify, err, sizeof err);
    if (!ctx) fv_config_problem(ld, "check_ca_file", "%s", err);
    else SSL_CTX_free(ctx);
    fv_bearer token;
    if (lb_cfg.admin_token_file[0] && !fv_bearer_load(lb_cfg.admin_token_file, &token, err, sizeof err))
        fv_config_problem(ld, "admin_token_file", "%s", err);
}

static const fv_program program = {
    .name = "fv-balancer",
    .purpose =
        "Fieldvault's TCP balancer: passes TLS through to the front ends, checks their health.\n"
        "SIGHUP re-reads the file and applies backends and log_level; other changes need a restart.",
    .table = lb_config_table,
    .check = lb_config_check,
    .check_files = check_files,
};

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    lb_server *s = arg;
    fv_warn("drain_timeout_s passed with %ld connection(s) open: closing them", s->nconns);
    lb_proxy_close_all(s);
    event_base_loopexit(s->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    lb_server *s = arg;
    if (sig == SIGHUP) {
        fv_info("SIGHUP: reloading the backend list from %s",
                s->config_path ? s->config_path : "(no file)");
        lb_server_reload(s);
        return;
    }
    if (s->stopping) return;
    s->stopping = true;
    lb_proxy_stop_accepting(s);
    fv_info("stopping: no new connections; %ld open, up to %d s to finish", s->nconns,
            lb_cfg.drain_timeout_s);
    if (s->nconns == 0) {
        event_base_loopexit(s->base, NULL);
        return;
    }
    struct timeval tv = {lb_cfg.drain_timeout_s, 0};
    s->drain_timer = evtimer_new(s->base, on_drain_deadline, s);
    if (!s->drain_timer || evtimer_add(s->drain_timer, &tv) == -1) on_drain_deadline(-1, 0, s);
}

static void server_free(lb_server *s)
{
    lb_admin_free(s);
    lb_proxy_free(s);
    lb_spawn_free(s);
    for (size_t i = 0; i < s->pool.n; i++) lb_check_stop(s->pool.v[i]);
    lb_pool_free(&s->pool);
    for (size_t i = 0; i < sizeof s->signals / sizeof s->signals[0]; i++)
        if (s->signals[i]) event_free(s->signals[i]);
    if (s->drain_timer) event_free(s->drain_timer);
    if (s->check_ctx) SSL_CTX_free(s->check_ctx);
    if (s->base) event_base_free(s->base);
}

int main(int argc, char **argv)
{
    fv_cli cli;
    fv_log_init("balancer", FV_LOG_INFO);
    int status = fv_cli_start(&program, argc, argv, &cli);
    if (status >= 0) return status;
    fv_log_init("balancer", (fv_log_level)fv_log_parse_level(fv_common.log_level));
    char err[512];
    lb_server srv;
    memset(&srv, 0, sizeof srv);
    srv.config_path = cli.config_path;
    if (!(srv.check_ctx = lb_check_ctx_new(lb_cfg.check_ca_file, lb_cfg.check_tls_verify, err,
                                           sizeof err))) {
        fprintf(stderr, "fv-balancer: check_ca_file: %s\n", err);
        fv_config_free(lb_config_table);
        return FV_EXIT_CONFIG;
    }

    signal(SIGPIPE, SIG_IGN); /* a peer closing mid-write must not kill the process */
    srandom((unsigned)(time(NULL) ^ getpid()));
    int rc = 1;
    srv.base = event_base_new();
    if (!srv.base) {
        fv_error("event_base_new failed");
        goto out;
    }
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        srv.signals[i] = evsignal_new(srv.base, sigs[i], on_signal, &srv);
        if (!srv.signals[i] || evsignal_add(srv.signals[i], NULL) == -1) {
            fv_error("cannot watch signal %d", sigs[i]);
            goto out;
        }
    }
    if (!lb_proxy_listen(&srv) || !lb_admin_start(&srv) || !lb_spawn_init(&srv)) goto out;

    lb_addr *list = calloc((size_t)lb_cfg.max_backends, sizeof *list);
    int n = list ? lb_addr_parse_list(lb_cfg.backends, list, lb_cfg.max_backends, err, sizeof err) : -1;
    for (int i = 0; i < n; i++) {
        /* Stagger the first checks over one interval so they do not all fire together. */
        int delay = (int)((long long)lb_cfg.check_interval_ms * i / (n > 0 ? n : 1) / 2);
        if (!lb_server_add_backend(&srv, &list[i], LB_SRC_CONFIG, delay, err, sizeof err))
            fv_error("backend %s: %s", list[i].text, err);
    }
    free(list);
    fv_info("listening on %s (TLS passed through), admin on http://%s:%d, %zu backend(s)%s",
            srv.listen.text, lb_cfg.admin_addr, lb_cfg.admin_port, srv.pool.n,
            lb_cfg.spawn_command[0] ? ", spawner on" : "");
    lb_spawn_evaluate(&srv);
    if (event_base_dispatch(srv.base) == -1) {
        fv_error("event_base_dispatch failed");
        goto out;
    }
    fv_info("stopped");
    rc = 0;
out : {
    /* A signal arriving while the handlers are being torn down must not end the process with
     * it (a second SIGTERM from an impatient operator still gets exit 0). */
    sigset_t late;
    sigemptyset(&late);
    sigaddset(&late, SIGTERM);
    sigaddset(&late, SIGINT);
    sigaddset(&late, SIGHUP);
    sigprocmask(SIG_BLOCK, &late, NULL);
}
    server_free(&srv);
    fv_config_free(lb_config_table);
    return rc;
}

/* fv-frontend's master: reads the configuration, binds the HTTPS port, forks the children and
 * supervises them (respawn, certificate reload, drain on SIGTERM). It serves nothing itself. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fe_child.h"
#include "fe_config.h"
#include "fe_metrics.h"
#include "fe_pg.h"
#include "fe_tls.h"
#include "fv_totp.h"
#include "fv_cli.h"
#include "fv_log.h"

#define RESPAWN_DELAY_S 1

/* A child slot: its pid while running, when it started, when to start it again. */
typedef struct child_slot {
    pid_t pid;
    time_t started;
    time_t respawn_at; /* 0: not waiting */
} child_slot;

static child_slot children[FE_METRICS_MAX_CHILDREN];
static int nchildren;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fv-frontend [-c FILE] [--check-config] [--print-defaults]\n"
            "  -c, --config FILE   configuration file (see deploy/fieldvault.conf)\n"
            "  --check-config      check the configuration, certificate and key, then exit\n"
            "  --print-defaults    print every key with its value after the file and FV_* variables\n");
}

static time_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* Returns a listening socket on addr:port, or -1 (logged). TCP_NODELAY set here is inherited by
 * every accepted socket on Linux: without it TLS replies stall on delayed ACKs. */
static int bind_listener(const char *addr, int port)
{
    const char *errpos;
    int fd = -1, one = 1;
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    errpos = "listen_addr is not an IP address";
    if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        sslen = sizeof *sin;
    } else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sslen = sizeof *sin6;
    } else {
        errno = EINVAL;
        goto failed;
    }
    errpos = "socket";
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) goto failed;
    errpos = "setsockopt";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1) goto failed;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1) goto failed;
    errpos = "bind";
    if (bind(fd, (struct sockaddr *)&ss, sslen) == -1) goto failed;
    errpos = "listen";
    if (listen(fd, 4096) == -1) goto failed;
    return fd;
failed:
    fv_error("cannot listen on %s:%d: %s: %s", addr, port, errpos, strerror(errno));
    if (fd != -1) close(fd);
    return -1;
}

static void spawn(int i, int listen_fd, const sigset_t *blocked)
{
    pid_t pid = fork();
    if (pid == -1) {
        fv_error("fork: %s", strerror(errno));
        children[i].respawn_at = now_s() + RESPAWN_DELAY_S;
        return;
    }
    if (pid == 0) {
        /* The child handles its own signals through libevent. */
        signal(SIGCHLD, SIG_DFL);
        sigprocmask(SIG_UNBLOCK, blocked, NULL);
        exit(fe_child_run(i, listen_fd));
    }
    children[i].pid = pid;
    children[i].started = now_s();
    children[i].respawn_at = 0;
}

static int running(void)
{
    int n = 0;
    for (int i = 0; i < nchildren; i++) n += children[i].pid > 0;
    return n;
}

static void signal_all(int sig)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i].pid > 0) kill(children[i].pid, sig);
}

/* Reaps every exited child; when not stopping, schedules its respawn (delayed if it died
 * right after starting, so a crash loop does not spin). */
static void reap(bool stopping)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < nchildren; i++) {
            if (children[i].pid != pid) continue;
            children[i].pid = 0;
            if (stopping) break;
            if (WIFSIGNALED(status))
                fv_error("child %d (pid %d) killed by signal %d; restarting", i, (int)pid, WTERMSIG(status));
            else
                fv_error("child %d (pid %d) exited with %d; restarting", i, (int)pid, WEXITSTATUS(status));
            time_t now = now_s();
            children[i].respawn_at = now - children[i].started < RESPAWN_DELAY_S ? now + RESPAWN_DELAY_S : now;
            break;
        }
    }
}

int main(int argc, char **argv)
{
    fv_cli cli;
    int cli_status = fv_cli_parse(argc, argv, &cli, usage);
    if (cli_status >= 0) return cli_status;
    const char *config_path = cli.config_path;
    bool check_only = cli.check_only, print_defaults = cli.print_defaults;
    fv_log_init("frontend", FV_LOG_INFO);
    char err[512];
    if (fv_config_load(fe_config_table, config_path, err, sizeof err) != 0) {
        fprintf(stderr, "fv-frontend: %s\n", err);
        return 2;
    }
    if (print_defaults) {
        fv_config_print(fe_config_table, stdout);
        fv_config_free(fe_config_table);
        return 0;
    }
    int level = fv_log_parse_level(fv_common.log_level);
    if (level < 0) {
        fprintf(stderr, "fv-frontend: log_level: unknown level '%s'\n", fv_common.log_level);
        return 2;
    }
    fv_log_init("frontend", (fv_log_level)level);
    if (fe_pg_check_dsn(fv_common.pg_dsn, err, sizeof err) != 0) {
        fprintf(stderr, "fv-frontend: %s\n", err);
        return 2;
    }
    SSL_CTX *probe = fe_tls_server_ctx(fe_cfg.tls_cert, fe_cfg.tls_key, err, sizeof err);
    if (!probe) {
        fprintf(stderr, "fv-frontend: TLS: %s\n", err);
        return 2;
    }
    SSL_CTX_free(probe);
    if (fv_totp_init() != 0) {
        fprintf(stderr, "fv-frontend: liboath failed to initialise\n");
        return 2;
    }
    /* Loaded once here; the children inherit it across fork. */
    if (fv_keys_load(&fe_keys, fv_common.key_file, err, sizeof err) != 0) {
        fprintf(stderr, "fv-frontend: key_file: %s\n", err);
        return 2;
    }
    if (fe_cfg.max_body_bytes < 1024 || fe_cfg.listen_port < 1 || fe_cfg.listen_port > 65535 ||
        fe_cfg.pg_pool_size < 1 || fe_cfg.processes < 0) {
        fprintf(stderr, "fv-frontend: max_body_bytes (>= 1024), listen_port, pg_pool_size (>= 1) "
                        "or processes (>= 0) out of range\n");
        return 2;
    }
    if (fe_cfg.password_iterations < 600000 || fe_cfg.password_iterations > 10000000 ||
        fe_cfg.password_threads < 1 || fe_cfg.password_threads > 64 || fe_cfg.session_ttl_s < 60 ||
        fe_cfg.min_password_score < 0 || fe_cfg.min_password_score > 4 ||
        fe_cfg.login_max_failures_account < 1 || fe_cfg.login_max_failures_address < 0 ||
        fe_cfg.login_window_s < 1) {
        fprintf(stderr, "fv-frontend: password_iterations (600000..10000000), password_threads (1..64), "
                        "session_ttl_s (>= 60), min_password_score (0..4), login_max_failures_account (>= 1), "
                        "login_max_failures_address (>= 0) or login_window_s (>= 1) out of range\n");
        return 2;
    }
    if (check_only) {
        fv_keys_clear(&fe_keys);
        printf("configuration ok\n");
        fv_config_free(fe_config_table);
        return 0;
    }

    nchildren = fe_cfg.processes > 0 ? fe_cfg.processes : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nchildren < 1) nchildren = 1;
    if (nchildren > FE_METRICS_MAX_CHILDREN) nchildren = FE_METRICS_MAX_CHILDREN;

    signal(SIGPIPE, SIG_IGN);
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGCHLD);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGHUP);
    sigprocmask(SIG_BLOCK, &blocked, NULL);

    int listen_fd = bind_listener(fe_cfg.listen_addr, fe_cfg.listen_port);
    if (listen_fd == -1) return 1;
    if (fe_metrics_init() != 0) {
        fv_error("mmap of the metrics region failed: %s", strerror(errno));
        return 1;
    }
    for (int i = 0; i < nchildren; i++) spawn(i, listen_fd, &blocked);
    fv_info("listening on https://%s:%d with %d children", fe_cfg.listen_addr, fe_cfg.listen_port, nchildren);

    bool stopping = false;
    time_t deadline = 0;
    for (;;) {
        struct timespec wait = {0, 200 * 1000 * 1000};
        siginfo_t info;
        int sig = sigtimedwait(&blocked, &info, &wait);
        if (sig == SIGTERM || sig == SIGINT) {
            if (!stopping) {
                fv_info("stopping: draining %d children", running());
                stopping = true;
                deadline = now_s() + fe_cfg.shutdown_timeout_s + 2;
                close(listen_fd);
                signal_all(SIGTERM);
            }
        } else if (sig == SIGHUP) {
            fv_info("reloading certificates");
            signal_all(SIGHUP);
        }
        reap(stopping);
        if (stopping) {
            if (running() == 0) break;
            if (now_s() >= deadline) {
                fv_warn("children still running after the drain deadline: killing them");
                signal_all(SIGKILL);
                deadline = now_s() + 5;
            }
            continue;
        }
        time_t now = now_s();
        for (int i = 0; i < nchildren; i++)
            if (children[i].pid == 0 && children[i].respawn_at && children[i].respawn_at <= now)
                spawn(i, listen_fd, &blocked);
    }
    fv_info("stopped");
    fv_config_free(fe_config_table);
    return 0;
}

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
#include "fe_metrics_http.h"
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

/* The checks --check-config and the start make beyond the table: the DSN parses, the certificate
 * and key load and match, the master key file is sound. Each problem names its key. */
static void check_files(fv_cfg_load *ld)
{
    char err[512];
    if (fe_pg_check_dsn(fv_common.pg_dsn, err, sizeof err) != 0)
        fv_config_problem(ld, "pg_dsn", "%s", err);
    SSL_CTX *probe = fe_tls_server_ctx(fe_cfg.tls_cert, fe_cfg.tls_key, fe_cfg.tls_ocsp_response, err,
                                       sizeof err);
    if (!probe) fv_config_problem(ld, "tls_cert", "%s (tls_key = %s)", err, fe_cfg.tls_key);
    else SSL_CTX_free(probe);
    fv_keyset keys;
    memset(&keys, 0, sizeof keys);
    if (fv_keys_load(&keys, fv_common.key_file, err, sizeof err) != 0)
        fv_config_problem(ld, "key_file", "%s", err);
    fv_keys_clear(&keys);
    if (!fe_metrics_access_load(err, sizeof err)) fv_config_problem(ld, "metrics_token_file", "%s", err);
}

static const fv_program program = {
    .name = "fv-frontend",
    .purpose =
        "Fieldvault's HTTPS front end: a master that binds the port and supervises its children.\n"
        "--check-config also loads the certificate, its key and the master key file.\n"
        "SIGHUP re-reads the certificate and key files (tls_cert, tls_key); other keys need a restart.",
    .table = fe_config_table,
    .check = fe_config_check,
    .check_files = check_files,
};

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
                fv_error("child %d (pid %d) killed by signal %d; restarting", i, (int)pid,
                         WTERMSIG(status));
            else
                fv_error("child %d (pid %d) exited with %d; restarting", i, (int)pid,
                         WEXITSTATUS(status));
            time_t now = now_s();
            children[i].respawn_at = now - children[i].started < RESPAWN_DELAY_S ? now + RESPAWN_DELAY_S
                                                                                 : now;
            break;
        }
    }
}

int main(int argc, char **argv)
{
    fv_cli cli;
    fv_log_init("frontend", FV_LOG_INFO);
    int status = fv_cli_start(&program, argc, argv, &cli);
    if (status >= 0) return status;
    fv_log_init("frontend", (fv_log_level)fv_log_parse_level(fv_common.log_level));
    if (fv_totp_init() != 0) {
        fprintf(stderr, "fv-frontend: liboath failed to initialise\n");
        fv_config_free(fe_config_table);
        return FV_EXIT_FAILURE;
    }
    /* Loaded once here; the children inherit it across fork. */
    char err[512];
    if (fv_keys_load(&fe_keys, fv_common.key_file, err, sizeof err) != 0) {
        fprintf(stderr, "fv-frontend: key_file: %s\n", err);
        fv_config_free(fe_config_table);
        return FV_EXIT_CONFIG;
    }
    /* Which keys this process signs under and opens (rotation, docs/operations.md section 12). */
    char kdesc[160];
    fv_keys_describe(&fe_keys, kdesc, sizeof kdesc);
    fv_info("key_file %s: %s", fv_common.key_file, kdesc);
    if (!fe_metrics_access_load(err, sizeof err)) {
        fprintf(stderr, "fv-frontend: metrics_token_file: %s\n", err);
        fv_config_free(fe_config_table);
        return FV_EXIT_CONFIG;
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
    if (fe_cfg.metrics_listen[0]) { /* checked by fe_config_check */
        char maddr[64];
        int mport = 0;
        if (!fe_metrics_listen_parse(fe_cfg.metrics_listen, maddr, sizeof maddr, &mport)) return 1;
        fe_metrics_listen_fd = bind_listener(maddr, mport);
        if (fe_metrics_listen_fd == -1) return 1;
        fv_info("metrics on http://%s/metrics%s", fe_cfg.metrics_listen,
                fe_metrics_token.set ? " (bearer token required)" : "");
    }
    if (fe_metrics_init() != 0) {
        fv_error("mmap of the metrics region failed: %s", strerror(errno));
        return 1;
    }
    for (int i = 0; i < nchildren; i++) spawn(i, listen_fd, &blocked);
    fv_info("listening on https://%s:%d with %d children", fe_cfg.listen_addr, fe_cfg.listen_port,
            nchildren);

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
                if (fe_metrics_listen_fd != -1) close(fe_metrics_listen_fd);
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

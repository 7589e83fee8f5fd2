/* Spawner: fork + exec /bin/sh -c spawn_command (never waiting on the loop), its first output
 * line taken as the new front end's pid, reaped on SIGCHLD. The balancer is the spawned front
 * ends' subreaper, so it also reaps a front end that exits (crash, SIGKILL) and restarts it on
 * the same address after a backoff. */
#include "lb_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "fv_log.h"
#include "lb_config.h"

#define LB_SPAWN_TICK_MS 500
#define LB_SPAWN_PORT_SPAN 1000 /* ports tried from spawn_port_base */
/* Restart backoff of an exited front end: 1 s, doubled for each exit in a row that came within
 * LB_SPAWN_STABLE_MS of its start, at most 30 s. */
#define LB_SPAWN_RESTART_MS 1000
#define LB_SPAWN_RESTART_MAX_MS 30000
#define LB_SPAWN_STABLE_MS 60000
#define LB_SPAWN_EARLY 16 /* exits of not yet known pids remembered (see early_exit) */

struct lb_spawner;

/* One run of spawn_command. Owned by the spawner's list; freed once the command has exited and
 * its output is closed. */
typedef struct lb_spawn_run {
    struct lb_spawner *sp; /* borrowed */
    pid_t pid;             /* the shell; 0 once reaped */
    int port;
    uint64_t backend_id; /* the backend added for it */
    int out_fd;          /* read end of its stdout, -1 once closed */
    struct event *out_ev;
    char out[128];
    size_t outlen;
    struct lb_spawn_run *next;
} lb_spawn_run;

typedef struct lb_spawner {
    lb_server *srv;
    struct event *sigchld;
    struct event *tick;
    long long last_spawn_ms; /* 0: never */
    lb_spawn_run *runs;
    bool said_max;  /* "max_backends reached" logged since the last spawn */
    bool subreaper; /* PR_SET_CHILD_SUBREAPER took: exited front ends are reaped here */
    /* Processes reaped that were neither a command nor a known front end: a front end that
     * exits before its command's output told us its pid (a ring, newest last). */
    struct {
        pid_t pid;
        int status;
    } early[LB_SPAWN_EARLY];
    unsigned nearly;
} lb_spawner;

static void frontend_exited(lb_spawner *sp, lb_backend *b, int status);

static lb_backend *backend_by_id(lb_server *s, uint64_t id)
{
    for (size_t i = 0; i < s->pool.n; i++)
        if (s->pool.v[i]->id == id) return s->pool.v[i];
    return NULL;
}

static void run_unlink_free(lb_spawner *sp, lb_spawn_run *r)
{
    for (lb_spawn_run **pp = &sp->runs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    if (r->out_ev) event_free(r->out_ev);
    if (r->out_fd != -1) close(r->out_fd);
    free(r);
}

static void close_output(lb_spawn_run *r)
{
    /* The first line is the new front end's pid (deploy/spawn-frontend.sh prints it). */
    r->out[r->outlen] = '\0';
    char *end;
    long pid = strtol(r->out, &end, 10);
    lb_backend *b = backend_by_id(r->sp->srv, r->backend_id);
    if (b && end != r->out && pid > 1 && (*end == '\n' || *end == '\0')) {
        b->spawned_pid = (pid_t)pid;
        fv_info("spawned front end for %s has pid %ld", b->addr.text, pid);
        lb_spawner *sp = r->sp;
        for (unsigned i = 0; i < LB_SPAWN_EARLY; i++)
            if (sp->early[i].pid == (pid_t)pid) {
                sp->early[i].pid = 0;
                frontend_exited(sp, b, sp->early[i].status);
                break;
            }
    }
    if (r->out_ev) event_free(r->out_ev);
    r->out_ev = NULL;
    if (r->out_fd != -1) close(r->out_fd);
    r->out_fd = -1;
}

static void on_output(evutil_socket_t fd, short what, void *arg)
{
    lb_spawn_run *r = arg;
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
        size_t room = sizeof r->out - 1 - r->outlen;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(r->out + r->outlen, buf, take);
        r->outlen += take;
        return;
    }
    if (n == -1 && (errno == EAGAIN || errno == EINTR)) return;
    close_output(r);
    if (r->pid == 0) run_unlink_free(r->sp, r);
}

/* The first port from spawn_port_base that no backend uses and that we can bind ourselves on
 * spawn_addr (when it is a local address); 0 when none. */
static int free_port(lb_server *s)
{
    for (int port = lb_cfg.spawn_port_base;
         port < lb_cfg.spawn_port_base + LB_SPAWN_PORT_SPAN && port <= 65535; port++) {
        lb_addr a;
        if (!lb_addr_from_ip(lb_cfg.spawn_addr, port, &a)) return 0;
        bool used = false;
        for (size_t i = 0; i < s->pool.n && !used; i++)
            used = strcmp(s->pool.v[i]->addr.text, a.text) == 0;
        if (used) continue;
        int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd == -1) return 0;
        int rc = bind(fd, (struct sockaddr *)&a.ss, a.len);
        int err = errno;
        close(fd);
        if (rc == -1 && err == EADDRINUSE) continue;
        return port; /* bound, or not an address of this host (the command starts it elsewhere) */
    }
    return 0;
}

/* spawn_command with every {port} replaced; caller frees. */
static char *command_for(int port)
{
    const char *cmd = lb_cfg.spawn_command;
    size_t n = 0;
    for (const char *p = cmd; (p = strstr(p, "{port}")); p += 6) n++;
    char *out = malloc(strlen(cmd) + n * 6 + 1);
    if (!out) return NULL;
    char *o = out;
    for (const char *p = cmd; *p;) {
        if (strncmp(p, "{port}", 6) == 0) {
            o += sprintf(o, "%d", port);
            p += 6;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* Runs spawn_command for b (a spawned backend on port): fork + exec, its output read by the
 * loop. false (logged, errno kept for the caller's message) when it could not be started. */
static bool run_command(lb_spawner *sp, lb_backend *b, int port, const char *why)
{
    lb_server *s = sp->srv;
    const char *errpos = "out of memory";
    int pipefd[2] = {-1, -1};
    char *cmd = command_for(port);
    lb_spawn_run *r = calloc(1, sizeof *r);
    if (!cmd || !r) goto failed;
    r->out_fd = -1;
    errpos = "pipe2";
    if (pipe2(pipefd, O_CLOEXEC) == -1) goto failed;
    errpos = "fork";
    pid_t pid = fork();
    if (pid == -1) goto failed;
    if (pid == 0) {
        /* The child: default signals, stdout to the pipe, nothing else of ours inherited. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull != -1) dup2(devnull, 0);
        dup2(pipefd[1], 1);
        closefrom(3);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    pipefd[1] = -1;
    r->sp = sp;
    r->pid = pid;
    r->port = port;
    r->backend_id = b->id;
    r->out_fd = pipefd[0];
    fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
    r->out_ev = event_new(s->base, r->out_fd, EV_READ | EV_PERSIST, on_output, r);
    if (r->out_ev) event_add(r->out_ev, NULL);
    r->next = sp->runs;
    sp->runs = r;
    b->started_ms = lb_now_ms();
    fv_info("spawning a front end on %s (%s): pid %d runs: %s", b->addr.text, why, (int)pid, cmd);
    free(cmd);
    return true;
failed:
    if (strcmp(errpos, "out of memory") == 0)
        fv_error("cannot spawn a front end on %s (%s): %s", b->addr.text, why, errpos);
    else
        fv_error("cannot spawn a front end on %s (%s): %s: %s", b->addr.text, why, errpos,
                 strerror(errno));
    if (pipefd[0] != -1) close(pipefd[0]);
    if (pipefd[1] != -1) close(pipefd[1]);
    free(cmd);
    free(r);
    return false;
}

static void spawn_one(lb_spawner *sp, const char *why)
{
    lb_server *s = sp->srv;
    sp->last_spawn_ms = lb_now_ms();
    s->spawns_total++;
    int port = free_port(s);
    lb_addr a;
    char err[160];
    lb_backend *b = NULL;
    if (!port) {
        fv_error("cannot spawn a front end (%s): no free port", why);
    } else if (!lb_addr_from_ip(lb_cfg.spawn_addr, port, &a)) {
        fv_error("cannot spawn a front end (%s): spawn_addr", why);
    } else if (!(b = lb_server_add_backend(s, &a, LB_SRC_SPAWNED, lb_cfg.check_interval_ms, err,
                                           sizeof err))) {
        fv_error("cannot spawn a front end (%s): %s", why, err);
    } else if (run_command(sp, b, port, why)) {
        sp->said_max = false;
        return;
    }
    s->spawn_failures++;
    if (b) lb_server_drain_backend(s, b, "spawn failed");
}

/* b's front end process exited (status from waitpid). A crash (a signal, a non-zero status)
 * takes it out of rotation at once and schedules a restart on the same address after the
 * backoff, unless b is going away or the balancer stops; a clean exit (status 0) is left to the
 * checks. */
static void frontend_exited(lb_spawner *sp, lb_backend *b, int status)
{
    char how[48];
    if (WIFSIGNALED(status)) snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
    else snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
    pid_t pid = b->spawned_pid;
    b->spawned_pid = 0;
    if (b->state == LB_DRAINING || sp->srv->stopping) {
        fv_info("spawned front end on %s (pid %d) %s", b->addr.text, (int)pid, how);
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        /* Stopped on purpose (SIGTERM by its pid, as docs/balancer.md says): its checks take it
         * out of rotation and the spawner replaces it if min_backends wants one. */
        fv_info("spawned front end on %s (pid %d) %s: stopped on purpose, not restarted", b->addr.text,
                (int)pid, how);
        return;
    }
    long long now = lb_now_ms();
    if (b->started_ms && now - b->started_ms >= LB_SPAWN_STABLE_MS) b->quick_exits = 0;
    long long delay = LB_SPAWN_RESTART_MS;
    for (int i = 0; i < b->quick_exits && delay < LB_SPAWN_RESTART_MAX_MS; i++) delay *= 2;
    if (delay > LB_SPAWN_RESTART_MAX_MS) delay = LB_SPAWN_RESTART_MAX_MS;
    b->quick_exits++;
    b->restart_due_ms = now + delay;
    b->health = 0;
    b->fails = 0;
    /* Out of rotation at once (clients were already retried elsewhere on a refused connect). */
    lb_backend_set_state(b, LB_DOWN, "its process exited");
    fv_warn("spawned front end on %s (pid %d) %s: restarting it in %lld ms", b->addr.text, (int)pid, how,
            delay);
}

/* Restarts the front ends whose backoff is over. */
static void restart_due(lb_spawner *sp)
{
    lb_server *s = sp->srv;
    long long now = lb_now_ms();
    for (size_t i = 0; i < s->pool.n; i++) {
        lb_backend *b = s->pool.v[i];
        if (b->restart_due_ms == 0 || now < b->restart_due_ms) continue;
        if (b->state == LB_DRAINING || s->stopping) {
            b->restart_due_ms = 0;
            continue;
        }
        char why[64];
        snprintf(why, sizeof why, "restart %u after its process exited", b->restarts + 1);
        s->spawns_total++;
        if (run_command(sp, b, lb_addr_port(&b->addr), why)) {
            b->restart_due_ms = 0;
            b->restarts++;
            lb_backend_set_state(b, LB_CHECKING, "restarted");
        } else {
            /* Try again after another backoff. */
            s->spawn_failures++;
            b->restart_due_ms = now + LB_SPAWN_RESTART_MAX_MS;
        }
    }
}

void lb_spawn_evaluate(lb_server *s)
{
    lb_spawner *sp = s->spawner;
    if (!sp || s->stopping || !lb_cfg.spawn_command[0]) return;
    size_t healthy = lb_pool_count(&s->pool, LB_UP) + lb_pool_count(&s->pool, LB_DEGRADED);
    size_t booting = lb_pool_count(&s->pool, LB_CHECKING);
    /* A front end waiting out its restart backoff counts as booting: no second one for it. */
    for (size_t i = 0; i < s->pool.n; i++)
        if (s->pool.v[i]->restart_due_ms > 0 && s->pool.v[i]->state == LB_DOWN) booting++;
    long active = 0;
    for (size_t i = 0; i < s->pool.n; i++)
        if (lb_backend_in_rotation(s->pool.v[i])) active += s->pool.v[i]->active;
    char why[128];
    if (healthy + booting < (size_t)lb_cfg.min_backends)
        snprintf(why, sizeof why, "%zu healthy, min_backends = %d", healthy, lb_cfg.min_backends);
    else if (booting == 0 && healthy > 0 && active / (long)healthy > lb_cfg.spawn_conn_threshold)
        snprintf(why, sizeof why,
                 "%ld active connections on %zu healthy backends, spawn_conn_threshold = %d", active,
                 healthy, lb_cfg.spawn_conn_threshold);
    else return;
    if (lb_server_live_backends(s) >= (size_t)lb_cfg.max_backends) {
        if (!sp->said_max)
            fv_warn("would spawn a front end (%s) but max_backends = %d is reached", why,
                    lb_cfg.max_backends);
        sp->said_max = true;
        return;
    }
    if (sp->last_spawn_ms && lb_now_ms() - sp->last_spawn_ms < lb_cfg.spawn_cooldown_ms) return;
    spawn_one(sp, why);
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
    lb_spawner *sp = arg;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        lb_spawn_run *r = sp->runs;
        while (r && r->pid != pid) r = r->next;
        if (!r) {
            lb_backend *b = NULL;
            for (size_t i = 0; i < sp->srv->pool.n && !b; i++)
                if (sp->srv->pool.v[i]->spawned_pid == pid) b = sp->srv->pool.v[i];
            if (b) {
                frontend_exited(sp, b, status);
            } else {
                sp->early[sp->nearly % LB_SPAWN_EARLY].pid = pid;
                sp->early[sp->nearly % LB_SPAWN_EARLY].status = status;
                sp->nearly++;
            }
            continue;
        }
        r->pid = 0;
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok) {
            lb_backend *b = backend_by_id(sp->srv, r->backend_id);
            sp->srv->spawn_failures++;
            fv_error("spawn command for port %d failed (%s %d): dropping that backend", r->port,
                     WIFEXITED(status) ? "exit status" : "signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            if (b && b->state == LB_CHECKING)
                lb_server_drain_backend(sp->srv, b, "spawn command failed");
        }
        if (r->out_fd == -1) run_unlink_free(sp, r);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    lb_spawner *sp = arg;
    restart_due(sp);
    lb_spawn_evaluate(sp->srv);
}

bool lb_spawn_init(lb_server *s)
{
    lb_spawner *sp = calloc(1, sizeof *sp);
    if (!sp) return false;
    sp->srv = s;
    sp->sigchld = evsignal_new(s->base, SIGCHLD, on_sigchld, sp);
    sp->tick = event_new(s->base, -1, EV_PERSIST, on_tick, sp);
    struct timeval tv = {0, LB_SPAWN_TICK_MS * 1000};
    if (!sp->sigchld || !sp->tick || evsignal_add(sp->sigchld, NULL) == -1 ||
        event_add(sp->tick, &tv) == -1) {
        fv_error("cannot set up the spawner's events");
        if (sp->sigchld) event_free(sp->sigchld);
        if (sp->tick) event_free(sp->tick);
        free(sp);
        return false;
    }
    /* Front ends are started detached (setsid, the shell exits at once): as their subreaper we
     * still see them exit. */
    if (lb_cfg.spawn_command[0]) {
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
            fv_warn("prctl(PR_SET_CHILD_SUBREAPER) failed: %s: spawned front ends that exit are "
                    "not restarted",
                    strerror(errno));
        else sp->subreaper = true;
    }
    s->spawner = sp;
    return true;
}

void lb_spawn_free(lb_server *s)
{
    lb_spawner *sp = s->spawner;
    if (!sp) return;
    while (sp->runs) run_unlink_free(sp, sp->runs);
    event_free(sp->sigchld);
    event_free(sp->tick);
    free(sp);
    s->spawner = NULL;
}

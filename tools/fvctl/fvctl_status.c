/* fvctl status: every part of a cluster on one screen: the balancer and its front ends (its
 * /status), the workers (the consumer group), PostgreSQL (and its WAL archiver), Redis, the
 * queue, the dead letters and the spool. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fv_cli.h"
#include "fv_json.h"
#include "fv_pgutil.h"
#include "fv_redisutil.h"
#include "fvctl.h"

#define STATUS_TIMEOUT_S 3
#define STATUS_MAX_BODY (1024 * 1024) /* the balancer's /status: bounded */
#define SPOOL_HEADER 8                /* "FVSPOOL1": a spool file holding nothing more is empty */

static void status_usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl [-c FILE] status [--balancer IP:PORT] [--spool-dir DIR]\n"
            "every part of the cluster on one screen: the balancer (its admin /status) and each\n"
            "front end behind it (state, pid, restarts, last check), the workers (consumers of the\n"
            "group: pending, idle), PostgreSQL (and its WAL archiver), Redis, the queue (stream\n"
            "length, pending), the dead letters and the spool (files not yet replayed).\n"
            "--balancer and --spool-dir override status_balancer and status_spool_dir ([fvctl]);\n"
            "an empty value skips that part. Exit status 1 when a part is down.\n");
}

/* Splits "IP:PORT" or "[IPv6]:PORT" into host and port (numeric only). */
static bool split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1]) return false;
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostlen || strlen(colon + 1) >= portlen) return false;
    long p = 0;
    for (const char *c = colon + 1; *c; c++) {
        if (*c < '0' || *c > '9') return false;
        p = p * 10 + (*c - '0');
        if (p > 65535) return false;
    }
    if (p < 1) return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, portlen, "%s", colon + 1);
    return true;
}

/* GET path over plain HTTP/1.0 from addr ("IP:PORT"), blocking with STATUS_TIMEOUT_S per call.
 * Returns the body (caller frees) when the answer is 200, else NULL with why in err. */
static char *http_get(const char *addr, const char *path, size_t *lenp, char *err, size_t errlen)
{
    char host[64], port[8];
    if (!split_addr(addr, host, sizeof host, port, sizeof port)) {
        snprintf(err, errlen, "'%s' is not IP:PORT", addr);
        return NULL;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV},
                    *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        snprintf(err, errlen, "'%s' is not IP:PORT", addr);
        return NULL;
    }
    char *buf = NULL;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const char *errpos = "socket";
    if (fd == -1) goto failed;
    struct timeval tv = {STATUS_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* also bounds connect() */
    errpos = "connect";
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) goto failed;
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
                     addr);
    errpos = "send";
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) goto failed;
    size_t len = 0, cap = 8192;
    errpos = "out of memory";
    if (!(buf = malloc(cap + 1))) goto failed;
    /* The whole answer within the deadline too: a peer trickling bytes cannot hold us. */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        errno = ETIMEDOUT;
        errpos = "recv";
        if (t.tv_sec - t0.tv_sec > 2 * STATUS_TIMEOUT_S) goto failed;
        if (len == cap) {
            errpos = "answer too long";
            if (cap >= STATUS_MAX_BODY) goto failed;
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            errpos = "out of memory";
            if (!nb) goto failed;
            buf = nb;
        }
        ssize_t got = recv(fd, buf + len, cap - len, 0);
        if (got == 0) break;
        errpos = "recv";
        if (got == -1) {
            if (errno == EINTR) continue;
            goto failed;
        }
        len += (size_t)got;
    }
    buf[len] = '\0';
    close(fd);
    freeaddrinfo(ai);
    int status = 0;
    char *body = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/%*d.%*d %d", &status) != 1 || !body) {
        snprintf(err, errlen, "not an HTTP answer");
        free(buf);
        return NULL;
    }
    if (status != 200) {
        snprintf(err, errlen, "HTTP %d", status);
        free(buf);
        return NULL;
    }
    body += 4;
    *lenp = len - (size_t)(body - buf);
    memmove(buf, body, *lenp + 1);
    return buf; /* caller frees */
failed:
    if (strcmp(errpos, "out of memory") == 0 || strcmp(errpos, "answer too long") == 0)
        snprintf(err, errlen, "%s", errpos);
    else snprintf(err, errlen, "%s: %s", errpos, strerror(errno));
    if (fd != -1) close(fd);
    freeaddrinfo(ai);
    free(buf);
    return NULL;
}

static const char *jstr(yajl_val obj, const char *key, const char *dflt)
{
    yajl_val v = fv_json_get(obj, key);
    return v && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : dflt;
}

static bool jnum(yajl_val obj, const char *key, double *out)
{
    yajl_val v = fv_json_get(obj, key);
    if (!v || !YAJL_IS_NUMBER(v)) return false;
    *out = YAJL_GET_DOUBLE(v);
    return true;
}

#define ROW "%-11s %-26s %-9s %s\n" /* part, where, health, details */

/* The balancer and its front ends. false when the balancer does not answer, or no front end is
 * in rotation. */
static bool show_balancer(const char *addr)
{
    char err[256];
    size_t len = 0;
    char *body = http_get(addr, "/status", &len, err, sizeof err);
    if (!body) {
        printf(ROW, "balancer", addr, "DOWN", err);
        return false;
    }
    fv_json_error je;
    yajl_val st = fv_json_parse_n(body, len, &je);
    free(body);
    yajl_val backends = st ? fv_json_get(st, "backends") : NULL;
    if (!st || !backends || !YAJL_IS_ARRAY(backends)) {
        printf(ROW, "balancer", addr, "DOWN", "its /status is not the balancer's JSON");
        if (st) yajl_tree_free(st);
        return false;
    }
    double active = 0;
    jnum(st, "active_connections", &active);
    yajl_val stopping = fv_json_get(st, "stopping");
    char details[160];
    snprintf(details, sizeof details, "clients on %s, %.0f connections", jstr(st, "listen", "?"),
             active);
    size_t in_rotation = 0, n = YAJL_GET_ARRAY(backends)->len;
    for (size_t i = 0; i < n; i++) {
        const char *state = jstr(YAJL_GET_ARRAY(backends)->values[i], "state", "");
        if (!strcmp(state, "up") || !strcmp(state, "degraded")) in_rotation++;
    }
    const char *health = YAJL_IS_TRUE(stopping) ? "stopping" : in_rotation ? "ok" : "DOWN";
    printf(ROW, "balancer", addr, health, details);
    for (size_t i = 0; i < n; i++) {
        yajl_val b = YAJL_GET_ARRAY(backends)->values[i];
        const char *state = jstr(b, "state", "?");
        char d[256];
        int off = 0;
        double pid = 0, restarts = 0, in_ms = 0, conns = 0;
        if (jnum(b, "pid", &pid)) off += snprintf(d + off, sizeof d - off, "pid %.0f, ", pid);
        else off += snprintf(d + off, sizeof d - off, "pid -, ");
        jnum(b, "active_connections", &conns);
        off += snprintf(d + off, sizeof d - off, "%.0f connections", conns);
        if (jnum(b, "restarts", &restarts) && restarts > 0)
            off += snprintf(d + off, sizeof d - off, ", restarted %.0f times", restarts);
        if (jnum(b, "restart_in_ms", &in_ms))
            off += snprintf(d + off, sizeof d - off, ", restarting in %.1f s", in_ms / 1000);
        yajl_val last = fv_json_get(b, "last_check");
        double lat = 0;
        if (last && YAJL_IS_OBJECT(last)) {
            const char *e = jstr(last, "error", NULL);
            if (e) off += snprintf(d + off, sizeof d - off, ", last check: %.100s", e);
            else if (jnum(last, "latency_ms", &lat))
                off += snprintf(d + off, sizeof d - off, ", checked in %.1f ms", lat);
        }
        bool ok = !strcmp(state, "up") || !strcmp(state, "degraded");
        char upper[16];
        snprintf(upper, sizeof upper, "%s", state);
        if (!ok && strcmp(state, "checking") != 0)
            for (char *p = upper; *p; p++) *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        printf(ROW, "front end", jstr(b, "addr", "?"), upper, d);
    }
    if (n == 0) printf(ROW, "front end", "-", "DOWN", "the balancer has no front end");
    yajl_tree_free(st);
    return in_rotation > 0;
}

/* PostgreSQL: reachable, its version and the WAL archiver. */
static bool show_pg(void)
{
    char err[512];
    PGconn *conn = fv_pgutil_connect(fv_common.pg_dsn, "fvctl status", STATUS_TIMEOUT_S, 5000, err,
                                     sizeof err);
    char where[64];
    snprintf(where, sizeof where, "%s:%s", conn ? PQhost(conn) : "-", conn ? PQport(conn) : "-");
    if (!conn) {
        printf(ROW, "postgresql", "pg_dsn", "DOWN", err);
        return false;
    }
    PGresult *res = PQexec(conn, "SELECT current_setting('server_version'), "
                                 "current_setting('archive_mode'), archived_count, failed_count, "
                                 "coalesce(last_failed_wal, '') FROM pg_stat_archiver");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok) {
        char d[256];
        snprintf(d, sizeof d, "PostgreSQL %s, WAL archiving %s: %s archived, %s failed%s%s",
                 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                 PQgetvalue(res, 0, 3), *PQgetvalue(res, 0, 4) ? ", last failed " : "",
                 PQgetvalue(res, 0, 4));
        printf(ROW, "postgresql", where, "ok", d);
    } else {
        fv_pgutil_error(conn, res, err, sizeof err);
        printf(ROW, "postgresql", where, "DOWN", err);
    }
    PQclear(res);
    PQfinish(conn);
    return ok;
}

/* Redis, the workers (consumers of the group), the queue and the dead letters. */
static bool show_redis(void)
{
    char where[300], err[512];
    snprintf(where, sizeof where, "%s:%d", fv_common.redis_host, fv_common.redis_port);
    redisContext *c = fv_redisutil_connect(fv_common.redis_host, fv_common.redis_port,
                                           fv_common.redis_user, fv_common.redis_password,
                                           STATUS_TIMEOUT_S * 1000, STATUS_TIMEOUT_S * 1000, err,
                                           sizeof err);
    if (!c) {
        printf(ROW, "redis", where, "DOWN", err);
        printf(ROW, "worker", "-", "?", "Redis is down: the workers cannot be seen");
        return false;
    }
    bool ok = false, ok_workers = true;
    size_t connected = 0;
    long long len = -1, pending = -1, dead = -1;
    redisReply *r = redisCommand(c, "PING");
    if (!r || r->type == REDIS_REPLY_ERROR) goto failed;
    freeReplyObject(r);
    printf(ROW, "redis", where, "ok", "");

    /* The workers: the consumers of the group, with what each holds; connected when a Redis
     * client carries its name (fv-worker:CONSUMER, set by the worker on connect). CLIENT LIST
     * may be refused to an ACL user: then connection is not shown. */
    char *clients = NULL;
    r = redisCommand(c, "CLIENT LIST TYPE normal");
    if (r && r->type == REDIS_REPLY_STRING) clients = strdup(r->str);
    if (r) freeReplyObject(r);
    r = redisCommand(c, "XINFO CONSUMERS %s %s", fv_common.stream, fv_common.group);
    if (r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "no such key")) {
        printf(ROW, "worker", "-", "NONE", "the stream does not exist yet (no worker has started)");
    } else if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0) {
        printf(ROW, "worker", "-", "NONE", "no consumer group yet (no worker has started)");
    } else if (r && r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *cons = r->element[i];
            const char *name = "?";
            long long cp = 0, idle = 0;
            for (size_t k = 0; cons->type == REDIS_REPLY_ARRAY && k + 1 < cons->elements; k += 2) {
                const redisReply *key = cons->element[k], *val = cons->element[k + 1];
                if (key->type != REDIS_REPLY_STRING) continue;
                if (!strcmp(key->str, "name") && val->type == REDIS_REPLY_STRING) name = val->str;
                else if (!strcmp(key->str, "pending") && val->type == REDIS_REPLY_INTEGER)
                    cp = val->integer;
                else if (!strcmp(key->str, "idle") && val->type == REDIS_REPLY_INTEGER)
                    idle = val->integer;
            }
            char needle[160], d[200];
            snprintf(needle, sizeof needle, " name=fv-worker:%.100s ", name);
            long age = -1;
            const char *hit = clients ? strstr(clients, needle) : NULL;
            const char *a = hit ? strstr(hit, " age=") : NULL;
            if (a) age = strtol(a + 5, NULL, 10);
            const char *health = !clients ? "?" : hit ? "ok" : "GONE";
            if (hit) snprintf(d, sizeof d, "connected for %ld s, %lld pending", age, cp);
            else if (clients)
                snprintf(d, sizeof d,
                         "not connected (down or restarting), %lld pending, seen %.0f s ago", cp,
                         (double)idle / 1000);
            else snprintf(d, sizeof d, "%lld pending, seen %.0f s ago", cp, (double)idle / 1000);
            printf(ROW, "worker", name, health, d);
            if (hit) connected++;
        }
        if (r->elements == 0) printf(ROW, "worker", "-", "NONE", "no consumer in the group");
        /* A consumer left by a worker gone for good stays listed: down only when none is. */
        if (clients && connected == 0) ok_workers = false;
    } else {
        free(clients);
        goto failed;
    }
    free(clients);
    freeReplyObject(r);

    r = redisCommand(c, "XLEN %s", fv_common.stream);
    if (!r || r->type != REDIS_REPLY_INTEGER) goto failed;
    len = r->integer;
    freeReplyObject(r);
    r = redisCommand(c, "XPENDING %s %s", fv_common.stream, fv_common.group);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        pending = r->element[0]->integer;
    freeReplyObject(r);
    r = redisCommand(c, "XLEN %s", fv_common.dead_stream);
    if (!r || r->type != REDIS_REPLY_INTEGER) goto failed;
    dead = r->integer;
    freeReplyObject(r);
    r = NULL;
    char d[160];
    if (pending >= 0) snprintf(d, sizeof d, "%lld entries, %lld pending", len, pending);
    else snprintf(d, sizeof d, "%lld entries, group %s not there yet", len, fv_common.group);
    printf(ROW, "queue", fv_common.stream, "ok", d);
    snprintf(d, sizeof d, "%lld entries%s", dead, dead ? " (fvctl dead-letters lists them)" : "");
    printf(ROW, "dead", fv_common.dead_stream, dead ? "ATTENTION" : "ok", d);
    ok = ok_workers;
    goto done;
failed:
    fv_redisutil_error(c, r, err, sizeof err);
    printf(ROW, "redis", where, "DOWN", err);
done:
    if (r) freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* The spool: files of the front ends' children holding submissions not yet in Redis. */
static bool show_spool(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) {
            printf(ROW, "spool", dir, "ok", "nothing spooled (the directory is not there yet)");
            return true;
        }
        printf(ROW, "spool", dir, "?", strerror(errno));
        return true; /* not a part that is down */
    }
    long files = 0, waiting = 0;
    long long bytes = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (strncmp(e->d_name, "spool-", 6) != 0 || nl < 10 || strcmp(e->d_name + nl - 4, ".log"))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) == -1 || !S_ISREG(st.st_mode)) continue;
        files++;
        if (st.st_size > SPOOL_HEADER) {
            waiting++;
            bytes += st.st_size - SPOOL_HEADER;
        }
    }
    closedir(d);
    char details[160];
    snprintf(details, sizeof details, "%ld files, %ld holding submissions not yet in Redis (%lld bytes)",
             files, waiting, bytes);
    printf(ROW, "spool", dir, waiting ? "SPOOLING" : "ok", details);
    return true;
}

int fvctl_status(int argc, char **argv)
{
    static const struct option opts[] = {{"balancer", required_argument, NULL, 'b'},
                                         {"spool-dir", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *balancer = fvctl_cfg.status_balancer, *spool = fvctl_cfg.status_spool_dir;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'b') balancer = optarg;
        else if (o == 's') spool = optarg;
        else if (o == 'h') {
            status_usage(stdout);
            return FV_EXIT_OK;
        } else {
            status_usage(stderr);
            return FV_EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fvctl status: unexpected argument '%s'\n", argv[optind]);
        status_usage(stderr);
        return FV_EXIT_CONFIG;
    }
    printf(ROW, "PART", "WHERE", "HEALTH", "DETAILS");
    bool ok = true;
    if (balancer && *balancer) ok &= show_balancer(balancer);
    ok &= show_redis();
    ok &= show_pg();
    if (spool && *spool) ok &= show_spool(spool);
    fflush(stdout);
    return ok ? FV_EXIT_OK : FV_EXIT_FAILURE;
}

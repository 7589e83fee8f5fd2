/* Address parsing and formatting for the balancer; numeric only, never a name lookup. */
#include "lb_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool parse_port(const char *s, int *port)
{
    if (!*s || strlen(s) > 5) return false;
    int v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535) return false;
    *port = v;
    return true;
}

bool lb_addr_from_ip(const char *ip, int port, lb_addr *out)
{
    memset(out, 0, sizeof *out);
    if (port < 1 || port > 65535) return false;
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
    char buf[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->len = sizeof *sin;
        inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
        snprintf(out->text, sizeof out->text, "%s:%d", buf, port);
        return true;
    }
    if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        out->len = sizeof *sin6;
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
        snprintf(out->text, sizeof out->text, "[%s]:%d", buf, port);
        return true;
    }
    return false;
}

bool lb_addr_parse(const char *s, lb_addr *out)
{
    char ip[INET6_ADDRSTRLEN + 2];
    const char *portp;
    int port;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof ip) return false;
        memcpy(ip, s + 1, (size_t)(close - s - 1));
        ip[close - s - 1] = '\0';
        portp = close + 2;
        if (!strchr(ip, ':')) return false; /* brackets are for IPv6 only */
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof ip) return false;
        memcpy(ip, s, (size_t)(colon - s));
        ip[colon - s] = '\0';
        if (strchr(ip, ':')) return false; /* IPv6 needs brackets */
        portp = colon + 1;
    }
    if (!parse_port(portp, &port)) return false;
    return lb_addr_from_ip(ip, port, out);
}

int lb_addr_parse_list(const char *s, lb_addr *out, int max, char *err, size_t errlen)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        const char *end = p;
        while (*end && *end != ',' && *end != ' ' && *end != '\t') end++;
        char item[128];
        size_t len = (size_t)(end - p);
        if (len >= sizeof item) len = sizeof item - 1;
        memcpy(item, p, len);
        item[len] = '\0';
        p = end;
        if (n >= max) {
            snprintf(err, errlen, "more than %d backends", max);
            return -1;
        }
        if (!lb_addr_parse(item, &out[n])) {
            snprintf(err, errlen, "'%s' is not IP:port (no host names: the balancer never resolves)",
                     item);
            return -1;
        }
        for (int i = 0; i < n; i++)
            if (strcmp(out[i].text, out[n].text) == 0) {
                snprintf(err, errlen, "backend %s listed twice", out[n].text);
                return -1;
            }
        n++;
    }
    return n;
}

bool lb_addr_is_loopback(const lb_addr *a)
{
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    }
    return false;
}

int lb_addr_port(const lb_addr *a)
{
    if (a->ss.ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    if (a->ss.ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return 0;
}

int lb_addr_listen(const lb_addr *a, int backlog, const char **errpos)
{
    int one = 1, fd;
    *errpos = "socket";
    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) return -1;
    *errpos = "setsockopt";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1) goto failed;
    *errpos = "bind";
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1) goto failed;
    *errpos = "listen";
    if (listen(fd, backlog) == -1) goto failed;
    return fd;
failed : {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}
}

/* Backend and listener addresses: "IP:port" / "[IPv6]:port" only (no DNS, ever). */
#ifndef LB_ADDR_H
#define LB_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct lb_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64]; /* canonical form: "127.0.0.1:9443" or "[::1]:9443" */
} lb_addr;

/* Parses "IP:port" or "[IPv6]:port" (port 1..65535, digits only) into out. */
bool lb_addr_parse(const char *s, lb_addr *out) __attribute__((warn_unused_result));
/* Parses a bare IP address and a port (e.g. the admin_addr and admin_port keys). */
bool lb_addr_from_ip(const char *ip, int port, lb_addr *out) __attribute__((warn_unused_result));
/* Parses a comma-separated list (spaces allowed, empty items skipped) into out[0..max-1].
 * Returns the count, or -1 with the bad item named in err (also for duplicates and for more
 * than max items). */
int lb_addr_parse_list(const char *s, lb_addr *out, int max, char *err, size_t errlen);
bool lb_addr_is_loopback(const lb_addr *a);
int lb_addr_port(const lb_addr *a);

/* Returns a listening socket (non-blocking, close-on-exec, SO_REUSEADDR) or -1 with errno set
 * and the failed call named in *errpos. */
int lb_addr_listen(const lb_addr *a, int backlog, const char **errpos);

#endif

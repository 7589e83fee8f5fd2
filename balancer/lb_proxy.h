/* The data path: accept a client, connect it to a backend, pass bytes both ways (TLS untouched). */
#ifndef LB_PROXY_H
#define LB_PROXY_H

#include <stdbool.h>

#include "lb_server.h"

/* Binds proxy_addr:proxy_port and starts accepting. false (logged) on failure. */
bool lb_proxy_listen(lb_server *s) __attribute__((warn_unused_result));
/* Stops accepting (SIGTERM): the listening socket is closed at once. */
void lb_proxy_stop_accepting(lb_server *s);
/* Closes every open connection now (the drain deadline passed, or exit). */
void lb_proxy_close_all(lb_server *s);
/* Frees what lb_proxy_listen made (after lb_proxy_close_all). */
void lb_proxy_free(lb_server *s);

#endif

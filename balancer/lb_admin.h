/* The admin listener (loopback, plain HTTP): /status, /metrics, /backends. */
#ifndef LB_ADMIN_H
#define LB_ADMIN_H

#include <stdbool.h>

#include "lb_server.h"

bool lb_admin_start(lb_server *s) __attribute__((warn_unused_result));
void lb_admin_free(lb_server *s);

#endif

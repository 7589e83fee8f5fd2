/* The spawner: runs spawn_command to start another front end when too few backends are healthy
 * or the ones there are too loaded, and adds the new backend. */
#ifndef LB_SPAWN_H
#define LB_SPAWN_H

#include <stdbool.h>

#include "lb_server.h"

/* Sets up the SIGCHLD handler and the evaluation timer. false (logged) on failure. */
bool lb_spawn_init(lb_server *s) __attribute__((warn_unused_result));
/* Looks at the pool and spawns one front end when needed and allowed. */
void lb_spawn_evaluate(lb_server *s);
/* Frees the spawner's state; commands still running are left to finish on their own. */
void lb_spawn_free(lb_server *s);

#endif

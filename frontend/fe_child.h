/* A front-end child: one event loop serving HTTPS on the socket the master bound. */
#ifndef FE_CHILD_H
#define FE_CHILD_H

/* Runs child number `index` on listen_fd (borrowed) until told to stop; returns the exit code. */
int fe_child_run(int index, int listen_fd);

#endif

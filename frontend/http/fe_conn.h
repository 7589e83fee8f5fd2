/* Client connections of a child: TLS, deadlines, connection caps, and the framing filter that
 * sits between TLS and libevent's HTTP parser (fe_conn.c explains it). */
#ifndef FE_CONN_H
#define FE_CONN_H

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

/* Prepares the child's accounting; clamps fe_cfg.max_connections below RLIMIT_NOFILE (raising
 * the soft limit first when the hard one allows), saying so in the log. reserve: descriptors
 * the child needs besides client connections. 0, or -1 (logged) when the limit leaves none. */
int fe_conn_init(struct event_base *base, int reserve);
/* evhttp_set_bevcb's callback: a connection's bufferevent (the framing filter over TLS). arg is
 * an SSL_CTX ** (borrowed; read at each accept, so a reloaded certificate applies). */
struct bufferevent *fe_conn_make_bev(struct event_base *base, void *arg);
/* The listener of the bound socket (paused at the cap); NULL once it is freed (draining). */
void fe_conn_set_listener(struct evconnlistener *lev);
/* Open client connections of this child. */
int fe_conn_count(void);
/* Before evhttp_free: forgets the listener, frees the module's timers. */
void fe_conn_shutdown(void);

#endif

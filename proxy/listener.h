/*
 * listener.h - the sockets clients connect to, and who may use them.
 *
 * Binds every [server] listen address (SMTP) and lmtp_listen address
 * (LMTP, smtp_server.h), refuses clients outside
 * allow_clients with 554 5.7.1 before any SMTP (never an open relay),
 * enforces max_connections (as far as the descriptor limit allows, see
 * limits.h) overall and per client address, and hands accepted
 * connections to smtp_server sessions. When full it closes the oldest
 * connection still waiting for HELO/EHLO to make room, and only when
 * there is none answers 421 4.7.0. Out of descriptors it answers the
 * waiting clients 421 4.3.2 through a reserve descriptor and pauses
 * accepting with a back-off instead of spinning.
 */
#ifndef STSPROXY_LISTENER_H
#define STSPROXY_LISTENER_H

#include "proxy/smtp_server.h"

struct listener;

/**
 * Bind all listen addresses of rt->conf. env is borrowed and must outlive
 * the listener. NULL on error with *err set (caller frees).
 */
struct listener *listener_new(const struct smtp_server_env *env, char **err);

/**
 * Apply a reloaded configuration (borrowed; must outlive the listener):
 * allow_clients and the connection limits. The sockets stay as they are.
 */
void listener_reconfigure(struct listener *l, const struct conf *conf);

/** Stop accepting; existing sessions get 421 and close on their own. */
void listener_shutdown(struct listener *l);

/** 421 every session still open, in any state (shutdown_timeout). */
void listener_abort(struct listener *l);

/** Sessions still open. */
unsigned listener_sessions(const struct listener *l);

/** Close the sockets and free; sessions must be gone (listener_sessions() == 0). */
void listener_free(struct listener *l);

#endif

/*
 * smtp_server.h - one client connection: the ESMTP server that legacy
 * MTAs use as their smarthost, or the LMTP server (RFC 2033) they hand
 * outbound mail to.
 *
 * Answers EHLO, MAIL and the local commands itself; for RCPT, DATA and
 * the end of the message it waits for the upstream transaction
 * (upstream.h) and relays the upstream's reply (PRX), so the client's
 * queue stays the only queue. Over SMTP a transaction has one recipient
 * domain (the first the upstream accepts; others get 452 4.5.3). Over
 * LMTP a transaction takes any number of domains, each with its own
 * upstream, and each recipient gets its own domain's replies, at RCPT and
 * after the data (fanout.h). A session is a state machine (SMTP_S_*,
 * traced at debug level) and frees itself from the event loop after it
 * closed, never inside one of its own callbacks.
 */
#ifndef STSPROXY_SMTP_SERVER_H
#define STSPROXY_SMTP_SERVER_H

#include <stdbool.h>
#include <sys/socket.h>

#include <event2/util.h>
#include <openssl/ssl.h>

#include "proxy/runtime.h"
#include "proxy/upstream.h"

/** What every session of a listener shares; all borrowed. */
struct smtp_server_env {
	struct runtime			*rt;
	SSL_CTX				*tls_ctx;	/* NULL: no STARTTLS */
	const struct upstream_ops	*ops;		/* upstream.h */
	bool				 lmtp;		/* LMTP (LHLO, a reply per recipient) */
};

struct smtp_server;

/** Runs once, from the event loop, right before the session is freed. */
typedef void (*smtp_server_closed_cb)(void *arg, struct smtp_server *session);

/**
 * Serve a client on fd (owned from now on, closed by the session), which
 * connected from peer. env must outlive the session. Sends the greeting.
 */
struct smtp_server *smtp_server_new(const struct smtp_server_env *env, evutil_socket_t fd,
    const struct sockaddr *peer, smtp_server_closed_cb closed, void *arg);

/** Say 421 and close (shutdown); the closed callback follows later. */
void smtp_server_shutdown(struct smtp_server *s);

/** Shutdown timeout reached: 421 now, whatever the state; the transaction is dropped unacknowledged. */
void smtp_server_abort(struct smtp_server *s);

/** true while the client has not completed HELO/EHLO: the first to go when the relay is full. */
bool smtp_server_awaiting_helo(const struct smtp_server *s);

/**
 * The relay is full: a session still awaiting HELO/EHLO gets 421 4.7.0
 * and closes (the closed callback follows later); why and idle_seconds
 * go to the log. Any other session is left alone.
 */
void smtp_server_evict(struct smtp_server *s, const char *why, unsigned idle_seconds);

const char *smtp_server_id(const struct smtp_server *s);
const struct sockaddr *smtp_server_peer(const struct smtp_server *s);

/** A fresh 64-bit session id as 16 hex digits. */
void smtp_session_id_new(char out[17]);

#endif

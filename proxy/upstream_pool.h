/*
 * upstream_pool.h - idle upstream connections kept for the next
 * transaction to the same MX.
 *
 * A full TLS handshake costs more than relaying a small message, so a
 * connection that ended a transaction cleanly is parked here instead of
 * saying QUIT. Parking sends RSET; only a connection whose RSET got 250
 * can be taken. A parked connection that the server closes, that says
 * anything, or that stays idle past [upstream] reuse_idle_timeout is
 * dropped. The pool is bounded ([upstream] reuse_pool_size; the oldest
 * goes first) and so is a connection's life ([upstream]
 * reuse_max_messages).
 *
 * The security boundary: a connection remembers whether it was opened
 * under a policy (strict: STARTTLS required, certificate verified for
 * the MX host name it was opened for). A transaction under a policy takes
 * only strict connections for exactly its MX host and address; one
 * without a policy may take any connection to that host and address.
 * So a connection opened for a domain without a policy never carries
 * mail for a domain with one.
 *
 * One pool per process (per event loop), like the log.
 */
#ifndef STSPROXY_UPSTREAM_POOL_H
#define STSPROXY_UPSTREAM_POOL_H

#include <stdbool.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "policy/result_type.h"
#include "policy/tls.h"
#include "proxy/smtp_reply.h"

struct event_base;
struct bufferevent;

/** What a connection carries from one transaction to the next. */
struct upstream_conn {
	struct bufferevent	*bev;		/* owns the SSL when TLS is on */
	SSL			*ssl;
	struct sockaddr_storage	 addr;
	char			 mx_host[256];
	char			 ip[64];
	char			 local_ip[64];
	char			 mx_helo[256];
	bool			 strict;	/* opened under a policy, verified for mx_host */
	bool			 tls_active;
	struct tls_peer_info	 peer;
	enum rpt_result_type	 tls_result;
	char			 tls_reason[256];
	bool			 starttls_offered;
	struct smtp_reply	 ehlo;		/* the EHLO reply in force */
	unsigned		 messages;	/* transactions carried so far */
	bool			 rset_pending;	/* taken before the 250 to RSET arrived */
};

/**
 * Park conn (its contents are moved in; conn is left empty). The pool
 * sends RSET and owns the connection from now on: it may close it at any
 * time. conf is borrowed and must outlive the pool's use of it.
 */
void upstream_pool_put(struct event_base *base, const struct conf *conf, struct upstream_conn *conn);

/**
 * Take an idle connection to mx_host at addr: with strict, only one
 * opened under a policy. On success *conn receives it (the caller owns
 * it, callbacks unset) and the result is true.
 */
bool upstream_pool_take(const char *mx_host, const struct sockaddr_storage *addr, bool strict,
    struct upstream_conn *conn);

/** Whether conn may be parked after a transaction under conf. */
bool upstream_pool_accepts(const struct conf *conf, const struct upstream_conn *conn);

/** Close every parked connection (QUIT), e.g. at shutdown. */
void upstream_pool_flush(void);

/** Free everything without a word to the servers: the loop is gone (exit). */
void upstream_pool_free_all(void);

/** Connections parked or saying QUIT now (shutdown waits for 0). */
unsigned upstream_pool_size(void);

#endif

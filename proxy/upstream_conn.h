/*
 * upstream_conn.h - one SMTP connection to one MX address: the socket
 * and its bufferevent(s), the STARTTLS upgrade, the TLS facts of the
 * connection and the polite close.
 *
 * It is what outlives a transaction: the dialogue (upstream.c) speaks
 * SMTP over it, the pool (upstream_pool.c) parks it between
 * transactions, and the TLS-RPT records (upstream_record.c) read its
 * facts. Parking and adopting move the one pointer.
 *
 * The struct is open because those three read its facts; only this file
 * creates, upgrades and closes the bufferevent and sets the TLS facts.
 * The dialogue fills in what it learns in the SMTP dialogue (the
 * greeting's host name, the EHLO reply) since that travels with the
 * connection into the pool.
 */
#ifndef STSPROXY_UPSTREAM_CONN_H
#define STSPROXY_UPSTREAM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include "policy/dane.h"
#include "policy/result_type.h"
#include "policy/tls.h"
#include "proxy/smtp_reply.h"

struct event_base;

struct upstream_conn {
	struct bufferevent	*bev;		/* the TLS filter once STARTTLS began; owns the SSL */
	SSL			*ssl;		/* NULL before STARTTLS */
	struct sockaddr_storage	 addr;		/* the MX address connected to */
	char			 mx_host[256];	/* the MX host name it was opened for */
	char			 ip[64];	/* addr as text */
	char			 local_ip[64];	/* our end (sending-mta-ip), once connected */
	char			 mx_helo[256];	/* the name in the greeting, from the dialogue */
	bool			 opened_strict;	/* opened where TLS and authentication are required */
	bool			 starttls_offered; /* by the EHLO reply in force */
	struct smtp_reply	 ehlo;		/* the EHLO reply in force (empty after HELO) */
	unsigned		 messages;	/* transactions carried before this one */

	/* TLS facts, set by upstream_conn_tls_ready() */
	bool			 tls_active;
	bool			 tls_resumed;	/* the handshake resumed a cached session */
	struct tls_peer_info	 peer;
	enum rpt_result_type	 tls_result;	/* RPT_RESULT_NONE: verified (PKIX for mx_host, or DANE) */
	char			 tls_reason[256];
	enum tls_auth		 auth;		/* what the handshake proved: PKIX, DANE or nothing */
	char			 tlsa_id[17];	/* DANE: the TLSA RRset it was verified under */
	char			 dane_match[TLS_DANE_MATCH_MAX]; /* DANE: the record that matched */

	/* the owner's callbacks, kept so the TLS filter gets them too */
	bufferevent_data_cb	 readcb, writecb;
	bufferevent_event_cb	 eventcb;
	void			*cbarg;
};

/**
 * A connection to addr, for mx_host (copied), not yet connecting.
 * opened_strict says whether it is opened where TLS and authentication
 * are required (a policy or DANE). The caller owns it and ends it with
 * upstream_conn_close().
 */
struct upstream_conn *upstream_conn_new(const char *mx_host, const struct sockaddr_storage *addr,
    bool opened_strict);

/**
 * Connect over base with the owner's callbacks (arg is theirs) and
 * timeout_s for reads and writes; BEV_EVENT_CONNECTED reports success,
 * then call upstream_conn_connected(). 0, or -1 with errno when the
 * connect cannot even start.
 */
int upstream_conn_connect(struct upstream_conn *conn, struct event_base *base,
    unsigned timeout_s, bufferevent_data_cb readcb, bufferevent_data_cb writecb,
    bufferevent_event_cb eventcb, void *arg);

/** Connected: note our own address (local_ip) and turn off Nagle. */
void upstream_conn_connected(struct upstream_conn *conn);

/**
 * Hand the connection to another owner (the pool, or a transaction
 * adopting it from the pool): its callbacks and arg from now on. NULL
 * callbacks stop all reports.
 */
void upstream_conn_set_owner(struct upstream_conn *conn, bufferevent_data_cb readcb,
    bufferevent_data_cb writecb, bufferevent_event_cb eventcb, void *arg);

/** Read and write timeouts in seconds; 0 means none. */
void upstream_conn_set_timeouts(struct upstream_conn *conn, unsigned read_s, unsigned write_s);

/**
 * Start the TLS handshake over ssl_ctx after a 220 to STARTTLS, as
 * regime says: under REGIME_DANE authenticated by regime->tlsa's records
 * with dane_names as further reference identifiers (SNI is the TLSA base
 * domain), otherwise by PKIX for mx_host (SNI and name check).
 * BEV_EVENT_CONNECTED on the new bufferevent reports its end: then
 * upstream_conn_tls_ready(), or on an error upstream_conn_tls_failed().
 * -1 if the TLS layer cannot be set up: bev NULL when the connection is
 * gone, otherwise (no TLSA record OpenSSL accepts) tls_result and
 * tls_reason say why.
 */
int upstream_conn_start_tls(struct upstream_conn *conn, struct event_base *base, SSL_CTX *ssl_ctx,
    const struct route_regime *regime, const struct strlist *dane_names, unsigned timeout_s);

/**
 * The handshake completed: fill in the TLS facts and say whether the
 * certificate verified (RPT_RESULT_NONE) or why not (tls_reason): by
 * DANE when started under REGIME_DANE, otherwise by PKIX for mx_host.
 */
enum rpt_result_type upstream_conn_tls_ready(struct upstream_conn *conn);

/** The handshake failed: its RFC 8460 result type, and the reason in reason. */
enum rpt_result_type upstream_conn_tls_failed(struct upstream_conn *conn, char *reason, size_t size);

/**
 * Whether the connection may carry a transaction whose route has regime
 * (the pool's security boundary, upstream_pool.h): under DANE only one
 * DANE authenticated under the same TLSA RRset; under MTA-STS only one
 * opened under a policy whose certificate PKIX verified for mx_host;
 * where TLS is required (DANE-9) only one with TLS; otherwise any.
 */
bool upstream_conn_fits(const struct upstream_conn *conn, const struct route_regime *regime);

/**
 * End conn (NULL is fine). polite: the dialogue is at a reply boundary,
 * so it says QUIT (RFC 5321 §4.1.1.10) and lets the connection go on
 * its own; it frees itself on the reply, on EOF or after a timeout, and
 * counts in upstream_conn_closing() until then. Otherwise the TLS layer
 * gets a best-effort close_notify and the socket closes now. conn is
 * gone either way for the caller.
 */
void upstream_conn_close(struct upstream_conn *conn, bool polite);

/** Connections saying QUIT now (shutdown waits for them). */
unsigned upstream_conn_closing(void);

/** Free the connections saying QUIT without waiting: the loop is gone (exit). */
void upstream_conn_closing_free_all(void);

#endif

/*
 * upstream_pool.h - idle upstream connections kept for the next
 * transaction to the same MX.
 *
 * A full TLS handshake costs more than relaying a small message, so a
 * connection that ended a transaction cleanly is parked here instead of
 * saying QUIT. Parking sends RSET; a connection can be taken once its
 * RSET got 250, or while the reply is on its way (the taker reads it).
 * A parked connection that the server closes, that says
 * anything, or that stays idle past [upstream] reuse_idle_timeout is
 * dropped. The pool is bounded ([upstream] reuse_pool_size; the oldest
 * goes first) and so is a connection's life ([upstream]
 * reuse_max_messages).
 *
 * The security boundary: a connection remembers whether it was opened
 * where authentication is required and what its handshake proved
 * (upstream_conn_fits()): a certificate PKIX-verified for the MX host name
 * it was opened for, or DANE authentication under one TLSA RRset, or
 * nothing. A transaction takes only connections to exactly its MX host and
 * address that prove what its route's regime asks: under MTA-STS one
 * opened under a policy and PKIX-verified, under DANE one authenticated by DANE under
 * the same TLSA RRset, where TLS is required (DANE-9) one with TLS;
 * without a policy or DANE any. So a connection opened for a domain
 * without a policy never carries mail for a domain with one, and one
 * authenticated under old TLSA records never outlives them.
 *
 * One pool per process (per event loop), like the log.
 */
#ifndef STSPROXY_UPSTREAM_POOL_H
#define STSPROXY_UPSTREAM_POOL_H

#include <stdbool.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "policy/dane.h"
#include "proxy/upstream_conn.h"

/**
 * Park conn (owned from now on; the pool may close it at any time). The
 * pool sends RSET and keeps it for the next transaction to its MX host
 * and address. conf is borrowed and must outlive the pool's use of it.
 */
void upstream_pool_put(const struct conf *conf, struct upstream_conn *conn);

/**
 * Take an idle connection to mx_host at addr that fits regime
 * (upstream_conn_fits()). The caller owns the result (callbacks unset),
 * or NULL when none fits. *rset_pending says whether the 250 to the
 * pool's RSET is still to be read.
 */
struct upstream_conn *upstream_pool_take(const char *mx_host, const struct sockaddr_storage *addr,
    const struct route_regime *regime, bool *rset_pending);

/** Whether conn may be parked after a transaction under conf. */
bool upstream_pool_accepts(const struct conf *conf, const struct upstream_conn *conn);

/** Close every parked connection (QUIT when idle), e.g. at shutdown. */
void upstream_pool_flush(void);

/** Free everything without a word to the servers: the loop is gone (exit). */
void upstream_pool_free_all(void);

/** Connections parked or saying QUIT now (shutdown waits for 0). */
unsigned upstream_pool_size(void);

#endif

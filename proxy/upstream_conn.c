#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_UPSTREAM

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "conf/netaddr.h"
#include "conf/util.h"
#include "proxy/upstream_conn.h"

/* How long a connection saying QUIT waits for the reply. */
#define QUIT_TIMEOUT	10

/* Connections saying QUIT, for upstream_conn_closing_free_all(). */
struct closing {
	struct upstream_conn	*conn;
	struct closing		*next;
};

static struct closing *closing_list;
static unsigned closing_count;

struct upstream_conn *
upstream_conn_new(const char *mx_host, const struct sockaddr_storage *addr, bool opened_strict)
{
	struct upstream_conn *conn = xcalloc(1, sizeof(*conn));

	snprintf(conn->mx_host, sizeof(conn->mx_host), "%s", mx_host);
	conn->addr = *addr;
	netaddr_ntop((const struct sockaddr *)addr, conn->ip, sizeof(conn->ip));
	conn->opened_strict = opened_strict;
	conn->tls_result = RPT_RESULT_NONE;
	conn->auth = TLS_AUTH_NONE;
	smtp_reply_init(&conn->ehlo);
	return conn;
}

void
upstream_conn_set_owner(struct upstream_conn *conn, bufferevent_data_cb readcb,
    bufferevent_data_cb writecb, bufferevent_event_cb eventcb, void *arg)
{
	conn->readcb = readcb;
	conn->writecb = writecb;
	conn->eventcb = eventcb;
	conn->cbarg = arg;
	if (conn->bev != NULL)
		bufferevent_setcb(conn->bev, readcb, writecb, eventcb, arg);
}

void
upstream_conn_set_timeouts(struct upstream_conn *conn, unsigned read_s, unsigned write_s)
{
	struct timeval rtv = { read_s, 0 }, wtv = { write_s, 0 };

	bufferevent_set_timeouts(conn->bev, read_s ? &rtv : NULL, write_s ? &wtv : NULL);
}

int
upstream_conn_connect(struct upstream_conn *conn, struct event_base *base,
    unsigned timeout_s, bufferevent_data_cb readcb, bufferevent_data_cb writecb,
    bufferevent_event_cb eventcb, void *arg)
{
	socklen_t len = conn->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);

	conn->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (conn->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	upstream_conn_set_owner(conn, readcb, writecb, eventcb, arg);
	upstream_conn_set_timeouts(conn, timeout_s, timeout_s);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
	return bufferevent_socket_connect(conn->bev, (struct sockaddr *)&conn->addr, (int)len);
}

void
upstream_conn_connected(struct upstream_conn *conn)
{
	evutil_socket_t fd = bufferevent_getfd(conn->bev);
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	int one = 1;

	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
		netaddr_ntop((struct sockaddr *)&local, conn->local_ip, sizeof(conn->local_ip));
	/* commands are small writes awaiting a reply: no Nagle delay */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int
upstream_conn_start_tls(struct upstream_conn *conn, struct event_base *base, SSL_CTX *ssl_ctx,
    const struct route_regime *regime, const struct strlist *dane_names, unsigned timeout_s)
{
	struct bufferevent *tls;

	if (regime->kind == REGIME_DANE) {
		conn->ssl = tls_dane_client_new(ssl_ctx, regime->tlsa, dane_names);
		if (conn->ssl == NULL) {
			conn->tls_result = RPT_RESULT_TLSA_INVALID;
			snprintf(conn->tls_reason, sizeof(conn->tls_reason),
			    "no TLSA record the TLS library accepts (%s)", regime->tlsa->params);
			return -1;
		}
		snprintf(conn->tlsa_id, sizeof(conn->tlsa_id), "%s", regime->tlsa->id);
	} else
		conn->ssl = tls_smtp_client_new(ssl_ctx, conn->mx_host);
	/* From now on only the TLS layer's timeouts count: one left on the
	 * plain bufferevent below would fire on its own schedule, end
	 * reading there and strand the layer above (an idle connection in
	 * the pool cut at command_timeout, its QUIT never answered). */
	bufferevent_set_timeouts(conn->bev, NULL, NULL);
	/* With CLOSE_ON_FREE the filter owns both the SSL and the plain
	 * bufferevent, even when it fails to start. */
	tls = bufferevent_openssl_filter_new(base, conn->bev, conn->ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL) {
		conn->bev = NULL;
		conn->ssl = NULL;
		return -1;
	}
	conn->bev = tls;
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	upstream_conn_set_owner(conn, conn->readcb, conn->writecb, conn->eventcb, conn->cbarg);
	upstream_conn_set_timeouts(conn, timeout_s, timeout_s);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
	return 0;
}

enum rpt_result_type
upstream_conn_tls_ready(struct upstream_conn *conn)
{
	char labels[48];

	conn->tls_active = true;
	conn->tls_resumed = SSL_session_reused(conn->ssl);
	tls_peer_describe(conn->ssl, &conn->peer);
	snprintf(labels, sizeof(labels), "version=\"%s\"", conn->peer.version);
	metrics_add("stsproxy_upstream_tls_total", labels, 1);
	if (conn->tls_resumed)
		metrics_add("stsproxy_upstream_tls_resumed_total", "", 1);
	conn->tls_result = tls_peer_verdict(conn->ssl, conn->tls_reason, sizeof(conn->tls_reason));
	conn->auth = conn->tls_result == RPT_RESULT_NONE ? tls_peer_auth(conn->ssl) : TLS_AUTH_NONE;
	snprintf(conn->dane_match, sizeof(conn->dane_match), "%s",
	    conn->auth == TLS_AUTH_DANE ? tls_dane_match(conn->ssl) : "");
	return conn->tls_result;
}

enum rpt_result_type
upstream_conn_tls_failed(struct upstream_conn *conn, char *reason, size_t size)
{
	return tls_failure_reason(conn->ssl, bufferevent_get_openssl_error(conn->bev), reason, size);
}

bool
upstream_conn_fits(const struct upstream_conn *conn, const struct route_regime *regime)
{
	switch (regime->kind) {
	case REGIME_DANE:
		return conn->tls_active && conn->auth == TLS_AUTH_DANE && regime->tlsa != NULL &&
		    strcmp(conn->tlsa_id, regime->tlsa->id) == 0;
	case REGIME_MTA_STS:
		/* never one opened without a policy (upstream_pool.h) */
		return conn->opened_strict && conn->tls_active && conn->auth == TLS_AUTH_PKIX;
	case REGIME_DANE_TLS:
		return conn->tls_active;
	case REGIME_OPPORTUNISTIC:
		return true;
	case REGIME_UNREACHABLE:
		break;
	}
	return false;
}

/* Close the socket now; TLS gets a best-effort close_notify first. */
static void
conn_free(struct upstream_conn *conn)
{
	if (conn->bev != NULL) {
		if (conn->ssl != NULL && conn->tls_active)
			SSL_shutdown(conn->ssl);
		bufferevent_free(conn->bev);	/* frees the SSL too (CLOSE_ON_FREE) */
	}
	smtp_reply_clear(&conn->ehlo);
	free(conn);
}

static void
closing_done(struct upstream_conn *conn)
{
	for (struct closing **p = &closing_list; *p != NULL; p = &(*p)->next)
		if ((*p)->conn == conn) {
			struct closing *c = *p;

			*p = c->next;
			free(c);
			break;
		}
	closing_count--;
	conn_free(conn);
}

static void
closing_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	/* the reply to QUIT, or enough of anything else */
	if (evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF).pos != -1 ||
	    evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX)
		closing_done(arg);
}

static void
closing_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	closing_done(arg);
}

void
upstream_conn_close(struct upstream_conn *conn, bool polite)
{
	struct closing *c;

	if (conn == NULL)
		return;
	if (!polite || conn->bev == NULL) {
		conn_free(conn);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->conn = conn;
	c->next = closing_list;
	closing_list = c;
	closing_count++;
	evbuffer_drain(bufferevent_get_input(conn->bev), evbuffer_get_length(bufferevent_get_input(conn->bev)));
	upstream_conn_set_owner(conn, closing_read, NULL, closing_event, conn);
	upstream_conn_set_timeouts(conn, QUIT_TIMEOUT, QUIT_TIMEOUT);
	evbuffer_add(bufferevent_get_output(conn->bev), "QUIT\r\n", 6);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
}

unsigned
upstream_conn_closing(void)
{
	return closing_count;
}

void
upstream_conn_closing_free_all(void)
{
	while (closing_list != NULL)
		closing_done(closing_list->conn);
}

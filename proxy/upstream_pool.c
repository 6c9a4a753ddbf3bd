#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_UPSTREAM

#include <string.h>
#include <strings.h>

#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "conf/util.h"
#include "proxy/limits.h"
#include "proxy/upstream_pool.h"

/* A parked connection must answer RSET within this. */
#define POOL_REPLY_TIMEOUT	10

enum pool_state {
	POOL_S_RSET,		/* RSET sent, waiting for 250 */
	POOL_S_IDLE,		/* ready to be taken */
};

struct pool_entry {
	struct upstream_conn	*conn;
	enum pool_state		 state;
	bool			 partial;	/* part of a multi-line RSET reply was read */
	unsigned		 idle_timeout;	/* seconds, from the conf it was parked under */
	struct pool_entry	*prev, *next;	/* oldest first */
};

static struct pool_entry *head, *tail;
static unsigned parked;

static void
unlink_entry(struct pool_entry *e)
{
	if (e->prev) e->prev->next = e->next; else head = e->next;
	if (e->next) e->next->prev = e->prev; else tail = e->prev;
	e->prev = e->next = NULL;
	parked--;
	metrics_set("stsproxy_upstream_pool_connections", "", parked);
}

/* Leave the pool: politely (QUIT) when the dialogue is at a reply boundary. */
static void
drop(struct pool_entry *e, bool polite, const char *why)
{
	log_debug("event=pool_drop mx=%s ip=%s messages=%u reason=%s", e->conn->mx_host, e->conn->ip,
	    e->conn->messages, log_quote(why));
	unlink_entry(e);
	upstream_conn_close(e->conn, polite);
	free(e);
}

static void
pool_read(struct bufferevent *bev, void *arg)
{
	struct pool_entry *e = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		bool last = n < 4 || line[3] != '-';
		bool ok = n >= 3 && strncmp(line, "250", 3) == 0;

		if (e->state != POOL_S_RSET || !ok) {
			/* e.g. 421 on the server's idle timeout: it is going away */
			log_debug("event=pool_unexpected mx=%s reply=%s", e->conn->mx_host, log_quote(line));
			free(line);
			drop(e, false, "the server spoke while idle");
			return;
		}
		free(line);
		e->partial = !last;
		if (last) {
			e->state = POOL_S_IDLE;
			upstream_conn_set_timeouts(e->conn, e->idle_timeout, 0);
		}
	}
	if (evbuffer_get_length(in) > 1024)
		drop(e, false, "reply line too long");
}

static void
pool_event(struct bufferevent *bev, short what, void *arg)
{
	struct pool_entry *e = arg;

	(void)bev;
	if ((what & BEV_EVENT_TIMEOUT) && e->state == POOL_S_IDLE)
		drop(e, true, "reuse_idle_timeout");
	else
		drop(e, false, what & BEV_EVENT_EOF ? "closed by the server" :
		    what & BEV_EVENT_TIMEOUT ? "no reply to RSET" : "connection error");
}

bool
upstream_pool_accepts(const struct conf *conf, const struct upstream_conn *conn)
{
	return conf->upstream_reuse && conn->bev != NULL &&
	    conn->messages < conf->upstream_reuse_max_messages && conf->upstream_reuse_pool_size > 0;
}

void
upstream_pool_put(const struct conf *conf, struct upstream_conn *conn)
{
	struct pool_entry *e = xcalloc(1, sizeof(*e));

	while (parked >= limits_pool_size(conf) && head != NULL)
		drop(head, true, "reuse_pool_size reached");
	e->conn = conn;
	e->state = POOL_S_RSET;
	e->idle_timeout = conf->upstream_reuse_idle_timeout;
	e->prev = tail;
	if (tail) tail->next = e; else head = e;
	tail = e;
	parked++;
	metrics_set("stsproxy_upstream_pool_connections", "", parked);
	upstream_conn_set_owner(conn, pool_read, NULL, pool_event, e);
	/* the idle timer replaces the RSET timer once 250 arrives */
	upstream_conn_set_timeouts(conn, POOL_REPLY_TIMEOUT, POOL_REPLY_TIMEOUT);
	evbuffer_add(bufferevent_get_output(conn->bev), "RSET\r\n", 6);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
	log_debug("event=pool_put mx=%s ip=%s messages=%u auth=%s tlsa=%s parked=%u", conn->mx_host,
	    conn->ip, conn->messages, conn->auth == TLS_AUTH_DANE ? "dane" :
	    conn->auth == TLS_AUTH_PKIX ? "pkix" : conn->tls_active ? "tls" : "none",
	    conn->tlsa_id[0] ? conn->tlsa_id : "-", parked);
}

static bool
same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

struct upstream_conn *
upstream_pool_take(const char *mx_host, const struct sockaddr_storage *addr,
    const struct route_regime *regime, bool *rset_pending)
{
	/* newest first: the likeliest to be still open on the server's side */
	for (struct pool_entry *e = tail; e != NULL; e = e->prev) {
		struct upstream_conn *conn = e->conn;

		if (!(e->state == POOL_S_IDLE || (e->state == POOL_S_RSET && !e->partial)) ||
		    strcasecmp(conn->mx_host, mx_host) != 0 || !same_address(&conn->addr, addr))
			continue;
		/* the policy and DANE boundary: see the header */
		if (!upstream_conn_fits(conn, regime))
			continue;
		unlink_entry(e);
		upstream_conn_set_owner(conn, NULL, NULL, NULL, NULL);
		upstream_conn_set_timeouts(conn, 0, 0);
		*rset_pending = e->state == POOL_S_RSET;
		free(e);
		metrics_add("stsproxy_upstream_reuses_total", "", 1);
		return conn;
	}
	return NULL;
}

void
upstream_pool_flush(void)
{
	while (head != NULL)
		drop(head, head->state == POOL_S_IDLE, "flush");
}

void
upstream_pool_free_all(void)
{
	while (head != NULL) {
		struct pool_entry *e = head;

		unlink_entry(e);
		upstream_conn_close(e->conn, false);
		free(e);
	}
	upstream_conn_closing_free_all();
}

unsigned
upstream_pool_size(void)
{
	return parked + upstream_conn_closing();
}

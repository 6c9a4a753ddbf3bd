#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_UPSTREAM

#include <string.h>
#include <strings.h>

#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "conf/util.h"
#include "proxy/limits.h"
#include "proxy/upstream_pool.h"

/* A parked connection that must answer QUIT or RSET within this. */
#define POOL_REPLY_TIMEOUT	10

enum pool_state {
	POOL_S_RSET,		/* RSET sent, waiting for 250 */
	POOL_S_IDLE,		/* ready to be taken */
	POOL_S_CLOSING,		/* QUIT sent, waiting for anything */
};

struct pool_entry {
	struct upstream_conn	 conn;
	enum pool_state		 state;
	bool			 partial;	/* part of a multi-line RSET reply was read */
	unsigned		 idle_timeout;	/* seconds, from the conf it was parked under */
	struct pool_entry	*prev, *next;	/* oldest first */
};

static struct pool_entry *head, *tail;	/* parked */
static struct pool_entry *closing_list;	/* saying QUIT; singly linked via next */
static unsigned parked, closing;

static void
unlink_entry(struct pool_entry *e)
{
	if (e->prev) e->prev->next = e->next; else head = e->next;
	if (e->next) e->next->prev = e->prev; else tail = e->prev;
	e->prev = e->next = NULL;
	parked--;
	metrics_set("stsproxy_upstream_pool_connections", "", parked);
}

static void
entry_free(struct pool_entry *e)
{
	if (e->conn.bev != NULL) {
		if (e->conn.ssl != NULL && e->conn.tls_active)
			SSL_shutdown(e->conn.ssl);
		bufferevent_free(e->conn.bev);	/* and the SSL with it */
	}
	smtp_reply_clear(&e->conn.ehlo);
	free(e);
}

static void
closing_done(struct pool_entry *e)
{
	for (struct pool_entry **p = &closing_list; *p != NULL; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	closing--;
	entry_free(e);
}

static void
closing_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	closing_done(arg);
}

static void
closing_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	closing_done(arg);
}

/* Leave the pool: politely (QUIT, RFC 5321 §4.1.1.10) when the dialogue is at a reply boundary. */
static void
drop(struct pool_entry *e, bool polite, const char *why)
{
	struct timeval tv = { POOL_REPLY_TIMEOUT, 0 };

	log_debug("event=pool_drop mx=%s ip=%s messages=%u reason=%s", e->conn.mx_host, e->conn.ip,
	    e->conn.messages, log_quote(why));
	unlink_entry(e);
	if (!polite) {
		entry_free(e);
		return;
	}
	e->state = POOL_S_CLOSING;
	e->next = closing_list;
	closing_list = e;
	closing++;
	evbuffer_drain(bufferevent_get_input(e->conn.bev),
	    evbuffer_get_length(bufferevent_get_input(e->conn.bev)));
	bufferevent_setcb(e->conn.bev, closing_read, NULL, closing_event, e);
	bufferevent_set_timeouts(e->conn.bev, &tv, &tv);
	evbuffer_add(bufferevent_get_output(e->conn.bev), "QUIT\r\n", 6);
	bufferevent_enable(e->conn.bev, EV_READ | EV_WRITE);
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
			log_debug("event=pool_unexpected mx=%s reply=%s", e->conn.mx_host, log_quote(line));
			free(line);
			drop(e, false, "the server spoke while idle");
			return;
		}
		free(line);
		e->partial = !last;
		if (last) {
			struct timeval idle = { (time_t)e->idle_timeout, 0 };

			e->state = POOL_S_IDLE;
			bufferevent_set_timeouts(bev, &idle, NULL);
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
upstream_pool_put(struct event_base *base, const struct conf *conf, struct upstream_conn *conn)
{
	struct pool_entry *e = xcalloc(1, sizeof(*e));
	struct timeval rto = { POOL_REPLY_TIMEOUT, 0 };

	(void)base;
	while (parked >= limits_pool_size(conf) && head != NULL)
		drop(head, true, "reuse_pool_size reached");
	e->conn = *conn;		/* moved in: the caller's copy is emptied */
	memset(conn, 0, sizeof(*conn));
	smtp_reply_init(&conn->ehlo);
	e->state = POOL_S_RSET;
	e->idle_timeout = conf->upstream_reuse_idle_timeout;
	e->prev = tail;
	if (tail) tail->next = e; else head = e;
	tail = e;
	parked++;
	metrics_set("stsproxy_upstream_pool_connections", "", parked);
	bufferevent_setcb(e->conn.bev, pool_read, NULL, pool_event, e);
	bufferevent_set_timeouts(e->conn.bev, &rto, &rto);
	/* the idle timer replaces the RSET timer once 250 arrives */
	evbuffer_add(bufferevent_get_output(e->conn.bev), "RSET\r\n", 6);
	bufferevent_enable(e->conn.bev, EV_READ | EV_WRITE);
	log_debug("event=pool_put mx=%s ip=%s messages=%u strict=%s parked=%u", e->conn.mx_host,
	    e->conn.ip, e->conn.messages, e->conn.strict ? "yes" : "no", parked);
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

bool
upstream_pool_take(const char *mx_host, const struct sockaddr_storage *addr, bool strict,
    struct upstream_conn *conn)
{
	/* newest first: the likeliest to be still open on the server's side */
	for (struct pool_entry *e = tail; e != NULL; e = e->prev) {
		if (!(e->state == POOL_S_IDLE || (e->state == POOL_S_RSET && !e->partial)) ||
		    strcasecmp(e->conn.mx_host, mx_host) != 0 ||
		    !same_address(&e->conn.addr, addr))
			continue;
		/* the policy boundary: see the header */
		if (strict && !(e->conn.strict && e->conn.tls_active && e->conn.tls_result == RPT_RESULT_NONE))
			continue;
		unlink_entry(e);
		bufferevent_setcb(e->conn.bev, NULL, NULL, NULL, NULL);
		bufferevent_set_timeouts(e->conn.bev, NULL, NULL);
		*conn = e->conn;
		conn->rset_pending = e->state == POOL_S_RSET;
		free(e);
		metrics_add("stsproxy_upstream_reuses_total", "", 1);
		return true;
	}
	return false;
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
		entry_free(e);
	}
	while (closing_list != NULL)
		closing_done(closing_list);
}

unsigned
upstream_pool_size(void)
{
	return parked + closing;
}

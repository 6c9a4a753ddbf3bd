/*
 * sink.c - a fast SMTP sink with STARTTLS, the receiving MX of the
 * benchmarks (bench/run.sh).
 *
 * It accepts every transaction and throws the message away, so the
 * benchmarks measure the sender, not the receiver. Postfix's smtp-sink
 * cannot do STARTTLS, and the point of the benchmarks is a verified TLS
 * delivery under an enforce policy, hence this program. It counts
 * messages, connections and TLS handshakes (full and resumed) and
 * rewrites a one-line stats file every 50 ms when anything changed:
 *   messages connections handshakes resumed first_message_s last_message_s open
 *
 * It listens on every -l address given (up to MAX_LISTEN): benchmark 6
 * gives each recipient domain an MX address of its own.
 *
 * Not a test and not part of the daemon: it links libevent and OpenSSL
 * directly and trusts its peer.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_LISTEN 16

enum sink_state { SINK_S_COMMAND, SINK_S_BODY };

struct sink_conn {
	struct bufferevent	*bev;
	enum sink_state		 state;
	bool			 tls;
	bool			 counted_handshake;
};

static SSL_CTX *server_ctx;
static const char *stats_path;
static const char *hostname = "mx.sink";
static unsigned long long messages, connections, handshakes, resumed, open_now;
static double first_message, last_message;
static bool dirty;

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
write_stats(void)
{
	char tmp[4096];
	FILE *f;

	if (stats_path == NULL)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", stats_path);
	if ((f = fopen(tmp, "w")) == NULL)
		return;
	fprintf(f, "%llu %llu %llu %llu %.6f %.6f %llu\n", messages, connections, handshakes, resumed,
	    first_message, last_message, open_now);
	fclose(f);
	rename(tmp, stats_path);
}

static void
stats_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (dirty) {
		write_stats();
		dirty = false;
	}
}

static void
conn_free(struct sink_conn *c)
{
	bufferevent_free(c->bev);
	free(c);
	open_now--;
	dirty = true;
}

static void
reply(struct sink_conn *c, const char *text)
{
	evbuffer_add(bufferevent_get_output(c->bev), text, strlen(text));
}

static void conn_read(struct bufferevent *bev, void *arg);
static void conn_event(struct bufferevent *bev, short what, void *arg);

static void
conn_written(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(arg);
}

static void
start_tls(struct sink_conn *c)
{
	SSL *ssl = SSL_new(server_ctx);
	struct bufferevent *tls;

	/* The 220 is already queued on the plain bufferevent; the filter
	 * writes after it, so the client sees it before the handshake. */
	tls = bufferevent_openssl_filter_new(bufferevent_get_base(c->bev), c->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL) {
		conn_free(c);
		return;
	}
	c->bev = tls;
	c->tls = true;
	{
		struct timeval idle = { 300, 0 };

		bufferevent_set_timeouts(tls, &idle, NULL);
	}
	bufferevent_setcb(tls, conn_read, NULL, conn_event, c);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
}

/* Scan the body for CRLF.CRLF; the DATA reply already put us past "354". */
static bool
body_end(struct evbuffer *in)
{
	struct evbuffer_ptr p;
	size_t len = evbuffer_get_length(in);
	unsigned char head[3];

	if (len >= 3 && evbuffer_copyout(in, head, 3) == 3 && memcmp(head, ".\r\n", 3) == 0) {
		evbuffer_drain(in, 3);
		return true;
	}
	p = evbuffer_search(in, "\r\n.\r\n", 5, NULL);
	if (p.pos >= 0) {
		evbuffer_drain(in, (size_t)p.pos + 5);
		return true;
	}
	if (len > 4)
		evbuffer_drain(in, len - 4);
	return false;
}

static void
conn_read(struct bufferevent *bev, void *arg)
{
	struct sink_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	if (c->tls && !c->counted_handshake) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);

		c->counted_handshake = true;
		handshakes++;
		if (ssl != NULL && SSL_session_reused(ssl))
			resumed++;
		dirty = true;
	}
	for (;;) {
		if (c->state == SINK_S_BODY) {
			if (!body_end(in))
				return;
			c->state = SINK_S_COMMAND;
			messages++;
			last_message = now_seconds();
			if (first_message == 0)
				first_message = last_message;
			dirty = true;
			reply(c, "250 2.0.0 Ok: queued\r\n");
			continue;
		}
		if ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) == NULL)
			return;
		if (strncasecmp(line, "EHLO", 4) == 0) {
			char buf[512];

			snprintf(buf, sizeof(buf), "250-%s\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n"
			    "250-8BITMIME\r\n%s250 ENHANCEDSTATUSCODES\r\n", hostname,
			    c->tls ? "" : "250-STARTTLS\r\n");
			reply(c, buf);
		} else if (strncasecmp(line, "HELO", 4) == 0) {
			reply(c, "250 sink\r\n");
		} else if (strncasecmp(line, "STARTTLS", 8) == 0 && !c->tls) {
			free(line);
			reply(c, "220 2.0.0 Ready to start TLS\r\n");
			/* Anything pipelined after STARTTLS is dropped (RFC 3207 §5). */
			evbuffer_drain(in, evbuffer_get_length(in));
			start_tls(c);
			return;
		} else if (strncasecmp(line, "MAIL", 4) == 0 || strncasecmp(line, "RCPT", 4) == 0 ||
		    strncasecmp(line, "RSET", 4) == 0 || strncasecmp(line, "NOOP", 4) == 0) {
			reply(c, "250 2.0.0 Ok\r\n");
		} else if (strncasecmp(line, "DATA", 4) == 0) {
			reply(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
			c->state = SINK_S_BODY;
		} else if (strncasecmp(line, "QUIT", 4) == 0) {
			free(line);
			reply(c, "221 2.0.0 Bye\r\n");
			/* Close once the 221 is out, or when the client goes first:
			 * Postfix sends QUIT and a TLS close_notify and hangs up
			 * without waiting for the reply. */
			{
				struct timeval t = { 2, 0 };

				bufferevent_set_timeouts(bev, &t, &t);
			}
			bufferevent_setcb(bev, NULL, conn_written, conn_event, c);
			return;
		} else {
			reply(c, "502 5.5.2 Error: command not recognized\r\n");
		}
		free(line);
	}
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		conn_free(arg);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct sink_conn *c = calloc(1, sizeof(*c));
	int one = 1;

	(void)sa;
	(void)len;
	(void)arg;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, conn_read, NULL, conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	connections++;
	open_now++;
	dirty = true;
	{
		/* a client that vanishes without a FIN must not hold an fd for ever */
		struct timeval idle = { 300, 0 };

		bufferevent_set_timeouts(c->bev, &idle, NULL);
	}
	{
		char buf[300];

		snprintf(buf, sizeof(buf), "220 %s ESMTP sink\r\n", hostname);
		reply(c, buf);
	}
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int
main(int argc, char **argv)
{
	const char *listen_addr[MAX_LISTEN], *cert = NULL, *key = NULL;
	int nlisten = 0, opt;
	struct event_base *base;
	struct event *tick, *term;
	struct timeval every = { 0, 50 * 1000 };

	while ((opt = getopt(argc, argv, "l:c:k:s:n:")) != -1) {
		switch (opt) {
		case 'l':
			if (nlisten == MAX_LISTEN)
				goto usage;
			listen_addr[nlisten++] = optarg;
			break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 's': stats_path = optarg; break;
		case 'n': hostname = optarg; break;
		default: goto usage;
		}
	}
	if (nlisten == 0 || cert == NULL || key == NULL)
		goto usage;
	signal(SIGPIPE, SIG_IGN);
	server_ctx = SSL_CTX_new(TLS_server_method());
	if (SSL_CTX_use_certificate_chain_file(server_ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(server_ctx, key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "sink: cannot load %s / %s\n", cert, key);
		return 2;
	}
	SSL_CTX_set_session_id_context(server_ctx, (const unsigned char *)"sink", 4);
	base = event_base_new();
	for (int i = 0; i < nlisten; i++) {
		struct sockaddr_storage ss;
		int sslen = sizeof(ss);

		if (evutil_parse_sockaddr_port(listen_addr[i], (struct sockaddr *)&ss, &sslen) != 0) {
			fprintf(stderr, "sink: bad address %s\n", listen_addr[i]);
			return 2;
		}
		if (evconnlistener_new_bind(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE |
		    LEV_OPT_REUSEABLE, 1024, (struct sockaddr *)&ss, sslen) == NULL) {
			fprintf(stderr, "sink: cannot listen on %s: %s\n", listen_addr[i], strerror(errno));
			return 2;
		}
	}
	tick = event_new(base, -1, EV_PERSIST, stats_tick, NULL);
	event_add(tick, &every);
	term = evsignal_new(base, SIGTERM, on_term, base);
	event_add(term, NULL);
	write_stats();
	event_base_dispatch(base);
	write_stats();
	return 0;
usage:
	fprintf(stderr, "usage: sink -l ADDR:PORT [-l ADDR:PORT ...] -c CERT.pem -k KEY.pem [-s STATS] "
	    "[-n HOSTNAME]\n");
	return 2;
}

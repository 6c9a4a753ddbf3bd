#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_REPORT

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <zlib.h>

#include "conf/log.h"
#include "policy/tls.h"
#include "report/rpt_post.h"

#define DNS_TYPE_A	1
#define DNS_TYPE_AAAA	28
#define POST_MAX_ADDRESSES 8

struct rpt_post {
	struct event_base	*base;
	struct resolver		*resolver;
	SSL_CTX			*ssl_ctx;
	char			*host, *path, *url;
	int			 port;
	struct evbuffer		*body;
	unsigned		 timeout;
	rpt_post_cb		 cb;
	void			*arg;
	struct resolver_query	*q_a, *q_aaaa;
	char			 addrs[POST_MAX_ADDRESSES][64];
	size_t			 naddrs, next;
	struct evhttp_connection *evcon;
	struct event		*finish_ev, *deadline;
	struct rpt_post_result	 result;
	bool			 finished;
};

int
rpt_gzip(const void *in, size_t len, struct strbuf *out)
{
	z_stream z;
	unsigned char buf[16384];
	int rc;

	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip wrapper rather than zlib's. */
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	do {
		z.next_out = buf;
		z.avail_out = sizeof(buf);
		rc = deflate(&z, Z_FINISH);
		if (rc == Z_STREAM_ERROR) {
			deflateEnd(&z);
			return -1;
		}
		strbuf_append(out, (const char *)buf, sizeof(buf) - z.avail_out);
	} while (rc != Z_STREAM_END);
	deflateEnd(&z);
	return 0;
}

static void
post_free(struct rpt_post *p)
{
	resolver_cancel(p->q_a);
	resolver_cancel(p->q_aaaa);
	if (p->evcon)
		evhttp_connection_free(p->evcon);
	event_free(p->finish_ev);
	event_free(p->deadline);
	evbuffer_free(p->body);
	free(p->host);
	free(p->path);
	free(p->url);
	free(p);
}

void
rpt_post_cancel(struct rpt_post *p)
{
	if (p != NULL)
		post_free(p);
}

/* From the loop, outside every callback of the connection. */
static void
post_finish(evutil_socket_t fd, short what, void *arg)
{
	struct rpt_post *p = arg;

	(void)fd;
	(void)what;
	log_info("event=report_post url=%s http_status=%d delivered=%s reason=%s", p->url,
	    p->result.http_status, p->result.delivered ? "yes" : "no",
	    log_quote(p->result.delivered ? "-" : p->result.reason));
	p->cb(p->arg, &p->result);
	post_free(p);
}

static void
post_done(struct rpt_post *p, bool delivered, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
post_done(struct rpt_post *p, bool delivered, int status, const char *fmt, ...)
{
	va_list ap;

	if (p->finished)
		return;
	p->finished = true;
	p->result.delivered = delivered;
	p->result.http_status = status;
	va_start(ap, fmt);
	vsnprintf(p->result.reason, sizeof(p->result.reason), fmt, ap);
	va_end(ap);
	evtimer_del(p->deadline);
	event_active(p->finish_ev, EV_TIMEOUT, 1);
}

static void try_next_address(struct rpt_post *p);

static void
http_done(struct evhttp_request *req, void *arg)
{
	struct rpt_post *p = arg;
	int status;

	if (p->finished)
		return;
	if (req == NULL || (status = evhttp_request_get_response_code(req)) == 0) {
		/* No answer from this address: the next one, if any. */
		try_next_address(p);
		return;
	}
	if (status >= 200 && status < 300)
		post_done(p, true, status, "delivered");
	else
		post_done(p, false, status, "%s answered HTTP %d", p->host, status);
}

static void
try_next_address(struct rpt_post *p)
{
	struct bufferevent *bev;
	struct evhttp_request *req;
	struct evkeyvalq *hdr;
	SSL *ssl;

	if (p->evcon != NULL) {
		/* Freed from the loop later: we may be inside its callback. */
		struct evhttp_connection *old = p->evcon;

		p->evcon = NULL;
		evhttp_connection_free_on_completion(old);
	}
	if (p->next >= p->naddrs) {
		post_done(p, false, 0, "%s: no address answered", p->host);
		return;
	}
	ssl = tls_client_new(p->ssl_ctx, p->host);
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	bev = bufferevent_openssl_socket_new(p->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		post_done(p, false, 0, "cannot create a TLS connection");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	p->evcon = evhttp_connection_base_bufferevent_new(p->base, NULL, bev,
	    p->addrs[p->next++], (unsigned short)p->port);
	if (p->evcon == NULL) {
		bufferevent_free(bev);
		post_done(p, false, 0, "cannot create an HTTP connection");
		return;
	}
	evhttp_connection_set_timeout(p->evcon, (int)p->timeout);
	evhttp_connection_set_retries(p->evcon, 0);
	req = evhttp_request_new(http_done, p);
	hdr = evhttp_request_get_output_headers(req);
	evhttp_add_header(hdr, "Host", p->host);
	evhttp_add_header(hdr, "User-Agent", PACKAGE_NAME "/" PACKAGE_VERSION);
	evhttp_add_header(hdr, "Content-Type", "application/tlsrpt+gzip");
	evhttp_add_header(hdr, "Connection", "close");
	evbuffer_add_buffer_reference(evhttp_request_get_output_buffer(req), p->body);
	if (evhttp_make_request(p->evcon, req, EVHTTP_REQ_POST, p->path) != 0)
		post_done(p, false, 0, "cannot send the HTTP request");
}

static void
add_answer(struct rpt_post *p, const struct dns_answer *ans, int family)
{
	if (ans->status != DNS_STATUS_OK)
		return;
	for (size_t i = 0; i < ans->count && p->naddrs < POST_MAX_ADDRESSES; i++)
		if (ans->len[i] == (family == AF_INET ? 4 : 16))
			inet_ntop(family, ans->data[i], p->addrs[p->naddrs++], sizeof(p->addrs[0]));
}

static void
resolved(struct rpt_post *p)
{
	if (p->q_a != NULL || p->q_aaaa != NULL)
		return;
	if (p->naddrs == 0) {
		post_done(p, false, 0, "%s has no address", p->host);
		return;
	}
	try_next_address(p);
}

static void
a_answer(void *arg, const struct dns_answer *ans)
{
	struct rpt_post *p = arg;

	p->q_a = NULL;
	add_answer(p, ans, AF_INET);
	resolved(p);
}

static void
aaaa_answer(void *arg, const struct dns_answer *ans)
{
	struct rpt_post *p = arg;

	p->q_aaaa = NULL;
	add_answer(p, ans, AF_INET6);
	resolved(p);
}

static void
deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	post_done(arg, false, 0, "no answer within the time allowed");
}

struct rpt_post *
rpt_post_start(struct event_base *base, struct resolver *resolver, SSL_CTX *ssl_ctx,
    const char *url, const void *body, size_t len, unsigned timeout, rpt_post_cb cb, void *arg)
{
	struct evhttp_uri *uri = evhttp_uri_parse(url);
	struct rpt_post *p;
	struct timeval tv = { timeout * 2, 0 };
	const char *scheme, *host, *path, *query;

	if (uri == NULL)
		return NULL;
	scheme = evhttp_uri_get_scheme(uri);
	host = evhttp_uri_get_host(uri);
	if (scheme == NULL || strcasecmp(scheme, "https") != 0 || host == NULL || *host == '\0') {
		evhttp_uri_free(uri);
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	p->base = base;
	p->resolver = resolver;
	p->ssl_ctx = ssl_ctx;
	p->host = xstrdup(host);
	p->port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : 443;
	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);
	p->path = xasprintf("%s%s%s", path && *path ? path : "/", query ? "?" : "",
	    query ? query : "");
	p->url = xstrdup(url);
	evhttp_uri_free(uri);
	p->body = evbuffer_new();
	evbuffer_add(p->body, body, len);
	p->timeout = timeout;
	p->cb = cb;
	p->arg = arg;
	p->finish_ev = event_new(base, -1, 0, post_finish, p);
	p->deadline = evtimer_new(base, deadline, p);
	evtimer_add(p->deadline, &tv);
	{
		unsigned char bin[16];

		if (inet_pton(AF_INET, p->host, bin) == 1 || inet_pton(AF_INET6, p->host, bin) == 1) {
			snprintf(p->addrs[0], sizeof(p->addrs[0]), "%s", p->host);
			p->naddrs = 1;
			try_next_address(p);
			return p;
		}
	}
	p->q_a = resolver_query(resolver, p->host, DNS_TYPE_A, a_answer, p);
	p->q_aaaa = resolver_query(resolver, p->host, DNS_TYPE_AAAA, aaaa_answer, p);
	if (p->q_a == NULL && p->q_aaaa == NULL)
		post_done(p, false, 0, "%s: DNS lookup failed", p->host);
	return p;
}

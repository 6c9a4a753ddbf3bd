#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_POLICY

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>

#include "policy/https_client.h"

#define HTTPS_MAX_ADDRESSES	8
#define DNS_TYPE_A		1
#define DNS_TYPE_AAAA		28

/*
 * RESOLVE: A and AAAA of the host in parallel (skipped for a literal).
 * REQUEST: one connection and request per address until one answers;
 *          what moves on to the next address is in https_client.h.
 * DONE:    the result waits for the deferred finish event, so the
 *          caller's callback never runs inside evhttp's call stack.
 */
enum https_state {
	HTTPS_S_RESOLVE,
	HTTPS_S_REQUEST,
	HTTPS_S_DONE,
};

struct https_client {
	struct event_base	*base;
	struct resolver		*resolver;
	SSL_CTX			*ssl_ctx;
	enum https_state	 state;

	/* the request, copied */
	enum https_method	 method;
	char			*host, *path;
	unsigned short		 port;
	char			**headers;	/* name, value, ..., NULL */
	struct evbuffer		*req_body;
	unsigned		 io_timeout;
	size_t			 max_body, max_headers;
	enum https_cert_check	 cert_check;
	bool			 every_address;
	enum log_subsystem	 log_sub;

	struct resolver_query	*q_a, *q_aaaa;
	char			 addrs[HTTPS_MAX_ADDRESSES][INET6_ADDRSTRLEN];
	size_t			 naddrs, next_addr;
	char			 dns_reason[160];	/* why an address lookup failed */
	char			 addr_reason[160];	/* why the last address failed */

	struct evhttp_connection *evcon;
	SSL			*ssl;		/* owned by evcon's bufferevent */
	enum evhttp_request_error http_error;
	bool			 http_failed;

	struct event		*deadline, *finish_ev, *retry_ev;
	struct evbuffer		*body;		/* the response body kept */
	char			*content_type, *location;
	struct https_result	 result;
	https_cb		 cb;
	void			*arg;
};

static void https_enter_state(struct https_client *c, enum https_state next);
static void https_try_next_address(struct https_client *c);

/* The debug trace goes to the caller's subsystem (policy or report). */
#define https_trace(c, ...) do {						\
	if (log_enabled((c)->log_sub, LOG_LEVEL_DEBUG))			\
		log_write((c)->log_sub, LOG_LEVEL_DEBUG, __VA_ARGS__);	\
} while (0)

static const char *
https_state_name(enum https_state s)
{
	switch (s) {
	case HTTPS_S_RESOLVE: return "resolve";
	case HTTPS_S_REQUEST: return "request";
	case HTTPS_S_DONE: return "done";
	}
	return "?";
}

const char *
https_outcome_name(enum https_outcome o)
{
	switch (o) {
	case HTTPS_RESPONSE: return "response";
	case HTTPS_NO_ADDRESS: return "no_address";
	case HTTPS_UNREACHABLE: return "unreachable";
	case HTTPS_TLS_FAILED: return "tls_failed";
	case HTTPS_BAD_RESPONSE: return "bad_response";
	case HTTPS_TOO_LARGE: return "too_large";
	case HTTPS_TIMEOUT: return "timeout";
	case HTTPS_ERROR: return "error";
	}
	return "?";
}

static void
https_end(struct https_client *c, enum https_outcome outcome, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
https_end(struct https_client *c, enum https_outcome outcome, const char *fmt, ...)
{
	va_list ap;

	if (c->state == HTTPS_S_DONE)
		return;
	c->result.outcome = outcome;
	va_start(ap, fmt);
	vsnprintf(c->result.reason, sizeof(c->result.reason), fmt, ap);
	va_end(ap);
	https_enter_state(c, HTTPS_S_DONE);
}

static void
https_release_connection(struct https_client *c)
{
	if (c->evcon != NULL) {
		/* Frees the bufferevent and, through BEV_OPT_CLOSE_ON_FREE, the SSL. */
		evhttp_connection_free(c->evcon);
		c->evcon = NULL;
		c->ssl = NULL;
	}
}

static void
https_free(struct https_client *c)
{
	resolver_cancel(c->q_a);
	resolver_cancel(c->q_aaaa);
	https_release_connection(c);
	event_free(c->deadline);
	event_free(c->finish_ev);
	event_free(c->retry_ev);
	evbuffer_free(c->body);
	evbuffer_free(c->req_body);
	for (size_t i = 0; c->headers[i] != NULL; i++)
		free(c->headers[i]);
	free(c->headers);
	free(c->content_type);
	free(c->location);
	free(c->host);
	free(c->path);
	free(c);
}

void
https_cancel(struct https_client *c)
{
	if (c != NULL)
		https_free(c);
}

/* Runs from the loop, outside every libevent callback of this request. */
static void
https_finish(evutil_socket_t fd, short what, void *arg)
{
	struct https_client *c = arg;

	(void)fd;
	(void)what;
	https_release_connection(c);
	c->result.content_type = c->content_type;
	c->result.location = c->location;
	c->result.body_len = evbuffer_get_length(c->body);
	c->result.body = (const char *)evbuffer_pullup(c->body, -1);
	if (c->result.body == NULL)
		c->result.body = "";
	c->cb(c->arg, &c->result);
	https_free(c);
}

static void
https_enter_state(struct https_client *c, enum https_state next)
{
	https_trace(c, "event=https_state host=%s transition=%s->%s", c->host,
	    https_state_name(c->state), https_state_name(next));
	c->state = next;
	switch (next) {
	case HTTPS_S_RESOLVE:
		break;
	case HTTPS_S_REQUEST:
		https_try_next_address(c);
		break;
	case HTTPS_S_DONE:
		resolver_cancel(c->q_a);
		resolver_cancel(c->q_aaaa);
		c->q_a = c->q_aaaa = NULL;
		evtimer_del(c->deadline);
		event_del(c->retry_ev);
		event_active(c->finish_ev, EV_TIMEOUT, 1);
		break;
	}
}

static void
https_http_error(enum evhttp_request_error error, void *arg)
{
	struct https_client *c = arg;

	c->http_failed = true;
	c->http_error = error;
}

static const char *
http_error_name(enum evhttp_request_error e)
{
	switch (e) {
	case EVREQ_HTTP_TIMEOUT: return "timed out";
	case EVREQ_HTTP_EOF: return "connection closed";
	case EVREQ_HTTP_INVALID_HEADER: return "invalid HTTP response header";
	case EVREQ_HTTP_BUFFER_ERROR: return "connection failed";
	case EVREQ_HTTP_REQUEST_CANCEL: return "request cancelled";
	case EVREQ_HTTP_DATA_TOO_LONG: return "response too large";
	}
	return "HTTP error";
}

/* The next address, from the loop rather than inside evhttp's stack. */
static void
https_retry(evutil_socket_t fd, short what, void *arg)
{
	struct https_client *c = arg;

	(void)fd;
	(void)what;
	if (c->state != HTTPS_S_REQUEST)
		return;
	https_release_connection(c);
	https_try_next_address(c);
}

/* This address gave no usable response: decide why, and whether the next one may. */
static void
https_address_failed(struct https_client *c)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
	unsigned long ssl_err = bev ? bufferevent_get_openssl_error(bev) : 0;
	long vr = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
	enum https_outcome outcome;

	/* Only an error from the TLS library itself means the handshake
	 * failed; a system error (refused, reset) is a network failure. */
	if (ssl_err != 0 && ERR_GET_LIB(ssl_err) != ERR_LIB_SSL)
		ssl_err = 0;
	if (c->http_failed && c->http_error == EVREQ_HTTP_DATA_TOO_LONG) {
		outcome = HTTPS_TOO_LARGE;
		snprintf(c->addr_reason, sizeof(c->addr_reason), "%s port %u: response too large",
		    c->result.address, c->port);
	} else if (c->ssl != NULL &&
	    (ssl_err != 0 || (c->cert_check == HTTPS_CERT_REQUIRED && vr != X509_V_OK))) {
		/* With certificates ignored only the handshake itself can fail,
		 * so the verify result is no reason then. */
		SSL *judged = c->cert_check == HTTPS_CERT_REQUIRED ? c->ssl : NULL;

		outcome = HTTPS_TLS_FAILED;
		c->result.verify_result = judged != NULL ? vr : X509_V_OK;
		c->result.tls_type = tls_failure_reason(judged, ssl_err, c->addr_reason,
		    sizeof(c->addr_reason));
	} else if (c->http_failed && c->http_error == EVREQ_HTTP_INVALID_HEADER) {
		outcome = HTTPS_BAD_RESPONSE;
		snprintf(c->addr_reason, sizeof(c->addr_reason), "invalid HTTP response from %s",
		    c->result.address);
	} else {
		/* A network failure: the next address may work. */
		snprintf(c->addr_reason, sizeof(c->addr_reason), "%s port %u: %s", c->result.address,
		    c->port, c->http_failed ? http_error_name(c->http_error) : "no response");
		event_active(c->retry_ev, EV_TIMEOUT, 1);
		return;
	}
	if (c->every_address) {
		event_active(c->retry_ev, EV_TIMEOUT, 1);
		return;
	}
	https_end(c, outcome, "%s", c->addr_reason);
}

static void
https_http_done(struct evhttp_request *req, void *arg)
{
	struct https_client *c = arg;
	struct evkeyvalq *in;
	const char *v;

	if (c->state != HTTPS_S_REQUEST)
		return;
	if (req == NULL || evhttp_request_get_response_code(req) == 0) {
		https_address_failed(c);
		return;
	}
	c->result.status = evhttp_request_get_response_code(req);
	in = evhttp_request_get_input_headers(req);
	if ((v = evhttp_find_header(in, "Content-Type")) != NULL)
		c->content_type = xstrdup(v);
	if ((v = evhttp_find_header(in, "Location")) != NULL)
		c->location = xstrdup(v);
	if (c->max_body > 0) {
		evbuffer_add_buffer(c->body, evhttp_request_get_input_buffer(req));
		if (evbuffer_get_length(c->body) > c->max_body) {
			https_end(c, HTTPS_TOO_LARGE, "response body larger than %zu bytes", c->max_body);
			return;
		}
	}
	https_end(c, HTTPS_RESPONSE, "%s", "");
}

/* Without max_body the response body is not kept: libevent drains each piece after this. */
static void
https_drop_chunk(struct evhttp_request *req, void *arg)
{
	(void)req;
	(void)arg;
}

/* evhttp resets the SSL when the server closes, before our request
 * callback runs, so note what the peer presented as the handshake ends. */
static void
https_tls_info(const SSL *ssl, int where, int ret)
{
	struct https_client *c = SSL_get_app_data(ssl);

	(void)ret;
	if ((where & SSL_CB_HANDSHAKE_DONE) && c != NULL) {
		c->result.tls_done = true;
		tls_peer_describe((SSL *)ssl, &c->result.peer);
	}
}

static void
https_try_next_address(struct https_client *c)
{
	struct bufferevent *bev;
	struct evhttp_request *req;
	struct evkeyvalq *hdr;

	if (c->next_addr >= c->naddrs) {
		https_end(c, HTTPS_UNREACHABLE, "%s",
		    c->addr_reason[0] ? c->addr_reason : "no address answered");
		return;
	}
	snprintf(c->result.address, sizeof(c->result.address), "%s", c->addrs[c->next_addr++]);
	c->http_failed = false;
	c->ssl = tls_client_new(c->ssl_ctx, c->host);
	if (c->cert_check == HTTPS_CERT_IGNORED)
		SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
	SSL_set_app_data(c->ssl, c);
	SSL_set_info_callback(c->ssl, https_tls_info);
	/* With BEV_OPT_CLOSE_ON_FREE the bufferevent owns the SSL, even when
	 * the constructor fails. */
	bev = bufferevent_openssl_socket_new(c->base, -1, c->ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		c->ssl = NULL;
		https_end(c, HTTPS_ERROR, "cannot create a TLS connection");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	c->evcon = evhttp_connection_base_bufferevent_new(c->base, NULL, bev, c->result.address,
	    c->port);
	if (c->evcon == NULL) {
		bufferevent_free(bev);
		c->ssl = NULL;
		https_end(c, HTTPS_ERROR, "cannot create an HTTP connection");
		return;
	}
	if (c->max_body > 0)
		evhttp_connection_set_max_body_size(c->evcon, (ev_ssize_t)c->max_body);
	evhttp_connection_set_max_headers_size(c->evcon, (ev_ssize_t)c->max_headers);
	evhttp_connection_set_timeout(c->evcon, (int)c->io_timeout);
	evhttp_connection_set_retries(c->evcon, 0);

	req = evhttp_request_new(https_http_done, c);
	evhttp_request_set_error_cb(req, https_http_error);
	if (c->max_body == 0)
		evhttp_request_set_chunked_cb(req, https_drop_chunk);
	hdr = evhttp_request_get_output_headers(req);
	evhttp_add_header(hdr, "Host", c->host);
	evhttp_add_header(hdr, "User-Agent", PACKAGE_NAME "/" PACKAGE_VERSION);
	for (size_t i = 0; c->headers[i] != NULL && c->headers[i + 1] != NULL; i += 2)
		evhttp_add_header(hdr, c->headers[i], c->headers[i + 1]);
	evhttp_add_header(hdr, "Connection", "close");
	if (c->method == HTTPS_POST)
		evbuffer_add_buffer_reference(evhttp_request_get_output_buffer(req), c->req_body);
	https_trace(c, "event=https_request host=%s address=%s port=%u path=%s", c->host,
	    c->result.address, c->port, log_quote(c->path));
	if (evhttp_make_request(c->evcon, req, c->method == HTTPS_POST ? EVHTTP_REQ_POST :
	    EVHTTP_REQ_GET, c->path) != 0)
		https_end(c, HTTPS_ERROR, "cannot send the HTTP request");
}

static void
https_add_addresses(struct https_client *c, const struct dns_answer *ans, int family)
{
	if (ans->status != DNS_STATUS_OK) {
		if (ans->status != DNS_STATUS_NODATA && c->dns_reason[0] == '\0')
			snprintf(c->dns_reason, sizeof(c->dns_reason), "%s lookup: %s%s%s",
			    family == AF_INET ? "A" : "AAAA", dns_status_name(ans->status),
			    ans->why ? ": " : "", ans->why ? ans->why : "");
		return;
	}
	for (size_t i = 0; i < ans->count && c->naddrs < HTTPS_MAX_ADDRESSES; i++) {
		if ((family == AF_INET && ans->len[i] != 4) || (family == AF_INET6 && ans->len[i] != 16))
			continue;
		inet_ntop(family, ans->data[i], c->addrs[c->naddrs], sizeof(c->addrs[0]));
		c->naddrs++;
	}
}

static void
https_resolved(struct https_client *c)
{
	if (c->q_a != NULL || c->q_aaaa != NULL)
		return;
	if (c->naddrs == 0) {
		https_end(c, HTTPS_NO_ADDRESS, "%s",
		    c->dns_reason[0] ? c->dns_reason : "no A or AAAA record");
		return;
	}
	https_enter_state(c, HTTPS_S_REQUEST);
}

static void
https_answer(struct https_client *c, struct resolver_query **q, const struct dns_answer *ans,
    int family)
{
	*q = NULL;
	https_add_addresses(c, ans, family);
	https_resolved(c);
}

static void
https_a_answer(void *arg, const struct dns_answer *ans)
{
	struct https_client *c = arg;

	https_answer(c, &c->q_a, ans, AF_INET);
}

static void
https_aaaa_answer(void *arg, const struct dns_answer *ans)
{
	struct https_client *c = arg;

	https_answer(c, &c->q_aaaa, ans, AF_INET6);
}

static void
https_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	https_end(arg, HTTPS_TIMEOUT, "no complete answer in time");
}

struct https_client *
https_start(struct event_base *base, struct resolver *resolver, SSL_CTX *ssl_ctx,
    const struct https_request *req, https_cb cb, void *arg)
{
	struct https_client *c = xcalloc(1, sizeof(*c));
	struct timeval tv = { .tv_sec = req->deadline };
	unsigned char literal[16];
	size_t nheaders = 0;

	c->base = base;
	c->resolver = resolver;
	c->ssl_ctx = ssl_ctx;
	c->state = HTTPS_S_RESOLVE;
	c->method = req->method;
	c->host = xstrdup(req->host);
	c->path = xstrdup(req->path);
	c->port = req->port;
	while (req->headers != NULL && req->headers[nheaders] != NULL)
		nheaders++;
	c->headers = xcalloc(nheaders + 1, sizeof(*c->headers));
	for (size_t i = 0; i < nheaders; i++)
		c->headers[i] = xstrdup(req->headers[i]);
	c->req_body = evbuffer_new();
	if (req->method == HTTPS_POST)
		evbuffer_add(c->req_body, req->body, req->body_len);
	c->io_timeout = req->io_timeout;
	c->max_body = req->max_body;
	c->max_headers = req->max_headers;
	c->cert_check = req->cert_check;
	c->every_address = req->every_address;
	c->log_sub = req->log_sub;
	c->cb = cb;
	c->arg = arg;
	c->body = evbuffer_new();
	c->finish_ev = event_new(base, -1, 0, https_finish, c);
	c->retry_ev = event_new(base, -1, 0, https_retry, c);
	c->deadline = evtimer_new(base, https_deadline, c);
	evtimer_add(c->deadline, &tv);
	if (inet_pton(AF_INET, c->host, literal) == 1 || inet_pton(AF_INET6, c->host, literal) == 1) {
		snprintf(c->addrs[0], sizeof(c->addrs[0]), "%s", c->host);
		c->naddrs = 1;
		https_enter_state(c, HTTPS_S_REQUEST);
		return c;
	}
	c->q_a = resolver_query(resolver, c->host, DNS_TYPE_A, https_a_answer, c);
	c->q_aaaa = resolver_query(resolver, c->host, DNS_TYPE_AAAA, https_aaaa_answer, c);
	if (c->q_a == NULL && c->q_aaaa == NULL)
		https_end(c, HTTPS_ERROR, "%s: DNS lookup failed", c->host);
	return c;
}

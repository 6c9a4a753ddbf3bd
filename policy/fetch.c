#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_POLICY

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>

#include "conf/log.h"
#include "policy/fetch.h"

#define FETCH_MAX_ADDRESSES	8
#define FETCH_MAX_HEADERS	8192
#define FETCH_PATH		"/.well-known/mta-sts.txt"
#define DNS_TYPE_A		1
#define DNS_TYPE_AAAA		28

/*
 * RESOLVE: A and AAAA of mta-sts.<domain> in parallel.
 * REQUEST: one HTTPS request per address until one answers; network
 *          failures move to the next address, TLS and HTTP answers end it.
 * DONE:    the result waits for the deferred completion event, so the
 *          caller's callback never runs inside evhttp's call stack.
 */
enum fetch_state {
	FETCH_S_RESOLVE,
	FETCH_S_REQUEST,
	FETCH_S_DONE,
};

struct policy_fetch {
	struct event_base	*base;
	struct resolver		*resolver;
	SSL_CTX			*ssl_ctx;
	const struct conf	*conf;
	char			*domain;
	char			*host;		/* mta-sts.<domain> */
	enum fetch_state	 state;

	struct resolver_query	*q_a, *q_aaaa;
	char			 addrs[FETCH_MAX_ADDRESSES][INET6_ADDRSTRLEN];
	size_t			 naddrs, next_addr;
	char			 dns_reason[160];

	struct evhttp_connection *evcon;
	SSL			*ssl;		/* owned by evcon's bufferevent */
	enum evhttp_request_error http_error;
	bool			 http_failed;

	struct event		*deadline;
	struct event		*finish_ev;
	struct event		*retry_ev;	/* next address, outside evhttp's stack */
	struct evbuffer		*body;
	struct fetch_result	 result;
	policy_fetch_cb		 cb;
	void			*arg;
};

static void fetch_enter_state(struct policy_fetch *f, enum fetch_state next);
static void fetch_try_next_address(struct policy_fetch *f);

static const char *
fetch_state_name(enum fetch_state s)
{
	switch (s) {
	case FETCH_S_RESOLVE: return "resolve";
	case FETCH_S_REQUEST: return "request";
	case FETCH_S_DONE: return "done";
	}
	return "?";
}

static void
fetch_fail(struct policy_fetch *f, enum rpt_result_type type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fetch_fail(struct policy_fetch *f, enum rpt_result_type type, const char *fmt, ...)
{
	va_list ap;

	f->result.ok = false;
	f->result.type = type;
	va_start(ap, fmt);
	vsnprintf(f->result.reason, sizeof(f->result.reason), fmt, ap);
	va_end(ap);
	fetch_enter_state(f, FETCH_S_DONE);
}

static void
fetch_release_connection(struct policy_fetch *f)
{
	if (f->evcon != NULL) {
		/* Frees the bufferevent and, through BEV_OPT_CLOSE_ON_FREE, the SSL. */
		evhttp_connection_free(f->evcon);
		f->evcon = NULL;
		f->ssl = NULL;
	}
}

static void
fetch_free(struct policy_fetch *f)
{
	resolver_cancel(f->q_a);
	resolver_cancel(f->q_aaaa);
	fetch_release_connection(f);
	if (f->deadline)
		event_free(f->deadline);
	if (f->finish_ev)
		event_free(f->finish_ev);
	if (f->retry_ev)
		event_free(f->retry_ev);
	if (f->body)
		evbuffer_free(f->body);
	free(f->domain);
	free(f->host);
	free(f);
}

/* Runs from the loop, outside every libevent callback of this fetch. */
static void
fetch_finish(evutil_socket_t fd, short what, void *arg)
{
	struct policy_fetch *f = arg;

	(void)fd;
	(void)what;
	fetch_release_connection(f);
	if (f->result.ok) {
		f->result.body_len = evbuffer_get_length(f->body);
		f->result.body = (const char *)evbuffer_pullup(f->body, -1);
		if (f->result.body == NULL)
			f->result.body = "";
	}
	f->cb(f->arg, &f->result);
	fetch_free(f);
}

static void
fetch_enter_state(struct policy_fetch *f, enum fetch_state next)
{
	log_debug("event=fetch_state domain=%s transition=%s->%s", f->domain,
	    fetch_state_name(f->state), fetch_state_name(next));
	f->state = next;
	switch (next) {
	case FETCH_S_RESOLVE:
		break;
	case FETCH_S_REQUEST:
		fetch_try_next_address(f);
		break;
	case FETCH_S_DONE:
		resolver_cancel(f->q_a);
		resolver_cancel(f->q_aaaa);
		f->q_a = f->q_aaaa = NULL;
		evtimer_del(f->deadline);
		event_del(f->retry_ev);
		event_active(f->finish_ev, EV_TIMEOUT, 1);
		break;
	}
}

bool
fetch_content_type_ok(const char *value)
{
	size_t n;

	if (value == NULL)
		return false;
	while (*value == ' ' || *value == '\t')
		value++;
	n = strcspn(value, "; \t");
	return n == strlen("text/plain") && strncasecmp(value, "text/plain", n) == 0;
}

static void
fetch_http_error(enum evhttp_request_error error, void *arg)
{
	struct policy_fetch *f = arg;

	f->http_failed = true;
	f->http_error = error;
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

/* The request ended without a usable response: decide why. */
static void
fetch_request_failed(struct policy_fetch *f)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(f->evcon);
	unsigned long ssl_err = bev ? bufferevent_get_openssl_error(bev) : 0;
	long vr = f->ssl ? SSL_get_verify_result(f->ssl) : X509_V_OK;
	char reason[200];

	if (f->http_failed && f->http_error == EVREQ_HTTP_DATA_TOO_LONG) {
		fetch_fail(f, RPT_RESULT_STS_POLICY_INVALID,
		    "policy body or headers larger than the limit of %zu bytes",
		    f->conf->policy_max_body);
		return;
	}
	/* Only an error from the TLS library itself means the handshake
	 * failed; a system error (refused, reset) is a network failure. */
	if (ssl_err != 0 && ERR_GET_LIB(ssl_err) != ERR_LIB_SSL)
		ssl_err = 0;
	if (f->ssl != NULL && (vr != X509_V_OK || ssl_err != 0)) {
		enum rpt_result_type t = tls_failure_reason(f->ssl, ssl_err, reason, sizeof(reason));

		/* Certificate problems of the policy host are sts-webpki-invalid
		 * (STS-21); other handshake failures are fetch errors. */
		fetch_fail(f, vr != X509_V_OK ? RPT_RESULT_STS_WEBPKI_INVALID :
		    RPT_RESULT_STS_POLICY_FETCH_ERROR, "%s: %s", f->host, reason);
		(void)t;
		return;
	}
	if (f->http_failed && f->http_error == EVREQ_HTTP_INVALID_HEADER) {
		fetch_fail(f, RPT_RESULT_STS_POLICY_FETCH_ERROR, "invalid HTTP response from %s",
		    f->result.address);
		return;
	}
	/* A network failure: the next address may still work. */
	snprintf(f->dns_reason, sizeof(f->dns_reason), "%s port 443: %s", f->result.address,
	    f->http_failed ? http_error_name(f->http_error) : "no response");
	event_active(f->retry_ev, EV_TIMEOUT, 1);
}

static void
fetch_retry(evutil_socket_t fd, short what, void *arg)
{
	struct policy_fetch *f = arg;

	(void)fd;
	(void)what;
	if (f->state != FETCH_S_REQUEST)
		return;
	fetch_release_connection(f);
	fetch_try_next_address(f);
}

static void
fetch_http_done(struct evhttp_request *req, void *arg)
{
	struct policy_fetch *f = arg;
	const char *ct;
	int code;

	if (f->state != FETCH_S_REQUEST)
		return;
	if (req == NULL || (code = evhttp_request_get_response_code(req)) == 0) {
		fetch_request_failed(f);
		return;
	}
	f->result.http_status = code;
	ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	snprintf(f->result.content_type, sizeof(f->result.content_type), "%s", ct ? ct : "");
	if (code >= 300 && code < 400) {
		const char *loc = evhttp_find_header(evhttp_request_get_input_headers(req), "Location");

		fetch_fail(f, RPT_RESULT_STS_POLICY_FETCH_ERROR,
		    "HTTP %d redirect%s%s (redirects are not followed)", code,
		    loc ? " to " : "", loc ? loc : "");
		return;
	}
	if (code != 200) {
		fetch_fail(f, RPT_RESULT_STS_POLICY_FETCH_ERROR, "HTTP %d", code);
		return;
	}
	if (!fetch_content_type_ok(ct)) {
		fetch_fail(f, RPT_RESULT_STS_POLICY_INVALID, "Content-Type %s (text/plain required)",
		    ct ? ct : "missing");
		return;
	}
	evbuffer_add_buffer(f->body, evhttp_request_get_input_buffer(req));
	if (evbuffer_get_length(f->body) > f->conf->policy_max_body) {
		fetch_fail(f, RPT_RESULT_STS_POLICY_INVALID,
		    "policy body larger than the limit of %zu bytes", f->conf->policy_max_body);
		return;
	}
	f->result.ok = true;
	f->result.type = RPT_RESULT_NONE;
	fetch_enter_state(f, FETCH_S_DONE);
}

/* evhttp resets the SSL when the server closes, before our request
 * callback runs, so note what the peer presented as the handshake ends. */
static void
fetch_tls_info(const SSL *ssl, int where, int ret)
{
	struct policy_fetch *f = SSL_get_app_data(ssl);

	(void)ret;
	if ((where & SSL_CB_HANDSHAKE_DONE) && f != NULL) {
		f->result.tls_done = true;
		tls_peer_describe((SSL *)ssl, &f->result.peer);
	}
}

static void
fetch_try_next_address(struct policy_fetch *f)
{
	struct bufferevent *bev;
	struct evhttp_request *req;
	struct evkeyvalq *hdr;

	if (f->next_addr >= f->naddrs) {
		fetch_fail(f, RPT_RESULT_STS_POLICY_FETCH_ERROR, "%s: %s", f->host,
		    f->dns_reason[0] ? f->dns_reason : "no address");
		return;
	}
	snprintf(f->result.address, sizeof(f->result.address), "%s", f->addrs[f->next_addr++]);
	f->http_failed = false;
	f->ssl = tls_client_new(f->ssl_ctx, f->host);
	SSL_set_app_data(f->ssl, f);
	SSL_set_info_callback(f->ssl, fetch_tls_info);
	/* With BEV_OPT_CLOSE_ON_FREE the bufferevent owns the SSL, even when
	 * the constructor fails. */
	bev = bufferevent_openssl_socket_new(f->base, -1, f->ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		f->ssl = NULL;
		fetch_fail(f, RPT_RESULT_STS_POLICY_FETCH_ERROR, "cannot create a TLS connection");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	f->evcon = evhttp_connection_base_bufferevent_new(f->base, NULL, bev, f->result.address, 443);
	if (f->evcon == NULL) {
		bufferevent_free(bev);
		f->ssl = NULL;
		fetch_fail(f, RPT_RESULT_STS_POLICY_FETCH_ERROR, "cannot create an HTTP connection");
		return;
	}
	evhttp_connection_set_max_body_size(f->evcon, (ev_ssize_t)f->conf->policy_max_body);
	evhttp_connection_set_max_headers_size(f->evcon, FETCH_MAX_HEADERS);
	evhttp_connection_set_timeout(f->evcon, (int)f->conf->policy_fetch_timeout);
	evhttp_connection_set_retries(f->evcon, 0);

	req = evhttp_request_new(fetch_http_done, f);
	evhttp_request_set_error_cb(req, fetch_http_error);
	hdr = evhttp_request_get_output_headers(req);
	evhttp_add_header(hdr, "Host", f->host);
	evhttp_add_header(hdr, "User-Agent", PACKAGE_NAME "/" PACKAGE_VERSION);
	evhttp_add_header(hdr, "Accept", "text/plain");
	/* No caching layer may answer for the origin (STS-15). */
	evhttp_add_header(hdr, "Cache-Control", "no-cache");
	evhttp_add_header(hdr, "Connection", "close");
	log_debug("event=fetch_request domain=%s address=%s url=%s", f->domain, f->result.address,
	    f->result.url);
	if (evhttp_make_request(f->evcon, req, EVHTTP_REQ_GET, FETCH_PATH) != 0)
		fetch_fail(f, RPT_RESULT_STS_POLICY_FETCH_ERROR, "cannot send the HTTP request");
}

static void
fetch_add_addresses(struct policy_fetch *f, const struct dns_answer *ans, int family)
{
	if (ans->status != DNS_STATUS_OK) {
		if (ans->status != DNS_STATUS_NODATA && f->dns_reason[0] == '\0')
			snprintf(f->dns_reason, sizeof(f->dns_reason), "%s lookup: %s%s%s",
			    family == AF_INET ? "A" : "AAAA", dns_status_name(ans->status),
			    ans->why ? ": " : "", ans->why ? ans->why : "");
		return;
	}
	for (size_t i = 0; i < ans->count && f->naddrs < FETCH_MAX_ADDRESSES; i++) {
		if ((family == AF_INET && ans->len[i] != 4) || (family == AF_INET6 && ans->len[i] != 16))
			continue;
		inet_ntop(family, ans->data[i], f->addrs[f->naddrs], sizeof(f->addrs[0]));
		f->naddrs++;
	}
}

static void
fetch_resolved(struct policy_fetch *f)
{
	if (f->q_a != NULL || f->q_aaaa != NULL)
		return;
	if (f->naddrs == 0) {
		fetch_fail(f, RPT_RESULT_STS_POLICY_FETCH_ERROR, "%s: %s", f->host,
		    f->dns_reason[0] ? f->dns_reason : "no A or AAAA record");
		return;
	}
	f->dns_reason[0] = '\0';
	fetch_enter_state(f, FETCH_S_REQUEST);
}

static void
fetch_a_answer(void *arg, const struct dns_answer *ans)
{
	struct policy_fetch *f = arg;

	f->q_a = NULL;
	fetch_add_addresses(f, ans, AF_INET);
	fetch_resolved(f);
}

static void
fetch_aaaa_answer(void *arg, const struct dns_answer *ans)
{
	struct policy_fetch *f = arg;

	f->q_aaaa = NULL;
	fetch_add_addresses(f, ans, AF_INET6);
	fetch_resolved(f);
}

static void
fetch_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct policy_fetch *f = arg;

	(void)fd;
	(void)what;
	fetch_fail(f, RPT_RESULT_STS_POLICY_FETCH_ERROR, "%s: no complete answer within %us",
	    f->host, f->conf->policy_fetch_timeout);
}

struct policy_fetch *
policy_fetch_start(struct event_base *base, struct resolver *resolver, SSL_CTX *ssl_ctx,
    const struct conf *conf, const char *domain, policy_fetch_cb cb, void *arg)
{
	struct policy_fetch *f = xcalloc(1, sizeof(*f));
	struct timeval tv = { .tv_sec = conf->policy_fetch_timeout };

	f->base = base;
	f->resolver = resolver;
	f->ssl_ctx = ssl_ctx;
	f->conf = conf;
	f->domain = xstrdup(domain);
	f->host = xasprintf("mta-sts.%s", domain);
	f->cb = cb;
	f->arg = arg;
	f->body = evbuffer_new();
	f->state = FETCH_S_RESOLVE;
	snprintf(f->result.url, sizeof(f->result.url), "https://%s%s", f->host, FETCH_PATH);
	f->finish_ev = event_new(base, -1, 0, fetch_finish, f);
	f->retry_ev = event_new(base, -1, 0, fetch_retry, f);
	f->deadline = evtimer_new(base, fetch_deadline, f);
	evtimer_add(f->deadline, &tv);
	f->q_a = resolver_query(resolver, f->host, DNS_TYPE_A, fetch_a_answer, f);
	f->q_aaaa = resolver_query(resolver, f->host, DNS_TYPE_AAAA, fetch_aaaa_answer, f);
	if (f->q_a == NULL && f->q_aaaa == NULL)
		fetch_fail(f, RPT_RESULT_STS_POLICY_FETCH_ERROR, "%s: DNS lookup failed", f->host);
	return f;
}

void
policy_fetch_cancel(struct policy_fetch *f)
{
	if (f != NULL)
		fetch_free(f);
}

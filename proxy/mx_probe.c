#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_UPSTREAM

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "conf/log.h"
#include "conf/netaddr.h"
#include "proxy/mx_probe.h"
#include "proxy/smtp_reply.h"

/* QUIT is a courtesy: do not wait long for its 221. */
#define PROBE_QUIT_TIMEOUT	5

/*
 * CONNECTING: TCP connect in progress.
 * GREETING:   waiting for the 220 greeting.
 * EHLO:       EHLO sent, waiting for the capabilities.
 * STARTTLS:   STARTTLS sent, waiting for 220.
 * HANDSHAKE:  TLS handshake over the same connection.
 * EHLO_TLS:   EHLO sent again inside TLS.
 * QUIT:       QUIT sent at a reply boundary; any answer or none ends it.
 * DONE:       connection closed; the callback runs from the finish event.
 */
#define PROBE_STATES(X)		\
	X(PROBE_S_CONNECTING)	\
	X(PROBE_S_GREETING)	\
	X(PROBE_S_EHLO)		\
	X(PROBE_S_STARTTLS)	\
	X(PROBE_S_HANDSHAKE)	\
	X(PROBE_S_EHLO_TLS)	\
	X(PROBE_S_QUIT)		\
	X(PROBE_S_DONE)

#define STATE_ENUM(s) s,
enum probe_state { PROBE_STATES(STATE_ENUM) };
#undef STATE_ENUM
#define STATE_NAME(s) #s,
static const char *const state_names[] = { PROBE_STATES(STATE_NAME) };
#undef STATE_NAME

/* The step a failure is reported under, for people rather than logs. */
static const char *const step_names[] = {
	"connect", "greeting", "ehlo", "starttls", "tls", "ehlo-after-tls", "quit", "done",
};

struct mx_probe {
	struct event_base	*base;
	SSL_CTX			*ssl_ctx;
	enum mx_probe_mode	 mode;
	char			*host;
	char			*helo;
	unsigned		 timeout;
	struct sockaddr_storage	 addr;
	enum probe_state	 state;
	struct bufferevent	*bev;
	SSL			*ssl;		/* owned by bev once the TLS filter exists */
	struct smtp_reply	 reply;
	struct event		*finish_ev;
	struct timeval		 started;
	struct mx_probe_result	 result;
	mx_probe_cb		 cb;
	void			*arg;
	const struct dane_tlsa	*dane;		/* borrowed: judge by DANE, not PKIX */
	const struct strlist	*dane_names;
};

static void probe_enter_state(struct mx_probe *p, enum probe_state next);
static void probe_read_cb(struct bufferevent *bev, void *arg);
static void probe_event_cb(struct bufferevent *bev, short what, void *arg);

static void
probe_close(struct mx_probe *p)
{
	if (p->bev != NULL) {
		if (p->ssl != NULL && p->result.tls_done)
			SSL_shutdown(p->ssl);	/* best-effort close_notify */
		bufferevent_free(p->bev);	/* frees the SSL too (CLOSE_ON_FREE) */
	} else if (p->ssl != NULL)
		SSL_free(p->ssl);
	p->bev = NULL;
	p->ssl = NULL;
}

static void
probe_free(struct mx_probe *p)
{
	probe_close(p);
	smtp_reply_clear(&p->reply);
	if (p->finish_ev != NULL)
		event_free(p->finish_ev);
	free(p->host);
	free(p->helo);
	free(p);
}

void
mx_probe_set_dane(struct mx_probe *p, const struct dane_tlsa *tlsa, const struct strlist *names)
{
	p->dane = tlsa;
	p->dane_names = names;
}

void
mx_probe_cancel(struct mx_probe *p)
{
	if (p != NULL)
		probe_free(p);
}

/* From the loop, outside every bufferevent callback of this probe. */
static void
probe_finish(evutil_socket_t fd, short what, void *arg)
{
	struct mx_probe *p = arg;
	struct timeval now;

	(void)fd;
	(void)what;
	evutil_gettimeofday(&now, NULL);
	p->result.elapsed_ms = (unsigned)((now.tv_sec - p->started.tv_sec) * 1000 +
	    (now.tv_usec - p->started.tv_usec) / 1000);
	p->result.host = p->host;
	if (p->result.failed_step == NULL)
		p->result.failed_step = "";
	log_debug("event=probe_done host=%s ip=%s verdict=%s reason=%s failed_step=%s error=%s",
	    p->host, p->result.address, p->result.verdict_known ?
	    rpt_result_type_name(p->result.verdict) : "-", log_quote(p->result.verdict_reason),
	    p->result.failed_step[0] ? p->result.failed_step : "-", log_quote(p->result.error));
	p->cb(p->arg, &p->result);
	probe_free(p);
}

static void
set_timeout(struct mx_probe *p, unsigned seconds)
{
	struct timeval tv = { seconds, 0 };

	bufferevent_set_timeouts(p->bev, &tv, &tv);
}

static void
send_line(struct mx_probe *p, const char *line)
{
	log_debug("event=probe_send host=%s ip=%s line=%s", p->host, p->result.address,
	    log_quote(line));
	evbuffer_add_printf(bufferevent_get_output(p->bev), "%s\r\n", line);
	set_timeout(p, p->timeout);
}

static void
set_verdict(struct mx_probe *p, enum rpt_result_type type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_verdict(struct mx_probe *p, enum rpt_result_type type, const char *fmt, ...)
{
	va_list ap;

	p->result.verdict_known = true;
	p->result.verdict = type;
	va_start(ap, fmt);
	vsnprintf(p->result.verdict_reason, sizeof(p->result.verdict_reason), fmt, ap);
	va_end(ap);
}

/*
 * The session broke off in the current state. At a reply boundary the
 * server still expects a command, so it gets a QUIT; otherwise hang up.
 */
static void
probe_fail(struct mx_probe *p, bool at_boundary, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
probe_fail(struct mx_probe *p, bool at_boundary, const char *fmt, ...)
{
	va_list ap;

	if (p->result.failed_step == NULL)
		p->result.failed_step = step_names[p->state];
	va_start(ap, fmt);
	vsnprintf(p->result.error, sizeof(p->result.error), fmt, ap);
	va_end(ap);
	probe_enter_state(p, at_boundary ? PROBE_S_QUIT : PROBE_S_DONE);
}

/* The handshake completed: what is the certificate worth for this host? */
static void
probe_tls_established(struct mx_probe *p)
{
	char reason[256];
	enum rpt_result_type type;

	p->result.tls_done = true;
	tls_peer_describe(p->ssl, &p->result.peer);
	type = tls_peer_verdict(p->ssl, reason, sizeof(reason));
	set_verdict(p, type, "%s", reason);
	if (p->mode == MX_PROBE_TLS)
		probe_enter_state(p, PROBE_S_DONE);
	else
		probe_enter_state(p, PROBE_S_EHLO_TLS);
}

/* Decide the next state from a complete reply (SMTP-9: by code only). */
static void
probe_response(struct mx_probe *p, const struct smtp_reply *r)
{
	int cls = smtp_reply_class(r);
	char *flat = smtp_reply_flatten(r);

	log_debug("event=probe_reply host=%s ip=%s state=%s reply=%s", p->host,
	    p->result.address, state_names[p->state], log_quote(flat));
	switch (p->state) {
	case PROBE_S_GREETING:
		snprintf(p->result.greeting, sizeof(p->result.greeting), "%s", flat);
		if (cls != 2)
			probe_fail(p, true, "greeting %s", flat);
		else
			probe_enter_state(p, PROBE_S_EHLO);
		break;
	case PROBE_S_EHLO:
		if (cls != 2) {
			probe_fail(p, true, "EHLO refused: %s", flat);
			break;
		}
		p->result.ehlo_ok = true;
		p->result.starttls_offered = smtp_reply_has_keyword(r, "STARTTLS", NULL);
		if (p->result.starttls_offered) {
			probe_enter_state(p, PROBE_S_STARTTLS);
		} else {
			set_verdict(p, RPT_RESULT_STARTTLS_NOT_SUPPORTED, "does not offer STARTTLS");
			probe_enter_state(p, PROBE_S_QUIT);
		}
		break;
	case PROBE_S_STARTTLS:
		if (cls != 2) {
			set_verdict(p, RPT_RESULT_STARTTLS_NOT_SUPPORTED, "STARTTLS refused: %s", flat);
			probe_enter_state(p, PROBE_S_QUIT);
			break;
		}
		/* RFC 3207 §5: nothing may follow the 220 in the clear; a
		 * sender would read it as TLS-protected (command injection). */
		if (evbuffer_get_length(bufferevent_get_input(p->bev)) > 0) {
			set_verdict(p, RPT_RESULT_VALIDATION_FAILURE,
			    "sent plaintext after its STARTTLS reply (command injection)");
			probe_fail(p, false, "plaintext after the STARTTLS reply");
			break;
		}
		probe_enter_state(p, PROBE_S_HANDSHAKE);
		break;
	case PROBE_S_EHLO_TLS:
		if (cls != 2) {
			probe_fail(p, true, "EHLO after STARTTLS refused: %s", flat);
			break;
		}
		p->result.ehlo_tls_ok = true;
		probe_enter_state(p, PROBE_S_QUIT);
		break;
	case PROBE_S_QUIT:
		probe_enter_state(p, PROBE_S_DONE);
		break;
	default:
		probe_fail(p, false, "reply while none was expected: %s", flat);
		break;
	}
	free(flat);
}

static void
probe_start_tls(struct mx_probe *p)
{
	struct bufferevent *tls;

	if (p->dane != NULL) {
		p->ssl = tls_dane_client_new(p->ssl_ctx, p->dane, p->dane_names);
		if (p->ssl == NULL) {
			set_verdict(p, RPT_RESULT_TLSA_INVALID, "no TLSA record the TLS library accepts");
			probe_fail(p, false, "no TLSA record the TLS library accepts");
			return;
		}
	} else
		p->ssl = tls_smtp_client_new(p->ssl_ctx, p->host);
	/* A diagnosis needs each address's own certificate, not the one a
	 * resumed session would carry over from another address. */
	SSL_set_session(p->ssl, NULL);
	/* With CLOSE_ON_FREE the filter owns the SSL and the plain
	 * bufferevent, even when it fails to start. */
	tls = bufferevent_openssl_filter_new(p->base, p->bev, p->ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL) {
		p->bev = NULL;
		p->ssl = NULL;
		set_verdict(p, RPT_RESULT_VALIDATION_FAILURE, "cannot start TLS");
		probe_fail(p, false, "cannot start TLS");
		return;
	}
	p->bev = tls;
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	bufferevent_setcb(tls, probe_read_cb, NULL, probe_event_cb, p);
	set_timeout(p, p->timeout);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
}

static void
probe_connect(struct mx_probe *p)
{
	socklen_t len = p->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);

	p->bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (p->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	bufferevent_setcb(p->bev, probe_read_cb, NULL, probe_event_cb, p);
	set_timeout(p, p->timeout);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(p->bev, (struct sockaddr *)&p->addr, (int)len) < 0) {
		p->result.connect_errno = errno;
		probe_fail(p, false, "connect failed: %s", strerror(errno));
	}
}

static void
probe_enter_state(struct mx_probe *p, enum probe_state next)
{
	log_debug("event=probe_state host=%s ip=%s transition=%s->%s", p->host, p->result.address,
	    state_names[p->state], state_names[next]);
	p->state = next;
	switch (next) {
	case PROBE_S_CONNECTING:
		probe_connect(p);
		break;
	case PROBE_S_GREETING:
		set_timeout(p, p->timeout);
		break;
	case PROBE_S_EHLO:
	case PROBE_S_EHLO_TLS: {
		char *line = xasprintf("EHLO %s", p->helo);

		send_line(p, line);
		free(line);
		break;
	}
	case PROBE_S_STARTTLS:
		send_line(p, "STARTTLS");
		break;
	case PROBE_S_HANDSHAKE:
		probe_start_tls(p);
		break;
	case PROBE_S_QUIT:
		/* No mail is ever sent: QUIT is the only command after EHLO. */
		send_line(p, "QUIT");
		set_timeout(p, PROBE_QUIT_TIMEOUT);
		break;
	case PROBE_S_DONE:
		probe_close(p);
		event_active(p->finish_ev, EV_TIMEOUT, 1);
		break;
	}
}

static void
probe_read_cb(struct bufferevent *bev, void *arg)
{
	struct mx_probe *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const char *why = NULL;

	while (p->bev == bev && p->state != PROBE_S_DONE) {
		size_t n;
		char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);

		if (line == NULL) {
			if (evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX + 2) {
				probe_fail(p, false, "reply line longer than %d bytes",
				    SMTP_REPLY_LINE_MAX);
			}
			return;
		}
		if (p->state == PROBE_S_CONNECTING || p->state == PROBE_S_HANDSHAKE) {
			free(line);
			probe_fail(p, false, "data while none was expected");
			return;
		}
		switch (smtp_reply_feed(&p->reply, line, n, &why)) {
		case SMTP_REPLY_MORE:
			free(line);
			continue;
		case SMTP_REPLY_ERROR:
			free(line);
			if (p->state == PROBE_S_QUIT)
				probe_enter_state(p, PROBE_S_DONE);
			else
				probe_fail(p, false, "protocol error: %s", why);
			return;
		case SMTP_REPLY_DONE:
			free(line);
			break;
		}
		/* Nothing was pipelined, so nothing may follow a reply; STARTTLS
		 * is judged in probe_response() (injection). */
		if (p->state != PROBE_S_STARTTLS && p->state != PROBE_S_QUIT &&
		    evbuffer_get_length(in) > 0) {
			smtp_reply_clear(&p->reply);
			probe_fail(p, false, "protocol error: more data after a complete reply");
			return;
		}
		{
			struct smtp_reply r;

			/* probe_response() may close the connection, clearing p->reply. */
			smtp_reply_init(&r);
			smtp_reply_copy(&r, &p->reply);
			smtp_reply_clear(&p->reply);
			probe_response(p, &r);
			smtp_reply_clear(&r);
		}
	}
}

static void
probe_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct mx_probe *p = arg;
	char reason[256];

	if (what & BEV_EVENT_CONNECTED) {
		if (p->state == PROBE_S_CONNECTING) {
			char local[64] = "";
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);

			p->result.connected = true;
			if (getsockname(bufferevent_getfd(bev), (struct sockaddr *)&ss, &sl) == 0)
				netaddr_ntop((struct sockaddr *)&ss, local, sizeof(local));
			log_debug("event=probe_connected host=%s ip=%s local=%s", p->host,
			    p->result.address, local);
			probe_enter_state(p, p->mode == MX_PROBE_TLS ? PROBE_S_HANDSHAKE :
			    PROBE_S_GREETING);
		} else if (p->state == PROBE_S_HANDSHAKE)
			probe_tls_established(p);
		return;
	}
	if (p->state == PROBE_S_QUIT) {
		/* The server hung up after QUIT, or did not answer it: done. */
		probe_enter_state(p, PROBE_S_DONE);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(reason, sizeof(reason), "no answer within %us", p->timeout);
	else if (what & BEV_EVENT_EOF)
		snprintf(reason, sizeof(reason), "the server closed the connection");
	else {
		int err = EVUTIL_SOCKET_ERROR();

		if (p->state == PROBE_S_CONNECTING)
			p->result.connect_errno = err;
		snprintf(reason, sizeof(reason), "%s", err ? evutil_socket_error_to_string(err) :
		    "connection error");
	}
	if (p->state == PROBE_S_HANDSHAKE) {
		enum rpt_result_type t;
		char treason[300];

		/* Certificates never fail the handshake here (the verdict comes
		 * after it), so this is the TLS protocol itself. */
		t = tls_failure_reason(p->ssl, bufferevent_get_openssl_error(bev), treason,
		    sizeof(treason));
		if (what & BEV_EVENT_TIMEOUT)
			snprintf(treason, sizeof(treason), "TLS handshake: %s", reason);
		set_verdict(p, t, "%s", treason);
		probe_fail(p, false, "%s", treason);
		return;
	}
	probe_fail(p, false, "%s", reason);
}

struct mx_probe *
mx_probe_start(struct event_base *base, SSL_CTX *ssl_ctx, enum mx_probe_mode mode,
    const char *host, const struct sockaddr *addr, const char *helo, unsigned timeout,
    mx_probe_cb cb, void *arg)
{
	struct mx_probe *p = xcalloc(1, sizeof(*p));
	size_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);

	p->base = base;
	p->ssl_ctx = ssl_ctx;
	p->mode = mode;
	p->host = xstrdup(host);
	p->helo = xstrdup(helo);
	p->timeout = timeout;
	memcpy(&p->addr, addr, alen);
	p->cb = cb;
	p->arg = arg;
	p->state = PROBE_S_CONNECTING;
	smtp_reply_init(&p->reply);
	p->finish_ev = event_new(base, -1, 0, probe_finish, p);
	netaddr_ntop(addr, p->result.address, sizeof(p->result.address));
	p->result.port = ntohs(addr->sa_family == AF_INET6 ?
	    ((const struct sockaddr_in6 *)addr)->sin6_port :
	    ((const struct sockaddr_in *)addr)->sin_port);
	evutil_gettimeofday(&p->started, NULL);
	/* Connecting may fail at once; the callback still runs from the loop. */
	probe_enter_state(p, PROBE_S_CONNECTING);
	return p;
}

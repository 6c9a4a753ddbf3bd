#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_UPSTREAM

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "conf/netaddr.h"
#include "proxy/mx_walk.h"
#include "proxy/upstream.h"
#include "proxy/upstream_conn.h"
#include "proxy/upstream_internal.h"
#include "proxy/upstream_pool.h"
#include "proxy/upstream_record.h"

/* Body bytes buffered towards the upstream before the client is paused. */
#define BODY_HIGH_WATER	(256 * 1024)
#define BODY_LOW_WATER	(64 * 1024)
#define QUIT_TIMEOUT	10

#define UPSTREAM_STATES(X)		\
	X(UPSTREAM_S_RESOLVING)		\
	X(UPSTREAM_S_NEXT_MX)		\
	X(UPSTREAM_S_CONNECTING)	\
	X(UPSTREAM_S_BANNER)		\
	X(UPSTREAM_S_EHLO)		\
	X(UPSTREAM_S_HELO)		\
	X(UPSTREAM_S_STARTTLS)		\
	X(UPSTREAM_S_TLS)		\
	X(UPSTREAM_S_EHLO_TLS)		\
	X(UPSTREAM_S_RSET)		\
	X(UPSTREAM_S_MAIL)		\
	X(UPSTREAM_S_READY)		\
	X(UPSTREAM_S_RCPT)		\
	X(UPSTREAM_S_DATA)		\
	X(UPSTREAM_S_BODY)		\
	X(UPSTREAM_S_EOM)		\
	X(UPSTREAM_S_FAILED)		\
	X(UPSTREAM_S_LOST)		\
	X(UPSTREAM_S_QUIT)		\
	X(UPSTREAM_S_CLOSED)

#define STATE_ENUM(s) s,
enum upstream_state { UPSTREAM_STATES(STATE_ENUM) };
#undef STATE_ENUM
#define STATE_NAME(s) #s,
static const char *const state_names[] = { UPSTREAM_STATES(STATE_NAME) };
#undef STATE_NAME

struct upstream {
	struct runtime		*rt;
	const struct conf	*conf;
	struct upstream_txn	 txn;		/* session, domain, recipients, policy */
	struct smtp_path	 mail;
	upstream_cb		 cb;
	void			*arg;
	enum upstream_state	 state;
	bool			 detached;	/* upstream_free() called: no callbacks */
	struct timeval		 started;
	struct event		*reaper;

	struct mx_walk		*walk;		/* which MX next, and when to give up */

	/* the current attempt */
	struct mx_route		 route;		/* route.mx_host is NULL before the first */
	struct upstream_conn	*conn;		/* NULL between attempts */
	unsigned		 conn_seq;	/* changes whenever conn is let go */
	struct smtp_reply	 reply;		/* the reply being read */
	bool			 recorded;	/* outcome of this attempt recorded */
	bool			 clean;		/* at a reply boundary: QUIT before hanging up */
	bool			 want_writable;
	bool			 reused;	/* taken from the pool, not connected for us */
	bool			 mail_pipelined; /* MAIL already sent behind the pool's RSET */
	struct smtp_path	 first_rcpt;	/* upstream_first_rcpt(), if given */
	bool			 have_first_rcpt;
	bool			 to_has_first;	/* first_rcpt is in txn.to, not yet claimed */
	bool			 rcpt_pipelined; /* its RCPT went out behind MAIL; not yet claimed */
	struct timeval		 cmd_sent;	/* when the command now awaiting a reply went out */
	char			*last_reply;	/* flattened, for the outcome */
};

static unsigned live_upstreams;

static void upstream_enter_state(struct upstream *up, enum upstream_state next);
static bool retry_fresh(struct upstream *up, const char *why);
static void upstream_read_cb(struct bufferevent *bev, void *arg);
static void upstream_write_cb(struct bufferevent *bev, void *arg);
static void upstream_event_cb(struct bufferevent *bev, short what, void *arg);

unsigned
upstream_count(void)
{
	return live_upstreams + upstream_conn_closing();
}

const char *
upstream_mx_host(const struct upstream *up)
{
	return up->route.mx_host ? up->route.mx_host : "";
}

static void
notify(struct upstream *up, enum upstream_event ev, const struct smtp_reply *reply)
{
	if (!up->detached && up->cb != NULL)
		up->cb(up->arg, ev, reply);
}

/* The attempt's connection carried the transaction, or tried to. */
static void
record_delivery(struct upstream *up)
{
	upstream_record_delivery(&up->txn, up->route.mx_host, &up->route.regime, up->conn,
	    up->last_reply, &up->recorded);
}

/* The walk's phase for log lines, or DANE when DANE's rules govern the MX. */
static const char *
phase_name(const struct upstream *up)
{
	if (up->route.regime.kind == REGIME_DANE || up->route.regime.kind == REGIME_DANE_TLS)
		return regime_kind_name(up->route.regime.kind);
	return up->route.strict ? "strict" : "opportunistic";
}

static void
set_last_reply(struct upstream *up, const struct smtp_reply *r)
{
	free(up->last_reply);
	up->last_reply = smtp_reply_flatten(r);
}

/* Let go of the connection (conn_seq tells the read loop); the caller now owns it. */
static struct upstream_conn *
release_conn(struct upstream *up)
{
	struct upstream_conn *conn = up->conn;

	up->conn = NULL;
	up->conn_seq++;
	up->clean = false;
	smtp_reply_clear(&up->reply);
	return conn;
}

/*
 * Hang up. A connection at a clean point still gets a QUIT, as RFC 5321
 * §4.1.1.10 asks (upstream_conn_close()).
 */
static void
close_connection(struct upstream *up)
{
	bool polite = up->clean && up->conn != NULL && up->conn->bev != NULL;

	if (polite)
		log_debug("session=%s upstream=%s >>> QUIT (giving up on this MX)", up->txn.session,
		    up->route.mx_host);
	upstream_conn_close(release_conn(up), polite);
}

/* No transaction, on this MX or another: reply is for every recipient (EV_FAILED). */
static void
transaction_failed(struct upstream *up, const struct smtp_reply *reply)
{
	upstream_enter_state(up, UPSTREAM_S_FAILED);
	notify(up, UPSTREAM_EV_FAILED, reply);
}

/*
 * The connection broke (reason) after MAIL was accepted: nothing more
 * goes to this MX, and the recipients still waiting hear a 4.4.2 made
 * of fmt. SMTP-10: without a final 2xx the client keeps the message.
 */
static void
transaction_lost(struct upstream *up, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
transaction_lost(struct upstream *up, const char *reason, const char *fmt, ...)
{
	struct smtp_reply r;
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	smtp_reply_init(&r);
	smtp_reply_own(&r, up->txn.session, 451, "4.4.2", "%s", text);
	free(text);
	log_warnx("session=%s event=upstream_lost domain=%s to=%s mx=%s ip=%s reason=%s",
	    up->txn.session, up->txn.domain, upstream_txn_recipients(&up->txn), up->route.mx_host,
	    up->conn->ip, log_quote(reason));
	set_last_reply(up, &r);
	record_delivery(up);
	upstream_enter_state(up, UPSTREAM_S_LOST);
	notify(up, UPSTREAM_EV_LOST, &r);
	smtp_reply_clear(&r);
}

/* The current attempt failed: record it, hang up, try the next MX. */
static void
attempt_fail(struct upstream *up, enum mx_fail kind, enum rpt_result_type result,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
attempt_fail(struct upstream *up, enum mx_fail kind, enum rpt_result_type result,
    const char *fmt, ...)
{
	va_list ap;
	char *reason;

	va_start(ap, fmt);
	reason = xvasprintf(fmt, ap);
	va_end(ap);
	if (retry_fresh(up, reason)) {
		free(reason);
		return;
	}
	log_info("session=%s event=mx_failed domain=%s mx=%s ip=%s phase=%s reason=%s",
	    up->txn.session, up->txn.domain, up->route.mx_host, up->conn->ip, phase_name(up),
	    log_quote(reason));
	upstream_record_failed(&up->txn, up->route.mx_host, &up->route.regime, up->conn,
	    up->last_reply, result, reason, &up->recorded);
	mx_walk_failed(up->walk, kind, reason);
	free(reason);
	close_connection(up);
	upstream_enter_state(up, UPSTREAM_S_NEXT_MX);
}

static void
send_line(struct upstream *up, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
send_line(struct upstream *up, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(up->conn->bev);
	va_list ap;
	char *line;

	va_start(ap, fmt);
	line = xvasprintf(fmt, ap);
	va_end(ap);
	log_debug("session=%s upstream=%s >>> %s", up->txn.session, up->route.mx_host, line);
	evbuffer_add_printf(out, "%s\r\n", line);
	free(line);
	evutil_gettimeofday(&up->cmd_sent, NULL);
}

static void
set_timeout(struct upstream *up, unsigned seconds)
{
	upstream_conn_set_timeouts(up->conn, seconds, seconds);
}

/* MAIL FROM with the client's parameters, adapted to the upstream's EHLO. */
static int
send_mail(struct upstream *up)
{
	struct strbuf cmd;
	const struct smtp_param *p;

	strbuf_init(&cmd);
	strbuf_printf(&cmd, "MAIL FROM:<%s>", up->mail.address);
	if ((p = smtp_path_param(&up->mail, "SIZE")) != NULL &&
	    smtp_reply_has_keyword(&up->conn->ehlo, "SIZE", NULL))
		strbuf_printf(&cmd, " SIZE=%s", p->value);
	if ((p = smtp_path_param(&up->mail, "BODY")) != NULL &&
	    smtp_reply_has_keyword(&up->conn->ehlo, "8BITMIME", NULL))
		strbuf_printf(&cmd, " BODY=%s", p->value);
	if (smtp_path_param(&up->mail, "SMTPUTF8") != NULL) {
		if (!smtp_reply_has_keyword(&up->conn->ehlo, "SMTPUTF8", NULL)) {
			strbuf_free(&cmd);
			return -1;
		}
		strbuf_printf(&cmd, " SMTPUTF8");
	}
	if (smtp_reply_has_keyword(&up->conn->ehlo, "DSN", NULL)) {
		if ((p = smtp_path_param(&up->mail, "RET")) != NULL)
			strbuf_printf(&cmd, " RET=%s", p->value);
		if ((p = smtp_path_param(&up->mail, "ENVID")) != NULL)
			strbuf_printf(&cmd, " ENVID=%s", p->value);
	}
	send_line(up, "%s", cmd.data);
	strbuf_free(&cmd);
	return 0;
}

static void
send_rcpt(struct upstream *up, const struct smtp_path *rcpt)
{
	struct strbuf cmd;
	const struct smtp_param *p;

	strbuf_init(&cmd);
	strbuf_printf(&cmd, "RCPT TO:<%s>", rcpt->address);
	if (smtp_reply_has_keyword(&up->conn->ehlo, "DSN", NULL)) {
		if ((p = smtp_path_param(rcpt, "NOTIFY")) != NULL)
			strbuf_printf(&cmd, " NOTIFY=%s", p->value);
		if ((p = smtp_path_param(rcpt, "ORCPT")) != NULL)
			strbuf_printf(&cmd, " ORCPT=%s", p->value);
	}
	send_line(up, "%s", cmd.data);
	strbuf_free(&cmd);
}

/* MAIL just went out: the first RCPT may follow at once (RFC 2920). */
static void
pipeline_first_rcpt(struct upstream *up)
{
	up->rcpt_pipelined = false;
	if (up->have_first_rcpt && smtp_reply_has_keyword(&up->conn->ehlo, "PIPELINING", NULL)) {
		send_rcpt(up, &up->first_rcpt);
		up->rcpt_pipelined = true;
	}
}

void
upstream_first_rcpt(struct upstream *up, const struct smtp_path *rcpt)
{
	if (up == NULL || up->state > UPSTREAM_S_RESOLVING)
		return;
	up->first_rcpt = *rcpt;
	up->have_first_rcpt = true;
	upstream_txn_note_recipient(&up->txn, rcpt->address);
	up->to_has_first = true;
}

int
upstream_rcpt(struct upstream *up, const struct smtp_path *rcpt)
{
	if (up->state == UPSTREAM_S_RCPT && up->rcpt_pipelined) {
		/* sent behind MAIL already; its reply is on the way */
		up->rcpt_pipelined = false;
		up->have_first_rcpt = false;
		up->to_has_first = false;
		return 0;
	}
	if (up->state != UPSTREAM_S_READY)
		return -1;
	if (up->to_has_first)
		up->to_has_first = false;	/* listed by upstream_first_rcpt() */
	else
		upstream_txn_note_recipient(&up->txn, rcpt->address);
	send_rcpt(up, rcpt);
	upstream_enter_state(up, UPSTREAM_S_RCPT);
	return 0;
}

int
upstream_data(struct upstream *up)
{
	if (up->state != UPSTREAM_S_READY)
		return -1;
	upstream_enter_state(up, UPSTREAM_S_DATA);
	return 0;
}

struct evbuffer *
upstream_body(struct upstream *up)
{
	if (up->state != UPSTREAM_S_BODY || up->conn == NULL || up->conn->bev == NULL)
		return NULL;
	return bufferevent_get_output(up->conn->bev);
}

bool
upstream_body_full(struct upstream *up)
{
	if (up->state != UPSTREAM_S_BODY || up->conn == NULL || up->conn->bev == NULL)
		return false;
	if (evbuffer_get_length(bufferevent_get_output(up->conn->bev)) < BODY_HIGH_WATER)
		return false;
	up->want_writable = true;
	return true;
}

int
upstream_body_end(struct upstream *up)
{
	if (up->state != UPSTREAM_S_BODY)
		return -1;
	upstream_enter_state(up, UPSTREAM_S_EOM);
	return 0;
}

/*
 * Take an idle connection to this MX address from the pool, if one may
 * serve this transaction (upstream_pool.h: the policy and DANE
 * boundary), and go straight to MAIL on it. Its TLS facts come along for
 * the outcome.
 */
static bool
adopt_pooled(struct upstream *up)
{
	bool rset_pending;

	if (!up->conf->upstream_reuse || up->route.plaintext ||
	    (up->conn = upstream_pool_take(up->route.mx_host, &up->route.addr, &up->route.regime,
	    &rset_pending)) == NULL)
		return false;
	up->reused = true;
	up->recorded = false;
	up->clean = true;
	free(up->last_reply);
	up->last_reply = NULL;
	upstream_conn_set_owner(up->conn, upstream_read_cb, upstream_write_cb, upstream_event_cb, up);
	bufferevent_enable(up->conn->bev, EV_READ | EV_WRITE);
	log_info("session=%s event=connection_reused domain=%s mx=%s ip=%s tls=%s messages=%u phase=%s",
	    up->txn.session, up->txn.domain, up->route.mx_host, up->conn->ip,
	    up->conn->tls_active ? up->conn->peer.version : "no", up->conn->messages, phase_name(up));
	if (!rset_pending) {
		upstream_enter_state(up, UPSTREAM_S_MAIL);
		return true;
	}
	/* The pool's RSET is still unanswered: read its reply first, with MAIL
	 * pipelined behind it when the server allows (RFC 2920). */
	up->mail_pipelined = smtp_reply_has_keyword(&up->conn->ehlo, "PIPELINING", NULL) &&
	    send_mail(up) == 0;
	if (up->mail_pipelined)
		pipeline_first_rcpt(up);
	upstream_enter_state(up, UPSTREAM_S_RSET);
	return true;
}

/*
 * A reused connection that fails before its MAIL reply was closed by
 * the server while it sat idle: nothing of this transaction reached it.
 * Connect to the same address afresh, without counting or recording the
 * lost connection as an attempt.
 */
static bool
retry_fresh(struct upstream *up, const char *why)
{
	if (!up->reused || (up->state != UPSTREAM_S_MAIL && up->state != UPSTREAM_S_RSET))
		return false;
	up->mail_pipelined = false;
	up->rcpt_pipelined = false;
	log_info("session=%s event=reused_connection_lost mx=%s ip=%s reason=%s; connecting afresh",
	    up->txn.session, up->route.mx_host, up->conn->ip, log_quote(why));
	up->clean = false;
	close_connection(up);
	upstream_enter_state(up, UPSTREAM_S_CONNECTING);
	return true;
}

/* After a transaction: park the connection for the next one instead of QUIT. */
static bool
park(struct upstream *up)
{
	if (!up->clean || up->state != UPSTREAM_S_READY ||
	    evbuffer_get_length(bufferevent_get_input(up->conn->bev)) > 0)
		return false;
	up->conn->messages++;
	if (!upstream_pool_accepts(up->conf, up->conn))
		return false;
	upstream_pool_put(up->conf, release_conn(up));
	return true;
}

/* Ask the walk for the next MX address, and take it from the pool or connect; or give up. */
static void
next_mx(struct upstream *up)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	switch (mx_walk_next(up->walk, &up->route, &r)) {
	case MX_WALK_GIVE_UP:
		transaction_failed(up, &r);
		break;
	case MX_WALK_WAIT:
		break;		/* resolved() runs when the walk can go on */
	case MX_WALK_TRY:
		if (!adopt_pooled(up))
			upstream_enter_state(up, UPSTREAM_S_CONNECTING);
		break;
	}
	smtp_reply_clear(&r);
}

static void
start_connect(struct upstream *up)
{
	up->recorded = false;
	up->reused = false;
	up->rcpt_pipelined = false;
	free(up->last_reply);
	up->last_reply = NULL;
	up->conn = upstream_conn_new(up->route.mx_host, &up->route.addr,
	    up->route.regime.tls_required && up->route.regime.authenticate && !up->route.plaintext);
	log_info("session=%s event=connecting domain=%s mx=%s ip=%s phase=%s%s", up->txn.session,
	    up->txn.domain, up->route.mx_host, up->conn->ip, phase_name(up),
	    up->route.plaintext ? " tls=no" : "");
	evutil_gettimeofday(&up->cmd_sent, NULL);
	if (upstream_conn_connect(up->conn, up->rt->base, up->conf->upstream_connect_timeout,
	    upstream_read_cb, upstream_write_cb, upstream_event_cb, up) < 0)
		attempt_fail(up, MX_FAIL_CONNECT, RPT_RESULT_NONE, "connect failed: %s",
		    strerror(errno));
}

static void
start_tls(struct upstream *up)
{
	if (upstream_conn_start_tls(up->conn, up->rt->base, up->rt->ssl_ctx, &up->route.regime,
	    up->route.dane_names, up->conf->upstream_command_timeout) < 0) {
		if (up->conn->bev != NULL)	/* nothing to authenticate with */
			attempt_fail(up, MX_FAIL_POLICY, up->conn->tls_result, "%s", up->conn->tls_reason);
		else
			attempt_fail(up, MX_FAIL_CONNECT, RPT_RESULT_VALIDATION_FAILURE, "cannot start TLS");
	}
}

/* The handshake completed: does this MX pass what its regime asks? */
static void
tls_established(struct upstream *up)
{
	enum rpt_result_type verdict = upstream_conn_tls_ready(up->conn);

	up->clean = true;
	log_info("session=%s event=tls mx=%s ip=%s version=%s cipher=%s resumed=%s verify=%s "
	    "auth=%s reason=%s", up->txn.session, up->route.mx_host, up->conn->ip,
	    up->conn->peer.version, up->conn->peer.cipher, up->conn->tls_resumed ? "yes" : "no",
	    rpt_result_type_name(verdict), up->conn->auth == TLS_AUTH_DANE ? "dane" :
	    up->conn->auth == TLS_AUTH_PKIX ? "pkix" : "none", log_quote(up->conn->tls_reason));
	if (verdict != RPT_RESULT_NONE && up->route.regime.authenticate) {
		/* STS-38, STS-41, DANE-10: a certificate that fails is an unreachable MX. */
		attempt_fail(up, MX_FAIL_POLICY, verdict, "%s", up->conn->tls_reason);
		return;
	}
	upstream_enter_state(up, UPSTREAM_S_EHLO_TLS);
}

/* An operator tells a slow network (greeting) from a slow content filter (eom). */
static void
observe_reply_latency(struct upstream *up, const char *cmd)
{
	struct timeval now;
	char labels[32];

	if (up->cmd_sent.tv_sec == 0)
		return;
	evutil_gettimeofday(&now, NULL);
	snprintf(labels, sizeof(labels), "command=\"%s\"", cmd);
	metrics_observe("stsproxy_upstream_reply_seconds", labels,
	    (double)(now.tv_sec - up->cmd_sent.tv_sec) + (double)(now.tv_usec - up->cmd_sent.tv_usec) / 1e6);
}

/* The greeting: note the server's name (RFC 5321 §4.3.1), then EHLO. */
static void
reply_greeting(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	if (r->nlines > 0) {
		size_t n = strcspn(r->lines[0], " ");

		if (n >= sizeof(up->conn->mx_helo))
			n = sizeof(up->conn->mx_helo) - 1;
		memcpy(up->conn->mx_helo, r->lines[0], n);
		up->conn->mx_helo[n] = '\0';
	}
	if (smtp_reply_class(r) != 2) {
		attempt_fail(up, MX_FAIL_CONNECT, RPT_RESULT_NONE, "greeting %s", flat);
		return;
	}
	upstream_enter_state(up, UPSTREAM_S_EHLO);
}

/* EHLO in the clear: STARTTLS if offered; the strict phase requires it. */
static void
reply_ehlo(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	int cls = smtp_reply_class(r);

	if (cls != 2) {
		if (cls == 5 && !up->route.regime.tls_required) {
			upstream_enter_state(up, UPSTREAM_S_HELO);
			return;
		}
		attempt_fail(up, MX_FAIL_CONNECT, RPT_RESULT_NONE, "EHLO refused: %s", flat);
		return;
	}
	smtp_reply_copy(&up->conn->ehlo, r);
	up->conn->starttls_offered = smtp_reply_has_keyword(r, "STARTTLS", NULL);
	if (up->route.plaintext)
		upstream_enter_state(up, UPSTREAM_S_MAIL);
	else if (up->conn->starttls_offered)
		upstream_enter_state(up, UPSTREAM_S_STARTTLS);
	else if (up->route.regime.tls_required)
		attempt_fail(up, MX_FAIL_STARTTLS, RPT_RESULT_STARTTLS_NOT_SUPPORTED,
		    "does not offer STARTTLS");
	else
		upstream_enter_state(up, UPSTREAM_S_MAIL);
}

/* HELO, after EHLO got a 5xx in the opportunistic phase: no extensions. */
static void
reply_helo(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	if (smtp_reply_class(r) != 2) {
		attempt_fail(up, MX_FAIL_CONNECT, RPT_RESULT_NONE, "HELO refused: %s", flat);
		return;
	}
	smtp_reply_clear(&up->conn->ehlo);
	upstream_enter_state(up, UPSTREAM_S_MAIL);
}

static void
reply_starttls(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	if (smtp_reply_class(r) != 2) {
		if (up->route.regime.tls_required)
			attempt_fail(up, MX_FAIL_STARTTLS, RPT_RESULT_STARTTLS_NOT_SUPPORTED,
			    "STARTTLS refused: %s", flat);
		else
			upstream_enter_state(up, UPSTREAM_S_MAIL);
		return;
	}
	/* RFC 3207 §5 and the STARTTLS injection attacks: nothing may
	 * follow the 220 in the clear; it would be read as TLS-protected. */
	if (evbuffer_get_length(bufferevent_get_input(up->conn->bev)) > 0) {
		up->clean = false;
		attempt_fail(up, up->route.regime.tls_required ? MX_FAIL_STARTTLS : MX_FAIL_CONNECT,
		    RPT_RESULT_VALIDATION_FAILURE,
		    "sent plaintext after its STARTTLS reply (command injection)");
		return;
	}
	upstream_enter_state(up, UPSTREAM_S_TLS);
}

/* EHLO again under TLS: its reply replaces the one from the clear. */
static void
reply_ehlo_tls(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	if (smtp_reply_class(r) != 2) {
		attempt_fail(up, MX_FAIL_CONNECT, RPT_RESULT_NONE, "EHLO after STARTTLS refused: %s",
		    flat);
		return;
	}
	smtp_reply_copy(&up->conn->ehlo, r);
	upstream_enter_state(up, UPSTREAM_S_MAIL);
}

/* The pool's RSET on a reused connection; anything but 2xx: connect afresh. */
static void
reply_rset(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	if (smtp_reply_class(r) != 2) {
		(void)retry_fresh(up, flat);
		return;
	}
	upstream_enter_state(up, UPSTREAM_S_MAIL);
}

/* MAIL: the transaction is on (READY), or the MX refused it for everyone. */
static void
reply_mail(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	struct timeval now;

	if (r->code == 421 && retry_fresh(up, flat))
		return;
	if (smtp_reply_class(r) != 2) {
		/* The upstream spoke for the domain: pass its word on (PRX). */
		log_notice("session=%s event=mail_refused domain=%s to=%s mx=%s reply=%s",
		    up->txn.session, up->txn.domain, upstream_txn_recipients(&up->txn),
		    up->route.mx_host, log_quote(flat));
		record_delivery(up);
		transaction_failed(up, r);
		return;
	}
	evutil_gettimeofday(&now, NULL);
	metrics_observe("stsproxy_upstream_ready_seconds", "",
	    (double)(now.tv_sec - up->started.tv_sec) +
	    (double)(now.tv_usec - up->started.tv_usec) / 1e6);
	log_info("session=%s event=upstream_ready domain=%s mx=%s ip=%s tls=%s mode=%s",
	    up->txn.session, up->txn.domain, up->route.mx_host, up->conn->ip,
	    up->conn->tls_active ? up->conn->peer.version : "no", upstream_txn_mode(&up->txn));
	/* With the first RCPT pipelined, its reply is next: the client
	 * session claims it with upstream_rcpt() when it hears READY. */
	upstream_enter_state(up, up->rcpt_pipelined ? UPSTREAM_S_RCPT : UPSTREAM_S_READY);
	notify(up, UPSTREAM_EV_READY, NULL);
}

/* From RCPT on, the client session gets the replies as they are (PRX). */
static void
reply_rcpt(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	(void)flat;
	upstream_enter_state(up, UPSTREAM_S_READY);
	notify(up, UPSTREAM_EV_REPLY, r);
}

static void
reply_data(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	(void)flat;
	upstream_enter_state(up, r->code == 354 ? UPSTREAM_S_BODY : UPSTREAM_S_READY);
	notify(up, UPSTREAM_EV_REPLY, r);
}

/* The final reply to the message: what the client hears (SMTP-10). */
static void
reply_eom(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	(void)flat;
	record_delivery(up);
	upstream_enter_state(up, UPSTREAM_S_READY);
	notify(up, UPSTREAM_EV_REPLY, r);
}

static void
reply_quit(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	(void)r;
	(void)flat;
	upstream_enter_state(up, UPSTREAM_S_CLOSED);
}

static void
reply_unexpected(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	(void)r;
	log_warnx("session=%s event=unexpected_reply mx=%s state=%s reply=%s", up->txn.session,
	    up->route.mx_host, state_names[up->state], log_quote(flat));
}

/* After a refused MAIL only the reply to the RCPT pipelined behind it is due. */
static void
reply_after_failure(struct upstream *up, const struct smtp_reply *r, const char *flat)
{
	if (!up->rcpt_pipelined) {
		reply_unexpected(up, r, flat);
		return;
	}
	up->rcpt_pipelined = false;
}

/* Which replies a command can have (RFC 5321 §4.3.2); FIT_ANY is not checked. */
enum reply_fit {
	FIT_ANY,
	FIT_2_4_5,		/* a 3xx is no answer to it */
	FIT_354_4_5,		/* DATA: neither 2xx nor any other 3xx */
};

/*
 * The states a reply is due in, and per state: the command the reply
 * answers (for the latency metric, and in a protocol error), which
 * replies fit, and the function that decides the next state from it
 * (SMTP-9: by code only). The states not listed expect no reply.
 */
static const struct reply_rule {
	const char	*metric;	/* command="..." of the latency metric */
	const char	*answers;	/* "a 334 reply to <answers>" */
	enum reply_fit	 fit;
	void		(*decide)(struct upstream *, const struct smtp_reply *, const char *flat);
} reply_rules[] = {
	[UPSTREAM_S_BANNER] =	{ "greeting", "nothing (greeting)", FIT_2_4_5, reply_greeting },
	[UPSTREAM_S_EHLO] =	{ "ehlo", "EHLO", FIT_2_4_5, reply_ehlo },
	[UPSTREAM_S_HELO] =	{ "helo", "HELO", FIT_2_4_5, reply_helo },
	[UPSTREAM_S_STARTTLS] =	{ "starttls", "STARTTLS", FIT_2_4_5, reply_starttls },
	[UPSTREAM_S_EHLO_TLS] =	{ "ehlo", "EHLO", FIT_2_4_5, reply_ehlo_tls },
	[UPSTREAM_S_RSET] =	{ "rset", "RSET", FIT_2_4_5, reply_rset },
	[UPSTREAM_S_MAIL] =	{ "mail", "MAIL", FIT_2_4_5, reply_mail },
	[UPSTREAM_S_RCPT] =	{ "rcpt", "RCPT", FIT_2_4_5, reply_rcpt },
	[UPSTREAM_S_DATA] =	{ "data", "DATA", FIT_354_4_5, reply_data },
	[UPSTREAM_S_EOM] =	{ "eom", "the end of data", FIT_2_4_5, reply_eom },
	[UPSTREAM_S_QUIT] =	{ "quit", "QUIT", FIT_ANY, reply_quit },
	[UPSTREAM_S_FAILED] =	{ NULL, NULL, FIT_ANY, reply_after_failure },
};

static const struct reply_rule *
reply_rule(enum upstream_state state)
{
	static const struct reply_rule none = { NULL, NULL, FIT_ANY, reply_unexpected };

	if ((size_t)state < sizeof(reply_rules) / sizeof(reply_rules[0]) &&
	    reply_rules[state].decide != NULL)
		return &reply_rules[state];
	return &none;
}

/*
 * SMTP-9 decides by class, but only among the classes the command can
 * be answered with (RFC 5321 section 4.3.2). Anything else is a protocol
 * error, never relayed: above all a 3xx to the end of data, which the
 * client would take for the final reply, and a 2xx to DATA, after which
 * the client would never send the message.
 */
static bool
reply_fits(enum upstream_state state, const struct smtp_reply *r)
{
	int cls = smtp_reply_class(r);

	switch (reply_rule(state)->fit) {
	case FIT_2_4_5:
		return cls == 2 || cls == 4 || cls == 5;
	case FIT_354_4_5:
		return r->code == 354 || cls == 4 || cls == 5;
	case FIT_ANY:
		break;
	}
	return true;
}

/* A complete reply in the current state: the common part, then its rule decides. */
static void
upstream_response(struct upstream *up, const struct smtp_reply *r)
{
	const struct reply_rule *rule = reply_rule(up->state);
	char *flat = smtp_reply_flatten(r);

	log_debug("session=%s upstream=%s <<< %s", up->txn.session, up->route.mx_host, flat);
	if (rule->metric != NULL)
		observe_reply_latency(up, rule->metric);
	free(up->last_reply);
	up->last_reply = flat;
	up->clean = up->state != UPSTREAM_S_QUIT;
	rule->decide(up, r, flat);
}

static void
upstream_enter_state(struct upstream *up, enum upstream_state next)
{
	log_debug("session=%s upstream=%s state=%s -> %s", up->txn.session,
	    up->route.mx_host ? up->route.mx_host : "-", state_names[up->state], state_names[next]);
	up->state = next;

	switch (next) {
	case UPSTREAM_S_NEXT_MX:
		next_mx(up);
		break;
	case UPSTREAM_S_CONNECTING:
		start_connect(up);
		break;
	case UPSTREAM_S_BANNER:
		set_timeout(up, up->conf->upstream_command_timeout);
		break;
	case UPSTREAM_S_EHLO:
	case UPSTREAM_S_EHLO_TLS:
		send_line(up, "EHLO %s", up->rt->hostname);
		break;
	case UPSTREAM_S_HELO:
		send_line(up, "HELO %s", up->rt->hostname);
		break;
	case UPSTREAM_S_STARTTLS:
		send_line(up, "STARTTLS");
		break;
	case UPSTREAM_S_TLS:
		start_tls(up);
		break;
	case UPSTREAM_S_RSET:
		set_timeout(up, up->conf->upstream_command_timeout);
		break;
	case UPSTREAM_S_MAIL:
		if (up->mail_pipelined) {
			up->mail_pipelined = false;	/* sent already, behind RSET */
			set_timeout(up, up->conf->upstream_command_timeout);
			break;
		}
		if (send_mail(up) == 0) {
			pipeline_first_rcpt(up);
		} else {
			struct smtp_reply r;

			smtp_reply_init(&r);
			smtp_reply_own(&r, up->txn.session, 553, "5.6.7",
			    "The message needs SMTPUTF8, which %s does not support", up->route.mx_host);
			set_last_reply(up, &r);
			record_delivery(up);
			transaction_failed(up, &r);
			smtp_reply_clear(&r);
		}
		break;
	case UPSTREAM_S_DATA:
		send_line(up, "DATA");
		break;
	case UPSTREAM_S_BODY:
		/* Write timeout only: the body's pace is the client's. */
		upstream_conn_set_timeouts(up->conn, 0, up->conf->upstream_data_timeout);
		bufferevent_setwatermark(up->conn->bev, EV_WRITE, BODY_LOW_WATER, 0);
		break;
	case UPSTREAM_S_EOM:
		evutil_gettimeofday(&up->cmd_sent, NULL);
		set_timeout(up, up->conf->upstream_data_timeout);
		break;
	case UPSTREAM_S_READY:
		set_timeout(up, up->conf->upstream_command_timeout);
		break;
	case UPSTREAM_S_LOST:
		close_connection(up);	/* mid-transaction: cut, so the server discards it */
		break;
	case UPSTREAM_S_QUIT:
		send_line(up, "QUIT");
		set_timeout(up, QUIT_TIMEOUT);
		break;
	case UPSTREAM_S_CLOSED:
		up->clean = false;	/* QUIT was said already, or cannot be */
		close_connection(up);
		if (up->detached)
			event_active(up->reaper, EV_TIMEOUT, 0);
		break;
	default:
		break;
	}
}

static void
upstream_read_cb(struct bufferevent *bev, void *arg)
{
	struct upstream *up = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned seq = up->conn_seq;
	const char *why = NULL;
	char misfit[64];

	/* Until a handler lets the connection go or starts TLS on it. */
	while (up->conn_seq == seq && up->conn->bev == bev) {
		size_t n;
		char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);

		if (line == NULL) {
			if (evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX + 2) {
				if (up->state == UPSTREAM_S_QUIT) {
					upstream_enter_state(up, UPSTREAM_S_CLOSED);
					return;
				}
				why = "reply line too long";
				goto protocol_error;
			}
			return;
		}
		if (up->state == UPSTREAM_S_BODY || up->state == UPSTREAM_S_READY ||
		    up->state == UPSTREAM_S_CONNECTING) {
			free(line);
			why = "reply while none was expected";
			goto protocol_error;
		}
		switch (smtp_reply_feed(&up->reply, line, n, &why)) {
		case SMTP_REPLY_MORE:
			free(line);
			continue;
		case SMTP_REPLY_ERROR:
			free(line);
			goto protocol_error;
		case SMTP_REPLY_DONE:
			free(line);
			break;
		}
		if (up->state != UPSTREAM_S_STARTTLS && up->state != UPSTREAM_S_QUIT &&
		    !(up->state == UPSTREAM_S_RSET && up->mail_pipelined) &&
		    !((up->state == UPSTREAM_S_MAIL || up->state == UPSTREAM_S_RSET) && up->rcpt_pipelined) &&
		    evbuffer_get_length(in) > 0) {
			why = "more data after a complete reply (no command was pipelined)";
			goto protocol_error;
		}
		if (!reply_fits(up->state, &up->reply)) {
			snprintf(misfit, sizeof(misfit), "%d reply to %s", up->reply.code,
			    reply_rule(up->state)->answers);
			why = misfit;
			set_last_reply(up, &up->reply);	/* the outcome names what it said */
			goto protocol_error;
		}
		{
			struct smtp_reply r;

			/* The handler may close the connection, which clears up->reply. */
			smtp_reply_init(&r);
			smtp_reply_copy(&r, &up->reply);
			smtp_reply_clear(&up->reply);
			upstream_response(up, &r);
			smtp_reply_clear(&r);
		}
	}
	return;

protocol_error:
	up->clean = false;
	if (up->state == UPSTREAM_S_QUIT) {
		upstream_enter_state(up, UPSTREAM_S_CLOSED);
		return;
	}
	if (up->state >= UPSTREAM_S_READY) {
		transaction_lost(up, why, "Upstream %s protocol error: %s", up->route.mx_host, why);
		return;
	}
	attempt_fail(up, MX_FAIL_CONNECT, RPT_RESULT_NONE, "protocol error: %s", why);
}

static void
upstream_write_cb(struct bufferevent *bev, void *arg)
{
	struct upstream *up = arg;

	(void)bev;
	if (up->state == UPSTREAM_S_BODY && up->want_writable) {
		up->want_writable = false;
		notify(up, UPSTREAM_EV_WRITABLE, NULL);
	}
}

static void
upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct upstream *up = arg;
	char reason[300];

	(void)bev;
	up->clean = false;
	if (what & BEV_EVENT_CONNECTED) {
		if (up->state == UPSTREAM_S_CONNECTING) {
			upstream_conn_connected(up->conn);
			upstream_enter_state(up, UPSTREAM_S_BANNER);
		}
		else if (up->state == UPSTREAM_S_TLS)
			tls_established(up);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(reason, sizeof(reason), "timed out in %s",
		    state_names[up->state] + strlen("UPSTREAM_S_"));
	else if (what & BEV_EVENT_EOF)
		snprintf(reason, sizeof(reason), "closed the connection in %s",
		    state_names[up->state] + strlen("UPSTREAM_S_"));
	else {
		int err = EVUTIL_SOCKET_ERROR();

		snprintf(reason, sizeof(reason), "%s", err ? evutil_socket_error_to_string(err) :
		    "connection error");
	}

	switch (up->state) {
	case UPSTREAM_S_TLS: {
		enum rpt_result_type t;
		char treason[256];

		t = upstream_conn_tls_failed(up->conn, treason, sizeof(treason));
		if (!up->route.regime.tls_required) {
			/* Opportunistic TLS that fails is retried in the clear (RFC 3207 §4.1
			 * leaves it to the client); the policy phase never does. */
			mx_walk_retry_plaintext(up->walk);
			attempt_fail(up, MX_FAIL_CONNECT, t, "%s", treason);
		} else
			attempt_fail(up, MX_FAIL_POLICY, t, "%s", treason);
		return;
	}
	case UPSTREAM_S_CONNECTING:
		attempt_fail(up, MX_FAIL_CONNECT, RPT_RESULT_NONE, "%s",
		    what & BEV_EVENT_TIMEOUT ? "connection timed out" : reason);
		return;
	case UPSTREAM_S_BANNER:
	case UPSTREAM_S_EHLO:
	case UPSTREAM_S_HELO:
	case UPSTREAM_S_STARTTLS:
	case UPSTREAM_S_EHLO_TLS:
	case UPSTREAM_S_RSET:
	case UPSTREAM_S_MAIL:
		attempt_fail(up, MX_FAIL_CONNECT, RPT_RESULT_NONE, "%s", reason);
		return;
	case UPSTREAM_S_READY:
	case UPSTREAM_S_RCPT:
	case UPSTREAM_S_DATA:
	case UPSTREAM_S_BODY:
	case UPSTREAM_S_EOM:
		transaction_lost(up, reason, "Upstream %s %s; message not delivered", up->route.mx_host,
		    reason);
		return;
	case UPSTREAM_S_QUIT:
		upstream_enter_state(up, UPSTREAM_S_CLOSED);
		return;
	default:
		close_connection(up);
		return;
	}
}

/* The walk has the MX set and the policy: start it. */
static void
resolved(void *arg)
{
	upstream_enter_state(arg, UPSTREAM_S_NEXT_MX);
}

static void
reap(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *up = arg;

	(void)fd;
	(void)what;
	if (up->state != UPSTREAM_S_CLOSED && up->state != UPSTREAM_S_QUIT) {
		/* A clean point in the dialogue gets a polite QUIT; anything else
		 * (mid-body above all) is cut, so the server discards it. */
		if (up->conn != NULL && up->conn->bev != NULL && (up->state == UPSTREAM_S_READY ||
		    up->state == UPSTREAM_S_FAILED)) {
			if (up->state == UPSTREAM_S_READY) {
				record_delivery(up);
				if (park(up)) {
					upstream_enter_state(up, UPSTREAM_S_CLOSED);
					return;
				}
			}
			upstream_enter_state(up, UPSTREAM_S_QUIT);
			return;
		}
		upstream_enter_state(up, UPSTREAM_S_CLOSED);
	}
	if (up->state == UPSTREAM_S_QUIT)
		return;
	/* CLOSED: nothing of ours is pending any more. */
	mx_walk_free(up->walk);
	close_connection(up);
	event_free(up->reaper);
	upstream_txn_clear(&up->txn);
	free(up->last_reply);
	live_upstreams--;
	free(up);
}

void
upstream_free(struct upstream *up)
{
	if (up == NULL)
		return;
	up->detached = true;
	up->cb = NULL;
	event_active(up->reaper, EV_TIMEOUT, 0);
}

static struct upstream *
upstream_alloc(struct runtime *rt, const char *session, const char *domain,
    const struct smtp_path *mail, unsigned flags, upstream_cb cb, void *arg)
{
	struct upstream *up = xcalloc(1, sizeof(*up));

	up->rt = rt;
	up->conf = rt->conf;
	upstream_txn_init(&up->txn, session, domain, flags);
	up->mail = *mail;
	up->cb = cb;
	up->arg = arg;
	up->state = UPSTREAM_S_RESOLVING;
	smtp_reply_init(&up->reply);
	evutil_gettimeofday(&up->started, NULL);
	up->reaper = event_new(rt->base, -1, 0, reap, up);
	live_upstreams++;
	return up;
}

struct upstream *
upstream_new_resolved(struct runtime *rt, const char *session, const char *domain,
    const struct smtp_path *mail, const struct mx_host *hosts, size_t nhosts, enum sts_mode mode,
    const struct strlist *patterns, unsigned flags, upstream_cb cb, void *arg)
{
	struct upstream *up = upstream_alloc(rt, session, domain, mail, flags, cb, arg);

	if (patterns != NULL) {
		up->txn.policy.have = true;
		up->txn.policy.mode = mode;
		up->txn.policy.id = xstrdup("test");
		strlist_copy(&up->txn.policy.patterns, patterns);
	}
	up->walk = mx_walk_new_resolved(rt, &up->txn, hosts, nhosts, resolved, up);
	return up;
}

void
upstream_set_dane(struct upstream *up, size_t i, struct dane_tlsa *tlsa, bool mx_secure)
{
	mx_walk_set_dane(up->walk, i, tlsa, mx_secure);
}

struct upstream *
upstream_new(struct runtime *rt, const char *session, const char *domain,
    const struct smtp_path *mail, upstream_cb cb, void *arg)
{
	return upstream_new_flags(rt, session, domain, mail, 0, cb, arg);
}

struct upstream *
upstream_new_flags(struct runtime *rt, const char *session, const char *domain,
    const struct smtp_path *mail, unsigned flags, upstream_cb cb, void *arg)
{
	struct upstream *up = upstream_alloc(rt, session, domain, mail, flags, cb, arg);

	up->walk = mx_walk_new(rt, &up->txn, resolved, up);
	return up;
}

struct upstream *
upstream_new_relay(struct runtime *rt, const char *session, const char *domain,
    const struct smtp_path *mail, const char *relay, unsigned flags, upstream_cb cb, void *arg)
{
	struct mx_host host;
	socklen_t len;

	memset(&host, 0, sizeof(host));
	snprintf(host.name, sizeof(host.name), "%s", relay);
	if (netaddr_parse_hostport(relay, &host.addrs[0], &len) == NULL)
		host.naddrs = 1;
	return upstream_new_resolved(rt, session, domain, mail, &host, 1, STS_MODE_NONE, NULL,
	    flags | UPSTREAM_F_NO_POLICY, cb, arg);
}

const struct upstream_ops upstream_default_ops = {
	.open = upstream_new,
	.rcpt = upstream_rcpt,
	.data = upstream_data,
	.body = upstream_body,
	.body_full = upstream_body_full,
	.body_end = upstream_body_end,
	.free = upstream_free,
	.mx_host = upstream_mx_host,
	.first_rcpt = upstream_first_rcpt,
};

#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_UPSTREAM

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "conf/netaddr.h"
#include "policy/mx_match.h"
#include "policy/mx_resolve.h"
#include "policy/tls.h"
#include "proxy/upstream.h"
#include "proxy/upstream_internal.h"
#include "proxy/upstream_conn.h"
#include "proxy/upstream_pool.h"
#include "proxy/upstream_record.h"

/* Body bytes buffered towards the upstream before the client is paused. */
#define BODY_HIGH_WATER	(256 * 1024)
#define BODY_LOW_WATER	(64 * 1024)
#define QUIT_TIMEOUT	10
/* Room for the per-MX failure list in a reply line (RFC 5321 §4.5.3.1.5). */
#define FAILURES_MAX	400

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

/*
 * The walk over the MX list (STS-42): in the strict phase every MX must
 * meet the policy (enforce, and testing's evaluation); the opportunistic
 * phase is delivery without a policy, and testing's fallback.
 */
enum walk_phase {
	PHASE_STRICT,
	PHASE_OPPORTUNISTIC,
};

/* Why an attempt failed: chooses the enhanced status code (spec §11). */
enum fail_kind {
	FAIL_CONNECT,		/* TCP, greeting, EHLO, timeouts: 4.4.1 */
	FAIL_STARTTLS,		/* STARTTLS missing under enforce: 4.7.4 */
	FAIL_POLICY,		/* pattern or certificate: 4.7.5 */
};

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

	/* resolution, MX set and policy both, in parallel */
	struct mx_lookup	*mx_lookup;
	struct policy_lookup	*policy_lookup;
	bool			 mx_done, policy_done;
	enum mx_status		 mx_status;
	char			*mx_reason;
	struct mx_host		*hosts;
	size_t			 nhosts;

	/* the walk */
	enum walk_phase		 phase;
	size_t			 host_i, addr_i;
	bool			 host_checked;
	unsigned		 attempts;
	struct strbuf		 failures;
	unsigned		 fail_kinds;	/* bit per enum fail_kind */
	bool			 plaintext_retry; /* opportunistic: TLS failed, same address in clear */
	bool			 plaintext;	/* this attempt is that retry: no STARTTLS */
	struct event		*kick;		/* resolution finished without a callback */

	/* the current attempt */
	struct sockaddr_storage	 addr;
	const char		*mx_host;
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
	return up->mx_host ? up->mx_host : "";
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
	upstream_record_delivery(&up->txn, up->mx_host, up->conn, up->last_reply, &up->recorded);
}

static void
add_failure(struct upstream *up, enum fail_kind kind, const char *host, const char *reason)
{
	up->fail_kinds |= 1u << kind;
	if (up->failures.len > FAILURES_MAX)
		return;
	strbuf_printf(&up->failures, "%s%s %s", up->failures.len ? "; " : "", host, reason);
	if (up->failures.len > FAILURES_MAX)
		strbuf_printf(&up->failures, "; ...");
}

static void
set_last_reply(struct upstream *up, const struct smtp_reply *r)
{
	free(up->last_reply);
	up->last_reply = smtp_reply_flatten(r);
}

/*
 * A reply stsproxy makes for the client itself (spec §11), as opposed to
 * one it relays from the MX unchanged (PRX). A deferral ends with the
 * session id, so the client's queue entry leads to this session's log.
 */
static void
own_reply(struct upstream *up, struct smtp_reply *r, int code, const char *enhanced,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
own_reply(struct upstream *up, struct smtp_reply *r, int code, const char *enhanced,
    const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	if (code / 100 == 4)
		smtp_reply_set(r, code, enhanced, "%s [stsproxy session %s]", text, up->txn.session);
	else
		smtp_reply_set(r, code, enhanced, "%s", text);
	free(text);
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
		    up->mx_host);
	upstream_conn_close(release_conn(up), polite);
}

/* The current attempt failed: record it, hang up, try the next MX. */
static void
attempt_fail(struct upstream *up, enum fail_kind kind, enum rpt_result_type result,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
attempt_fail(struct upstream *up, enum fail_kind kind, enum rpt_result_type result,
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
	    up->txn.session, up->txn.domain, up->mx_host, up->conn->ip,
	    up->phase == PHASE_STRICT ? "strict" : "opportunistic", log_quote(reason));
	upstream_record_failed(&up->txn, up->mx_host, up->conn, up->last_reply, result, reason,
	    &up->recorded);
	add_failure(up, kind, up->mx_host, reason);
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
	log_debug("session=%s upstream=%s >>> %s", up->txn.session, up->mx_host, line);
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
 * The reply when the strict walk found no MX meeting the policy: what
 * enforce gives the client, and what testing under simulate = enforce
 * logs. STS-41/43: never 5xx for a policy failure.
 */
static void
policy_defer_reply(struct upstream *up, struct smtp_reply *r)
{
	const char *why = up->failures.len ? up->failures.data : "no MX host could be tried";

	if (up->fail_kinds == 1u << FAIL_STARTTLS)
		own_reply(up, r, 451, "4.7.4", "MTA-STS: %s", why);
	else if (up->fail_kinds & (1u << FAIL_POLICY | 1u << FAIL_STARTTLS))
		own_reply(up, r, 451, "4.7.5", "MTA-STS: %s", why);
	else
		own_reply(up, r, 451, "4.4.1", "MTA-STS: no MX reachable: %s", why);
}

/* No MX left: the reply every recipient of this transaction gets (spec §11). */
static void
fail_transaction(struct upstream *up)
{
	struct smtp_reply r;
	const char *why = up->failures.len ? up->failures.data : "no MX host could be tried";

	smtp_reply_init(&r);
	if (up->phase == PHASE_STRICT && up->txn.policy.mode == STS_MODE_ENFORCE) {
		metrics_add("stsproxy_policy_deferrals_total", "", 1);
		policy_defer_reply(up, &r);
	} else
		own_reply(up, &r, 451, "4.4.1", "No MX of %s reachable: %s", up->txn.domain, why);
	log_notice("session=%s event=deferred domain=%s to=%s mode=%s attempts=%u reason=%s",
	    up->txn.session, up->txn.domain, upstream_txn_recipients(&up->txn), upstream_txn_mode(&up->txn), up->attempts, log_quote(why));
	up->state = UPSTREAM_S_FAILED;
	notify(up, UPSTREAM_EV_FAILED, &r);
	smtp_reply_clear(&r);
}

/* The strict phase found nothing: enforce defers, testing falls back. */
static bool
strict_phase_exhausted(struct upstream *up)
{
	if (up->txn.policy.mode != STS_MODE_TESTING)
		return false;
	up->txn.policy.would_defer = true;
	log_notice("session=%s event=would_defer domain=%s to=%s mode=testing policy_id=%s reason=%s",
	    up->txn.session, up->txn.domain, upstream_txn_recipients(&up->txn), up->txn.policy.id ? up->txn.policy.id : "-",
	    log_quote(up->failures.len ? up->failures.data : "no MX"));
	if (strcmp(up->conf->policy_simulate, "enforce") == 0) {
		struct smtp_reply r;
		char *flat;

		smtp_reply_init(&r);
		policy_defer_reply(up, &r);
		flat = smtp_reply_flatten(&r);
		log_notice("session=%s event=sts_simulate domain=%s to=%s mode=enforce result=defer "
		    "reply=%s", up->txn.session, up->txn.domain, upstream_txn_recipients(&up->txn), log_quote(flat));
		free(flat);
		smtp_reply_clear(&r);
	}
	up->phase = PHASE_OPPORTUNISTIC;
	up->host_i = up->addr_i = 0;
	up->host_checked = false;
	return true;
}

/*
 * Take an idle connection to this MX address from the pool, if one may
 * serve this transaction (upstream_pool.h: the policy boundary), and go
 * straight to MAIL on it. Its TLS facts come along for the outcome.
 */
static bool
adopt_pooled(struct upstream *up)
{
	bool rset_pending;

	if (!up->conf->upstream_reuse || up->plaintext ||
	    (up->conn = upstream_pool_take(up->mx_host, &up->addr, up->phase == PHASE_STRICT,
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
	    up->txn.session, up->txn.domain, up->mx_host, up->conn->ip, up->conn->tls_active ? up->conn->peer.version : "no",
	    up->conn->messages, up->phase == PHASE_STRICT ? "strict" : "opportunistic");
	if (!rset_pending) {
		upstream_enter_state(up, UPSTREAM_S_MAIL);
		return true;
	}
	/* The pool's RSET is still unanswered: read its reply first, with MAIL
	 * pipelined behind it when the server allows (RFC 2920). */
	up->mail_pipelined = smtp_reply_has_keyword(&up->conn->ehlo, "PIPELINING", NULL) && send_mail(up) == 0;
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
	    up->txn.session, up->mx_host, up->conn->ip, log_quote(why));
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

static void
next_mx(struct upstream *up)
{
	for (;;) {
		struct mx_host *h;

		up->plaintext = false;
		if (up->plaintext_retry) {
			/* Same address again, without STARTTLS. */
			up->plaintext_retry = false;
			up->plaintext = true;
			up->attempts++;
			upstream_enter_state(up, UPSTREAM_S_CONNECTING);
			return;
		}
		if (up->host_i >= up->nhosts) {
			if (up->phase == PHASE_STRICT && strict_phase_exhausted(up))
				continue;
			fail_transaction(up);
			return;
		}
		if (up->attempts >= up->conf->upstream_max_attempts) {
			add_failure(up, FAIL_CONNECT, "and", "no more attempts ([upstream] max_attempts)");
			fail_transaction(up);
			return;
		}
		h = &up->hosts[up->host_i];
		up->mx_host = h->name;
		if (!up->host_checked) {
			up->host_checked = true;
			if (up->phase == PHASE_STRICT &&
			    !mx_match_any(&up->txn.policy.patterns, h->name, NULL)) {
				/* STS-36a, STS-54: treated as unreachable. */
				upstream_record_skipped(&up->txn, h->name);
				add_failure(up, FAIL_POLICY, h->name, "not in policy");
				up->host_i++;
				up->host_checked = false;
				continue;
			}
			if (h->naddrs == 0) {
				add_failure(up, FAIL_CONNECT, h->name, "has no address");
				up->host_i++;
				up->host_checked = false;
				continue;
			}
		}
		if (up->addr_i >= h->naddrs) {
			up->host_i++;
			up->addr_i = 0;
			up->host_checked = false;
			continue;
		}
		up->addr = h->addrs[up->addr_i++];
		up->attempts++;
		if (adopt_pooled(up))
			return;
		upstream_enter_state(up, UPSTREAM_S_CONNECTING);
		return;
	}
}

static void
start_connect(struct upstream *up)
{
	up->recorded = false;
	up->reused = false;
	up->rcpt_pipelined = false;
	free(up->last_reply);
	up->last_reply = NULL;
	up->conn = upstream_conn_new(up->mx_host, &up->addr, up->phase == PHASE_STRICT && !up->plaintext);
	log_info("session=%s event=connecting domain=%s mx=%s ip=%s phase=%s%s", up->txn.session,
	    up->txn.domain, up->mx_host, up->conn->ip, up->phase == PHASE_STRICT ? "strict" : "opportunistic",
	    up->plaintext ? " tls=no" : "");
	evutil_gettimeofday(&up->cmd_sent, NULL);
	if (upstream_conn_connect(up->conn, up->rt->base, up->conf->upstream_connect_timeout,
	    upstream_read_cb, upstream_write_cb, upstream_event_cb, up) < 0)
		attempt_fail(up, FAIL_CONNECT, RPT_RESULT_NONE, "connect failed: %s",
		    strerror(errno));
}

static void
start_tls(struct upstream *up)
{
	if (upstream_conn_start_tls(up->conn, up->rt->base, up->rt->ssl_ctx,
	    up->conf->upstream_command_timeout) < 0)
		attempt_fail(up, FAIL_CONNECT, RPT_RESULT_VALIDATION_FAILURE, "cannot start TLS");
}

/* The handshake completed: does this MX meet the policy? */
static void
tls_established(struct upstream *up)
{
	enum rpt_result_type verdict = upstream_conn_tls_ready(up->conn);

	up->clean = true;
	log_info("session=%s event=tls mx=%s ip=%s version=%s cipher=%s resumed=%s verify=%s reason=%s",
	    up->txn.session, up->mx_host, up->conn->ip, up->conn->peer.version, up->conn->peer.cipher,
	    up->conn->tls_resumed ? "yes" : "no",
	    rpt_result_type_name(verdict), log_quote(up->conn->tls_reason));
	if (verdict != RPT_RESULT_NONE && up->phase == PHASE_STRICT) {
		/* STS-38, STS-41: a certificate that fails is an unreachable MX. */
		attempt_fail(up, FAIL_POLICY, verdict, "%s", up->conn->tls_reason);
		return;
	}
	upstream_enter_state(up, UPSTREAM_S_EHLO_TLS);
}

/* The command a reply in this state answers, for the latency metric. */
static const char *
command_of_state(enum upstream_state state)
{
	switch (state) {
	case UPSTREAM_S_BANNER: return "greeting";
	case UPSTREAM_S_EHLO: case UPSTREAM_S_EHLO_TLS: return "ehlo";
	case UPSTREAM_S_RSET: return "rset";
	case UPSTREAM_S_HELO: return "helo";
	case UPSTREAM_S_STARTTLS: return "starttls";
	case UPSTREAM_S_MAIL: return "mail";
	case UPSTREAM_S_RCPT: return "rcpt";
	case UPSTREAM_S_DATA: return "data";
	case UPSTREAM_S_EOM: return "eom";
	case UPSTREAM_S_QUIT: return "quit";
	default: return NULL;
	}
}

/* An operator tells a slow network (greeting) from a slow content filter (eom). */
static void
observe_reply_latency(struct upstream *up)
{
	const char *cmd = command_of_state(up->state);
	struct timeval now;
	char labels[32];

	if (cmd == NULL || up->cmd_sent.tv_sec == 0)
		return;
	evutil_gettimeofday(&now, NULL);
	snprintf(labels, sizeof(labels), "command=\"%s\"", cmd);
	metrics_observe("stsproxy_upstream_reply_seconds", labels,
	    (double)(now.tv_sec - up->cmd_sent.tv_sec) + (double)(now.tv_usec - up->cmd_sent.tv_usec) / 1e6);
}

/*
 * Decide the next state from a complete reply in the current state
 * (SMTP-9: by code only).
 */
static void
upstream_response(struct upstream *up, const struct smtp_reply *r)
{
	int cls = smtp_reply_class(r);
	char *flat = smtp_reply_flatten(r);

	log_debug("session=%s upstream=%s <<< %s", up->txn.session, up->mx_host, flat);
	observe_reply_latency(up);
	free(up->last_reply);
	up->last_reply = flat;
	up->clean = up->state != UPSTREAM_S_QUIT;

	switch (up->state) {
	case UPSTREAM_S_BANNER:
		if (r->nlines > 0) {
			/* RFC 5321 §4.3.1: the greeting starts with the server's name. */
			size_t n = strcspn(r->lines[0], " ");

			if (n >= sizeof(up->conn->mx_helo))
				n = sizeof(up->conn->mx_helo) - 1;
			memcpy(up->conn->mx_helo, r->lines[0], n);
			up->conn->mx_helo[n] = '\0';
		}
		if (cls != 2) {
			attempt_fail(up, FAIL_CONNECT, RPT_RESULT_NONE, "greeting %s", flat);
			return;
		}
		upstream_enter_state(up, UPSTREAM_S_EHLO);
		return;
	case UPSTREAM_S_EHLO:
		if (cls != 2) {
			if (cls == 5 && up->phase == PHASE_OPPORTUNISTIC) {
				upstream_enter_state(up, UPSTREAM_S_HELO);
				return;
			}
			attempt_fail(up, FAIL_CONNECT, RPT_RESULT_NONE, "EHLO refused: %s", flat);
			return;
		}
		smtp_reply_copy(&up->conn->ehlo, r);
		up->conn->starttls_offered = smtp_reply_has_keyword(r, "STARTTLS", NULL);
		if (up->plaintext) {
			upstream_enter_state(up, UPSTREAM_S_MAIL);
		} else if (up->conn->starttls_offered)
			upstream_enter_state(up, UPSTREAM_S_STARTTLS);
		else if (up->phase == PHASE_STRICT)
			attempt_fail(up, FAIL_STARTTLS, RPT_RESULT_STARTTLS_NOT_SUPPORTED,
			    "does not offer STARTTLS");
		else
			upstream_enter_state(up, UPSTREAM_S_MAIL);
		return;
	case UPSTREAM_S_HELO:
		if (cls != 2) {
			attempt_fail(up, FAIL_CONNECT, RPT_RESULT_NONE, "HELO refused: %s", flat);
			return;
		}
		smtp_reply_clear(&up->conn->ehlo);
		upstream_enter_state(up, UPSTREAM_S_MAIL);
		return;
	case UPSTREAM_S_STARTTLS:
		if (cls != 2) {
			if (up->phase == PHASE_STRICT)
				attempt_fail(up, FAIL_STARTTLS, RPT_RESULT_STARTTLS_NOT_SUPPORTED,
				    "STARTTLS refused: %s", flat);
			else
				upstream_enter_state(up, UPSTREAM_S_MAIL);
			return;
		}
		/* RFC 3207 §5 and the STARTTLS injection attacks: nothing may
		 * follow the 220 in the clear; it would be read as TLS-protected. */
		if (evbuffer_get_length(bufferevent_get_input(up->conn->bev)) > 0) {
			up->clean = false;
			attempt_fail(up, up->phase == PHASE_STRICT ? FAIL_STARTTLS : FAIL_CONNECT,
			    RPT_RESULT_VALIDATION_FAILURE,
			    "sent plaintext after its STARTTLS reply (command injection)");
			return;
		}
		upstream_enter_state(up, UPSTREAM_S_TLS);
		return;
	case UPSTREAM_S_EHLO_TLS:
		if (cls != 2) {
			attempt_fail(up, FAIL_CONNECT, RPT_RESULT_NONE, "EHLO after STARTTLS refused: %s",
			    flat);
			return;
		}
		smtp_reply_copy(&up->conn->ehlo, r);
		upstream_enter_state(up, UPSTREAM_S_MAIL);
		return;
	case UPSTREAM_S_RSET:
		if (cls != 2) {
			(void)retry_fresh(up, flat);
			return;
		}
		upstream_enter_state(up, UPSTREAM_S_MAIL);
		return;
	case UPSTREAM_S_MAIL:
		if (r->code == 421 && retry_fresh(up, flat))
			return;
		if (cls != 2) {
			/* The upstream spoke for the domain: pass its word on (PRX). */
			log_notice("session=%s event=mail_refused domain=%s to=%s mx=%s reply=%s",
			    up->txn.session, up->txn.domain, upstream_txn_recipients(&up->txn), up->mx_host, log_quote(flat));
			record_delivery(up);
			up->state = UPSTREAM_S_FAILED;
			notify(up, UPSTREAM_EV_FAILED, r);
			return;
		}
		{
			struct timeval now;

			evutil_gettimeofday(&now, NULL);
			metrics_observe("stsproxy_upstream_ready_seconds", "",
			    (double)(now.tv_sec - up->started.tv_sec) +
			    (double)(now.tv_usec - up->started.tv_usec) / 1e6);
		}
		log_info("session=%s event=upstream_ready domain=%s mx=%s ip=%s tls=%s mode=%s",
		    up->txn.session, up->txn.domain, up->mx_host, up->conn->ip,
		    up->conn->tls_active ? up->conn->peer.version : "no", upstream_txn_mode(&up->txn));
		/* With the first RCPT pipelined, its reply is next: the client
		 * session claims it with upstream_rcpt() when it hears READY. */
		upstream_enter_state(up, up->rcpt_pipelined ? UPSTREAM_S_RCPT : UPSTREAM_S_READY);
		notify(up, UPSTREAM_EV_READY, NULL);
		return;
	case UPSTREAM_S_RCPT:
		upstream_enter_state(up, UPSTREAM_S_READY);
		notify(up, UPSTREAM_EV_REPLY, r);
		return;
	case UPSTREAM_S_DATA:
		if (r->code == 354) {
			upstream_enter_state(up, UPSTREAM_S_BODY);
		} else
			upstream_enter_state(up, UPSTREAM_S_READY);
		notify(up, UPSTREAM_EV_REPLY, r);
		return;
	case UPSTREAM_S_EOM:
		record_delivery(up);
		upstream_enter_state(up, UPSTREAM_S_READY);
		notify(up, UPSTREAM_EV_REPLY, r);
		return;
	case UPSTREAM_S_QUIT:
		upstream_enter_state(up, UPSTREAM_S_CLOSED);
		return;
	case UPSTREAM_S_FAILED:
		if (up->rcpt_pipelined) {
			up->rcpt_pipelined = false;	/* the RCPT behind a refused MAIL */
			return;
		}
		/* FALLTHROUGH */
	default:
		log_warnx("session=%s event=unexpected_reply mx=%s state=%s reply=%s", up->txn.session,
		    up->mx_host, state_names[up->state], log_quote(flat));
		return;
	}
}

static void
upstream_enter_state(struct upstream *up, enum upstream_state next)
{
	log_debug("session=%s upstream=%s state=%s -> %s", up->txn.session,
	    up->mx_host ? up->mx_host : "-", state_names[up->state], state_names[next]);
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
			own_reply(up, &r, 553, "5.6.7",
			    "The message needs SMTPUTF8, which %s does not support", up->mx_host);
			set_last_reply(up, &r);
			record_delivery(up);
			up->state = UPSTREAM_S_FAILED;
			notify(up, UPSTREAM_EV_FAILED, &r);
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
		struct smtp_reply r;

		smtp_reply_init(&r);
		own_reply(up, &r, 451, "4.4.2", "Upstream %s protocol error: %s", up->mx_host, why);
		log_warnx("session=%s event=upstream_lost domain=%s to=%s mx=%s reason=%s", up->txn.session,
		    up->txn.domain, upstream_txn_recipients(&up->txn), up->mx_host, log_quote(why));
		set_last_reply(up, &r);
		record_delivery(up);
		upstream_enter_state(up, UPSTREAM_S_LOST);
		close_connection(up);
		notify(up, UPSTREAM_EV_LOST, &r);
		smtp_reply_clear(&r);
		return;
	}
	attempt_fail(up, FAIL_CONNECT, RPT_RESULT_NONE, "protocol error: %s", why);
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
		if (up->phase == PHASE_OPPORTUNISTIC) {
			/* Opportunistic TLS that fails is retried in the clear (RFC 3207 §4.1
			 * leaves it to the client); the policy phase never does. */
			up->plaintext_retry = true;
			attempt_fail(up, FAIL_CONNECT, t, "%s", treason);
		} else
			attempt_fail(up, FAIL_POLICY, t, "%s", treason);
		return;
	}
	case UPSTREAM_S_CONNECTING:
		attempt_fail(up, FAIL_CONNECT, RPT_RESULT_NONE, "%s",
		    what & BEV_EVENT_TIMEOUT ? "connection timed out" : reason);
		return;
	case UPSTREAM_S_BANNER:
	case UPSTREAM_S_EHLO:
	case UPSTREAM_S_HELO:
	case UPSTREAM_S_STARTTLS:
	case UPSTREAM_S_EHLO_TLS:
	case UPSTREAM_S_RSET:
	case UPSTREAM_S_MAIL:
		attempt_fail(up, FAIL_CONNECT, RPT_RESULT_NONE, "%s", reason);
		return;
	case UPSTREAM_S_READY:
	case UPSTREAM_S_RCPT:
	case UPSTREAM_S_DATA:
	case UPSTREAM_S_BODY:
	case UPSTREAM_S_EOM: {
		struct smtp_reply r;

		/* SMTP-10: without a final 2xx the client keeps the message. */
		smtp_reply_init(&r);
		own_reply(up, &r, 451, "4.4.2", "Upstream %s %s; message not delivered",
		    up->mx_host, reason);
		log_warnx("session=%s event=upstream_lost domain=%s to=%s mx=%s ip=%s reason=%s",
		    up->txn.session, up->txn.domain, upstream_txn_recipients(&up->txn), up->mx_host, up->conn->ip, log_quote(reason));
		set_last_reply(up, &r);
		record_delivery(up);
		upstream_enter_state(up, UPSTREAM_S_LOST);
		close_connection(up);
		notify(up, UPSTREAM_EV_LOST, &r);
		smtp_reply_clear(&r);
		return;
	}
	case UPSTREAM_S_QUIT:
		upstream_enter_state(up, UPSTREAM_S_CLOSED);
		return;
	default:
		close_connection(up);
		return;
	}
}

/* MX set and policy are both known: start the walk. */
static void
resolution_done(struct upstream *up)
{
	struct smtp_reply r;

	if (!up->mx_done || !up->policy_done)
		return;
	smtp_reply_init(&r);
	switch (up->mx_status) {
	case MX_STATUS_OK:
		break;
	case MX_STATUS_NULL_MX:
		own_reply(up, &r, 556, "5.1.10", "Recipient domain %s accepts no mail (null MX)",
		    up->txn.domain);
		break;
	case MX_STATUS_NXDOMAIN:
		own_reply(up, &r, 550, "5.1.2", "Recipient domain %s does not exist", up->txn.domain);
		break;
	case MX_STATUS_NO_HOSTS:
		own_reply(up, &r, 554, "5.4.4", "No usable MX for %s: %s", up->txn.domain,
		    up->mx_reason);
		break;
	case MX_STATUS_TEMPFAIL:
		own_reply(up, &r, 451, "4.4.3", "MX lookup for %s failed: %s", up->txn.domain,
		    up->mx_reason);
		break;
	}
	if (up->mx_status != MX_STATUS_OK) {
		{
			char labels[48];

			snprintf(labels, sizeof(labels), "status=\"%s\"", mx_status_name(up->mx_status));
			metrics_add("stsproxy_dns_failures_total", labels, 1);
		}
		log_notice("session=%s event=mx_lookup_failed domain=%s to=%s status=%s reason=%s",
		    up->txn.session, up->txn.domain, upstream_txn_recipients(&up->txn), mx_status_name(up->mx_status),
		    log_quote(up->mx_reason));
		up->state = UPSTREAM_S_FAILED;
		notify(up, UPSTREAM_EV_FAILED, &r);
		smtp_reply_clear(&r);
		return;
	}
	up->phase = up->txn.policy.have && (up->txn.policy.mode == STS_MODE_ENFORCE ||
	    up->txn.policy.mode == STS_MODE_TESTING) ? PHASE_STRICT : PHASE_OPPORTUNISTIC;
	upstream_enter_state(up, UPSTREAM_S_NEXT_MX);
}

static void
on_mx_set(void *arg, const struct mx_set *set)
{
	struct upstream *up = arg;
	struct strbuf list;

	up->mx_lookup = NULL;
	up->mx_done = true;
	up->mx_status = set->status;
	up->mx_reason = xstrdup(set->reason ? set->reason : "");
	if (set->nhosts > 0) {
		up->hosts = xcalloc(set->nhosts, sizeof(*up->hosts));
		memcpy(up->hosts, set->hosts, set->nhosts * sizeof(*up->hosts));
		up->nhosts = set->nhosts;
	}
	strbuf_init(&list);
	for (size_t i = 0; i < up->nhosts; i++)
		strbuf_printf(&list, "%s%u:%s/%zu", i ? "," : "", up->hosts[i].preference,
		    up->hosts[i].name, up->hosts[i].naddrs);
	log_info("session=%s event=mx_set domain=%s status=%s dnssec=%s mx=%s", up->txn.session,
	    up->txn.domain, mx_status_name(set->status), set->mx_secure ? "secure" : "insecure",
	    list.data ? list.data : "-");
	strbuf_free(&list);
	resolution_done(up);
}

static void
on_policy(void *arg, const struct policy_result *res)
{
	struct upstream *up = arg;

	up->policy_lookup = NULL;
	up->policy_done = true;
	{
		char labels[64];

		snprintf(labels, sizeof(labels), "source=\"%s\"", policy_source_name(res->source));
		metrics_add("stsproxy_policy_lookups_total", labels, 1);
		if (res->failure != RPT_RESULT_NONE) {
			snprintf(labels, sizeof(labels), "result=\"%s\"", rpt_result_type_name(res->failure));
			metrics_add("stsproxy_policy_failures_total", labels, 1);
		}
	}
	if (res->source != POLICY_SOURCE_NONE && res->policy != NULL) {
		up->txn.policy.have = true;
		up->txn.policy.mode = res->mode;
		up->txn.policy.id = xstrdup(res->id ? res->id : "");
		strlist_copy(&up->txn.policy.patterns, &res->policy->mx);
		strlist_copy(&up->txn.policy.lines, &res->policy->lines);
	}
	log_info("session=%s event=policy domain=%s source=%s mode=%s id=%s%s%s note=%s",
	    up->txn.session, up->txn.domain, policy_source_name(res->source),
	    up->txn.policy.have ? sts_mode_name(up->txn.policy.mode) : "none", up->txn.policy.id ? up->txn.policy.id : "-",
	    res->override_mode ? " override=" : "", res->override_mode ? res->override_mode : "",
	    log_quote(res->note ? res->note : ""));
	if (res->failure != RPT_RESULT_NONE && res->failure_reportable)
		upstream_record_policy_failure(&up->txn, res->failure, res->failure_reason);
	resolution_done(up);
}

static void
kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	resolution_done(arg);
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
	event_free(up->kick);
	/* CLOSED: nothing of ours is pending any more. */
	mx_lookup_cancel(up->mx_lookup);
	if (up->policy_lookup != NULL)
		policy_lookup_cancel(up->policy_lookup);
	close_connection(up);
	event_free(up->reaper);
	upstream_txn_clear(&up->txn);
	free(up->mx_reason);
	free(up->hosts);
	free(up->last_reply);
	strbuf_free(&up->failures);
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
	strbuf_init(&up->failures);
	smtp_reply_init(&up->reply);
	evutil_gettimeofday(&up->started, NULL);
	up->reaper = event_new(rt->base, -1, 0, reap, up);
	up->kick = event_new(rt->base, -1, 0, kick, up);
	live_upstreams++;
	return up;
}

struct upstream *
upstream_new_resolved(struct runtime *rt, const char *session, const char *domain,
    const struct smtp_path *mail, const struct mx_host *hosts, size_t nhosts, enum sts_mode mode,
    const struct strlist *patterns, unsigned flags, upstream_cb cb, void *arg)
{
	struct upstream *up = upstream_alloc(rt, session, domain, mail, flags, cb, arg);

	up->mx_done = up->policy_done = true;
	up->mx_status = nhosts ? MX_STATUS_OK : MX_STATUS_NO_HOSTS;
	up->mx_reason = xstrdup(nhosts ? "" : "no hosts given");
	if (nhosts > 0) {
		up->hosts = xcalloc(nhosts, sizeof(*up->hosts));
		memcpy(up->hosts, hosts, nhosts * sizeof(*hosts));
		up->nhosts = nhosts;
	}
	if (patterns != NULL) {
		up->txn.policy.have = true;
		up->txn.policy.mode = mode;
		up->txn.policy.id = xstrdup("test");
		strlist_copy(&up->txn.policy.patterns, patterns);
	}
	event_active(up->kick, EV_TIMEOUT, 0);
	return up;
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


	/* MX set and policy in parallel; the walk starts when both are in. */
	up->mx_lookup = mx_resolve(rt->resolver, domain, rt->hostname, rt->conf->upstream_ipv6,
	    rt->conf->upstream_port, on_mx_set, up);
	if (up->mx_lookup == NULL) {
		up->mx_done = true;
		up->mx_status = MX_STATUS_TEMPFAIL;
		up->mx_reason = xstrdup("the resolver could not start the MX lookup");
	}
	if (!(flags & UPSTREAM_F_NO_POLICY))
		up->policy_lookup = policy_engine_resolve(rt->engine, domain, 0, on_policy, up);
	if (up->policy_lookup == NULL)
		up->policy_done = true;
	if (up->mx_done && up->policy_done)
		event_active(up->kick, EV_TIMEOUT, 0);
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

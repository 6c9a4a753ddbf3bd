#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_SMTP

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "conf/idna.h"
#include "conf/log.h"
#include "conf/metrics.h"
#include "conf/netaddr.h"
#include "policy/tls.h"
#include "proxy/data_filter.h"
#include "proxy/fanout.h"
#include "proxy/smtp_command.h"
#include "proxy/smtp_reply.h"
#include "proxy/smtp_server.h"

/* Unread client input kept in memory; beyond it TCP pushes back. */
#define INPUT_HIGH_WATER	(64 * 1024)
/*
 * Replies the client has not read yet. Above this the session reads no
 * more commands until the client has read them: one bound for every
 * reply, local or relayed, so a client that writes without reading
 * cannot grow the relay's memory. A client that reads is always served
 * (reading resumes as soon as its replies are gone).
 */
#define OUTPUT_HIGH_WATER	(64 * 1024)
/* A client making this many mistakes is not a mail server. */
#define MAX_ERRORS		10
#define CLOSE_FLUSH_TIMEOUT	10

#define SMTP_STATES(X)			\
	X(SMTP_S_GREETED)	/* banner sent, waiting for HELO/EHLO */	\
	X(SMTP_S_IDLE)		/* HELO done, no transaction */		\
	X(SMTP_S_TLS)		/* server-side handshake running */	\
	X(SMTP_S_MAIL)		/* MAIL accepted, RCPTs may come */	\
	X(SMTP_S_RCPT_WAIT)	/* RCPT sent upstream (or resolving); LMTP: a	\
				   command waits for the RCPT replies */	\
	X(SMTP_S_DATA_WAIT)	/* DATA sent upstream */		\
	X(SMTP_S_BODY)		/* streaming the body upstream */	\
	X(SMTP_S_BODY_DISCARD)	/* reading the body to its end, to refuse it */ \
	X(SMTP_S_EOM_WAIT)	/* end of data sent, waiting for the final reply */ \
	X(SMTP_S_QUIT)		/* flushing the last reply */		\
	X(SMTP_S_CLOSED)

#define STATE_ENUM(s) s,
enum smtp_state { SMTP_STATES(STATE_ENUM) };
#undef STATE_ENUM
#define STATE_NAME(s) #s,
static const char *const state_names[] = { SMTP_STATES(STATE_NAME) };
#undef STATE_NAME

/*
 * A recipient domain whose upstream failed in this transaction (no MX,
 * policy, MAIL refused, lost before any recipient was accepted): its
 * later recipients get the same reply, with its real reason.
 */
struct failed_domain {
	char			*domain;
	struct smtp_reply	 reply;
};

/*
 * One MAIL ... end-of-data transaction. Its policy domain is the domain
 * of the first recipient the upstream accepted: until then each domain
 * in turn gets an upstream of its own, so one that fails never holds the
 * message's other domains back (PRX: one domain per transaction).
 * Allocated at MAIL and freed at its end, so that a session between
 * transactions stays small (~20 KB less).
 */
struct txn {
	struct smtp_path	 mail;
	char			 domain[SMTP_DOMAIN_MAX + 1];	/* "" until a recipient is accepted */
	struct upstream		*up;
	char			 up_domain[SMTP_DOMAIN_MAX + 1]; /* the domain up was opened for */
	bool			 up_ready;
	bool			 up_failed;	/* domain's upstream lost: fail_reply answers */
	struct smtp_reply	 fail_reply;
	struct failed_domain	*failed;	/* domains that failed, in order */
	size_t			 nfailed;
	struct smtp_path	 rcpt;		/* the RCPT waiting for upstream */
	bool			 rcpt_pending;
	unsigned		 rcpts, rcpts_ok;
	char			 first_rcpt[SMTP_PATH_MAX + 1];	/* the first accepted */
	struct strlist		 accepted;	/* accepted addresses, for the log */
	struct data_filter	 filter;
	struct smtp_reply	 discard_reply;	/* reply after a discarded body */
	unsigned		 number;	/* transactions in this session */
	struct fanout		*fanout;	/* LMTP: the routes, per-recipient replies */
	struct evbuffer		*scratch;	/* LMTP: filtered body bytes for the routes */
};

struct smtp_server {
	const struct smtp_server_env	*env;
	const struct conf		*conf;
	char				 id[17];
	struct sockaddr_storage		 peer;
	char				 ip[64];
	struct bufferevent		*bev;
	enum smtp_state			 state;
	smtp_server_closed_cb		 closed;
	void				*closed_arg;
	struct event			*reaper;
	struct event			*flush_timer;	/* QUIT: waits for the socket to drain */
	struct timeval			 quit_at;

	bool				 lmtp;		/* env->lmtp: LHLO, fanout.h */
	bool				 local_peer;	/* a Unix-domain client */
	char				 helo[256];
	bool				 esmtp;
	bool				 tls;
	char				 tls_version[16];
	unsigned			 errors;
	bool				 skip_line;	/* discarding an over-long line */
	bool				 paused;	/* body buffer upstream is full */
	bool				 draining;	/* shutdown: close when idle */
	bool				 write_blocked;	/* stopped reading: replies not read */

	/*
	 * Time limits on the client, in mono_ms(). They move only later as
	 * the client makes progress, so the timer is armed on entering a
	 * state and re-armed when it fires early (client_deadline()).
	 */
	struct event			*deadline;
	long long			 phase_at;	/* greeted, TLS started, or body started */
	long long			 line_at;	/* ready for the next command line */
	long long			 paused_at;	/* body paused for the upstream since, or 0 */
	long long			 paused_ms;	/* body paused for the upstream in all */
	struct txn			*txn;		/* NULL outside MAIL ... end of data */
	unsigned			 txn_count;
	unsigned long			 messages;
};

static void smtp_enter_state(struct smtp_server *s, enum smtp_state next);
static void smtp_process_input(struct smtp_server *s);
static void smtp_read_cb(struct bufferevent *bev, void *arg);
static void smtp_write_cb(struct bufferevent *bev, void *arg);
static void smtp_event_cb(struct bufferevent *bev, short what, void *arg);
static void client_timed_out(struct smtp_server *s, const char *limit);
static void upstream_event(void *arg, enum upstream_event ev, const struct smtp_reply *r);
static void fanout_event(void *arg, enum fanout_event ev, const struct fanout_answer *a);

void
smtp_session_id_new(char out[17])
{
	uint32_t hi = arc4random(), lo = arc4random();

	snprintf(out, 17, "%08x%08x", hi, lo);
}

const char *
smtp_server_id(const struct smtp_server *s)
{
	return s->id;
}

const struct sockaddr *
smtp_server_peer(const struct smtp_server *s)
{
	return (const struct sockaddr *)&s->peer;
}

/*
 * LMTP: replies to RCPTs read ahead are still owed (fanout.h), so a reply
 * to a line read since waits its turn behind them (RFC 2920: replies in
 * the order of the commands).
 */
static bool
replies_owed(const struct smtp_server *s)
{
	return s->txn != NULL && s->txn->fanout != NULL && fanout_rcpts_pending(s->txn->fanout);
}

static void
vreply(struct smtp_server *s, bool in_order, int code, const char *enhanced, const char *fmt,
    va_list ap)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	char *text = xvasprintf(fmt, ap);

	if (code / 100 == 4) {
		/* A deferral names the session, so the client's queue entry
		 * leads to this session's log lines. */
		char *tagged = xasprintf("%s [stsproxy session %s]", text, s->id);

		free(text);
		text = tagged;
	}
	if (in_order && replies_owed(s)) {
		struct smtp_reply r;

		smtp_reply_init(&r);
		smtp_reply_set(&r, code, enhanced, "%s", text);
		fanout_rcpt_local(s->txn->fanout, &r);
		smtp_reply_clear(&r);
		free(text);
		return;
	}
	if (enhanced != NULL)
		evbuffer_add_printf(out, "%d %s %s\r\n", code, enhanced, text);
	else
		evbuffer_add_printf(out, "%d %s\r\n", code, text);
	log_debug("session=%s <<< %d %s %s", s->id, code, enhanced ? enhanced : "", text);
	free(text);
}

/* The reply to the command being handled, in command order. */
static void
reply(struct smtp_server *s, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
reply(struct smtp_server *s, int code, const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreply(s, true, code, enhanced, fmt, ap);
	va_end(ap);
}

/* A reply that goes out at once, ahead of any owed: the session is closing. */
static void
reply_now(struct smtp_server *s, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
reply_now(struct smtp_server *s, int code, const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreply(s, false, code, enhanced, fmt, ap);
	va_end(ap);
}

static void
reply_relay(struct smtp_server *s, const struct smtp_reply *r)
{
	smtp_reply_write(r, bufferevent_get_output(s->bev));
	if (log_get_level() >= LOG_LEVEL_DEBUG) {
		char *flat = smtp_reply_flatten(r);

		log_debug("session=%s <<< %s", s->id, flat);
		free(flat);
	}
}

/* Count a client mistake; too many and the session ends. */
static bool
client_error(struct smtp_server *s)
{
	if (++s->errors < MAX_ERRORS)
		return false;
	reply_now(s, 421, "4.7.0", "%s Too many errors, closing connection", s->env->rt->hostname);
	log_notice("session=%s event=too_many_errors client=%s", s->id, s->ip);
	smtp_enter_state(s, SMTP_S_QUIT);
	return true;
}

/* Let go of the upstream; it frees itself later, never on our stack. */
static void
txn_drop_upstream(struct smtp_server *s)
{
	struct txn *t = s->txn;

	if (t == NULL)
		return;
	if (t->up != NULL) {
		log_debug("session=%s event=txn_upstream action=drop domain=%s", s->id, t->up_domain);
		s->env->ops->free(t->up);
	}
	t->up = NULL;
	t->up_ready = false;
	t->up_domain[0] = '\0';
}

static void
txn_reset(struct smtp_server *s)
{
	struct txn *t = s->txn;

	if (t == NULL)
		return;
	txn_drop_upstream(s);
	fanout_free(t->fanout);
	if (t->scratch != NULL)
		evbuffer_free(t->scratch);
	for (size_t i = 0; i < t->nfailed; i++) {
		free(t->failed[i].domain);
		smtp_reply_clear(&t->failed[i].reply);
	}
	free(t->failed);
	strlist_clear(&t->accepted);
	smtp_reply_clear(&t->fail_reply);
	smtp_reply_clear(&t->discard_reply);
	free(t);
	s->txn = NULL;
}

static const struct smtp_reply *
txn_domain_failure(const struct txn *t, const char *domain)
{
	for (size_t i = 0; i < t->nfailed; i++)
		if (strcmp(t->failed[i].domain, domain) == 0)
			return &t->failed[i].reply;
	return NULL;
}

/*
 * The upstream of a domain no recipient was accepted for failed as a
 * whole: remember its reply for the domain's later recipients and drop
 * it, so the next recipient of another domain can start its own.
 */
static void
txn_domain_failed(struct smtp_server *s, const struct smtp_reply *r)
{
	struct txn *t = s->txn;
	struct failed_domain *f;
	char *flat = smtp_reply_flatten(r);

	t->failed = xrealloc(t->failed, (t->nfailed + 1) * sizeof(*t->failed));
	f = &t->failed[t->nfailed++];
	f->domain = xstrdup(t->up_domain);
	smtp_reply_init(&f->reply);
	smtp_reply_copy(&f->reply, r);
	log_info("session=%s event=domain_failed domain=%s reply=%s note=\"the transaction "
	    "stays open for other domains\"", s->id, f->domain, log_quote(flat));
	free(flat);
	txn_drop_upstream(s);
}

static void
log_rcpt(struct smtp_server *s, const char *address, const char *domain, const char *mx,
    const struct smtp_reply *r, const char *note)
{
	char *flat = smtp_reply_flatten(r);

	log_info("session=%s event=rcpt to=%s domain=%s mx=%s reply=%s%s%s", s->id,
	    log_quote_address(address), domain, mx && *mx ? mx : "-", log_quote(flat),
	    note ? " note=" : "", note ? log_quote(note) : "");
	free(flat);
}

/* A Unix-domain socket never leaves the host: nothing for TLS to protect over LMTP. */
static bool
starttls_available(const struct smtp_server *s)
{
	return s->env->tls_ctx != NULL && !(s->lmtp && s->local_peer);
}

static void
send_ehlo_reply(struct smtp_server *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	evbuffer_add_printf(out, "250-%s Hello %s [%s]\r\n", s->env->rt->hostname, s->helo, s->ip);
	evbuffer_add_printf(out, "250-PIPELINING\r\n");
	evbuffer_add_printf(out, "250-SIZE %zu\r\n", s->conf->server_max_message_size);
	if (starttls_available(s) && !s->tls)
		evbuffer_add_printf(out, "250-STARTTLS\r\n");
	evbuffer_add_printf(out, "250-8BITMIME\r\n");
	evbuffer_add_printf(out, "250-SMTPUTF8\r\n");
	evbuffer_add_printf(out, "250-DSN\r\n");
	evbuffer_add_printf(out, "250 ENHANCEDSTATUSCODES\r\n");
}

static void
cmd_helo(struct smtp_server *s, const struct smtp_command *cmd)
{
	size_t len = strcspn(cmd->arg, " ");

	if (s->lmtp != (cmd->verb == SMTP_VERB_LHLO)) {
		/* LMTP-1: an LMTP client greets with LHLO, and only an LMTP client does. */
		if (s->lmtp)
			reply(s, 500, "5.5.1", "This is an LMTP server (RFC 2033): send LHLO, not %s",
			    smtp_verb_name(cmd->verb));
		else
			reply(s, 500, "5.5.1", "LHLO is LMTP (RFC 2033); this listener speaks SMTP: "
			    "send EHLO");
		client_error(s);
		return;
	}
	if (len == 0) {
		reply(s, 501, "5.5.4", "Syntax: %s hostname", smtp_verb_name(cmd->verb));
		client_error(s);
		return;
	}
	if (len >= sizeof(s->helo))
		len = sizeof(s->helo) - 1;
	memcpy(s->helo, cmd->arg, len);
	s->helo[len] = '\0';
	txn_reset(s);
	s->esmtp = cmd->verb == SMTP_VERB_EHLO || cmd->verb == SMTP_VERB_LHLO;
	if (s->esmtp)
		send_ehlo_reply(s);
	else
		reply(s, 250, NULL, "%s", s->env->rt->hostname);
	smtp_enter_state(s, SMTP_S_IDLE);
}

/* Check MAIL parameters (RFC 1870, 6152, 6531, 3461); 0 if all are fine. */
static int
check_mail_params(struct smtp_server *s, const struct smtp_path *p)
{
	for (size_t i = 0; i < p->nparams; i++) {
		const struct smtp_param *prm = &p->params[i];

		if (!s->esmtp) {
			reply(s, 555, "5.5.4", "MAIL parameters need EHLO");
			return -1;
		}
		if (strcmp(prm->key, "SIZE") == 0) {
			char *end;
			unsigned long long n = strtoull(prm->value, &end, 10);

			if (!prm->has_value || *end != '\0' || prm->value[0] == '-') {
				reply(s, 501, "5.5.4", "Malformed SIZE parameter");
				return -1;
			}
			if (n > s->conf->server_max_message_size) {
				reply(s, 552, "5.3.4", "Message size exceeds fixed maximum message size (%zu)",
				    s->conf->server_max_message_size);
				return -1;
			}
		} else if (strcmp(prm->key, "BODY") == 0) {
			if (strcasecmp(prm->value, "7BIT") != 0 && strcasecmp(prm->value, "8BITMIME") != 0) {
				reply(s, 555, "5.5.4", "Unsupported BODY type %s", prm->value);
				return -1;
			}
		} else if (strcmp(prm->key, "SMTPUTF8") == 0) {
			if (prm->has_value) {
				reply(s, 501, "5.5.4", "SMTPUTF8 takes no value");
				return -1;
			}
		} else if (strcmp(prm->key, "RET") == 0) {
			if (strcasecmp(prm->value, "FULL") != 0 && strcasecmp(prm->value, "HDRS") != 0) {
				reply(s, 501, "5.5.4", "RET must be FULL or HDRS");
				return -1;
			}
		} else if (strcmp(prm->key, "ENVID") == 0) {
			if (!prm->has_value || strlen(prm->value) > 100 || !smtp_xtext_valid(prm->value)) {
				reply(s, 501, "5.5.4", "Malformed ENVID parameter");
				return -1;
			}
		} else {
			reply(s, 555, "5.5.4", "Unsupported parameter %s", prm->key);
			return -1;
		}
	}
	if (p->utf8 && smtp_path_param(p, "SMTPUTF8") == NULL) {
		reply(s, 553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter");
		return -1;
	}
	return 0;
}

static void
cmd_mail(struct smtp_server *s, const struct smtp_command *cmd)
{
	struct smtp_path path;
	struct smtp_error err;

	if (s->state == SMTP_S_GREETED) {
		reply(s, 503, "5.5.1", "Send HELO or EHLO first");
		client_error(s);
		return;
	}
	if (s->state != SMTP_S_IDLE) {
		reply(s, 503, "5.5.1", "Nested MAIL command");
		client_error(s);
		return;
	}
	if (smtp_path_parse(cmd->arg, true, &path, &err) < 0) {
		reply(s, err.code, err.enhanced, "%s", err.text);
		client_error(s);
		return;
	}
	if (check_mail_params(s, &path) < 0) {
		client_error(s);
		return;
	}
	txn_reset(s);
	s->txn = xcalloc(1, sizeof(*s->txn));
	s->txn->mail = path;
	s->txn->number = ++s->txn_count;
	if (s->lmtp)
		s->txn->fanout = fanout_new(s->env->rt, s->env->ops, s->id, &path,
		    s->conf->server_lmtp_max_domains, fanout_event, s);
	log_info("session=%s event=mail from=%s", s->id, log_quote_address(path.address));
	reply(s, 250, "2.1.0", "Ok");
	smtp_enter_state(s, SMTP_S_MAIL);
}

static int
check_rcpt_params(struct smtp_server *s, const struct smtp_path *p)
{
	for (size_t i = 0; i < p->nparams; i++) {
		const struct smtp_param *prm = &p->params[i];

		if (strcmp(prm->key, "NOTIFY") == 0) {
			char buf[SMTP_PARAM_VALUE_MAX + 1], *save = NULL;
			bool never = false, other = false;

			snprintf(buf, sizeof(buf), "%s", prm->value);
			for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				if (strcasecmp(t, "NEVER") == 0)
					never = true;
				else if (strcasecmp(t, "SUCCESS") == 0 || strcasecmp(t, "FAILURE") == 0 ||
				    strcasecmp(t, "DELAY") == 0)
					other = true;
				else
					never = other = true;
			}
			if (!prm->has_value || (never && other) || (!never && !other)) {
				reply(s, 501, "5.5.4", "Malformed NOTIFY parameter");
				return -1;
			}
		} else if (strcmp(prm->key, "ORCPT") == 0) {
			const char *semi = strchr(prm->value, ';');

			if (semi == NULL || semi == prm->value || !smtp_xtext_valid(semi + 1)) {
				reply(s, 501, "5.5.4", "Malformed ORCPT parameter");
				return -1;
			}
		} else {
			reply(s, 555, "5.5.4", "Unsupported parameter %s", prm->key);
			return -1;
		}
	}
	if (p->utf8 && smtp_path_param(&s->txn->mail, "SMTPUTF8") == NULL) {
		reply(s, 553, "5.6.7", "Non-ASCII address needs SMTPUTF8 in MAIL FROM");
		return -1;
	}
	return 0;
}

/*
 * What the client wrote as the recipient address, for the log line of a
 * RCPT that did not parse: between the angle brackets, or the argument.
 */
static void
rcpt_written_address(const char *arg, char *out, size_t len)
{
	const char *p = strchr(arg, '<'), *end;

	if (p == NULL) {
		p = strchr(arg, ':') ? strchr(arg, ':') + 1 : arg;
		while (*p == ' ')
			p++;
		end = p + strlen(p);
	} else if ((end = strchr(++p, '>')) == NULL)
		end = p + strlen(p);
	snprintf(out, len, "%.*s", (int)(end - p), p);
}

/* A RCPT stsproxy answers itself, without asking an upstream. */
static void
refuse_rcpt(struct smtp_server *s, const char *address, int code, const char *enhanced,
    const char *reason, const char *text)
{
	char *flat = xasprintf("%d %s %s", code, enhanced, text);

	reply(s, code, enhanced, "%s", text);
	log_info("session=%s event=rcpt_refused to=%s reply=%s reason=%s", s->id,
	    log_quote_address(address), log_quote(flat), log_quote(reason));
	free(flat);
}

static void
cmd_rcpt(struct smtp_server *s, const struct smtp_command *cmd)
{
	struct txn *t = s->txn;
	const struct smtp_reply *failed;
	struct smtp_path path;
	struct smtp_error err;
	const char *why;
	char *domain;

	if (s->state != SMTP_S_MAIL) {
		reply(s, 503, "5.5.1", "Need MAIL before RCPT");
		client_error(s);
		return;
	}
	if (smtp_path_parse(cmd->arg, false, &path, &err) < 0) {
		char written[SMTP_PATH_MAX + 1];

		rcpt_written_address(cmd->arg, written, sizeof(written));
		if (path.address_literal) {
			/* STS-2: no policy can apply to an address literal, and
			 * stsproxy routes by recipient domain only. */
			refuse_rcpt(s, written, err.code, err.enhanced, "an address literal names no "
			    "domain, so no MTA-STS policy applies to it; stsproxy relays to domain "
			    "names only and does not route it: the client must deliver it itself",
			    err.text);
			return;
		}
		refuse_rcpt(s, written, err.code, err.enhanced, "syntax", err.text);
		client_error(s);
		return;
	}
	if (check_rcpt_params(s, &path) < 0) {
		log_info("session=%s event=rcpt_refused to=%s reason=parameters", s->id,
		    log_quote_address(path.address));
		client_error(s);
		return;
	}
	if (t->rcpts >= s->conf->server_max_recipients) {
		/* SMTP-8: an implementation limit is a 452. */
		refuse_rcpt(s, path.address, 452, "4.5.3", "[server] max_recipients reached",
		    "Too many recipients");
		/* A client that goes on past the limit is either broken or
		 * flooding (one log line per refusal): it counts as an error. */
		client_error(s);
		return;
	}
	if (path.domain[0] == '\0') {
		refuse_rcpt(s, path.address, 550, "5.1.1", "no domain",
		    "stsproxy has no local mailboxes; write to postmaster@domain");
		client_error(s);
		return;
	}
	/* DNS, policy, MX matching and TLS use the A-label form; the address
	 * goes upstream as the client sent it (RFC 6531). */
	if ((domain = idna_to_alabel(path.domain, &why)) == NULL) {
		char *text = xasprintf("Recipient domain is not a valid %sdomain name: %s",
		    idna_is_utf8(path.domain) ? "internationalised (IDNA2008) " : "", why);

		refuse_rcpt(s, path.address, 553, "5.1.3", why, text);
		free(text);
		client_error(s);
		return;
	}
	if (idna_is_utf8(path.domain))
		log_info("session=%s event=rcpt_idn to=%s domain=%s a_label=%s", s->id,
		    log_quote_address(path.address), log_quote(path.domain), domain);
	if (s->lmtp) {
		/* Each domain gets a route of its own; the reply comes in RCPT order. */
		t->rcpts++;
		fanout_rcpt(t->fanout, &path, domain);
		free(domain);
		return;
	}
	if ((failed = txn_domain_failure(t, domain)) != NULL) {
		/* The domain's upstream failed earlier in this transaction:
		 * the same reply, with its real reason, never a 452. */
		t->rcpts++;
		reply_relay(s, failed);
		log_rcpt(s, path.address, domain, NULL, failed, "the domain failed earlier in this "
		    "transaction");
		free(domain);
		return;
	}
	if (t->domain[0] != '\0' && strcmp(t->domain, domain) != 0) {
		/* PRX: one policy domain per transaction; the client sends the
		 * rest again in a new transaction. */
		reply(s, 452, "4.5.3", "Recipient domain %s differs from %s in this transaction; "
		    "send it in a new transaction", domain, t->domain);
		log_info("session=%s event=rcpt_deferred_other_domain to=%s domain=%s txn_domain=%s",
		    s->id, log_quote_address(path.address), domain, t->domain);
		free(domain);
		return;
	}
	t->rcpts++;
	if (t->up_failed) {
		/* The accepted domain's upstream is gone: nothing more goes there. */
		reply_relay(s, &t->fail_reply);
		log_rcpt(s, path.address, domain, NULL, &t->fail_reply, "the upstream was lost");
		free(domain);
		return;
	}
	t->rcpt = path;
	t->rcpt_pending = true;
	if (t->up != NULL && strcmp(t->up_domain, domain) == 0) {
		if (t->up_ready)
			s->env->ops->rcpt(t->up, &t->rcpt);
	} else {
		/* No recipient accepted yet (t->domain would have matched): the
		 * upstream of a domain that only refused recipients gives way. */
		if (t->up != NULL)
			log_info("session=%s event=domain_switch from_domain=%s domain=%s "
			    "reason=\"no recipient of %s was accepted\"", s->id, t->up_domain, domain,
			    t->up_domain);
		txn_drop_upstream(s);
		snprintf(t->up_domain, sizeof(t->up_domain), "%s", domain);
		log_debug("session=%s event=txn_upstream action=open domain=%s", s->id, domain);
		t->up = s->env->ops->open(s->env->rt, s->id, domain, &t->mail, upstream_event, s);
		if (s->env->ops->first_rcpt != NULL)
			s->env->ops->first_rcpt(t->up, &t->rcpt);
	}
	free(domain);
	smtp_enter_state(s, SMTP_S_RCPT_WAIT);
}

static void
cmd_data(struct smtp_server *s, const struct smtp_command *cmd)
{
	struct txn *t = s->txn;

	if (cmd->arg[0] != '\0') {
		reply(s, 501, "5.5.4", "DATA takes no arguments");
		client_error(s);
		return;
	}
	if (s->state != SMTP_S_MAIL) {
		reply(s, 503, "5.5.1", s->state == SMTP_S_IDLE ? "Need MAIL command" :
		    "Need RCPT command");
		client_error(s);
		return;
	}
	if (t->rcpts == 0) {
		reply(s, 503, "5.5.1", "Need RCPT command");
		client_error(s);
		return;
	}
	if (s->lmtp) {
		if (fanout_accepted(t->fanout) == 0) {
			/* LMTP-4: DATA with no successful RCPT fails with 503. */
			reply(s, 503, "5.5.1", "No valid recipients");
			return;
		}
		/* Every RCPT reply is out (smtp_process_input held DATA until then). */
		if (fanout_data(t->fanout) < 0)
			fatalx("fanout refused DATA");
		smtp_enter_state(s, SMTP_S_DATA_WAIT);
		return;
	}
	if (t->rcpts_ok == 0) {
		reply(s, 554, "5.5.1", "No valid recipients");
		return;
	}
	if (t->up_failed) {
		/* Recipients were accepted, then the upstream was lost. */
		reply_relay(s, &t->fail_reply);
		txn_reset(s);
		smtp_enter_state(s, SMTP_S_IDLE);
		return;
	}
	s->env->ops->data(t->up);
	smtp_enter_state(s, SMTP_S_DATA_WAIT);
}

static void
cmd_starttls(struct smtp_server *s, const struct smtp_command *cmd)
{
	if (!starttls_available(s)) {
		reply(s, 502, "5.5.1", "STARTTLS not available");
		client_error(s);
		return;
	}
	if (s->tls) {
		reply(s, 503, "5.5.1", "TLS already active");
		client_error(s);
		return;
	}
	if (cmd->arg[0] != '\0') {
		reply(s, 501, "5.5.4", "STARTTLS takes no arguments");
		client_error(s);
		return;
	}
	if (s->state != SMTP_S_IDLE && s->state != SMTP_S_GREETED) {
		reply(s, 503, "5.5.1", "STARTTLS not allowed inside a transaction");
		client_error(s);
		return;
	}
	/* STARTTLS command injection (RFC 3207 §5, CVE-2011-0411): anything
	 * pipelined after STARTTLS was sent in the clear and must never be
	 * read as if it came over TLS. */
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
		reply(s, 554, "5.5.1", "Plaintext pipelined after STARTTLS: command injection refused");
		log_warnx("session=%s event=starttls_injection client=%s", s->id, s->ip);
		smtp_enter_state(s, SMTP_S_QUIT);
		return;
	}
	reply(s, 220, "2.0.0", "Ready to start TLS");
	smtp_enter_state(s, SMTP_S_TLS);
}

static void
cmd_rset(struct smtp_server *s, const struct smtp_command *cmd)
{
	(void)cmd;
	txn_reset(s);
	reply(s, 250, "2.0.0", "Ok");
	if (s->state != SMTP_S_GREETED)
		smtp_enter_state(s, SMTP_S_IDLE);
}

static void
cmd_simple(struct smtp_server *s, const struct smtp_command *cmd)
{
	switch (cmd->verb) {
	case SMTP_VERB_NOOP:
		reply(s, 250, "2.0.0", "Ok");
		break;
	case SMTP_VERB_VRFY:
		reply(s, 252, "2.5.0", "Cannot VRFY user; try RCPT to attempt delivery");
		break;
	case SMTP_VERB_HELP:
		reply(s, 214, "2.0.0", "stsproxy relays mail under MTA-STS; see stsproxy(8)");
		break;
	case SMTP_VERB_QUIT:
		reply(s, 221, "2.0.0", "%s closing connection", s->env->rt->hostname);
		smtp_enter_state(s, SMTP_S_QUIT);
		break;
	default:
		reply(s, 502, "5.5.1", "%s not implemented", smtp_verb_name(cmd->verb));
		client_error(s);
		break;
	}
}

static const struct {
	enum smtp_verb	 verb;
	void		(*handler)(struct smtp_server *, const struct smtp_command *);
} commands[] = {
	{ SMTP_VERB_HELO, cmd_helo },
	{ SMTP_VERB_EHLO, cmd_helo },
	{ SMTP_VERB_LHLO, cmd_helo },
	{ SMTP_VERB_MAIL, cmd_mail },
	{ SMTP_VERB_RCPT, cmd_rcpt },
	{ SMTP_VERB_DATA, cmd_data },
	{ SMTP_VERB_STARTTLS, cmd_starttls },
	{ SMTP_VERB_RSET, cmd_rset },
	{ SMTP_VERB_NOOP, cmd_simple },
	{ SMTP_VERB_VRFY, cmd_simple },
	{ SMTP_VERB_EXPN, cmd_simple },
	{ SMTP_VERB_HELP, cmd_simple },
	{ SMTP_VERB_QUIT, cmd_simple },
	{ SMTP_VERB_BDAT, cmd_simple },
	{ SMTP_VERB_AUTH, cmd_simple },
};

static void
handle_line(struct smtp_server *s, char *line, size_t len)
{
	struct smtp_command cmd;
	struct smtp_error err;

	if (smtp_command_parse(line, len, &cmd, &err) < 0) {
		reply(s, err.code, err.enhanced, "%s", err.text);
		client_error(s);
		return;
	}
	log_debug("session=%s >>> %s", s->id, log_quote(line));
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (commands[i].verb == cmd.verb) {
			commands[i].handler(s, &cmd);
			return;
		}
	}
	reply(s, 500, "5.5.2", "Command unrecognized");
	client_error(s);
}

static void
add_received(struct smtp_server *s, struct evbuffer *out)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* RFC 5321 §4.4: a relay adds its trace line. */
	evbuffer_add_printf(out, "Received: from %s ([%s])\r\n\tby %s (stsproxy) with %s id %s.%u",
	    s->helo, s->ip, s->env->rt->hostname,
	    s->lmtp ? (s->tls ? "LMTPS" : "LMTP") :	/* RFC 3848 */
	    s->tls ? (s->esmtp ? "ESMTPS" : "SMTPS") : (s->esmtp ? "ESMTP" : "SMTP"),
	    s->id, s->txn->number);
	if (s->txn->rcpts_ok == 1 && strchr(s->txn->first_rcpt, '\r') == NULL)
		evbuffer_add_printf(out, "\r\n\tfor <%s>", s->txn->first_rcpt);
	evbuffer_add_printf(out, "; %s\r\n", date);
}

/* Feed body bytes through the filter; false when reading must pause. */
static bool
process_body(struct smtp_server *s)
{
	struct txn *t = s->txn;
	struct evbuffer *in = bufferevent_get_input(s->bev);

	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec vec;
		struct evbuffer *out, *sink = NULL;
		size_t used;
		bool done;

		if (s->state == SMTP_S_BODY) {
			if (t->fanout != NULL ? fanout_body_full(t->fanout) :
			    s->env->ops->body_full(t->up)) {
				/* Backpressure: the client waits until the upstream
				 * (LMTP: the slowest one) drains. */
				s->paused = true;
				s->paused_at = mono_ms();
				return false;
			}
			/* LMTP: filtered once, then copied to every route. */
			out = t->fanout != NULL ? t->scratch : s->env->ops->body(t->up);
		} else
			out = sink = evbuffer_new();
		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1) {
			if (sink)
				evbuffer_free(sink);
			return true;
		}
		used = data_filter_feed(&t->filter, vec.iov_base, vec.iov_len, out, &done);
		evbuffer_drain(in, used);
		if (sink)
			evbuffer_free(sink);
		else if (t->fanout != NULL)
			fanout_body_write(t->fanout, out);
		if (s->state == SMTP_S_BODY &&
		    t->filter.bytes_out > s->conf->server_max_message_size) {
			/* Cut the upstream mid-body so it discards the message. */
			log_notice("session=%s event=message_too_big size_over=%zu", s->id,
			    s->conf->server_max_message_size);
			smtp_reply_set(&t->discard_reply, 552, "5.3.4",
			    "Message size exceeds fixed maximum message size (%zu)",
			    s->conf->server_max_message_size);
			if (t->fanout != NULL) {
				/* LMTP: each recipient hears it after the final dot. */
				fanout_body_abort(t->fanout, &t->discard_reply);
			} else {
				s->env->ops->free(t->up);
				t->up = NULL;
			}
			smtp_enter_state(s, SMTP_S_BODY_DISCARD);
		}
		if (done) {
			if (t->filter.bare_lf || t->filter.bare_cr)
				log_notice("session=%s event=bare_newlines_normalised bare_lf=%lu bare_cr=%lu",
				    s->id, t->filter.bare_lf, t->filter.bare_cr);
			if (t->filter.nul)
				log_notice("session=%s event=nul_removed count=%lu", s->id, t->filter.nul);
			if (t->fanout != NULL) {
				/* LMTP-3: one reply per accepted recipient follows. */
				fanout_body_end(t->fanout);
				smtp_enter_state(s, SMTP_S_EOM_WAIT);
				return false;
			}
			if (s->state == SMTP_S_BODY_DISCARD) {
				reply_relay(s, &t->discard_reply);
				txn_reset(s);
				smtp_enter_state(s, SMTP_S_IDLE);
				return true;
			}
			s->env->ops->body_end(t->up);
			smtp_enter_state(s, SMTP_S_EOM_WAIT);
			return false;
		}
	}
	return true;
}

/* More replies wait for the client than OUTPUT_HIGH_WATER. */
static bool
output_full(struct smtp_server *s)
{
	/* With TLS the socket underneath takes records only up to the same
	 * mark (tls_handshake_start), so the rest waits here, unencrypted. */
	return evbuffer_get_length(bufferevent_get_output(s->bev)) > OUTPUT_HIGH_WATER;
}

static bool
reading_allowed(struct smtp_server *s)
{
	if (s->paused)
		return false;
	switch (s->state) {
	case SMTP_S_GREETED:
	case SMTP_S_IDLE:
	case SMTP_S_MAIL:
	case SMTP_S_BODY:
	case SMTP_S_BODY_DISCARD:
		return !output_full(s);
	default:
		return false;
	}
}


/*
 * true if the next command line in `in` ends in a bare LF. RFC 5321
 * section 2.3.8 allows CR LF only; a client that ends lines otherwise
 * is either broken or trying to make us and the upstream disagree on
 * where a line ends (SMTP smuggling).
 */
static bool
next_line_has_bare_lf(struct evbuffer *in)
{
	size_t eol_len = 0;
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);

	return eol.pos != -1 && eol_len == 1;
}

/*
 * LMTP reads RCPTs ahead while their replies are owed, so that every
 * domain's upstream starts at once. Any other command waits until those
 * replies are out: DATA depends on them, and the others end or follow
 * the transaction. true if the next whole line in `in` must wait.
 */
static bool
hold_for_rcpt_replies(struct smtp_server *s, struct evbuffer *in)
{
	size_t eol_len = 0, n;
	struct evbuffer_ptr eol;
	char verb[6];

	if (s->state != SMTP_S_MAIL || !replies_owed(s))
		return false;
	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (eol.pos == -1)
		return false;	/* no whole line yet (one too long is refused in order) */
	n = eol.pos < 5 ? (size_t)eol.pos : 5;
	if (evbuffer_copyout(in, verb, n) != (ev_ssize_t)n)
		return false;
	verb[n] = '\0';
	return !(n >= 4 && strncasecmp(verb, "RCPT", 4) == 0 && (n == 4 || verb[4] == ' '));
}

/* Work through buffered input until it runs out or the session must wait. */
static void
smtp_process_input(struct smtp_server *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	while (reading_allowed(s)) {
		size_t len;
		char *line;

		if (s->state == SMTP_S_BODY || s->state == SMTP_S_BODY_DISCARD) {
			if (!process_body(s) || evbuffer_get_length(in) == 0)
				break;
			continue;
		}
		if (hold_for_rcpt_replies(s, in)) {
			/* fanout_event() takes it up when the last RCPT reply is out. */
			smtp_enter_state(s, SMTP_S_RCPT_WAIT);
			break;
		}
		if (!s->conf->server_allow_bare_newline && next_line_has_bare_lf(in)) {
			/* As Postfix's smtpd_forbid_bare_newline: refuse and hang up,
			 * since whatever the client pipelined behind it is suspect. */
			reply_now(s, 550, "5.5.2", "%s Error: bare <LF> received; command lines must end "
			    "in CR LF (RFC 5321 section 2.3.8)", s->env->rt->hostname);
			log_notice("session=%s event=bare_lf_command client=%s state=%s", s->id, s->ip,
			    state_names[s->state]);
			smtp_enter_state(s, SMTP_S_QUIT);
			break;
		}
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > SMTP_LINE_MAX) {
				evbuffer_drain(in, evbuffer_get_length(in));
				if (!s->skip_line) {
					s->skip_line = true;
					reply(s, 500, "5.5.2", "Line too long");
					if (client_error(s))
						break;
				}
			}
			break;
		}
		if (s->skip_line) {
			/* The tail of an over-long line: already answered. */
			s->skip_line = false;
			free(line);
			continue;
		}
		handle_line(s, line, len);
		free(line);
		/* command_timeout runs for each whole line, from here. */
		s->line_at = mono_ms();
	}
	if (s->bev != NULL && s->state != SMTP_S_CLOSED) {
		if (reading_allowed(s))
			bufferevent_enable(s->bev, EV_READ);
		else
			bufferevent_disable(s->bev, EV_READ);
		/* smtp_write_cb takes up reading once the client has read its replies. */
		s->write_blocked = output_full(s);
	}
}

/* The upstream took the body again: time waiting for it was not the client's. */
static void
body_resumed(struct smtp_server *s)
{
	if (s->paused_at != 0) {
		s->paused_ms += mono_ms() - s->paused_at;
		s->paused_at = 0;
	}
	s->paused = false;
}

/* The upstream transaction speaks: answer the command that waits for it. */
static void
upstream_event(void *arg, enum upstream_event ev, const struct smtp_reply *r)
{
	struct smtp_server *s = arg;
	struct txn *t = s->txn;

	switch (ev) {
	case UPSTREAM_EV_READY:
		t->up_ready = true;
		if (t->rcpt_pending && s->env->ops->rcpt(t->up, &t->rcpt) < 0)
			fatalx("upstream refused RCPT when ready");
		return;
	case UPSTREAM_EV_FAILED:
		/* Only before READY, so before any recipient was accepted. */
		if (s->state == SMTP_S_RCPT_WAIT)
			log_rcpt(s, t->rcpt.address, t->up_domain, NULL, r, NULL);
		txn_domain_failed(s, r);
		if (s->state == SMTP_S_RCPT_WAIT) {
			t->rcpt_pending = false;
			reply_relay(s, r);
			smtp_enter_state(s, SMTP_S_MAIL);
		}
		break;
	case UPSTREAM_EV_REPLY:
		switch (s->state) {
		case SMTP_S_RCPT_WAIT:
			t->rcpt_pending = false;
			if (smtp_reply_class(r) == 2) {
				t->rcpts_ok++;
				strlist_add(&t->accepted, t->rcpt.address);
				if (t->domain[0] == '\0') {
					/* The first accepted recipient fixes the domain. */
					snprintf(t->domain, sizeof(t->domain), "%s", t->up_domain);
					log_debug("session=%s event=txn_upstream action=fix domain=%s",
					    s->id, t->domain);
					snprintf(t->first_rcpt, sizeof(t->first_rcpt), "%s",
					    t->rcpt.address);
				}
			}
			log_rcpt(s, t->rcpt.address, t->up_domain, s->env->ops->mx_host(t->up), r, NULL);
			reply_relay(s, r);
			smtp_enter_state(s, SMTP_S_MAIL);
			break;
		case SMTP_S_DATA_WAIT:
			reply_relay(s, r);
			if (r->code == 354) {
				data_filter_init(&t->filter);
				add_received(s, s->env->ops->body(t->up));
				smtp_enter_state(s, SMTP_S_BODY);
			} else {
				txn_reset(s);
				smtp_enter_state(s, SMTP_S_IDLE);
			}
			break;
		case SMTP_S_EOM_WAIT: {
			char *flat = smtp_reply_flatten(r);

			/* SMTP-10, PRX: the client hears 250 only because the upstream said it.
			 * One line per recipient, as Postfix logs them. */
			for (size_t i = 0; i < t->accepted.count; i++)
				log_notice("session=%s event=message to=%s domain=%s mx=%s size=%llu "
				    "rcpts=%u reply=%s", s->id, log_quote_address(t->accepted.items[i]),
				    t->domain, (t->up ? s->env->ops->mx_host(t->up) : "-"),
				    t->filter.bytes_out, t->rcpts_ok, log_quote(flat));
			free(flat);
			s->messages++;
			metrics_add("stsproxy_messages_total", smtp_reply_class(r) == 2 ?
			    "reply=\"2xx\"" : smtp_reply_class(r) == 4 ? "reply=\"4xx\"" : "reply=\"5xx\"", 1);
			reply_relay(s, r);
			txn_reset(s);
			smtp_enter_state(s, SMTP_S_IDLE);
			break;
		}
		default:
			log_warnx("session=%s event=unexpected_upstream_reply state=%s", s->id,
			    state_names[s->state]);
			return;
		}
		break;
	case UPSTREAM_EV_WRITABLE:
		body_resumed(s);
		break;
	case UPSTREAM_EV_LOST:
		body_resumed(s);
		if (s->state == SMTP_S_RCPT_WAIT)
			log_rcpt(s, t->rcpt.address, t->up_domain, NULL, r, NULL);
		if (t->domain[0] == '\0') {
			/* Nobody accepted yet: another domain may still be tried. */
			txn_domain_failed(s, r);
		} else {
			txn_drop_upstream(s);
			t->up_failed = true;
			smtp_reply_copy(&t->fail_reply, r);
		}
		switch (s->state) {
		case SMTP_S_RCPT_WAIT:
			t->rcpt_pending = false;
			reply_relay(s, r);
			smtp_enter_state(s, SMTP_S_MAIL);
			break;
		case SMTP_S_DATA_WAIT:
		case SMTP_S_EOM_WAIT:
			reply_relay(s, r);
			txn_reset(s);
			smtp_enter_state(s, SMTP_S_IDLE);
			break;
		case SMTP_S_BODY:
			/* SMTP-10: read the rest, then a 4xx keeps it in the client's queue. */
			smtp_reply_copy(&t->discard_reply, r);
			smtp_enter_state(s, SMTP_S_BODY_DISCARD);
			break;
		default:
			break;
		}
		break;
	}
	smtp_process_input(s);
}

/*
 * LMTP: the transaction's routes speak (fanout.h), in the order the
 * client is owed its replies.
 */
static void
fanout_event(void *arg, enum fanout_event ev, const struct fanout_answer *a)
{
	struct smtp_server *s = arg;
	struct txn *t = s->txn;

	if (s->state == SMTP_S_QUIT || s->state == SMTP_S_CLOSED)
		return;		/* closing: the client keeps the whole transaction */
	switch (ev) {
	case FANOUT_EV_RCPT:
		if (a->accepted) {
			if (t->rcpts_ok++ == 0)
				snprintf(t->first_rcpt, sizeof(t->first_rcpt), "%s", a->address);
			strlist_add(&t->accepted, a->address);
		}
		/* A reply the session made itself was logged when it was made. */
		if (!a->local)
			log_rcpt(s, a->address, a->domain, a->mx, a->reply, a->note);
		reply_relay(s, a->reply);
		if (!fanout_rcpts_pending(t->fanout) &&
		    (s->state == SMTP_S_MAIL || s->state == SMTP_S_RCPT_WAIT)) {
			/* All owed replies are out: a held command goes on, and
			 * command_timeout counts for the client again from now. */
			smtp_enter_state(s, SMTP_S_MAIL);
		}
		break;
	case FANOUT_EV_DATA:
		reply_relay(s, a->reply);
		if (a->reply->code == 354) {
			data_filter_init(&t->filter);
			t->scratch = evbuffer_new();
			add_received(s, t->scratch);
			fanout_body_write(t->fanout, t->scratch);
			smtp_enter_state(s, SMTP_S_BODY);
		} else {
			txn_reset(s);
			smtp_enter_state(s, SMTP_S_IDLE);
		}
		break;
	case FANOUT_EV_WRITABLE:
		body_resumed(s);
		break;
	case FANOUT_EV_FINAL: {
		char *flat = smtp_reply_flatten(a->reply);

		/* LMTP-3, LMTP-7: this recipient's own upstream said it. */
		log_notice("session=%s event=message to=%s domain=%s mx=%s size=%llu rcpts=%u "
		    "reply=%s", s->id, log_quote_address(a->address), a->domain, *a->mx ? a->mx : "-",
		    t->filter.bytes_out, a->domain_rcpts, log_quote(flat));
		free(flat);
		reply_relay(s, a->reply);
		break;
	}
	case FANOUT_EV_DONE:
		s->messages++;
		txn_reset(s);
		smtp_enter_state(s, SMTP_S_IDLE);
		break;
	}
	smtp_process_input(s);
}

static void
tls_handshake_start(struct smtp_server *s)
{
	SSL *ssl = SSL_new(s->env->tls_ctx);
	struct bufferevent *tls;

	if (ssl == NULL)
		fatalx("SSL_new failed");
	tls = bufferevent_openssl_filter_new(s->env->rt->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL) {
		/* The filter owned the plain bufferevent and the SSL. */
		s->bev = NULL;
		smtp_enter_state(s, SMTP_S_CLOSED);
		return;
	}
	s->bev = tls;
	/* The filter encrypts into the socket's buffer only up to this mark,
	 * so the output bound holds for TLS sessions too (output_full). */
	bufferevent_setwatermark(bufferevent_get_underlying(tls), EV_WRITE, 0, OUTPUT_HIGH_WATER);
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	bufferevent_setcb(tls, smtp_read_cb, smtp_write_cb, smtp_event_cb, s);
	bufferevent_setwatermark(tls, EV_READ, 0, INPUT_HIGH_WATER);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
}

/* Bytes not yet handed to the kernel, TLS records included. */
static size_t
output_pending(struct smtp_server *s)
{
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));

	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

static void
flush_check(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *s = arg;
	struct timeval now, tv = { 0, 20 * 1000 };

	(void)fd;
	(void)what;
	evutil_gettimeofday(&now, NULL);
	if (s->state != SMTP_S_QUIT)
		return;
	if (output_pending(s) == 0 || now.tv_sec - s->quit_at.tv_sec > CLOSE_FLUSH_TIMEOUT) {
		if (s->tls)
			SSL_shutdown(bufferevent_openssl_get_ssl(s->bev));
		smtp_enter_state(s, SMTP_S_CLOSED);
		return;
	}
	evtimer_add(s->flush_timer, &tv);
}

/*
 * When the client's time in this state is up (mono_ms), naming the limit,
 * or 0 when none runs (the session waits for the upstream, which has
 * limits of its own). Whole command lines, the wait for HELO and the
 * whole body are timed here: a bufferevent timeout restarts on every
 * byte, so a client dripping one byte at a time would never reach it.
 */
static long long
client_deadline(const struct smtp_server *s, const char **limit)
{
	const struct conf *c = s->conf;
	long long line = s->line_at + 1000LL * c->server_command_timeout;

	switch (s->state) {
	case SMTP_S_GREETED: {
		long long helo = s->phase_at + 1000LL * c->server_helo_timeout;

		*limit = helo <= line ? "helo_timeout" : "command_timeout";
		return helo <= line ? helo : line;
	}
	case SMTP_S_IDLE:
	case SMTP_S_MAIL:
		/* LMTP: while RCPT replies are owed the client may wait for them;
		 * the upstreams' own limits run, and fanout_event() re-arms this. */
		if (replies_owed(s))
			return 0;
		*limit = "command_timeout";
		return line;
	case SMTP_S_TLS:
		*limit = "command_timeout";
		return s->phase_at + 1000LL * c->server_command_timeout;
	case SMTP_S_BODY:
	case SMTP_S_BODY_DISCARD: {
		long long paused = s->paused_ms + (s->paused_at != 0 ? mono_ms() - s->paused_at : 0);

		/* data_deadline, one more second per data_min_rate bytes read. */
		*limit = "data_deadline";
		return s->phase_at + 1000LL * c->server_data_deadline + paused +
		    (long long)(s->txn->filter.bytes_in * 1000 / c->server_data_min_rate);
	}
	default:
		return 0;
	}
}

static void
deadline_arm(struct smtp_server *s)
{
	const char *limit = NULL;
	long long at = client_deadline(s, &limit), left;
	struct timeval tv;

	if (at == 0) {
		evtimer_del(s->deadline);
		return;
	}
	left = at - mono_ms();
	if (left < 0)
		left = 0;
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	evtimer_add(s->deadline, &tv);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *s = arg;
	const char *limit = NULL;
	long long at = client_deadline(s, &limit);

	(void)fd;
	(void)what;
	if (at == 0)
		return;
	if (at > mono_ms()) {
		deadline_arm(s);	/* the client made progress meanwhile */
		return;
	}
	client_timed_out(s, limit);
}

static void
smtp_enter_state(struct smtp_server *s, enum smtp_state next)
{
	struct timeval tv = { 0, 0 };
	enum smtp_state prev = s->state;

	if (s->state == SMTP_S_CLOSED)
		return;
	log_debug("session=%s state=%s -> %s", s->id, state_names[s->state], state_names[next]);
	s->state = next;
	switch (next) {
	case SMTP_S_GREETED:
	case SMTP_S_IDLE:
	case SMTP_S_MAIL:
		if (s->draining && next == SMTP_S_IDLE) {
			s->draining = false;
			smtp_server_shutdown(s);
			break;
		}
		/* Reading is timed per whole line (client_deadline), writing
		 * per stall: a client that reads nothing is cut as well. */
		tv.tv_sec = s->conf->server_command_timeout;
		bufferevent_set_timeouts(s->bev, NULL, &tv);
		s->line_at = mono_ms();
		if (next == SMTP_S_GREETED)
			s->phase_at = s->line_at;
		break;
	case SMTP_S_BODY:
	case SMTP_S_BODY_DISCARD:
		tv.tv_sec = s->conf->server_data_timeout;
		bufferevent_set_timeouts(s->bev, &tv, &tv);
		if (prev != SMTP_S_BODY && prev != SMTP_S_BODY_DISCARD) {
			s->phase_at = mono_ms();
			s->paused_ms = s->paused_at = 0;
		}
		break;
	case SMTP_S_TLS:
		tv.tv_sec = s->conf->server_command_timeout;
		s->phase_at = mono_ms();
		tls_handshake_start(s);
		if (s->bev != NULL)
			bufferevent_set_timeouts(s->bev, &tv, &tv);
		break;
	case SMTP_S_QUIT:
		tv.tv_sec = CLOSE_FLUSH_TIMEOUT;
		bufferevent_set_timeouts(s->bev, NULL, &tv);
		bufferevent_disable(s->bev, EV_READ);
		/* A TLS filter hands its records to the socket bufferevent
		 * underneath: closing before that one drains loses the last reply. */
		evutil_gettimeofday(&s->quit_at, NULL);
		flush_check(-1, 0, s);
		break;
	case SMTP_S_CLOSED:
		event_active(s->reaper, EV_TIMEOUT, 0);
		if (s->bev != NULL)
			bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		break;
	default:
		break;
	}
	/* After a nested change (IDLE -> QUIT when draining) the inner call armed it. */
	if (s->state == next)
		deadline_arm(s);
}

static void
smtp_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_server *s = arg;

	(void)bev;
	smtp_process_input(s);
}

static void
smtp_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_server *s = arg;

	(void)bev;
	if (s->state == SMTP_S_QUIT)
		flush_check(-1, 0, s);
	else if (s->write_blocked && !output_full(s)) {
		/* The client read its replies: take its next commands. */
		s->write_blocked = false;
		smtp_process_input(s);
	}
}

/* A client limit ran out: 421, and the client keeps whatever it had not finished. */
static void
client_timed_out(struct smtp_server *s, const char *limit)
{
	log_notice("session=%s event=client_timeout state=%s client=%s limit=%s", s->id,
	    state_names[s->state], s->ip, limit);
	reply_now(s, 421, "4.4.2", "%s Timeout, closing connection", s->env->rt->hostname);
	smtp_enter_state(s, SMTP_S_QUIT);
}

static void
smtp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_server *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == SMTP_S_TLS) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);

			s->tls = true;
			snprintf(s->tls_version, sizeof(s->tls_version), "%s", SSL_get_version(ssl));
			log_info("session=%s event=client_tls version=%s cipher=%s", s->id,
			    s->tls_version, SSL_get_cipher_name(ssl));
			/* RFC 3207 §4.2: forget everything learnt before TLS. */
			s->helo[0] = '\0';
			s->esmtp = false;
			txn_reset(s);
			smtp_enter_state(s, SMTP_S_GREETED);
			smtp_process_input(s);
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state != SMTP_S_QUIT) {
			client_timed_out(s, (what & BEV_EVENT_WRITING) ? "write_stalled" :
			    (s->state == SMTP_S_BODY || s->state == SMTP_S_BODY_DISCARD) ? "data_timeout" :
			    "command_timeout");
			return;
		}
	} else if (s->state == SMTP_S_TLS) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		char buf[256];

		ERR_error_string_n(e, buf, sizeof(buf));
		log_notice("session=%s event=client_tls_failed client=%s reason=%s", s->id, s->ip,
		    log_quote(e ? buf : "connection closed"));
	} else if (s->state != SMTP_S_QUIT) {
		log_info("session=%s event=client_disconnected state=%s client=%s", s->id,
		    state_names[s->state], s->ip);
	}
	smtp_enter_state(s, SMTP_S_CLOSED);
}

static void
reap(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *s = arg;

	(void)fd;
	(void)what;
	log_info("session=%s event=disconnect client=%s messages=%lu", s->id, s->ip, s->messages);
	txn_reset(s);
	if (s->closed != NULL)
		s->closed(s->closed_arg, s);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	event_free(s->reaper);
	event_free(s->flush_timer);
	event_free(s->deadline);
	free(s);
}

void
smtp_server_shutdown(struct smtp_server *s)
{
	switch (s->state) {
	case SMTP_S_GREETED:
	case SMTP_S_IDLE:
	case SMTP_S_MAIL:
		/* RFC 5321 §3.8: a server may close with 421 at any time; no
		 * message has been accepted here, so nothing is lost. */
		reply_now(s, 421, "4.3.2", "%s Service shutting down, closing connection",
		    s->env->rt->hostname);
		smtp_enter_state(s, SMTP_S_QUIT);
		break;
	case SMTP_S_QUIT:
	case SMTP_S_CLOSED:
		break;
	default:
		/* A transaction is waiting for the upstream: finish it first. */
		s->draining = true;
		break;
	}
}

bool
smtp_server_awaiting_helo(const struct smtp_server *s)
{
	return s->state == SMTP_S_GREETED;
}

void
smtp_server_evict(struct smtp_server *s, const char *why, unsigned idle_seconds)
{
	if (s->state != SMTP_S_GREETED)
		return;
	log_notice("session=%s event=client_evicted client=%s idle=%us reason=%s", s->id, s->ip,
	    idle_seconds, log_quote(why));
	reply_now(s, 421, "4.7.0", "%s Too many connections; closing this one, idle before EHLO",
	    s->env->rt->hostname);
	smtp_enter_state(s, SMTP_S_QUIT);
}

void
smtp_server_abort(struct smtp_server *s)
{
	if (s->state == SMTP_S_QUIT || s->state == SMTP_S_CLOSED)
		return;
	/* No 250 has been given for what is in flight: a 421 leaves it in
	 * the client's queue (SMTP-10); the upstream is cut mid-way. */
	txn_reset(s);
	s->paused = false;
	reply_now(s, 421, "4.3.2", "%s Service shutting down, try again later", s->env->rt->hostname);
	log_notice("session=%s event=aborted_at_shutdown client=%s", s->id, s->ip);
	smtp_enter_state(s, SMTP_S_QUIT);
}

struct smtp_server *
smtp_server_new(const struct smtp_server_env *env, evutil_socket_t fd, const struct sockaddr *peer,
    smtp_server_closed_cb closed, void *arg)
{
	struct smtp_server *s = xcalloc(1, sizeof(*s));

	s->env = env;
	s->conf = env->rt->conf;
	s->lmtp = env->lmtp;
	s->local_peer = peer->sa_family == AF_UNIX;
	s->closed = closed;
	s->closed_arg = arg;
	smtp_session_id_new(s->id);
	memcpy(&s->peer, peer, peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    peer->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr));
	netaddr_ntop(peer, s->ip, sizeof(s->ip));
	s->reaper = event_new(env->rt->base, -1, 0, reap, s);
	s->flush_timer = evtimer_new(env->rt->base, flush_check, s);
	s->deadline = evtimer_new(env->rt->base, deadline_cb, s);
	s->bev = bufferevent_socket_new(env->rt->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	bufferevent_setcb(s->bev, smtp_read_cb, smtp_write_cb, smtp_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH_WATER);
	log_info("session=%s event=connect client=%s", s->id, s->ip);
	s->state = SMTP_S_GREETED;
	evbuffer_add_printf(bufferevent_get_output(s->bev), "220 %s %s stsproxy\r\n",
	    env->rt->hostname, s->lmtp ? "LMTP" : "ESMTP");
	smtp_enter_state(s, SMTP_S_GREETED);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	return s;
}

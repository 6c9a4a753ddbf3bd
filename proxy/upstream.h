/*
 * upstream.h - one outgoing SMTP transaction: find the MX set and the
 * MTA-STS policy of the recipient domain, connect to MXs in order under
 * the policy, and relay MAIL, RCPT, DATA and the body.
 *
 * The client session (smtp_server.c) drives it with the verbs below and
 * hears back through a single callback. The upstream never answers the
 * client itself: it hands over the upstream's own replies (PRX) or, when
 * no MX could be used, the 4xx/5xx reply of spec §11.
 *
 * Lifetime: upstream_free() may be called at any time, also from inside
 * the callback; the object then parks its connection for the next
 * transaction or says QUIT (when the connection is clean) and frees
 * itself later from the event loop, never on the caller's stack.
 *
 * Inside, each file answers one question: mx_walk.c which MX and
 * address next, and when to give up with which reply; upstream.c (the
 * UPSTREAM_S_* state machine) the SMTP dialogue with one MX;
 * upstream_conn.c the connection, which upstream_pool.c parks between
 * transactions; upstream_record.c what goes to TLS-RPT.
 */
#ifndef STSPROXY_UPSTREAM_H
#define STSPROXY_UPSTREAM_H

#include <stdbool.h>

#include "proxy/runtime.h"
#include "proxy/smtp_command.h"
#include "proxy/smtp_reply.h"

struct evbuffer;
struct upstream;

enum upstream_event {
	UPSTREAM_EV_READY,	/* MAIL FROM accepted upstream: RCPTs may follow */
	UPSTREAM_EV_FAILED,	/* no transaction: reply is for every recipient */
	UPSTREAM_EV_REPLY,	/* the upstream's reply to RCPT, DATA or end-of-data */
	UPSTREAM_EV_WRITABLE,	/* the body buffer drained: the client may be read again */
	UPSTREAM_EV_LOST,	/* connection lost mid-transaction: reply is a 4xx */
};

/** reply is borrowed for the duration of the callback. */
typedef void (*upstream_cb)(void *arg, enum upstream_event event, const struct smtp_reply *reply);

/**
 * Start a transaction for mail (copied) to recipients in domain
 * (normalised, copied). session is the client session id for logs
 * (copied). rt is borrowed and must outlive the upstream. Resolution
 * starts at once; cb runs later, never from inside this call.
 */
struct upstream *upstream_new(struct runtime *rt, const char *session, const char *domain,
    const struct smtp_path *mail, upstream_cb cb, void *arg);

/** Deliver without MTA-STS: opportunistic TLS, cleartext allowed (RPT-18). */
#define UPSTREAM_F_NO_POLICY	0x01
/** Hand no outcome to the TLS-RPT recorder (RPT-18). */
#define UPSTREAM_F_NO_RECORD	0x02

/** upstream_new() with UPSTREAM_F_* flags, for stsproxy's own mail (TLS reports). */
struct upstream *upstream_new_flags(struct runtime *rt, const char *session, const char *domain,
    const struct smtp_path *mail, unsigned flags, upstream_cb cb, void *arg);

/**
 * upstream_new_flags() through one fixed relay instead of the domain's
 * MX set: relay is "ADDRESS:PORT" or "[IPV6]:PORT" (copied), and neither
 * the MX set nor a policy is looked up. A relay that does not parse
 * fails the transaction (EV_FAILED) like an MX without an address. How
 * the report mailer reaches [report] submission_relay.
 */
struct upstream *upstream_new_relay(struct runtime *rt, const char *session, const char *domain,
    const struct smtp_path *mail, const char *relay, unsigned flags, upstream_cb cb, void *arg);

/**
 * The transaction's first recipient (copied), before EV_READY: with
 * PIPELINING its RCPT goes out right behind MAIL (RFC 2920), and the
 * upstream_rcpt() the client session makes for it after EV_READY sends
 * nothing more. Without PIPELINING it changes nothing.
 */
void upstream_first_rcpt(struct upstream *up, const struct smtp_path *rcpt);

/** Send RCPT for rcpt after EV_READY; the reply comes as EV_REPLY. 0 or -1 (wrong state). */
int upstream_rcpt(struct upstream *up, const struct smtp_path *rcpt);

/** Send DATA; the reply comes as EV_REPLY (354 or a refusal). 0 or -1. */
int upstream_data(struct upstream *up);

/**
 * The buffer to append body bytes to after a 354 (already dot-stuffed,
 * CR LF lines, as data_filter makes them), or NULL when not in the body.
 */
struct evbuffer *upstream_body(struct upstream *up);

/**
 * true if the body buffer is above its high-water mark: stop reading
 * the client until EV_WRITABLE.
 */
bool upstream_body_full(struct upstream *up);

/** The terminator is in the body buffer: wait for the final reply (EV_REPLY). 0 or -1. */
int upstream_body_end(struct upstream *up);

/** The MX host in use, once connected ("" before). */
const char *upstream_mx_host(const struct upstream *up);

/** Stop: no more callbacks. Frees later, after a QUIT when possible. NULL is fine. */
void upstream_free(struct upstream *up);

/** Upstream objects alive, and connections still saying QUIT (for tests and shutdown). */
unsigned upstream_count(void);

/**
 * The verbs above as a table: how a client session reaches upstream.
 * The daemon uses upstream_default_ops; the unit tests of the client
 * session substitute a scripted fake to drive it from dialogue files
 * without DNS or MX servers.
 */
struct upstream_ops {
	struct upstream *(*open)(struct runtime *rt, const char *session, const char *domain,
	    const struct smtp_path *mail, upstream_cb cb, void *arg);
	int		 (*rcpt)(struct upstream *up, const struct smtp_path *rcpt);
	int		 (*data)(struct upstream *up);
	struct evbuffer	*(*body)(struct upstream *up);
	bool		 (*body_full)(struct upstream *up);
	int		 (*body_end)(struct upstream *up);
	void		 (*free)(struct upstream *up);
	const char	*(*mx_host)(const struct upstream *up);
	/* optional: the first recipient, known before MAIL goes upstream, so
	 * it can be pipelined behind it; rcpt() for it then sends nothing */
	void		 (*first_rcpt)(struct upstream *up, const struct smtp_path *rcpt);
};

/** upstream_new(), upstream_rcpt() and the rest of this header. */
extern const struct upstream_ops upstream_default_ops;

#endif

/*
 * fanout.h - one LMTP transaction, many routes (RFC 2033).
 *
 * The recipients of one MAIL are grouped by domain as they come; each
 * domain gets an upstream transaction of its own (upstream.h: MX walk,
 * policy, connection reuse), opened at the domain's first RCPT, so the
 * domains resolve, connect and answer in parallel. Every RCPT gets the
 * reply of its own domain's upstream, and the replies go out in RCPT
 * order (RFC 2920, PRX). The body, filtered once by the session, is
 * copied to every upstream that accepted a recipient; the client is
 * paused while any of them is full, so memory stays bounded by the
 * upstreams' high-water marks. After the end of data each accepted
 * recipient gets its own upstream's final reply, in RCPT order (LMTP-3,
 * LMTP-7), or the 4xx stsproxy gives when that upstream was lost; a
 * domain that fails affects only its own recipients.
 *
 * The client session (smtp_server.c, LMTP mode) drives it with the verbs
 * below and hears back through one callback, always from the event loop,
 * never from inside one of these calls. fanout_free() may be called at
 * any time, also from inside the callback: the object then lets go of
 * its upstreams at once and frees itself later from the loop.
 *
 * States FANOUT_S_* (traced at debug level): RCPTS while recipients come,
 * DATA while the upstreams answer DATA, BODY, EOM while the final replies
 * come, DONE. Each domain's route has states ROUTE_S_* of its own.
 */
#ifndef STSPROXY_FANOUT_H
#define STSPROXY_FANOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/runtime.h"
#include "proxy/smtp_command.h"
#include "proxy/smtp_reply.h"
#include "proxy/upstream.h"

struct evbuffer;
struct fanout;

enum fanout_event {
	FANOUT_EV_RCPT,		/* the reply to the next RCPT, in RCPT order */
	FANOUT_EV_DATA,		/* every route answered DATA: 354, or the refusal for all */
	FANOUT_EV_WRITABLE,	/* no route's body buffer is full any more: read the client */
	FANOUT_EV_FINAL,	/* the end-of-data reply of the next accepted recipient */
	FANOUT_EV_DONE,		/* every accepted recipient has had its final reply */
};

/** What an event is about; everything borrowed for the callback's duration. */
struct fanout_answer {
	const char		*address;	/* RCPT, FINAL: the recipient as the client wrote it */
	const char		*domain;	/* its domain (A-label), or "" */
	const char		*mx;		/* the MX host that answered, or "" */
	const struct smtp_reply	*reply;
	const char		*note;		/* why stsproxy answered itself, or NULL */
	bool			 local;		/* RCPT: answered by the session (fanout_rcpt_local) */
	bool			 accepted;	/* RCPT: a 2xx */
	unsigned		 domain_rcpts;	/* FINAL: recipients its upstream accepted */
};

typedef void (*fanout_cb)(void *arg, enum fanout_event event, const struct fanout_answer *answer);

/**
 * Start a transaction for mail (copied). ops opens the upstreams; rt,
 * ops borrowed, must outlive the object; session (copied) names the
 * client session in logs and in stsproxy's own 4xx replies. At most
 * max_domains domains get an upstream; recipients of further domains are
 * answered 452 4.5.3 (SMTP-8).
 */
struct fanout *fanout_new(struct runtime *rt, const struct upstream_ops *ops, const char *session,
    const struct smtp_path *mail, unsigned max_domains, fanout_cb cb, void *arg);

/**
 * A RCPT for domain (the A-label form of rcpt's domain; both copied as
 * far as needed): handed to the domain's upstream, opened now if this is
 * the domain's first recipient. Its reply comes as FANOUT_EV_RCPT.
 */
void fanout_rcpt(struct fanout *f, const struct smtp_path *rcpt, const char *domain);

/**
 * A reply the session gives itself to a command line read while RCPT
 * replies are still owed (a refused RCPT, a line too long): kept in
 * order and handed back as FANOUT_EV_RCPT with local set. reply copied.
 */
void fanout_rcpt_local(struct fanout *f, const struct smtp_reply *reply);

/** true while a RCPT reply has not been handed out by FANOUT_EV_RCPT. */
bool fanout_rcpts_pending(const struct fanout *f);

/** Recipients an upstream accepted so far. */
unsigned fanout_accepted(const struct fanout *f);

/**
 * DATA to every upstream with an accepted recipient; the others are let
 * go. Only when no RCPT reply is pending and a recipient was accepted;
 * the verdict comes as FANOUT_EV_DATA. 0, or -1 when called otherwise.
 */
int fanout_data(struct fanout *f);

/**
 * Copy the body bytes in chunk (dot-stuffed CR LF lines, as data_filter
 * makes them) to every upstream still taking the body, and drain chunk.
 * With no upstream left the bytes are dropped.
 */
void fanout_body_write(struct fanout *f, struct evbuffer *chunk);

/**
 * true while some upstream's body buffer is above its high-water mark:
 * stop reading the client until FANOUT_EV_WRITABLE.
 */
bool fanout_body_full(struct fanout *f);

/**
 * The whole message is refused by stsproxy itself (too big): every
 * upstream still in the body is cut, so its MX discards the message, and
 * reply (copied) becomes every accepted recipient's final reply.
 */
void fanout_body_abort(struct fanout *f, const struct smtp_reply *reply);

/** The terminator was written: the final replies come as FANOUT_EV_FINAL, then FANOUT_EV_DONE. */
void fanout_body_end(struct fanout *f);

/** Domains that got an upstream in this transaction. */
unsigned fanout_domains(const struct fanout *f);

/** Stop: no more callbacks; upstreams let go now, the object freed later. NULL is fine. */
void fanout_free(struct fanout *f);

#endif

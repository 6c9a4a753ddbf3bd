/*
 * rpt_sender.h - daily TLS-RPT delivery inside the daemon.
 *
 * After each UTC day ends, and a random delay up to [report] max_delay
 * (RPT-10), the day's reports are planned: one outbox entry per policy
 * domain and https: destination of its _smtp._tls record. Entries are
 * kept in the report database, so a restart loses none, and retried with
 * exponential backoff from [report] retry_interval until 24 hours after
 * the first attempt (RPT-19).
 */
#ifndef STSPROXY_RPT_SENDER_H
#define STSPROXY_RPT_SENDER_H

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "policy/resolver.h"
#include "report/rpt_report.h"
#include "report/rpt_store.h"
#include "report/tlsrpt_record.h"

struct event_base;
struct rpt_sender;
struct rpt_destinations;

/** Everything a _smtp._tls lookup found; valid only during the callback. */
struct rpt_record_facts {
	const char				*domain;
	enum dns_status				 dns_status;
	enum dns_security			 security;
	const char				*dns_why;	/* resolver's explanation, or NULL */
	const struct strlist			*records;	/* every TXT record, joined (RPT-4) */
	const struct tlsrpt_record_result	*record;	/* the selection (RPT-1 ... RPT-5) */
};

struct rpt_record_lookup;
typedef void (*rpt_record_cb)(void *arg, const struct rpt_record_facts *facts);

/**
 * Look up _smtp._tls.<domain> on resolver (borrowed) and select the
 * record. cb runs once, later, from the loop, unless cancelled first.
 * NULL (no callback) when the query cannot start.
 */
struct rpt_record_lookup *rpt_record_lookup(struct resolver *resolver, const char *domain,
    rpt_record_cb cb, void *arg);

/** Abandon a lookup: the callback will not run. NULL is fine. */
void rpt_record_lookup_cancel(struct rpt_record_lookup *lookup);

/** The usable destinations of a domain's _smtp._tls record, or why none. */
typedef void (*rpt_destinations_cb)(void *arg, const char *domain, const struct strlist *rua,
    const char *why_none);

/**
 * Look up _smtp._tls.<domain> and select the record (RPT-1 ... RPT-5).
 * cb runs once, later, with rua NULL and a reason when there is none.
 * 0, or -1 (no callback) when the query cannot start.
 */
int rpt_destinations_lookup(struct resolver *resolver, const char *domain,
    rpt_destinations_cb cb, void *arg);

/**
 * How mailto: reports leave: a service of the relay's upstream engine,
 * handed down at start-up so report/ never includes proxy/ headers.
 */
typedef void (*rpt_mail_done)(void *arg, bool sent, const char *reason);
struct rpt_mailer {
	/**
	 * Send msg (CR LF lines, not dot-stuffed; copied) from the envelope
	 * sender from to the address to. done runs once, later, unless the
	 * returned job is cancelled. NULL (no callback) if it cannot start.
	 */
	void	*(*send)(void *ctx, const char *from, const char *to, const char *msg,
	    rpt_mail_done done, void *arg);
	void	 (*cancel)(void *job);
	void	 *ctx;
};

/**
 * All borrowed, outliving the sender. mailer may be NULL: mailto:
 * destinations are then skipped.
 */
struct rpt_sender *rpt_sender_new(struct event_base *base, const struct conf *conf,
    struct resolver *resolver, SSL_CTX *ssl_ctx, struct rpt_store *store,
    const struct rpt_identity *id, const struct rpt_mailer *mailer);

/** Stop; deliveries in flight are abandoned and stay pending in the outbox. */
void rpt_sender_free(struct rpt_sender *sender);

#endif

/*
 * rpt_deliver.h - the one way a TLS-RPT report leaves: look up a policy
 * domain's destinations in _smtp._tls (RPT-1 ... RPT-5), and deliver the
 * report of a day to one destination, recorded in the outbox
 * (report/rpt_outbox.h). The daemon's schedule (report/rpt_sender.c) and
 * `stsproxy report send` both call it, so a report reaches each
 * destination once, whoever sent it first.
 *
 * The lookup is also what `stsproxy check` reads of a domain's record.
 *
 * One delivery: claim the outbox entry (a destination that has the
 * report already is not sent it again unless forced; one another
 * process is sending right now is left to it), build the report from the
 * counters, send it (https: POST through report/rpt_post.c, RPT-13;
 * mailto: a DKIM-signed message through the mailer proxy/ hands down,
 * RPT-14 ... RPT-18), then record the result. A failure of the daemon is
 * retried with exponential backoff from [report] retry_interval until 24
 * hours after its first attempt (RPT-19); a failure of report send is
 * noted in the entry and leaves the daemon's schedule as it was.
 */
#ifndef STSPROXY_RPT_DELIVER_H
#define STSPROXY_RPT_DELIVER_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "policy/resolver.h"
#include "report/rpt_mail.h"
#include "report/rpt_outbox.h"
#include "report/rpt_report.h"
#include "report/rpt_store.h"
#include "report/tlsrpt_record.h"

struct event_base;
struct rpt_delivery;

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
 * The destinations view of rpt_record_lookup(), for the report senders
 * (RPT-1 ... RPT-5). cb runs once, later, with rua NULL and a reason when
 * there is none. 0, or -1 (no callback) when the query cannot start.
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

/** What a delivery needs; all borrowed, outliving every delivery. */
struct rpt_deliver_env {
	struct event_base		*base;
	const struct conf		*conf;
	struct resolver			*resolver;
	SSL_CTX				*ssl_ctx;
	struct rpt_store		*store;
	const struct rpt_identity	*id;
	/* NULL: mailto: destinations are skipped, for the reason no_mail. */
	const struct rpt_mailer		*mailer;
	const struct rpt_dkim_keys	*keys;
	const char			*no_mail;
	enum rpt_sender_kind		 by;
};

enum rpt_delivery_status {
	RPT_DELIVERY_DELIVERED,		/* the destination accepted it now */
	RPT_DELIVERY_FAILED,		/* refused or unreachable (reason) */
	RPT_DELIVERY_ALREADY,		/* delivered before (entry says when, by whom): not sent */
	RPT_DELIVERY_BUSY,		/* another process is sending it (entry.claim_pid) */
	RPT_DELIVERY_SKIPPED,		/* cannot leave from here: no mail transport (reason) */
	RPT_DELIVERY_NO_REPORT,		/* no traffic recorded for that day and domain */
	RPT_DELIVERY_STORE_ERROR,	/* the outbox cannot be read or written: not sent */
};

/** Valid during the callback. */
struct rpt_delivery_result {
	enum rpt_delivery_status status;
	const char		*day, *domain, *rua;
	char			 reason[256];	/* FAILED, SKIPPED; "" otherwise */
	int			 http_status;	/* https: the answer's status, 0 if none */
	/* The outbox entry as recorded (DELIVERED, FAILED) or as found. */
	struct rpt_outbox_entry	 entry;
	/* false when the result could not be written to the outbox: a
	 * delivered report may then be sent again (logged). */
	bool			 recorded;
};

typedef void (*rpt_deliver_cb)(void *arg, const struct rpt_delivery_result *result);

/**
 * Deliver the report of day (YYYY-MM-DD) for domain to rua. With force,
 * a destination that has it already gets it again. cb runs exactly once,
 * later, from the loop, unless the delivery is cancelled. Never NULL.
 */
struct rpt_delivery *rpt_deliver_start(const struct rpt_deliver_env *env, const char *day,
    const char *domain, const char *rua, bool force, rpt_deliver_cb cb, void *arg);

/**
 * Abandon a delivery: no callback, the transport is stopped and the
 * outbox entry is left as it was before (its claim dropped). NULL is fine.
 */
void rpt_delivery_cancel(struct rpt_delivery *delivery);

const char *rpt_delivery_status_name(enum rpt_delivery_status status);

#endif

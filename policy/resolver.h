/*
 * resolver.h - asynchronous, DNSSEC-validating DNS on the event loop.
 *
 * libunbound resolves in its own worker thread and signals completion on
 * ub_fd(); a persistent libevent read event calls ub_process(), which
 * runs our callbacks on the loop thread. No call here ever blocks the
 * loop. (Debian's libunbound links the same libevent, so
 * ub_ctx_create_event() would work, but ub_resolve_event() returns raw
 * wire packets; ub_resolve_async() returns parsed, validated RRsets.)
 */
#ifndef STSPROXY_RESOLVER_H
#define STSPROXY_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"

struct event_base;
struct resolver;
struct resolver_query;

enum dns_status {
	DNS_STATUS_OK,		/* answer with data */
	DNS_STATUS_NODATA,	/* name exists, no record of the type */
	DNS_STATUS_NXDOMAIN,
	DNS_STATUS_SERVFAIL,	/* includes REFUSED and other server errors */
	DNS_STATUS_TIMEOUT,	/* no answer within [dns] timeout */
	DNS_STATUS_BOGUS,	/* DNSSEC validation failed: never use the data */
	DNS_STATUS_ERROR,	/* local failure (out of resources, bad name) */
};

enum dns_security {
	DNS_SECURITY_INSECURE,
	DNS_SECURITY_SECURE,
	DNS_SECURITY_BOGUS,
};

/** An answer; valid only for the duration of the callback. */
struct dns_answer {
	const char		*qname;
	int			 qtype;
	enum dns_status		 status;
	enum dns_security	 security;
	int			 rcode;
	const char		*canonname;	/* after CNAMEs; NULL if none */
	size_t			 count;
	const unsigned char	*const *data;	/* rdata, names uncompressed */
	const int		*len;
	const char		*why;		/* bogus or error explanation, or NULL */
	int			 ttl;		/* seconds the answer may be kept (0: do not) */
};

typedef void (*resolver_cb)(void *arg, const struct dns_answer *answer);

/**
 * A resolver on base following [dns] in conf (forwarders, trust anchor,
 * dnssec, timeout). NULL on error with *err set (caller frees). conf must
 * outlive the resolver; caller owns the result.
 */
struct resolver *resolver_new(struct event_base *base, const struct conf *conf, char **err);

/** Cancel every pending query (no callback runs) and free. */
void resolver_free(struct resolver *resolver);

/**
 * With [dns] dnssec on, load [dns] trust_anchor_file the way a resolver
 * will on its first query, and check it holds at least one DS or DNSKEY
 * record. resolver_new() cannot tell: libunbound reads the file lazily,
 * so a broken one would only fail every lookup later. 0, or -1 with *err
 * set (caller frees) naming the file and libunbound's reason.
 */
int resolver_check_trust_anchor(const struct conf *conf, char **err);

/**
 * Look up name/type; cb runs exactly once, later, on the loop (never from
 * inside this call). Returns a handle for resolver_cancel(), which is dead
 * once cb has started. NULL only on a local failure, with no callback.
 */
struct resolver_query *resolver_query(struct resolver *resolver, const char *name, int rrtype,
    resolver_cb cb, void *arg);

/**
 * NULL while the resolver answers; otherwise why not (several queries in a
 * row timed out, or the start-up probe found no working path), for
 * readiness checks. Owned by the resolver, valid until the next call.
 */
const char *resolver_health(struct resolver *resolver);

/**
 * Mark the resolution path as not working, with why (copied), until a
 * definite answer (data, NODATA or NXDOMAIN) arrives or this is called
 * with NULL. Used by the start-up probe (policy/dns_probe.h).
 */
void resolver_set_path_down(struct resolver *resolver, const char *why);

/** Stop a pending query; its callback will not run. */
void resolver_cancel(struct resolver_query *query);

/**
 * Join the character-strings of one TXT rdata into out (STS-6, RPT-4).
 * Returns -1 when the rdata is malformed.
 */
int dns_txt_join(const unsigned char *rdata, int len, struct strbuf *out);

/**
 * Convert an uncompressed wire-format host name to lower-case text
 * without the trailing dot ("." for the root). Rejects labels with bytes
 * outside letters, digits, '-' and '_'. Returns the bytes consumed, or -1.
 */
int dns_name_from_wire(const unsigned char *wire, int len, char *out, size_t outlen);

const char *dns_status_name(enum dns_status status);
/** "NOERROR", "SERVFAIL", "REFUSED" ... for a DNS RCODE; "other" for the rest. */
const char *dns_rcode_name(int rcode);
const char *dns_security_name(enum dns_security security);

#endif

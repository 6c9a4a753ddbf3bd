/*
 * mx_resolve.h - the MX set of a recipient domain, with addresses.
 *
 * RFC 5321 §5.1 on the event loop: MX lookup (CNAMEs followed by the
 * resolver, SMTP-1), implicit MX when there is none (SMTP-2), preference
 * order with equal preferences shuffled (SMTP-3), our own host and worse
 * dropped (SMTP-5), null MX (SMTP-6), then A and AAAA of every host in
 * parallel. DNSSEC status is kept: bogus data is never used.
 */
#ifndef STSPROXY_MX_RESOLVE_H
#define STSPROXY_MX_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "policy/resolver.h"

#define MX_HOSTS_MAX	16	/* hosts kept after sorting; more are dropped */
#define MX_ADDRS_MAX	8	/* addresses kept per host and family */

enum mx_status {
	MX_STATUS_OK,		/* at least one host with an address */
	MX_STATUS_NULL_MX,	/* "MX 0 ." (RFC 7505): never deliver */
	MX_STATUS_NXDOMAIN,	/* the domain does not exist */
	MX_STATUS_NO_HOSTS,	/* no usable host: none with addresses, or only ourselves */
	MX_STATUS_TEMPFAIL,	/* SERVFAIL, timeout or DNSSEC bogus: try later */
};

struct mx_host {
	char			 name[256];
	unsigned		 preference;
	bool			 implicit;	/* the domain itself (SMTP-2) */
	struct sockaddr_storage	 addrs[2 * MX_ADDRS_MAX];
	size_t			 naddrs;
	enum dns_status		 a_status, aaaa_status;
	bool			 secure;	/* address lookups DNSSEC-secure, CNAMEs included */
	char			 canonname[256];	/* where CNAMEs led the address lookup; "" if none */
};

/** Valid only during the callback. */
struct mx_set {
	const char		*domain;
	enum mx_status		 status;
	const char		*reason;	/* for logs and replies when not OK */
	bool			 mx_secure;	/* the MX lookup was DNSSEC-secure, CNAMEs included */
	const char		*canonname;	/* where CNAMEs led the MX lookup, or NULL */
	const struct mx_host	*hosts;
	size_t			 nhosts;
};

struct mx_lookup;
typedef void (*mx_resolve_cb)(void *arg, const struct mx_set *set);

/**
 * Resolve domain (normalised) on resolver (borrowed). self is our own
 * host name (SMTP-5), or NULL. ipv6 includes AAAA lookups; IPv6
 * addresses are listed first. port goes into every address. cb runs
 * exactly once, later, unless mx_lookup_cancel() is called first.
 */
struct mx_lookup *mx_resolve(struct resolver *resolver, const char *domain, const char *self,
    bool ipv6, unsigned port, mx_resolve_cb cb, void *arg);

/**
 * The addresses of one named host, without an MX lookup: an mx_set with
 * that single host (preference 0), for callers that must reach a host
 * name they were given (the https: host of a TLS-RPT rua). Same rules,
 * callback and cancellation as mx_resolve(); status NO_HOSTS when the
 * name has no address, TEMPFAIL on DNS failure. NULL (no callback) if
 * host is not a valid name or the queries cannot start.
 */
struct mx_lookup *mx_resolve_host(struct resolver *resolver, const char *host, bool ipv6,
    unsigned port, mx_resolve_cb cb, void *arg);

/** Cancel a pending lookup: no callback runs, everything is freed. */
void mx_lookup_cancel(struct mx_lookup *lookup);

const char *mx_status_name(enum mx_status status);

/** Order MX records by preference, shuffling equal ones (SMTP-3). Exposed for tests. */
void mx_sort_shuffle(struct mx_host *hosts, size_t n);

#endif

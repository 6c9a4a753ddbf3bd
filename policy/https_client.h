/*
 * https_client.h - one HTTPS request to a host name, the one HTTPS client
 * of stsproxy: the MTA-STS policy fetch (policy/fetch.c, STS-12 ...
 * STS-17) and the TLS-RPT report POST (report/rpt_post.c, RPT-13) are
 * both a request description handed to it.
 *
 * A and AAAA are resolved in parallel with our DNSSEC resolver (an
 * address literal is used as it is); then evhttp speaks HTTP/1.1 over a
 * bufferevent_openssl from policy/tls.c (SNI and the DNS-ID check on the
 * host) to one address after the other, until one answers. The whole
 * request has a deadline, each connection an I/O timeout, and the
 * response is bounded (headers, body). The callback never runs inside a
 * libevent callback of the request, so the caller may start or cancel
 * other work from it.
 */
#ifndef STSPROXY_HTTPS_CLIENT_H
#define STSPROXY_HTTPS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "conf/log.h"
#include "policy/resolver.h"
#include "policy/result_type.h"
#include "policy/tls.h"

struct event_base;
struct https_client;

enum https_method {
	HTTPS_GET,
	HTTPS_POST,
};

/** What the server's certificate must be worth. */
enum https_cert_check {
	/* Chain to the trust store and a DNS-ID for the host (STS-14):
	 * a failed check ends the handshake and the request. */
	HTTPS_CERT_REQUIRED,
	/* Checked and described, never required (RPT-13: MAY ignore). */
	HTTPS_CERT_IGNORED,
};

/** A request; every pointer is borrowed for the https_start() call only. */
struct https_request {
	enum https_method	 method;
	const char		*host;		/* resolved, SNI, name check, Host: */
	unsigned short		 port;
	const char		*path;		/* with the query, if any */
	/* Extra header lines: name, value, name, value, ..., NULL. Host,
	 * User-Agent and "Connection: close" are always sent. */
	const char *const	*headers;
	const void		*body;		/* POST; copied */
	size_t			 body_len;
	unsigned		 io_timeout;	/* seconds, per connection */
	unsigned		 deadline;	/* seconds, the whole request */
	/* The response body is kept up to max_body bytes (more is
	 * HTTPS_TOO_LARGE); 0 reads it and drops it as it arrives, any size. */
	size_t			 max_body;
	size_t			 max_headers;	/* bytes; more is HTTPS_TOO_LARGE */
	enum https_cert_check	 cert_check;
	/* Whatever fails on one address (TLS, a broken answer, too large)
	 * moves on to the next; the default ends the request on those and
	 * moves on only after network failures (refused, reset, timeout). */
	bool			 every_address;
	enum log_subsystem	 log_sub;	/* where the debug trace goes */
};

enum https_outcome {
	HTTPS_RESPONSE,		/* an HTTP answer: status, headers, body */
	HTTPS_NO_ADDRESS,	/* the host has no A or AAAA record (reason: the DNS detail) */
	HTTPS_UNREACHABLE,	/* no address answered (reason: the last one's failure) */
	HTTPS_TLS_FAILED,	/* the handshake failed (tls_type, verify_result, reason) */
	HTTPS_BAD_RESPONSE,	/* not a valid HTTP response */
	HTTPS_TOO_LARGE,	/* headers or body over the request's limits */
	HTTPS_TIMEOUT,		/* the deadline passed */
	HTTPS_ERROR,		/* could not start or send (reason is complete) */
};

/** Valid during the callback only. */
struct https_result {
	enum https_outcome	 outcome;
	char			 reason[256];	/* when not HTTPS_RESPONSE; "" if none */
	char			 address[64];	/* address last tried, "" if none */
	int			 status;	/* HTTP status, when HTTPS_RESPONSE */
	const char		*content_type;	/* header value or NULL */
	const char		*location;	/* header value or NULL */
	const char		*body;		/* kept body (max_body > 0), never NULL */
	size_t			 body_len;
	bool			 tls_done;	/* a handshake completed */
	struct tls_peer_info	 peer;		/* when tls_done */
	long			 verify_result;	/* X509_V_*, when HTTPS_TLS_FAILED */
	enum rpt_result_type	 tls_type;	/* RFC 8460 type, when HTTPS_TLS_FAILED */
};

typedef void (*https_cb)(void *arg, const struct https_result *result);

/**
 * Start req. cb runs exactly once, later, from the loop, unless the
 * request is cancelled first; the handle is dead once cb has returned.
 * base, resolver and ssl_ctx are borrowed and must outlive the request.
 * Never NULL.
 */
struct https_client *https_start(struct event_base *base, struct resolver *resolver,
    SSL_CTX *ssl_ctx, const struct https_request *req, https_cb cb, void *arg);

/** Abandon a request; its callback will not run. NULL is fine. */
void https_cancel(struct https_client *client);

const char *https_outcome_name(enum https_outcome outcome);

#endif

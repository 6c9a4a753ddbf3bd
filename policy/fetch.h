/*
 * fetch.h - HTTPS fetch of https://mta-sts.<domain>/.well-known/mta-sts.txt
 * (RFC 8461 sections 3.2, 3.3, 7.1: STS-12 ... STS-17, STS-21).
 *
 * A GET through policy/https_client.c with the certificate required
 * (SNI and name check on mta-sts.<domain>), a body cap ([policy]
 * max_body_size) and a total deadline ([policy] fetch_timeout); then the
 * answer is judged here: 200 only, no redirects, text/plain only. Every
 * failure carries its RFC 8460 result type and a reason an operator can
 * act on.
 */
#ifndef STSPROXY_FETCH_H
#define STSPROXY_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "policy/resolver.h"
#include "policy/result_type.h"
#include "policy/tls.h"

struct event_base;
struct policy_fetch;

struct fetch_result {
	bool			 ok;		/* HTTP 200 text/plain within limits */
	enum rpt_result_type	 type;		/* when !ok */
	char			 reason[256];	/* when !ok */
	char			 url[320];
	char			 address[64];	/* address last tried, "" if none */
	int			 http_status;	/* 0 if no response */
	char			 content_type[128];
	bool			 tls_done;	/* a handshake completed */
	struct tls_peer_info	 peer;		/* when tls_done */
	const char		*body;		/* when ok; valid during callback */
	size_t			 body_len;
};

typedef void (*policy_fetch_cb)(void *arg, const struct fetch_result *result);

/**
 * Start fetching the policy of domain (normalised). cb runs exactly once,
 * later, from the loop. resolver, ssl_ctx and conf are borrowed and must
 * outlive the fetch. Returns a handle for policy_fetch_cancel(), dead once
 * cb has started.
 */
struct policy_fetch *policy_fetch_start(struct event_base *base, struct resolver *resolver,
    SSL_CTX *ssl_ctx, const struct conf *conf, const char *domain,
    policy_fetch_cb cb, void *arg);

/** Abandon a fetch; the callback will not run. */
void policy_fetch_cancel(struct policy_fetch *fetch);

/**
 * true if a Content-Type header value names text/plain (STS-16): the
 * media type is compared case-insensitively, parameters are ignored.
 */
bool fetch_content_type_ok(const char *value);

#endif

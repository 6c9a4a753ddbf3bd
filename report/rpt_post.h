/*
 * rpt_post.h - deliver a gzipped report to an https: rua (RPT-13).
 *
 * POST with Content-Type application/tlsrpt+gzip through
 * policy/https_client.c; only a 2xx answer counts as delivered. The host
 * name is resolved with our resolver and every address gets its chance,
 * whatever failed on the one before. The endpoint's certificate is
 * checked but not required (RFC 8460 section 3 lets senders ignore
 * certificate errors, and a report lost to a receiver's expired
 * certificate helps nobody). The answer's body is read and dropped.
 */
#ifndef STSPROXY_RPT_POST_H
#define STSPROXY_RPT_POST_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "policy/resolver.h"

struct event_base;
struct rpt_post;

struct rpt_post_result {
	bool	 delivered;	/* a 2xx answer */
	int	 http_status;	/* 0 when no answer */
	char	 reason[256];	/* when not delivered */
};

typedef void (*rpt_post_cb)(void *arg, const struct rpt_post_result *result);

/**
 * POST body (copied) to url. cb runs exactly once, later, from the loop.
 * base, resolver and ssl_ctx are borrowed. NULL when url is not a usable
 * https: URL (no callback then).
 */
struct rpt_post *rpt_post_start(struct event_base *base, struct resolver *resolver,
    SSL_CTX *ssl_ctx, const char *url, const void *body, size_t len, unsigned timeout,
    rpt_post_cb cb, void *arg);

void rpt_post_cancel(struct rpt_post *post);

/** gzip (RFC 1952) in into out; 0 or -1. */
int rpt_gzip(const void *in, size_t len, struct strbuf *out);

#endif

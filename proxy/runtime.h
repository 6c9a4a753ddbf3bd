/*
 * runtime.h - the policy stack one process runs on: event loop, resolver,
 * TLS context, policy cache and engine, and the host name it speaks as,
 * built from a configuration.
 *
 * The relay daemon (serve) and the command-line tools (policy, cache,
 * report) build it the same way, so a lookup from the command line sees
 * exactly the policy behaviour the daemon applies.
 */
#ifndef STSPROXY_RUNTIME_H
#define STSPROXY_RUNTIME_H

#include "conf/conf.h"
#include "policy/cache.h"
#include "policy/engine.h"
#include "policy/resolver.h"

struct runtime {
	struct event_base	*base;
	const struct conf	*conf;		/* borrowed */
	struct resolver		*resolver;
	SSL_CTX			*ssl_ctx;
	struct policy_cache	*cache;
	struct policy_engine	*engine;
	char			 hostname[256];	/* [hostname] or the system's */
};

/**
 * Build the stack over conf (borrowed; must outlive the runtime). NULL on
 * error, with the reason logged. Caller frees with runtime_free().
 */
struct runtime *runtime_new(const struct conf *conf);
void runtime_free(struct runtime *rt);

#endif

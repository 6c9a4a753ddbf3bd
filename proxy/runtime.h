/*
 * runtime.h - the policy stack one process runs on: event loop, resolver,
 * TLS context, policy cache and engine, built from a configuration.
 *
 * Shared by the command-line tools now and by the relay daemon later, so
 * both see exactly the same policy behaviour.
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

/*
 * engine.h - which MTA-STS policy applies to a domain right now.
 *
 * The one asynchronous entry point of the policy layer: TXT discovery
 * (STS-1 ... STS-11), HTTPS fetch (STS-12 ... STS-21), parsing (STS-22 ...
 * STS-30) and the cache rules (STS-31 ... STS-35), with [policy] override
 * applied last. The relay calls policy_engine_resolve() per transaction;
 * the daemon calls policy_engine_refresh_due() from a timer (STS-33).
 */
#ifndef STSPROXY_ENGINE_H
#define STSPROXY_ENGINE_H

#include <stdbool.h>
#include <time.h>

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "policy/cache.h"
#include "policy/fetch.h"
#include "policy/resolver.h"
#include "policy/result_type.h"
#include "policy/sts_policy.h"
#include "policy/sts_record.h"

struct event_base;
struct policy_engine;
struct policy_lookup;

/** Minimum wait after a failed fetch before fetching the same id (STS-18). */
#define POLICY_FETCH_BACKOFF	300

enum policy_source {
	POLICY_SOURCE_NONE,	/* no policy applies */
	POLICY_SOURCE_FRESH,	/* fetched during this lookup */
	POLICY_SOURCE_CACHE,	/* an unexpired cached policy */
};

/** Lookup flags. */
#define POLICY_F_NO_CACHE	0x01	/* neither read nor write the cache */
#define POLICY_F_REFRESH	0x02	/* fetch even if the TXT id is unchanged (STS-33) */

/** Everything a lookup found out; valid only during the callback. */
struct policy_result {
	const char		*domain;
	enum policy_source	 source;
	enum sts_mode		 mode;		/* effective, after override */
	const struct sts_policy	*policy;	/* NULL when source is NONE */
	const char		*id;
	time_t			 fetched_at, expires_at;
	const char		*override_mode;	/* non-NULL when [policy] override applied */

	/* TXT discovery */
	enum dns_status		 txt_status;
	enum dns_security	 txt_security;
	const char		*txt_canonname;	/* CNAME target, or NULL */
	const struct strlist	*txt_records;
	struct sts_record_result txt;

	/* HTTPS fetch, when one ran (body not available) */
	const struct fetch_result *fetch;
	const struct policy_diags *parse_diags;	/* when a body was parsed */

	/* failure, with its RFC 8460 result type */
	enum rpt_result_type	 failure;	/* RPT_RESULT_NONE if none */
	const char		*failure_reason;
	bool			 failure_reportable; /* false under a cached "none" (STS-35) */
	bool			 backoff;	/* fetch skipped: failed recently */
	time_t			 next_fetch_at;	/* when backoff */

	const char		*note;		/* one sentence: why this verdict */
	bool			 cache_enabled;
};

typedef void (*policy_lookup_cb)(void *arg, const struct policy_result *result);

/**
 * An engine over borrowed parts, which must outlive it: the loop, the
 * configuration, the resolver, a client TLS context and the cache.
 */
struct policy_engine *policy_engine_new(struct event_base *base, const struct conf *conf,
    struct resolver *resolver, SSL_CTX *ssl_ctx, struct policy_cache *cache);

/**
 * Use conf (borrowed) for lookups that start from now on: [policy]
 * override, refresh_interval, fetch limits. For a configuration reload;
 * the old conf must stay alive while earlier lookups run.
 */
void policy_engine_set_conf(struct policy_engine *engine, const struct conf *conf);

/** Cancel pending lookups (no callbacks) and free. */
void policy_engine_free(struct policy_engine *engine);

/**
 * Find the policy in effect for domain (any case, trailing dot allowed).
 * cb runs exactly once, later, from the loop. Returns a handle for
 * policy_lookup_cancel(), dead once cb has started.
 */
struct policy_lookup *policy_engine_resolve(struct policy_engine *engine, const char *domain,
    unsigned flags, policy_lookup_cb cb, void *arg);

void policy_lookup_cancel(struct policy_lookup *lookup);

/**
 * Refresh in the background every cached policy fetched more than
 * [policy] refresh_interval ago (and not failed in the last 5 minutes).
 * done (may be NULL) runs once all have finished, with counts.
 * Returns the number of refreshes started.
 */
long policy_engine_refresh_due(struct policy_engine *engine,
    void (*done)(void *arg, long ok, long failed), void *arg);

/** true if entry is due for a proactive refresh at now. */
bool policy_refresh_due(const struct policy_cache_entry *entry, time_t now,
    unsigned refresh_interval);

enum policy_action {
	POLICY_ACTION_USE_CACHE,	/* no fetch: the cache (or nothing) applies */
	POLICY_ACTION_FETCH,
	POLICY_ACTION_BACKOFF,		/* fetch wanted, but the same id failed recently */
};

/**
 * The cache rules as a pure function: given the cached entry (or NULL),
 * the TXT discovery result (NULL on a DNS failure), the time and the
 * flags, what to do (STS-10, STS-18, STS-20, STS-31, STS-32, STS-33).
 */
enum policy_action policy_decide(const struct policy_cache_entry *entry,
    const struct sts_record_result *txt, time_t now, unsigned flags);

const char *policy_source_name(enum policy_source source);

#endif

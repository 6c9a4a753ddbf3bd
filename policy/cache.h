/*
 * cache.h - the persistent MTA-STS policy cache (STS-31 ... STS-35).
 *
 * Entries are small JSON documents keyed by the normalised domain, kept
 * by one of two backends behind this one interface:
 *   - LMDB (policy/cache_lmdb.c), <state_dir>/policy.mdb, shared by the
 *     processes of one host: the default;
 *   - PostgreSQL (policy/cache_pg.c), [store] share_policies = yes: one
 *     table for a fleet of relays, so one fetch serves them all, with the
 *     LMDB cache kept as this host's copy for when the database is down.
 * The cache rules (id comparison, max_age, back-off, refresh) are the
 * engine's (policy/engine.c) and the same over both. Writers that race
 * (two relays fetching the same domain) are merged, not overwritten: the
 * newer policy and the newer failure win (policy_cache_entry_merge()).
 * A cache that cannot be used is disabled or degraded with a log line,
 * never fatal to mail flow.
 */
#ifndef STSPROXY_CACHE_H
#define STSPROXY_CACHE_H

#include <stdbool.h>
#include <time.h>

#include "conf/conf.h"
#include "policy/result_type.h"
#include "policy/sts_policy.h"

struct event_base;
struct policy_cache;
struct policy_cache_read;

/** One domain's cached state. Owned by whoever holds the pointer. */
struct policy_cache_entry {
	char			*domain;
	/* the policy in force, if any fetch ever succeeded */
	char			*id;		/* TXT id it was fetched under */
	struct sts_policy	*policy;	/* NULL: no policy cached */
	time_t			 fetched_at;	/* last successful fetch */
	time_t			 expires_at;	/* fetched_at + max_age */
	/* the last failed fetch, for back-off (STS-18) and reporting */
	char			*fail_id;	/* TXT id that failed; NULL: none */
	time_t			 fail_at;
	enum rpt_result_type	 fail_type;
	char			*fail_reason;
	unsigned		 fail_count;	/* consecutive failures */
};

/**
 * Open (creating if needed) the cache conf asks for: the LMDB one under
 * conf->state_dir, or with [store] share_policies the shared one (whose
 * connection and thread serve base's loop; base may be NULL for tools
 * that only make synchronous calls). Never NULL: when the database cannot
 * be used the cache is disabled, lookups miss and stores do nothing, and
 * the reason is logged. conf and base are borrowed.
 */
struct policy_cache *policy_cache_open(const struct conf *conf, struct event_base *base);
/** Close; writes still queued for the shared database are made first. NULL is fine. */
void policy_cache_close(struct policy_cache *cache);

/** false when the database could not be opened. */
bool policy_cache_enabled(const struct policy_cache *cache);
/** Where the cache lives: the LMDB file, or the database. Owned by cache. */
const char *policy_cache_path(const struct policy_cache *cache);
/** NULL when the cache works as configured, else why not (for /healthz). */
const char *policy_cache_health(struct policy_cache *cache);

/**
 * The entry for domain, or NULL. Caller owns the result. May wait for the
 * shared database (up to [store] timeout): for command-line tools; the
 * relay's loop uses policy_cache_read_start().
 */
struct policy_cache_entry *policy_cache_lookup(struct policy_cache *cache, const char *domain);

/** The answer of a read: entry (or NULL when none) is the callee's. */
typedef void (*policy_cache_read_cb)(void *arg, struct policy_cache_entry *entry);

/**
 * Look domain up without blocking the loop of base (given at open): cb
 * runs once, later, from the loop, unless the read is cancelled first.
 * A shared cache that does not answer within [store] timeout gives this
 * host's copy. Never NULL.
 */
struct policy_cache_read *policy_cache_read_start(struct policy_cache *cache, const char *domain,
    policy_cache_read_cb cb, void *arg);
/** Abandon a read: cb will not run. NULL is fine. */
void policy_cache_read_cancel(struct policy_cache_read *read);

/**
 * Insert or replace entry (keyed by entry->domain), merged with what is
 * stored (policy_cache_entry_merge()). 0 or -1. Never blocks the loop:
 * the shared cache writes in the background (0 means queued).
 */
int policy_cache_store(struct policy_cache *cache, const struct policy_cache_entry *entry);

/** Remove domain; 0 if removed, -1 if absent or on error. */
int policy_cache_remove(struct policy_cache *cache, const char *domain);

/** Remove every entry; returns how many, or -1. */
long policy_cache_purge_all(struct policy_cache *cache);

/**
 * Call fn for each entry in domain order; fn gets a borrowed entry.
 * Returns the number visited, or -1. The database is not locked during fn.
 */
long policy_cache_foreach(struct policy_cache *cache,
    void (*fn)(const struct policy_cache_entry *entry, void *arg), void *arg);

struct policy_cache_entry *policy_cache_entry_new(const char *domain);
void policy_cache_entry_free(struct policy_cache_entry *entry);
/** A deep copy of entry; the caller owns it. */
struct policy_cache_entry *policy_cache_entry_dup(const struct policy_cache_entry *entry);

/**
 * What two writers of one domain's entry come to, whatever their order:
 * the policy (id, policy, fetch and expiry times) of the later fetch, and
 * the failure of the later failure unless a fetch succeeded after it (a
 * success clears the failure, as in the engine). a and b are borrowed;
 * either may be NULL (not both). Caller owns the result.
 */
struct policy_cache_entry *policy_cache_entry_merge(const struct policy_cache_entry *a,
    const struct policy_cache_entry *b);

/** true if a and b encode to the same document. */
bool policy_cache_entry_equal(const struct policy_cache_entry *a,
    const struct policy_cache_entry *b);

/** true if entry holds a policy that has not expired at now. */
bool policy_cache_entry_live(const struct policy_cache_entry *entry, time_t now);

/** Serialise and parse an entry (exposed for tests and fuzzing). */
char *policy_cache_entry_encode(const struct policy_cache_entry *entry);
struct policy_cache_entry *policy_cache_entry_decode(const char *json, size_t len);

#endif

/*
 * cache.h - the persistent MTA-STS policy cache (STS-31 ... STS-35).
 *
 * One LMDB environment, <state_dir>/policy.mdb, shared safely by every
 * stsproxy process on the host (LMDB's own reader table and write lock).
 * Entries are small JSON documents keyed by the normalised domain. LMDB
 * commits are atomic, so a crash at any moment leaves the last committed
 * state. A corrupt file is moved aside and rebuilt; a cache that cannot
 * be opened at all is disabled with a log line, never fatal to mail flow.
 */
#ifndef STSPROXY_CACHE_H
#define STSPROXY_CACHE_H

#include <stdbool.h>
#include <time.h>

#include "conf/conf.h"
#include "policy/result_type.h"
#include "policy/sts_policy.h"

struct policy_cache;

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
 * Open (creating if needed) the cache under conf->state_dir. Never NULL:
 * when the database cannot be used the cache is disabled, lookups miss
 * and stores do nothing, and the reason is logged. conf is borrowed.
 */
struct policy_cache *policy_cache_open(const struct conf *conf);
void policy_cache_close(struct policy_cache *cache);

/** false when the database could not be opened. */
bool policy_cache_enabled(const struct policy_cache *cache);
/** Path of the database file. Owned by cache. */
const char *policy_cache_path(const struct policy_cache *cache);

/** The entry for domain, or NULL. Caller owns the result. */
struct policy_cache_entry *policy_cache_lookup(struct policy_cache *cache, const char *domain);

/** Insert or replace entry (keyed by entry->domain). 0 or -1. */
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

/** true if entry holds a policy that has not expired at now. */
bool policy_cache_entry_live(const struct policy_cache_entry *entry, time_t now);

/** Serialise and parse an entry (exposed for tests and fuzzing). */
char *policy_cache_entry_encode(const struct policy_cache_entry *entry);
struct policy_cache_entry *policy_cache_entry_decode(const char *json, size_t len);

#endif

/*
 * cache_backend.h - what a policy cache backend provides to policy/cache.c
 * (the facade every caller uses). Only policy/cache*.c include this.
 *
 * lmdb (policy/cache_lmdb.c): <state_dir>/policy.mdb, every call quick and
 * local. pg (policy/cache_pg.c): the shared table of [store] postgresql,
 * worked from a thread of its own, with the LMDB cache as this host's
 * copy for when the database is down.
 */
#ifndef STSPROXY_CACHE_BACKEND_H
#define STSPROXY_CACHE_BACKEND_H

#include "policy/cache.h"

struct policy_cache_backend {
	const char	*name;
	/* Synchronous: the command line, and the relay for lmdb only. */
	struct policy_cache_entry *(*lookup)(void *be, const char *domain);
	int		(*store)(void *be, const struct policy_cache_entry *entry);
	int		(*remove)(void *be, const char *domain);
	long		(*purge_all)(void *be);
	long		(*foreach)(void *be, void (*fn)(const struct policy_cache_entry *, void *),
	    void *arg);
	bool		(*enabled)(const void *be);
	const char	*(*where)(const void *be);
	/* NULL when healthy, else why the cache is degraded (for /healthz). */
	const char	*(*health)(void *be);
	void		(*close)(void *be);
	/*
	 * For the loop, when the synchronous calls may block (NULL
	 * otherwise): read_start() answers through policy_cache_read_done()
	 * later; read_cancel() means that answer must not reach the caller;
	 * store_async() writes in the background.
	 */
	void		*(*read_start)(void *be, struct policy_cache_read *read, const char *domain);
	void		(*read_cancel)(void *job);
	void		(*store_async)(void *be, const struct policy_cache_entry *entry);
};

/** The LMDB backend under conf->state_dir; never NULL (disabled when unusable). */
void *policy_cache_lmdb_open(const struct conf *conf);
extern const struct policy_cache_backend policy_cache_lmdb;

/** The PostgreSQL backend of [store] postgresql, with local as this host's copy (taken over). */
void *policy_cache_pg_open(const struct conf *conf, struct event_base *base, void *local);
extern const struct policy_cache_backend policy_cache_pg;

/** A backend's answer to read_start(): entry (or NULL) is handed to the reader's callback. */
void policy_cache_read_done(struct policy_cache_read *read, struct policy_cache_entry *entry);

#endif

/*
 * cache_lmdb.c - the policy cache in <state_dir>/policy.mdb: one LMDB
 * environment shared safely by every stsproxy process on the host (LMDB's
 * own reader table and write lock). Entries are the JSON documents of
 * policy_cache_entry_encode() keyed by the normalised domain. LMDB commits
 * are atomic, so a crash at any moment leaves the last committed state. A
 * corrupt file is moved aside and rebuilt; a cache that cannot be opened
 * at all is disabled with a log line, never fatal to mail flow.
 */
#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_POLICY

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "conf/clock.h"
#include "conf/log.h"
#include "policy/cache_backend.h"

#define CACHE_FILE	"policy.mdb"

struct cache_lmdb {
	MDB_env		*env;
	MDB_dbi		 dbi;
	bool		 enabled;
	char		*path;
	size_t		 map_size;
};

static bool
is_corruption(int rc)
{
	return rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
	    rc == MDB_VERSION_MISMATCH || rc == MDB_PANIC;
}

static int
cache_env_open(struct cache_lmdb *c)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_env_create(&c->env)) != 0)
		return rc;
	mdb_env_set_mapsize(c->env, c->map_size);
	/* NOMETASYNC: a power loss may undo the last commit but never corrupts
	 * the file; policies are re-fetchable, so that trade is right.
	 * NOTLS: read transactions are not tied to a thread. */
	rc = mdb_env_open(c->env, c->path, MDB_NOSUBDIR | MDB_NOMETASYNC | MDB_NOTLS, 0600);
	if (rc == 0 && (rc = mdb_txn_begin(c->env, NULL, 0, &txn)) == 0) {
		if ((rc = mdb_dbi_open(txn, NULL, 0, &c->dbi)) == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc != 0) {
		mdb_env_close(c->env);
		c->env = NULL;
	}
	return rc;
}

/* Move a corrupt database aside (kept for inspection) and start afresh. */
static int
cache_rebuild(struct cache_lmdb *c, int why)
{
	char *aside = xasprintf("%s.corrupt.%lld", c->path, (long long)time(NULL));
	char *lock = xasprintf("%s-lock", c->path);
	int rc;

	if (c->env != NULL) {
		mdb_env_close(c->env);
		c->env = NULL;
	}
	log_err("event=cache_corrupt path=%s error=%s action=rebuild moved_to=%s",
	    log_quote(c->path), log_quote(mdb_strerror(why)), log_quote(aside));
	if (rename(c->path, aside) != 0)
		unlink(c->path);
	unlink(lock);
	free(aside);
	free(lock);
	rc = cache_env_open(c);
	c->enabled = rc == 0;
	if (rc != 0)
		log_err("event=cache_disabled path=%s error=%s", log_quote(c->path),
		    log_quote(mdb_strerror(rc)));
	return rc;
}

void *
policy_cache_lmdb_open(const struct conf *conf)
{
	struct cache_lmdb *c = xcalloc(1, sizeof(*c));
	int rc;

	c->path = xasprintf("%s/%s", conf->state_dir, CACHE_FILE);
	c->map_size = conf->policy_cache_size;
	if (mkdir(conf->state_dir, 0750) != 0 && errno != EEXIST) {
		log_err("event=cache_disabled path=%s error=%s", log_quote(conf->state_dir),
		    log_quote(strerror(errno)));
		return c;
	}
	rc = cache_env_open(c);
	if (is_corruption(rc))
		rc = cache_rebuild(c, rc);
	else if (rc != 0)
		log_err("event=cache_disabled path=%s error=%s", log_quote(c->path),
		    log_quote(mdb_strerror(rc)));
	c->enabled = rc == 0;
	return c;
}

static void
lmdb_close(void *be)
{
	struct cache_lmdb *c = be;

	if (c == NULL)
		return;
	if (c->env != NULL)
		mdb_env_close(c->env);
	free(c->path);
	free(c);
}

static bool
lmdb_enabled(const void *be)
{
	return ((const struct cache_lmdb *)be)->enabled;
}

static const char *
lmdb_where(const void *be)
{
	return ((const struct cache_lmdb *)be)->path;
}

static const char *
lmdb_health(void *be)
{
	return lmdb_enabled(be) ? NULL : "policy cache database not open";
}

/* Handle an error from an operation on an open environment. */
static void
cache_error(struct cache_lmdb *c, const char *op, int rc)
{
	if (is_corruption(rc)) {
		cache_rebuild(c, rc);
		return;
	}
	log_err("event=cache_error op=%s path=%s error=%s", op, log_quote(c->path),
	    log_quote(mdb_strerror(rc)));
}

static struct policy_cache_entry *
lmdb_lookup(void *be, const char *domain)
{
	struct cache_lmdb *c = be;
	MDB_txn *txn;
	MDB_val key = { strlen(domain), (void *)domain }, val;
	struct policy_cache_entry *e = NULL;
	int rc;

	if (!c->enabled)
		return NULL;
	if ((rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) != 0) {
		cache_error(c, "lookup", rc);
		return NULL;
	}
	rc = mdb_get(txn, c->dbi, &key, &val);
	if (rc == 0) {
		e = policy_cache_entry_decode(val.mv_data, val.mv_size);
		if (e == NULL)
			log_warnx("event=cache_entry_unreadable domain=%s action=ignored",
			    log_quote(domain));
	}
	mdb_txn_abort(txn);
	if (rc != 0 && rc != MDB_NOTFOUND)
		cache_error(c, "lookup", rc);
	return e;
}

/* Drop entries whose policy expired and whose failure is older than a day,
 * to make room when the map is full. */
static void
cache_evict_stale(struct cache_lmdb *c)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	time_t now = clock_now();
	long removed = 0;

	if (mdb_txn_begin(c->env, NULL, 0, &txn) != 0)
		return;
	if (mdb_cursor_open(txn, c->dbi, &cur) != 0) {
		mdb_txn_abort(txn);
		return;
	}
	while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
		struct policy_cache_entry *e = policy_cache_entry_decode(v.mv_data, v.mv_size);

		if (e == NULL || (!policy_cache_entry_live(e, now) && now - e->fail_at > 86400)) {
			mdb_cursor_del(cur, 0);
			removed++;
		}
		policy_cache_entry_free(e);
	}
	mdb_cursor_close(cur);
	if (mdb_txn_commit(txn) == 0)
		log_warnx("event=cache_full path=%s evicted=%ld", log_quote(c->path), removed);
}

static int
lmdb_store(void *be, const struct policy_cache_entry *e)
{
	struct cache_lmdb *c = be;
	char *json;
	int rc = 0;

	if (!c->enabled)
		return -1;
	json = policy_cache_entry_encode(e);
	for (int attempt = 0; attempt < 2; attempt++) {
		MDB_txn *txn;
		MDB_val key = { strlen(e->domain), e->domain }, val = { strlen(json), json };

		if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0)
			break;
		if ((rc = mdb_put(txn, c->dbi, &key, &val, 0)) != 0) {
			mdb_txn_abort(txn);
		} else {
			rc = mdb_txn_commit(txn);
		}
		if (rc != MDB_MAP_FULL || attempt > 0)
			break;
		cache_evict_stale(c);
	}
	free(json);
	if (rc != 0) {
		cache_error(c, "store", rc);
		return -1;
	}
	return 0;
}

static int
lmdb_remove(void *be, const char *domain)
{
	struct cache_lmdb *c = be;
	MDB_txn *txn;
	MDB_val key = { strlen(domain), (void *)domain };
	int rc;

	if (!c->enabled)
		return -1;
	if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0) {
		cache_error(c, "remove", rc);
		return -1;
	}
	if ((rc = mdb_del(txn, c->dbi, &key, NULL)) != 0) {
		mdb_txn_abort(txn);
		if (rc != MDB_NOTFOUND)
			cache_error(c, "remove", rc);
		return -1;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		cache_error(c, "remove", rc);
		return -1;
	}
	return 0;
}

static long
lmdb_purge_all(void *be)
{
	struct cache_lmdb *c = be;
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	if (!c->enabled)
		return -1;
	if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0) {
		cache_error(c, "purge", rc);
		return -1;
	}
	mdb_stat(txn, c->dbi, &st);
	if ((rc = mdb_drop(txn, c->dbi, 0)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
		if (rc != 0)
			cache_error(c, "purge", rc);
		return -1;
	}
	return (long)st.ms_entries;
}

static long
lmdb_foreach(void *be, void (*fn)(const struct policy_cache_entry *entry, void *arg), void *arg)
{
	struct cache_lmdb *c = be;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	struct policy_cache_entry **all = NULL;
	size_t n = 0;
	int rc;

	if (!c->enabled)
		return -1;
	if ((rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) != 0) {
		cache_error(c, "list", rc);
		return -1;
	}
	if ((rc = mdb_cursor_open(txn, c->dbi, &cur)) != 0) {
		mdb_txn_abort(txn);
		cache_error(c, "list", rc);
		return -1;
	}
	/* Decode everything first so fn may write to the cache. */
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		struct policy_cache_entry *e = policy_cache_entry_decode(v.mv_data, v.mv_size);

		if (e == NULL)
			continue;
		all = xrealloc(all, (n + 1) * sizeof(*all));
		all[n++] = e;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	for (size_t i = 0; i < n; i++) {
		fn(all[i], arg);
		policy_cache_entry_free(all[i]);
	}
	free(all);
	return (long)n;
}

const struct policy_cache_backend policy_cache_lmdb = {
	.name = "lmdb",
	.lookup = lmdb_lookup,
	.store = lmdb_store,
	.remove = lmdb_remove,
	.purge_all = lmdb_purge_all,
	.foreach = lmdb_foreach,
	.enabled = lmdb_enabled,
	.where = lmdb_where,
	.health = lmdb_health,
	.close = lmdb_close,
};

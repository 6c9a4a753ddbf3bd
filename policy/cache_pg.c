/*
 * cache_pg.c - the policy cache shared by a fleet ([store] share_policies):
 * the table stsproxy_policy_cache of [store] postgresql, so that one
 * relay's fetch serves them all.
 *
 * All database work runs on a thread of its own (policy/dbthread.h), so a
 * slow or absent database delays only the lookup that waits for it, never
 * the loop: the engine reads in parallel with its TXT query
 * (policy_cache_read_start()) and writes in the background, and its
 * in-process memo answers the hot path without any read at all.
 *
 * This host keeps the LMDB cache as its copy, written through on every
 * store and refreshed from what the database answers. When the database
 * does not answer within [store] timeout, lookups are served from that
 * copy (a cached enforce policy stays in force: STS-31 does not depend on
 * a database), stores go to the copy and are queued, and the queued ones
 * reach the database when it is back. Two relays writing one domain are
 * merged under a per-domain advisory lock (policy_cache_entry_merge()).
 */
#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_POLICY

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "policy/cache_backend.h"
#include "policy/dbthread.h"
#include "policy/pg.h"
#include "policy/pg_schema.h"

/* Writes the database did not take, kept for when it is back. */
#define MAX_UNSYNCED	10000

struct cache_pg {
	struct dbthread		*thread;	/* NULL: calls run on the caller's thread */
	char			*where;
	/* the thread's (or the caller's, without a thread) */
	struct pg		*pg;
	void			*local;		/* the LMDB cache: this host's copy */
	struct policy_cache_entry **unsynced;
	size_t			 nunsynced;
	bool			 down;
	/* what the loop reads for /healthz */
	pthread_mutex_t		 lock;
	char			 degraded[640];	/* under lock; "" when healthy */
	char			 health[640];	/* the loop's copy */
};

/* ---- on the thread ---------------------------------------------------------- */

static void set_degraded(struct cache_pg *c, const char *why);

static void
unsynced_add(struct cache_pg *c, const struct policy_cache_entry *e)
{
	for (size_t i = 0; i < c->nunsynced; i++)
		if (strcmp(c->unsynced[i]->domain, e->domain) == 0) {
			struct policy_cache_entry *m = policy_cache_entry_merge(c->unsynced[i], e);

			policy_cache_entry_free(c->unsynced[i]);
			c->unsynced[i] = m;
			return;
		}
	if (c->nunsynced == MAX_UNSYNCED) {
		/* The copy in policy.mdb still has it. */
		log_warnx("event=policy_cache_unsynced_dropped domain=%s reason=\"%d writes wait for "
		    "the database already\"", c->unsynced[0]->domain, MAX_UNSYNCED);
		policy_cache_entry_free(c->unsynced[0]);
		memmove(c->unsynced, c->unsynced + 1, --c->nunsynced * sizeof(*c->unsynced));
	}
	c->unsynced = xrealloc(c->unsynced, (c->nunsynced + 1) * sizeof(*c->unsynced));
	c->unsynced[c->nunsynced++] = policy_cache_entry_dup(e);
}

/* The row of domain: 1 with *out (NULL-able on a row that does not decode), 0 none, -1 error. */
static int
db_get(struct cache_pg *c, const char *domain, struct policy_cache_entry **out)
{
	const char *params[1] = { domain };
	PGresult *res = pg_query(c->pg, "SELECT entry::text FROM stsproxy_policy_cache "
	    "WHERE domain = $1", 1, params);
	int rc = 0;

	*out = NULL;
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		*out = policy_cache_entry_decode(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
		if (*out == NULL)
			log_warnx("event=cache_entry_unreadable domain=%s where=database action=ignored",
			    log_quote(domain));
		rc = 1;
	}
	PQclear(res);
	return rc;
}

/*
 * Merge e into the row under the domain's lock: what the database holds
 * afterwards, or NULL on an error (nothing written).
 */
static struct policy_cache_entry *
db_put(struct cache_pg *c, const struct policy_cache_entry *e)
{
	struct policy_cache_entry *cur = NULL, *merged = NULL;
	char lock[128], fetched[32];

	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d, %d)", PG_LOCK_POLICY,
	    pg_lock_key(e->domain));
	if (pg_begin(c->pg) < 0)
		return NULL;
	if (pg_exec(c->pg, lock, 0, NULL) < 0 || db_get(c, e->domain, &cur) < 0)
		goto fail;
	merged = policy_cache_entry_merge(cur, e);
	if (cur == NULL || !policy_cache_entry_equal(cur, merged)) {
		char *json = policy_cache_entry_encode(merged);
		const char *params[3] = { merged->domain, json, fetched };
		int rc;

		snprintf(fetched, sizeof(fetched), "%lld", (long long)merged->fetched_at);
		rc = pg_exec(c->pg, "INSERT INTO stsproxy_policy_cache (domain, entry, fetched_at) "
		    "VALUES ($1, $2::jsonb, $3::bigint) ON CONFLICT (domain) DO UPDATE SET "
		    "entry = EXCLUDED.entry, fetched_at = EXCLUDED.fetched_at, updated_at = now()",
		    3, params);
		free(json);
		if (rc < 0)
			goto fail;
	}
	if (pg_commit(c->pg) != PG_COMMITTED)
		goto fail_done;	/* an unknown outcome is harmless: the merge is idempotent */
	policy_cache_entry_free(cur);
	return merged;
fail:
	pg_rollback(c->pg);
fail_done:
	policy_cache_entry_free(cur);
	policy_cache_entry_free(merged);
	return NULL;
}

/* The database is usable now (writes that waited for it are made first). */
static bool
db_ready(struct cache_pg *c)
{
	if (pg_connect(c->pg) < 0) {
		set_degraded(c, pg_error(c->pg));
		return false;
	}
	while (c->nunsynced > 0) {
		struct policy_cache_entry *e = c->unsynced[c->nunsynced - 1], *m;

		if ((m = db_put(c, e)) == NULL) {
			set_degraded(c, pg_error(c->pg));
			return false;
		}
		policy_cache_entry_free(m);
		policy_cache_entry_free(e);
		c->nunsynced--;
	}
	set_degraded(c, NULL);
	return true;
}

/* Keep this host's copy what the database says. */
static void
local_follow(struct cache_pg *c, const char *domain, const struct policy_cache_entry *db)
{
	struct policy_cache_entry *mine = policy_cache_lmdb.lookup(c->local, domain);

	if (db == NULL && mine != NULL)
		policy_cache_lmdb.remove(c->local, domain);
	else if (db != NULL && !policy_cache_entry_equal(mine, db))
		policy_cache_lmdb.store(c->local, db);
	policy_cache_entry_free(mine);
}

static struct policy_cache_entry *
thread_lookup(struct cache_pg *c, const char *domain)
{
	struct policy_cache_entry *e = NULL;

	if (db_ready(c)) {
		int rc = db_get(c, domain, &e);

		if (rc >= 0) {
			local_follow(c, domain, e);
			return e;
		}
		set_degraded(c, pg_error(c->pg));
	}
	/* STS-31 holds without the database: this host's copy answers. */
	return policy_cache_lmdb.lookup(c->local, domain);
}

static void
thread_store(struct cache_pg *c, const struct policy_cache_entry *e)
{
	struct policy_cache_entry *mine = policy_cache_lmdb.lookup(c->local, e->domain);
	struct policy_cache_entry *m = policy_cache_entry_merge(mine, e), *db;

	policy_cache_lmdb.store(c->local, m);
	policy_cache_entry_free(m);
	policy_cache_entry_free(mine);
	if (db_ready(c) && (db = db_put(c, e)) != NULL) {
		local_follow(c, e->domain, db);
		policy_cache_entry_free(db);
		return;
	}
	set_degraded(c, pg_error(c->pg));
	unsynced_add(c, e);
}

static void
set_degraded(struct cache_pg *c, const char *why)
{
	bool was = c->down;

	c->down = why != NULL;
	pthread_mutex_lock(&c->lock);
	if (why != NULL)
		snprintf(c->degraded, sizeof(c->degraded), "policy cache degraded (this host's copy "
		    "answers): %s", why);
	else
		c->degraded[0] = '\0';
	pthread_mutex_unlock(&c->lock);
	if (!was && why != NULL)
		log_warnx("event=policy_cache_degraded database=%s reason=%s action=\"this host's copy "
		    "answers; writes wait\"", log_quote(pg_target(c->pg)), log_quote(why));
	else if (was && why == NULL)
		log_notice("event=policy_cache_recovered database=%s", log_quote(pg_target(c->pg)));
}

/* ---- jobs ---------------------------------------------------------------------- */

/* Run fn on the cache's thread and wait, or here when there is none. */
static void
run_sync(struct cache_pg *c, dbjob_run fn, void *arg)
{
	if (c->thread != NULL)
		dbthread_call(c->thread, fn, arg);
	else
		fn(arg);
}

struct call {
	struct cache_pg			*c;
	const char			*domain;
	const struct policy_cache_entry	*entry;
	struct policy_cache_entry	*result;
	void				(*fn)(const struct policy_cache_entry *, void *);
	void				*arg;
	long				 n;
};

static void
call_lookup(void *arg)
{
	struct call *k = arg;

	k->result = thread_lookup(k->c, k->domain);
}

static struct policy_cache_entry *
pg_lookup(void *be, const char *domain)
{
	struct call k = { .c = be, .domain = domain };

	run_sync(be, call_lookup, &k);
	return k.result;
}

static void
call_store(void *arg)
{
	struct call *k = arg;

	thread_store(k->c, k->entry);
}

static int
pg_store(void *be, const struct policy_cache_entry *e)
{
	struct call k = { .c = be, .entry = e };

	run_sync(be, call_store, &k);
	return 0;
}

static void
call_remove(void *arg)
{
	struct call *k = arg;
	const char *params[1] = { k->domain };
	PGresult *res;

	k->n = -1;
	if (!db_ready(k->c))
		return;
	if ((res = pg_query(k->c->pg, "DELETE FROM stsproxy_policy_cache WHERE domain = $1", 1,
	    params)) == NULL) {
		log_err("event=cache_error op=remove database=%s error=%s", log_quote(pg_target(k->c->pg)),
		    log_quote(pg_error(k->c->pg)));
		return;
	}
	k->n = atol(PQcmdTuples(res));
	PQclear(res);
	if (policy_cache_lmdb.remove(k->c->local, k->domain) == 0 && k->n == 0)
		k->n = 1;
}

static int
pg_remove(void *be, const char *domain)
{
	struct call k = { .c = be, .domain = domain };

	run_sync(be, call_remove, &k);
	return k.n > 0 ? 0 : -1;
}

static void
call_purge(void *arg)
{
	struct call *k = arg;
	PGresult *res;

	k->n = -1;
	if (!db_ready(k->c))
		return;
	if ((res = pg_query(k->c->pg, "DELETE FROM stsproxy_policy_cache", 0, NULL)) == NULL) {
		log_err("event=cache_error op=purge database=%s error=%s", log_quote(pg_target(k->c->pg)),
		    log_quote(pg_error(k->c->pg)));
		return;
	}
	k->n = atol(PQcmdTuples(res));
	PQclear(res);
	(void)policy_cache_lmdb.purge_all(k->c->local);
}

static long
pg_purge_all(void *be)
{
	struct call k = { .c = be };

	run_sync(be, call_purge, &k);
	return k.n;
}

static void
call_foreach(void *arg)
{
	struct call *k = arg;
	PGresult *res;

	k->n = -1;
	if (!db_ready(k->c)) {
		log_err("event=cache_error op=list database=%s error=%s", log_quote(pg_target(k->c->pg)),
		    log_quote(pg_error(k->c->pg)));
		return;
	}
	if ((res = pg_query(k->c->pg, "SELECT entry::text FROM stsproxy_policy_cache ORDER BY domain",
	    0, NULL)) == NULL) {
		log_err("event=cache_error op=list database=%s error=%s", log_quote(pg_target(k->c->pg)),
		    log_quote(pg_error(k->c->pg)));
		return;
	}
	k->n = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		struct policy_cache_entry *e = policy_cache_entry_decode(PQgetvalue(res, i, 0),
		    (size_t)PQgetlength(res, i, 0));

		if (e == NULL)
			continue;
		k->fn(e, k->arg);
		policy_cache_entry_free(e);
		k->n++;
	}
	PQclear(res);
}

/*
 * The list is read on the thread and visited there: fn must not call the
 * cache (the command line's list and the refresh collector do not).
 */
static long
pg_foreach(void *be, void (*fn)(const struct policy_cache_entry *, void *), void *arg)
{
	struct call k = { .c = be, .fn = fn, .arg = arg };

	run_sync(be, call_foreach, &k);
	return k.n;
}

/* ---- from the loop ------------------------------------------------------------- */

static const char *
pg_health_text(struct cache_pg *c)
{
	pthread_mutex_lock(&c->lock);
	memcpy(c->health, c->degraded, sizeof(c->health));
	pthread_mutex_unlock(&c->lock);
	return c->health[0] != '\0' ? c->health : NULL;
}

struct read_job {
	struct cache_pg			*c;
	struct policy_cache_read	*read;
	char				*domain;
	struct policy_cache_entry	*entry;
	struct dbjob			*job;
};

static void
read_run(void *arg)
{
	struct read_job *r = arg;

	r->entry = thread_lookup(r->c, r->domain);
}

static void
read_done(void *arg, bool cancelled)
{
	struct read_job *r = arg;
	const char *why = pg_health_text(r->c);

	metrics_set("stsproxy_store_degraded", "part=\"policies\"", why != NULL ? 1 : 0);
	if (!cancelled) {
		policy_cache_read_done(r->read, r->entry);	/* the entry is the reader's */
		r->entry = NULL;
	}
	policy_cache_entry_free(r->entry);
	free(r->domain);
	free(r);
}

static void *
pg_read_start(void *be, struct policy_cache_read *read, const char *domain)
{
	struct cache_pg *c = be;
	struct read_job *r = xcalloc(1, sizeof(*r));

	r->c = c;
	r->read = read;
	r->domain = xstrdup(domain);
	r->job = dbthread_submit(c->thread, read_run, read_done, r);
	return r;
}

static void
pg_read_cancel(void *job)
{
	dbjob_cancel(((struct read_job *)job)->job);
}

struct store_job {
	struct cache_pg			*c;
	struct policy_cache_entry	*entry;
};

static void
store_run(void *arg)
{
	struct store_job *s = arg;

	thread_store(s->c, s->entry);
}

static void
store_done(void *arg, bool cancelled)
{
	struct store_job *s = arg;

	(void)cancelled;
	policy_cache_entry_free(s->entry);
	free(s);
}

static void
pg_store_async(void *be, const struct policy_cache_entry *e)
{
	struct cache_pg *c = be;
	struct store_job *s = xcalloc(1, sizeof(*s));

	s->c = c;
	s->entry = policy_cache_entry_dup(e);
	dbthread_submit(c->thread, store_run, store_done, s);
}

/* ---- the backend --------------------------------------------------------------- */

static const char *
pg_health(void *be)
{
	return pg_health_text(be);
}

static bool
pg_enabled(const void *be)
{
	(void)be;
	return true;	/* degraded at worst: this host's copy answers */
}

static const char *
pg_where(const void *be)
{
	return ((const struct cache_pg *)be)->where;
}

static void
warm_up(void *arg)
{
	(void)db_ready(arg);
}

static void
warm_up_done(void *arg, bool cancelled)
{
	(void)arg;
	(void)cancelled;
}

void *
policy_cache_pg_open(const struct conf *conf, struct event_base *base, void *local)
{
	struct cache_pg *c = xcalloc(1, sizeof(*c));

	c->local = local;
	c->pg = pg_new(conf->store_postgresql, "policy", conf->hostname,
	    conf->store_timeout * 1000);
	pg_set_on_connect(c->pg, pg_schema_check, NULL);
	c->where = xasprintf("the database %s (shared; copy in %s)", pg_target(c->pg),
	    policy_cache_lmdb.where(local));
	pthread_mutex_init(&c->lock, NULL);
	if (base != NULL) {
		c->thread = dbthread_new(base, "policy cache");
		/* Connect now: a problem shows in the log at start-up, not at the first message. */
		dbthread_submit(c->thread, warm_up, warm_up_done, c);
	}
	return c;
}

static void
pg_close(void *be)
{
	struct cache_pg *c = be;

	if (c == NULL)
		return;
	dbthread_free(c->thread);	/* queued writes are made first */
	if (c->nunsynced > 0)
		log_warnx("event=policy_cache_unsynced count=%zu reason=\"the database did not take "
		    "them; this host's copy has them\"", c->nunsynced);
	for (size_t i = 0; i < c->nunsynced; i++)
		policy_cache_entry_free(c->unsynced[i]);
	free(c->unsynced);
	pg_free(c->pg);
	policy_cache_lmdb.close(c->local);
	pthread_mutex_destroy(&c->lock);
	free(c->where);
	free(c);
}

const struct policy_cache_backend policy_cache_pg = {
	.name = "postgresql",
	.lookup = pg_lookup,
	.store = pg_store,
	.remove = pg_remove,
	.purge_all = pg_purge_all,
	.foreach = pg_foreach,
	.enabled = pg_enabled,
	.where = pg_where,
	.health = pg_health,
	.close = pg_close,
	.read_start = pg_read_start,
	.read_cancel = pg_read_cancel,
	.store_async = pg_store_async,
};

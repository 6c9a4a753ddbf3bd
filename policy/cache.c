#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_POLICY

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <lmdb.h>

#include "conf/clock.h"
#include "conf/log.h"
#include "policy/cache.h"

#define CACHE_FILE	"policy.mdb"
#define CACHE_FORMAT	1

struct policy_cache {
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
cache_env_open(struct policy_cache *c)
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
cache_rebuild(struct policy_cache *c, int why)
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

struct policy_cache *
policy_cache_open(const struct conf *conf)
{
	struct policy_cache *c = xcalloc(1, sizeof(*c));
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

void
policy_cache_close(struct policy_cache *c)
{
	if (c == NULL)
		return;
	if (c->env != NULL)
		mdb_env_close(c->env);
	free(c->path);
	free(c);
}

bool
policy_cache_enabled(const struct policy_cache *c)
{
	return c->enabled;
}

const char *
policy_cache_path(const struct policy_cache *c)
{
	return c->path;
}

struct policy_cache_entry *
policy_cache_entry_new(const char *domain)
{
	struct policy_cache_entry *e = xcalloc(1, sizeof(*e));

	e->domain = xstrdup(domain);
	return e;
}

struct policy_cache_entry *
policy_cache_entry_dup(const struct policy_cache_entry *src)
{
	struct policy_cache_entry *e = policy_cache_entry_new(src->domain);

	e->id = src->id ? xstrdup(src->id) : NULL;
	e->policy = src->policy ? sts_policy_dup(src->policy) : NULL;
	e->fetched_at = src->fetched_at;
	e->expires_at = src->expires_at;
	e->fail_id = src->fail_id ? xstrdup(src->fail_id) : NULL;
	e->fail_at = src->fail_at;
	e->fail_type = src->fail_type;
	e->fail_reason = src->fail_reason ? xstrdup(src->fail_reason) : NULL;
	e->fail_count = src->fail_count;
	return e;
}

void
policy_cache_entry_free(struct policy_cache_entry *e)
{
	if (e == NULL)
		return;
	free(e->domain);
	free(e->id);
	sts_policy_free(e->policy);
	free(e->fail_id);
	free(e->fail_reason);
	free(e);
}

bool
policy_cache_entry_live(const struct policy_cache_entry *e, time_t now)
{
	return e != NULL && e->policy != NULL && now < e->expires_at;
}

static json_t *
strlist_to_json(const struct strlist *l)
{
	json_t *a = json_array();

	for (size_t i = 0; i < l->count; i++)
		json_array_append_new(a, json_string(l->items[i]));
	return a;
}

char *
policy_cache_entry_encode(const struct policy_cache_entry *e)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "format", json_integer(CACHE_FORMAT));
	json_object_set_new(o, "domain", json_string(e->domain));
	if (e->policy != NULL) {
		json_t *p = json_object();

		json_object_set_new(p, "id", json_string(e->id ? e->id : ""));
		json_object_set_new(p, "mode", json_string(sts_mode_name(e->policy->mode)));
		json_object_set_new(p, "max_age", json_integer((json_int_t)e->policy->max_age));
		json_object_set_new(p, "mx", strlist_to_json(&e->policy->mx));
		json_object_set_new(p, "lines", strlist_to_json(&e->policy->lines));
		json_object_set_new(p, "fetched_at", json_integer(e->fetched_at));
		json_object_set_new(p, "expires_at", json_integer(e->expires_at));
		json_object_set_new(o, "policy", p);
	}
	if (e->fail_id != NULL) {
		json_t *f = json_object();

		json_object_set_new(f, "id", json_string(e->fail_id));
		json_object_set_new(f, "at", json_integer(e->fail_at));
		json_object_set_new(f, "type", json_string(rpt_result_type_name(e->fail_type)));
		json_object_set_new(f, "reason", json_string(e->fail_reason ? e->fail_reason : ""));
		json_object_set_new(f, "count", json_integer(e->fail_count));
		json_object_set_new(o, "failure", f);
	}
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (s == NULL)
		fatalx("cannot encode a cache entry");
	return s;
}

static int
json_to_strlist(json_t *a, struct strlist *l, size_t max)
{
	size_t i;
	json_t *v;

	if (!json_is_array(a) || json_array_size(a) > max)
		return -1;
	json_array_foreach(a, i, v) {
		if (!json_is_string(v))
			return -1;
		strlist_add(l, json_string_value(v));
	}
	return 0;
}

struct policy_cache_entry *
policy_cache_entry_decode(const char *json, size_t len)
{
	json_error_t jerr;
	json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr), *p, *f;
	struct policy_cache_entry *e = NULL;
	const char *domain;

	if (o == NULL)
		return NULL;
	if (json_integer_value(json_object_get(o, "format")) != CACHE_FORMAT ||
	    (domain = json_string_value(json_object_get(o, "domain"))) == NULL)
		goto bad;
	e = policy_cache_entry_new(domain);
	if ((p = json_object_get(o, "policy")) != NULL) {
		const char *id = json_string_value(json_object_get(p, "id"));
		const char *mode = json_string_value(json_object_get(p, "mode"));
		int m = mode ? sts_mode_parse(mode) : -1;

		if (id == NULL || m < 0)
			goto bad;
		e->id = xstrdup(id);
		e->policy = xcalloc(1, sizeof(*e->policy));
		e->policy->mode = (enum sts_mode)m;
		e->policy->max_age = (unsigned long)json_integer_value(json_object_get(p, "max_age"));
		if (json_to_strlist(json_object_get(p, "mx"), &e->policy->mx, 1024) < 0 ||
		    json_to_strlist(json_object_get(p, "lines"), &e->policy->lines, 4096) < 0)
			goto bad;
		e->fetched_at = (time_t)json_integer_value(json_object_get(p, "fetched_at"));
		e->expires_at = (time_t)json_integer_value(json_object_get(p, "expires_at"));
	}
	if ((f = json_object_get(o, "failure")) != NULL) {
		const char *id = json_string_value(json_object_get(f, "id"));
		const char *type = json_string_value(json_object_get(f, "type"));
		const char *reason = json_string_value(json_object_get(f, "reason"));
		int t = type ? rpt_result_type_parse(type) : -1;

		if (id == NULL || t < 0)
			goto bad;
		e->fail_id = xstrdup(id);
		e->fail_at = (time_t)json_integer_value(json_object_get(f, "at"));
		e->fail_type = (enum rpt_result_type)t;
		e->fail_reason = xstrdup(reason ? reason : "");
		e->fail_count = (unsigned)json_integer_value(json_object_get(f, "count"));
	}
	json_decref(o);
	return e;
bad:
	json_decref(o);
	policy_cache_entry_free(e);
	return NULL;
}

/* Handle an error from an operation on an open environment. */
static void
cache_error(struct policy_cache *c, const char *op, int rc)
{
	if (is_corruption(rc)) {
		cache_rebuild(c, rc);
		return;
	}
	log_err("event=cache_error op=%s path=%s error=%s", op, log_quote(c->path),
	    log_quote(mdb_strerror(rc)));
}

struct policy_cache_entry *
policy_cache_lookup(struct policy_cache *c, const char *domain)
{
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
cache_evict_stale(struct policy_cache *c)
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

int
policy_cache_store(struct policy_cache *c, const struct policy_cache_entry *e)
{
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

int
policy_cache_remove(struct policy_cache *c, const char *domain)
{
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

long
policy_cache_purge_all(struct policy_cache *c)
{
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

long
policy_cache_foreach(struct policy_cache *c,
    void (*fn)(const struct policy_cache_entry *entry, void *arg), void *arg)
{
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

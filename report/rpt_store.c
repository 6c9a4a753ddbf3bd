#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_REPORT

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <lmdb.h>

#include "conf/log.h"
#include "report/rpt_store.h"

#define KEY_SEP	'\x1f'

struct rpt_store {
	const struct conf	*conf;
	char			*path;
	MDB_env			*env;
	MDB_dbi			 dbi;
	json_t			*pending;	/* loop thread only */
	struct event		*timer;

	/* the writer thread and its hand-off slot */
	bool			 threaded;
	pthread_t		 thread;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	json_t			*handoff;	/* under lock */
	bool			 stop;		/* under lock */
};

void
rpt_day(time_t t, char out[11])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

/* FNV-1a: a stable short id for a policy or a failure detail. */
static void
json_id(json_t *j, char out[17])
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	unsigned long long h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	snprintf(out, 17, "%016llx", h);
	free(s);
}

static json_t *
strlist_json(const struct strlist *l)
{
	json_t *a = json_array();

	for (size_t i = 0; l != NULL && i < l->count; i++)
		json_array_append_new(a, json_string(l->items[i]));
	return a;
}

/* Merge the counts of delta (same shape as a record) into into. */
static void
record_merge(json_t *into, json_t *delta)
{
	json_t *fin, *fdelta, *d;
	const char *id;

	if (json_object_get(into, "policy") == NULL)
		json_object_set(into, "policy", json_object_get(delta, "policy"));
	json_object_set_new(into, "success", json_integer(
	    json_integer_value(json_object_get(into, "success")) +
	    json_integer_value(json_object_get(delta, "success"))));
	if ((fin = json_object_get(into, "failures")) == NULL) {
		fin = json_object();
		json_object_set_new(into, "failures", fin);
	}
	fdelta = json_object_get(delta, "failures");
	json_object_foreach(fdelta, id, d) {
		json_t *cur = json_object_get(fin, id);
		json_int_t n = json_integer_value(json_object_get(d, "failed-session-count"));

		if (cur == NULL && json_object_size(fin) >= RPT_STORE_MAX_DETAILS) {
			/* Bounded: past the cap, details fold into a bare result-type row. */
			json_t *bare = json_pack("{s:O}", "result-type", json_object_get(d, "result-type"));
			char bid[17];

			json_id(bare, bid);
			cur = json_object_get(fin, bid);
			if (cur == NULL) {
				json_object_set_new(bare, "failed-session-count", json_integer(0));
				json_object_set(fin, bid, bare);
				cur = bare;
			}
			json_decref(bare);
		} else if (cur == NULL) {
			cur = json_deep_copy(d);
			json_object_set_new(cur, "failed-session-count", json_integer(0));
			json_object_set_new(fin, id, cur);
		}
		json_object_set_new(cur, "failed-session-count", json_integer(
		    json_integer_value(json_object_get(cur, "failed-session-count")) + n));
	}
}

void
rpt_store_add(struct rpt_store *store, const struct delivery_outcome *o)
{
	json_t *policy, *delta, *detail = NULL;
	char day[11], pid[17], did[17], *key;
	bool success = false;

	if (store == NULL || o->policy_domain == NULL)
		return;
	switch (o->action) {
	case OUTCOME_ACTION_DELIVERED:
		success = o->result == RPT_RESULT_NONE;
		break;
	case OUTCOME_ACTION_FAILED:
		/* RPT §4.3.4: transient network failures need not be reported. */
		if (o->result == RPT_RESULT_NONE)
			return;
		break;
	case OUTCOME_ACTION_SKIPPED:
	case OUTCOME_ACTION_POLICY:
		break;
	}
	if (!success && o->result == RPT_RESULT_NONE)
		return;

	if (o->policy_type != NULL && strcmp(o->policy_type, "sts") == 0)
		policy = json_pack("{s:s, s:o, s:s, s:o}", "policy-type", "sts",
		    "policy-string", strlist_json(o->policy_lines), "policy-domain", o->policy_domain,
		    "mx-host", strlist_json(o->mx_patterns));
	else if (o->policy_type != NULL && strcmp(o->policy_type, "tlsa") == 0)
		/* RPT §4.5, DANE-20: the TLSA base domain and its records, "u s m HEX" each. */
		policy = json_pack("{s:s, s:o, s:s}", "policy-type", "tlsa",
		    "policy-string", strlist_json(o->policy_lines), "policy-domain", o->policy_domain);
	else
		policy = json_pack("{s:s, s:s}", "policy-type", "no-policy-found",
		    "policy-domain", o->policy_domain);
	delta = json_pack("{s:O, s:I, s:{}}", "policy", policy, "success", (json_int_t)success,
	    "failures");
	if (!success) {
		detail = json_pack("{s:s}", "result-type", rpt_result_type_name(o->result));
		if (o->sending_ip)
			json_object_set_new(detail, "sending-mta-ip", json_string(o->sending_ip));
		if (o->ip)
			json_object_set_new(detail, "receiving-ip", json_string(o->ip));
		if (o->mx_host)
			json_object_set_new(detail, "receiving-mx-hostname", json_string(o->mx_host));
		if (o->mx_helo)
			json_object_set_new(detail, "receiving-mx-helo", json_string(o->mx_helo));
		if (o->action == OUTCOME_ACTION_SKIPPED)
			json_object_set_new(detail, "failure-reason-code", json_string("mx-not-in-sts-policy"));
		else if (o->reason && *o->reason)
			json_object_set_new(detail, "failure-reason-code", json_stringn(o->reason,
			    strnlen(o->reason, 120)));
		json_id(detail, did);
		json_object_set_new(detail, "failed-session-count", json_integer(1));
		json_object_set_new(json_object_get(delta, "failures"), did, detail);
	}
	rpt_day(o->when, day);
	json_id(policy, pid);
	key = xasprintf("%s%c%s%c%s", day, KEY_SEP, o->policy_domain, KEY_SEP, pid);
	{
		json_t *cur = json_object_get(store->pending, key);

		if (cur == NULL) {
			cur = json_object();
			json_object_set_new(store->pending, key, cur);
		}
		record_merge(cur, delta);
	}
	free(key);
	json_decref(delta);
	json_decref(policy);
}

void
rpt_store_hook(void *arg, const struct delivery_outcome *o)
{
	rpt_store_add(arg, o);
}

/* One write transaction for a batch (any thread). */
static int
write_batch(struct rpt_store *store, json_t *batch)
{
	MDB_txn *txn;
	const char *k;
	json_t *delta;
	int rc;

	if (json_object_size(batch) == 0)
		return 0;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)) != 0) {
		log_err("event=report_store_failed path=%s reason=%s", store->path, mdb_strerror(rc));
		return -1;
	}
	json_object_foreach(batch, k, delta) {
		MDB_val key = { strlen(k), (void *)k }, val;
		json_t *rec = NULL;
		char *out;

		if (mdb_get(txn, store->dbi, &key, &val) == 0)
			rec = json_loadb(val.mv_data, val.mv_size, 0, NULL);
		if (rec == NULL)
			rec = json_object();
		record_merge(rec, delta);
		out = json_dumps(rec, JSON_COMPACT);
		val.mv_size = strlen(out);
		val.mv_data = out;
		rc = mdb_put(txn, store->dbi, &key, &val, 0);
		free(out);
		json_decref(rec);
		if (rc != 0)
			break;
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (rc != 0) {
		log_err("event=report_store_failed path=%s reason=%s lost_records=%zu", store->path,
		    mdb_strerror(rc), json_object_size(batch));
		return -1;
	}
	log_debug("event=report_store_flush records=%zu", json_object_size(batch));
	return 0;
}

static void *
writer_main(void *arg)
{
	struct rpt_store *store = arg;

	pthread_mutex_lock(&store->lock);
	for (;;) {
		json_t *batch;

		while (store->handoff == NULL && !store->stop)
			pthread_cond_wait(&store->cond, &store->lock);
		batch = store->handoff;
		store->handoff = NULL;
		if (batch == NULL && store->stop)
			break;
		pthread_mutex_unlock(&store->lock);
		write_batch(store, batch);
		json_decref(batch);
		pthread_mutex_lock(&store->lock);
	}
	pthread_mutex_unlock(&store->lock);
	return NULL;
}

/* Loop thread: move the pending counts to the writer. */
static void
hand_off(struct rpt_store *store)
{
	const char *k;
	json_t *v;

	if (json_object_size(store->pending) == 0)
		return;
	pthread_mutex_lock(&store->lock);
	if (store->handoff == NULL) {
		store->handoff = store->pending;
	} else {
		/* The writer is behind: fold this batch into the waiting one. */
		json_object_foreach(store->pending, k, v) {
			json_t *cur = json_object_get(store->handoff, k);

			if (cur == NULL)
				json_object_set(store->handoff, k, v);
			else
				record_merge(cur, v);
		}
		json_decref(store->pending);
	}
	pthread_cond_signal(&store->cond);
	pthread_mutex_unlock(&store->lock);
	store->pending = json_object();
}

static void
flush_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	hand_off(arg);
}

int
rpt_store_flush(struct rpt_store *store)
{
	json_t *batch = store->pending;
	int rc;

	store->pending = json_object();
	rc = write_batch(store, batch);
	json_decref(batch);
	return rc;
}

struct rpt_store *
rpt_store_open(const struct conf *conf, struct event_base *base)
{
	struct rpt_store *store = xcalloc(1, sizeof(*store));
	int rc;

	store->conf = conf;
	store->path = xasprintf("%s/reports.mdb", conf->state_dir);
	if (mkdir(conf->state_dir, 0700) < 0 && errno != EEXIST) {
		log_err("event=report_store_failed path=%s reason=%s", conf->state_dir, strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&store->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(store->env, conf->report_db_size)) != 0 ||
	    (rc = mdb_env_open(store->env, store->path, MDB_NOSUBDIR | MDB_NOTLS, 0600)) != 0) {
		log_err("event=report_store_failed path=%s reason=%s", store->path, mdb_strerror(rc));
		goto fail;
	}
	{
		MDB_txn *txn;

		if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)) != 0 ||
		    (rc = mdb_dbi_open(txn, NULL, 0, &store->dbi)) != 0 ||
		    (rc = mdb_txn_commit(txn)) != 0) {
			log_err("event=report_store_failed path=%s reason=%s", store->path,
			    mdb_strerror(rc));
			goto fail;
		}
	}
	store->pending = json_object();
	if (base != NULL) {
		struct timeval tv = { conf->report_flush_interval, 0 };

		pthread_mutex_init(&store->lock, NULL);
		pthread_cond_init(&store->cond, NULL);
		if (pthread_create(&store->thread, NULL, writer_main, store) != 0)
			fatalx("cannot start the report writer thread");
		store->threaded = true;
		store->timer = event_new(base, -1, EV_PERSIST, flush_timer, store);
		event_add(store->timer, &tv);
	}
	return store;
fail:
	if (store->env)
		mdb_env_close(store->env);
	free(store->path);
	free(store);
	return NULL;
}

void
rpt_store_close(struct rpt_store *store)
{
	if (store == NULL)
		return;
	if (store->threaded) {
		event_free(store->timer);
		hand_off(store);
		pthread_mutex_lock(&store->lock);
		store->stop = true;
		pthread_cond_signal(&store->cond);
		pthread_mutex_unlock(&store->lock);
		pthread_join(store->thread, NULL);
		pthread_mutex_destroy(&store->lock);
		pthread_cond_destroy(&store->cond);
	} else
		rpt_store_flush(store);
	json_decref(store->pending);
	mdb_env_close(store->env);
	free(store->path);
	free(store);
}

long
rpt_store_foreach(struct rpt_store *store, const char *day, const char *domain,
    rpt_store_visit visit, void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	char *prefix = NULL;
	size_t plen = 0;
	long n = 0;
	int op = MDB_FIRST;

	if (mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	if (mdb_cursor_open(txn, store->dbi, &cur) != 0) {
		mdb_txn_abort(txn);
		return -1;
	}
	if (day != NULL) {
		prefix = domain ? xasprintf("%s%c%s%c", day, KEY_SEP, domain, KEY_SEP) :
		    xasprintf("%s%c", day, KEY_SEP);
		plen = strlen(prefix);
		k.mv_data = prefix;
		k.mv_size = plen;
		op = MDB_SET_RANGE;
	}
	while (mdb_cursor_get(cur, &k, &v, op) == 0) {
		char kday[11] = "", kdom[256] = "";
		const char *s = k.mv_data, *sep1, *sep2;
		json_t *rec;

		op = MDB_NEXT;
		if (prefix != NULL && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
			break;
		sep1 = memchr(s, KEY_SEP, k.mv_size);
		sep2 = sep1 ? memchr(sep1 + 1, KEY_SEP, k.mv_size - (size_t)(sep1 + 1 - s)) : NULL;
		if (sep1 == NULL || sep2 == NULL || sep1 - s != 10 || sep2 - sep1 - 1 >= 256)
			continue;
		memcpy(kday, s, 10);
		memcpy(kdom, sep1 + 1, (size_t)(sep2 - sep1 - 1));
		if (domain != NULL && strcmp(kdom, domain) != 0)
			continue;
		if ((rec = json_loadb(v.mv_data, v.mv_size, 0, NULL)) == NULL)
			continue;
		visit(arg, kday, kdom, rec);
		json_decref(rec);
		n++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	free(prefix);
	return n;
}

static void
meta_failed(struct rpt_store *store, const char *key, const char *reason)
{
	log_err("event=report_store_failed path=%s key=%s reason=%s", store->path, log_quote(key),
	    log_quote(reason));
}

int
rpt_store_meta_get(struct rpt_store *store, const char *key, json_t **doc)
{
	MDB_txn *txn;
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc, found = 0;

	*doc = NULL;
	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)) != 0) {
		meta_failed(store, key, mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_get(txn, store->dbi, &k, &v)) == 0) {
		if ((*doc = json_loadb(v.mv_data, v.mv_size, 0, NULL)) != NULL)
			found = 1;
		else {
			meta_failed(store, key, "the document does not parse");
			found = -1;
		}
	} else if (rc != MDB_NOTFOUND) {
		meta_failed(store, key, mdb_strerror(rc));
		found = -1;
	}
	mdb_txn_abort(txn);
	return found;
}

int
rpt_store_meta_put(struct rpt_store *store, const char *key, json_t *doc)
{
	MDB_txn *txn;
	char *out = json_dumps(doc, JSON_COMPACT);
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc;

	if (out == NULL) {
		meta_failed(store, key, "not a JSON object");
		return -1;
	}
	v.mv_size = strlen(out);
	v.mv_data = out;
	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)) == 0) {
		if ((rc = mdb_put(txn, store->dbi, &k, &v, 0)) == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	free(out);
	if (rc != 0)
		meta_failed(store, key, mdb_strerror(rc));
	return rc == 0 ? 0 : -1;
}

int
rpt_store_meta_update(struct rpt_store *store, const char *key,
    json_t *(*update)(void *arg, json_t *current), void *arg)
{
	MDB_txn *txn;
	MDB_val k = { strlen(key), (void *)key }, v;
	json_t *cur = NULL, *next;
	int rc;

	if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)) != 0) {
		meta_failed(store, key, mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_get(txn, store->dbi, &k, &v)) == 0) {
		if ((cur = json_loadb(v.mv_data, v.mv_size, 0, NULL)) == NULL) {
			mdb_txn_abort(txn);
			meta_failed(store, key, "the document does not parse");
			return -1;
		}
	} else if (rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		meta_failed(store, key, mdb_strerror(rc));
		return -1;
	}
	next = update(arg, cur);
	json_decref(cur);
	if (next == NULL) {
		mdb_txn_abort(txn);
		return 0;
	}
	{
		char *out = json_dumps(next, JSON_COMPACT);

		if (out == NULL)
			fatalx("rpt_store_meta_update: the update made no JSON object of %s", key);
		v.mv_size = strlen(out);
		v.mv_data = out;
		if ((rc = mdb_put(txn, store->dbi, &k, &v, 0)) == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		free(out);
	}
	json_decref(next);
	if (rc != 0) {
		meta_failed(store, key, mdb_strerror(rc));
		return -1;
	}
	return 0;
}

long
rpt_store_meta_foreach(struct rpt_store *store, const char *prefix,
    void (*visit)(void *arg, const char *key, json_t *doc), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = { strlen(prefix), (void *)prefix }, v;
	size_t plen = strlen(prefix);
	long n = 0;
	int op = MDB_SET_RANGE, rc;

	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn)) != 0) {
		meta_failed(store, prefix, mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_cursor_open(txn, store->dbi, &cur)) != 0) {
		mdb_txn_abort(txn);
		meta_failed(store, prefix, mdb_strerror(rc));
		return -1;
	}
	while (mdb_cursor_get(cur, &k, &v, op) == 0) {
		char *key;
		json_t *doc;

		op = MDB_NEXT;
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		key = xstrndup(k.mv_data, k.mv_size);
		if ((doc = json_loadb(v.mv_data, v.mv_size, 0, NULL)) != NULL) {
			visit(arg, key, doc);
			json_decref(doc);
			n++;
		} else
			meta_failed(store, key, "the document does not parse; skipped");
		free(key);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return n;
}

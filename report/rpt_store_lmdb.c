/*
 * rpt_store_lmdb.c - the report store in <state_dir>/reports.mdb, one LMDB
 * environment shared by the processes of one host: the counters under
 * keys "day\x1fdomain\x1fpolicy id", one JSON record each, and the
 * documents of the outbox, the daily plans and the spill under keys
 * starting with "~", so they never mix with the day-keyed records. LMDB
 * commits are atomic: a crash leaves the last committed state.
 */
#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_REPORT

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "conf/log.h"
#include "report/rpt_store_backend.h"

#define KEY_SEP	'\x1f'

struct store_lmdb {
	char		*path;
	MDB_env		*env;
	MDB_dbi		 dbi;
};

static enum rpt_apply
lmdb_apply(void *be, const char *id, json_t *batch)
{
	struct store_lmdb *s = be;
	MDB_txn *txn;
	const char *k;
	json_t *delta;
	int rc;

	(void)id;	/* one atomic write: nothing to apply twice */
	if (json_object_size(batch) == 0)
		return RPT_APPLY_OK;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
		log_err("event=report_store_failed path=%s reason=%s", s->path, mdb_strerror(rc));
		return RPT_APPLY_FAILED;
	}
	json_object_foreach(batch, k, delta) {
		MDB_val key = { strlen(k), (void *)k }, val;
		json_t *rec = NULL;
		char *out;

		if (mdb_get(txn, s->dbi, &key, &val) == 0)
			rec = json_loadb(val.mv_data, val.mv_size, 0, NULL);
		if (rec == NULL)
			rec = json_object();
		rpt_record_merge(rec, delta);
		out = json_dumps(rec, JSON_COMPACT);
		val.mv_size = strlen(out);
		val.mv_data = out;
		rc = mdb_put(txn, s->dbi, &key, &val, 0);
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
		log_err("event=report_store_failed path=%s reason=%s records=%zu", s->path,
		    mdb_strerror(rc), json_object_size(batch));
		return RPT_APPLY_FAILED;
	}
	log_debug("event=report_store_flush records=%zu", json_object_size(batch));
	return RPT_APPLY_OK;
}

static long
lmdb_foreach(void *be, const char *day, const char *domain, rpt_store_visit visit, void *arg)
{
	struct store_lmdb *s = be;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	char *prefix = NULL;
	size_t plen = 0;
	long n = 0;
	int op = MDB_FIRST;

	if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	if (mdb_cursor_open(txn, s->dbi, &cur) != 0) {
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
		const char *p = k.mv_data, *sep1, *sep2;
		json_t *rec;

		op = MDB_NEXT;
		if (prefix != NULL && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
			break;
		sep1 = memchr(p, KEY_SEP, k.mv_size);
		sep2 = sep1 ? memchr(sep1 + 1, KEY_SEP, k.mv_size - (size_t)(sep1 + 1 - p)) : NULL;
		if (sep1 == NULL || sep2 == NULL || sep1 - p != 10 || sep2 - sep1 - 1 >= 256)
			continue;
		memcpy(kday, p, 10);
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
meta_failed(struct store_lmdb *s, const char *key, const char *reason)
{
	log_err("event=report_store_failed path=%s key=%s reason=%s", s->path, log_quote(key),
	    log_quote(reason));
}

static int
lmdb_meta_get(void *be, const char *key, json_t **doc)
{
	struct store_lmdb *s = be;
	MDB_txn *txn;
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc, found = 0;

	*doc = NULL;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0) {
		meta_failed(s, key, mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_get(txn, s->dbi, &k, &v)) == 0) {
		if ((*doc = json_loadb(v.mv_data, v.mv_size, 0, NULL)) != NULL)
			found = 1;
		else {
			meta_failed(s, key, "the document does not parse");
			found = -1;
		}
	} else if (rc != MDB_NOTFOUND) {
		meta_failed(s, key, mdb_strerror(rc));
		found = -1;
	}
	mdb_txn_abort(txn);
	return found;
}

static int
lmdb_meta_put(void *be, const char *key, json_t *doc)
{
	struct store_lmdb *s = be;
	MDB_txn *txn;
	char *out = json_dumps(doc, JSON_COMPACT);
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc;

	if (out == NULL) {
		meta_failed(s, key, "not a JSON object");
		return -1;
	}
	v.mv_size = strlen(out);
	v.mv_data = out;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) == 0) {
		if ((rc = mdb_put(txn, s->dbi, &k, &v, 0)) == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	free(out);
	if (rc != 0)
		meta_failed(s, key, mdb_strerror(rc));
	return rc == 0 ? 0 : -1;
}

static int
lmdb_meta_delete(void *be, const char *key)
{
	struct store_lmdb *s = be;
	MDB_txn *txn;
	MDB_val k = { strlen(key), (void *)key };
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) == 0) {
		if ((rc = mdb_del(txn, s->dbi, &k, NULL)) == 0 || rc == MDB_NOTFOUND)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc != 0)
		meta_failed(s, key, mdb_strerror(rc));
	return rc == 0 ? 0 : -1;
}

static int
lmdb_meta_update(void *be, const char *key, json_t *(*update)(void *arg, json_t *current),
    void *arg)
{
	struct store_lmdb *s = be;
	MDB_txn *txn;
	MDB_val k = { strlen(key), (void *)key }, v;
	json_t *cur = NULL, *next;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
		meta_failed(s, key, mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_get(txn, s->dbi, &k, &v)) == 0) {
		if ((cur = json_loadb(v.mv_data, v.mv_size, 0, NULL)) == NULL) {
			mdb_txn_abort(txn);
			meta_failed(s, key, "the document does not parse");
			return -1;
		}
	} else if (rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		meta_failed(s, key, mdb_strerror(rc));
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
		if ((rc = mdb_put(txn, s->dbi, &k, &v, 0)) == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		free(out);
	}
	json_decref(next);
	if (rc != 0) {
		meta_failed(s, key, mdb_strerror(rc));
		return -1;
	}
	return 0;
}

static long
lmdb_meta_foreach(void *be, const char *prefix,
    void (*visit)(void *arg, const char *key, json_t *doc), void *arg)
{
	struct store_lmdb *s = be;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = { strlen(prefix), (void *)prefix }, v;
	size_t plen = strlen(prefix);
	long n = 0;
	int op = MDB_SET_RANGE, rc;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0) {
		meta_failed(s, prefix, mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_cursor_open(txn, s->dbi, &cur)) != 0) {
		mdb_txn_abort(txn);
		meta_failed(s, prefix, mdb_strerror(rc));
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
			meta_failed(s, key, "the document does not parse; skipped");
		free(key);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return n;
}

/* The database lives in state_dir: its claims are of processes on this host. */
static bool
lmdb_owner_alive(void *be, const char *owner, long pid)
{
	(void)be;
	(void)owner;
	return !(kill((pid_t)pid, 0) < 0 && errno == ESRCH);
}

/* One host: worker 0 is the sender (cli/cmd_serve.c), nobody else asks. */
static int
lmdb_sender_lease(void *be)
{
	(void)be;
	return 1;
}

static int
lmdb_check(void *be, const char **why)
{
	(void)be;
	*why = NULL;
	return 0;
}

static const char *
lmdb_where(void *be)
{
	return ((struct store_lmdb *)be)->path;
}

void *
rpt_store_lmdb_open(const struct conf *conf)
{
	struct store_lmdb *s = xcalloc(1, sizeof(*s));
	MDB_txn *txn;
	int rc;

	s->path = xasprintf("%s/reports.mdb", conf->state_dir);
	if (mkdir(conf->state_dir, 0700) < 0 && errno != EEXIST) {
		log_err("event=report_store_failed path=%s reason=%s", conf->state_dir, strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&s->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, conf->report_db_size)) != 0 ||
	    (rc = mdb_env_open(s->env, s->path, MDB_NOSUBDIR | MDB_NOTLS, 0600)) != 0) {
		log_err("event=report_store_failed path=%s reason=%s", s->path, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &s->dbi)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0) {
		log_err("event=report_store_failed path=%s reason=%s", s->path, mdb_strerror(rc));
		goto fail;
	}
	return s;
fail:
	if (s->env)
		mdb_env_close(s->env);
	free(s->path);
	free(s);
	return NULL;
}

static void
lmdb_close(void *be)
{
	struct store_lmdb *s = be;

	if (s == NULL)
		return;
	mdb_env_close(s->env);
	free(s->path);
	free(s);
}

const struct rpt_store_backend rpt_store_lmdb = {
	.name = "lmdb",
	.blocking = false,
	.apply = lmdb_apply,
	.foreach = lmdb_foreach,
	.meta_get = lmdb_meta_get,
	.meta_put = lmdb_meta_put,
	.meta_update = lmdb_meta_update,
	.meta_foreach = lmdb_meta_foreach,
	.meta_delete = lmdb_meta_delete,
	.owner_alive = lmdb_owner_alive,
	.sender_lease = lmdb_sender_lease,
	.check = lmdb_check,
	.where = lmdb_where,
	.close = lmdb_close,
};

/*
 * rpt_store_pg.c - the report store of a fleet: the tables of [store]
 * postgresql (policy/pg_schema.c), shared by every relay, so that their
 * counts add up to one report per domain and destination.
 *
 * Counts: one transaction per batch, all rows in one upsert
 * (INSERT ... ON CONFLICT ... DO UPDATE SET count = count + EXCLUDED.count,
 * the rows passed as one JSON array), with the batch's id inserted in
 * stsproxy_rpt_batch in the same transaction: a batch sent again after a
 * lost COMMIT, or replayed from a relay's spill, finds its id and adds
 * nothing. Ids are kept 30 days.
 *
 * The outbox and plans: the documents of report/rpt_outbox.c in
 * stsproxy_rpt_meta; a read-modify-write holds a transaction-scoped
 * advisory lock on the key, so two relays never both claim an entry.
 *
 * Who is alive: each process holds a session advisory lock named after
 * its owner id (PG_LOCK_INSTANCE) on its connection. The server drops it
 * the moment the process or its connection dies, so a claim whose owner's
 * lock is gone has lapsed, whatever host it came from. The sender of the
 * fleet's reports is whoever holds PG_LOCK_SENDER, the same way.
 *
 * Everything here blocks (within [store] timeout): the facade calls it
 * from its thread, or from command-line tools.
 */
#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_REPORT

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/log.h"
#include "policy/pg.h"
#include "policy/pg_schema.h"
#include "report/rpt_store_backend.h"

#define BATCH_KEEP	"30 days"
#define BATCH_GC_MS	(3600 * 1000LL)

struct store_pg {
	struct pg	*pg;
	char		*owner;
	char		*where;
	unsigned	 sender_gen;	/* pg_generation() when the sender lock was taken; 0 none */
	long long	 gc_at;		/* mono ms: next expiry of old batch ids */
};

static int
on_connect(struct pg *pg, void *arg)
{
	struct store_pg *s = arg;
	char sql[128];

	if (pg_schema_check(pg, NULL) < 0)
		return -1;
	/* Held as long as this connection lives: the fleet's proof that we do. */
	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%d, %d)", PG_LOCK_INSTANCE,
	    pg_lock_key(s->owner));
	return pg_exec(pg, sql, 0, NULL);
}

void *
rpt_store_pg_open(const struct conf *conf, const char *owner)
{
	struct store_pg *s = xcalloc(1, sizeof(*s));

	s->pg = pg_new(conf->store_postgresql, "reports", conf->hostname,
	    conf->store_timeout * 1000);
	s->owner = xstrdup(owner);
	s->where = xasprintf("the database %s", pg_target(s->pg));
	pg_set_on_connect(s->pg, on_connect, s);
	return s;
}

static void
pg_close(void *be)
{
	struct store_pg *s = be;

	if (s == NULL)
		return;
	pg_free(s->pg);
	free(s->owner);
	free(s->where);
	free(s);
}

static const char *
pg_where(void *be)
{
	return ((struct store_pg *)be)->where;
}

static int
pg_check(void *be, const char **why)
{
	struct store_pg *s = be;

	*why = NULL;
	if (pg_connect(s->pg) == 0)
		return 0;
	*why = pg_error(s->pg);
	return -1;
}

static void
failed(struct store_pg *s, const char *op, const char *key)
{
	log_err("event=report_store_failed database=%s op=%s%s%s reason=%s", log_quote(pg_target(s->pg)),
	    op, key ? " key=" : "", key ? log_quote(key) : "", log_quote(pg_error(s->pg)));
}

/* ---- counters ------------------------------------------------------------------ */

/* The rows of one record: its successes (detail_id "") and each failure detail. */
static void
record_rows(json_t *rows, const char *key, json_t *rec)
{
	const char *sep1 = strchr(key, '\x1f'), *sep2 = sep1 ? strchr(sep1 + 1, '\x1f') : NULL;
	json_t *policy = json_object_get(rec, "policy"), *d;
	json_int_t success = json_integer_value(json_object_get(rec, "success"));
	const char *did;
	char day[11], *domain;

	if (sep2 == NULL || sep1 - key != 10 || policy == NULL)
		return;
	memcpy(day, key, 10);
	day[10] = '\0';
	domain = xstrndup(sep1 + 1, (size_t)(sep2 - sep1 - 1));
	if (success > 0)
		json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s, s:O, s:n, s:I}", "day", day,
		    "domain", domain, "policy_id", sep2 + 1, "detail_id", "", "policy", policy,
		    "detail", "count", success));
	json_object_foreach(json_object_get(rec, "failures"), did, d) {
		json_t *detail = json_deep_copy(d);
		json_int_t n = json_integer_value(json_object_get(d, "failed-session-count"));

		json_object_del(detail, "failed-session-count");
		if (n > 0)
			json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s, s:O, s:o, s:I}", "day",
			    day, "domain", domain, "policy_id", sep2 + 1, "detail_id", did, "policy",
			    policy, "detail", detail, "count", n));
		else
			json_decref(detail);
	}
	free(domain);
}

static enum rpt_apply
pg_apply(void *be, const char *id, json_t *batch)
{
	struct store_pg *s = be;
	json_t *rows = json_array(), *rec;
	const char *key;
	char *text;
	PGresult *res;
	bool already;

	json_object_foreach(batch, key, rec)
		record_rows(rows, key, rec);
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		return RPT_APPLY_OK;
	}
	if (pg_begin(s->pg) < 0) {
		json_decref(rows);
		return RPT_APPLY_FAILED;
	}
	if (id != NULL) {
		const char *params[1] = { id };

		if ((res = pg_query(s->pg, "INSERT INTO stsproxy_rpt_batch (id) VALUES ($1) "
		    "ON CONFLICT DO NOTHING", 1, params)) == NULL)
			goto fail;
		already = strcmp(PQcmdTuples(res), "0") == 0;
		PQclear(res);
		if (already) {
			pg_rollback(s->pg);
			json_decref(rows);
			return RPT_APPLY_ALREADY;
		}
	}
	text = json_dumps(rows, JSON_COMPACT);
	{
		const char *params[1] = { text };
		int rc = pg_exec(s->pg, "INSERT INTO stsproxy_rpt_counter "
		    "(day, domain, policy_id, detail_id, policy, detail, count) "
		    "SELECT r.day, r.domain, r.policy_id, r.detail_id, r.policy, r.detail, r.count "
		    "FROM jsonb_to_recordset($1::jsonb) AS r(day date, domain text, policy_id text, "
		    "detail_id text, policy jsonb, detail jsonb, count bigint) "
		    "ON CONFLICT (day, domain, policy_id, detail_id) DO UPDATE "
		    "SET count = stsproxy_rpt_counter.count + EXCLUDED.count", 1, params);

		free(text);
		if (rc < 0)
			goto fail;
	}
	json_decref(rows);
	switch (pg_commit(s->pg)) {
	case PG_COMMITTED:
		break;
	case PG_NOT_COMMITTED:
		return RPT_APPLY_FAILED;
	case PG_COMMIT_UNKNOWN:
		return RPT_APPLY_UNKNOWN;
	}
	if (mono_ms() >= s->gc_at) {
		/* Past this, a batch is no longer retried: its id can go. */
		s->gc_at = mono_ms() + BATCH_GC_MS;
		(void)pg_exec(s->pg, "DELETE FROM stsproxy_rpt_batch WHERE applied_at < now() - "
		    "interval '" BATCH_KEEP "'", 0, NULL);
	}
	return RPT_APPLY_OK;
fail:
	json_decref(rows);
	pg_rollback(s->pg);
	return RPT_APPLY_FAILED;
}

static long
pg_foreach(void *be, const char *day, const char *domain, rpt_store_visit visit, void *arg)
{
	struct store_pg *s = be;
	const char *params[2] = { day, domain };
	PGresult *res;
	json_t *rec = NULL;
	char cur_day[11] = "", cur_domain[256] = "", cur_policy[64] = "";
	long n = 0;

	/* C collation: the order of reports.mdb's keys, whatever the database's locale. */
	res = pg_query(s->pg, "SELECT to_char(day, 'YYYY-MM-DD'), domain, policy_id, policy::text, "
	    "detail_id, detail::text, count FROM stsproxy_rpt_counter "
	    "WHERE ($1::date IS NULL OR day = $1::date) AND ($2::text IS NULL OR domain = $2) "
	    "ORDER BY day, domain COLLATE \"C\", policy_id COLLATE \"C\", detail_id COLLATE \"C\"",
	    2, params);
	if (res == NULL) {
		failed(s, "read", NULL);
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *rday = PQgetvalue(res, i, 0), *rdom = PQgetvalue(res, i, 1);
		const char *rpol = PQgetvalue(res, i, 2), *did = PQgetvalue(res, i, 4);
		long long count = strtoll(PQgetvalue(res, i, 6), NULL, 10);
		json_t *delta;

		if (strlen(rdom) >= sizeof(cur_domain) || strlen(rpol) >= sizeof(cur_policy))
			continue;
		if (rec != NULL && (strcmp(rday, cur_day) != 0 || strcmp(rdom, cur_domain) != 0 ||
		    strcmp(rpol, cur_policy) != 0)) {
			visit(arg, cur_day, cur_domain, rec);
			json_decref(rec);
			rec = NULL;
			n++;
		}
		if (rec == NULL) {
			json_t *policy = json_loads(PQgetvalue(res, i, 3), 0, NULL);

			if (policy == NULL)
				continue;
			rec = json_pack("{s:o, s:I, s:{}}", "policy", policy, "success", (json_int_t)0,
			    "failures");
			snprintf(cur_day, sizeof(cur_day), "%s", rday);
			snprintf(cur_domain, sizeof(cur_domain), "%s", rdom);
			snprintf(cur_policy, sizeof(cur_policy), "%s", rpol);
		}
		if (did[0] == '\0') {
			delta = json_pack("{s:I, s:{}}", "success", (json_int_t)count, "failures");
		} else {
			json_t *detail = json_loads(PQgetvalue(res, i, 5), 0, NULL);

			if (!json_is_object(detail)) {
				json_decref(detail);
				continue;
			}
			json_object_set_new(detail, "failed-session-count", json_integer(count));
			delta = json_pack("{s:I, s:{s:o}}", "success", (json_int_t)0, "failures", did,
			    detail);
		}
		/* The cap on details per policy and day applies to the fleet's sum. */
		rpt_record_merge(rec, delta);
		json_decref(delta);
	}
	if (rec != NULL) {
		visit(arg, cur_day, cur_domain, rec);
		json_decref(rec);
		n++;
	}
	PQclear(res);
	return n;
}

/* ---- documents -------------------------------------------------------------------- */

/* doc of key: 1 found, 0 none, -1 error (logged). */
static int
meta_read(struct store_pg *s, const char *key, json_t **doc)
{
	const char *params[1] = { key };
	PGresult *res = pg_query(s->pg, "SELECT doc::text FROM stsproxy_rpt_meta WHERE key = $1", 1,
	    params);
	int found = 0;

	*doc = NULL;
	if (res == NULL) {
		failed(s, "read", key);
		return -1;
	}
	if (PQntuples(res) == 1) {
		if ((*doc = json_loads(PQgetvalue(res, 0, 0), 0, NULL)) != NULL)
			found = 1;
		else {
			pg_set_error(s->pg, "the document does not parse");
			failed(s, "read", key);
			found = -1;
		}
	}
	PQclear(res);
	return found;
}

static int
meta_write(struct store_pg *s, const char *key, json_t *doc)
{
	char *text = json_dumps(doc, JSON_COMPACT);
	const char *params[2] = { key, text };
	int rc;

	if (text == NULL) {
		pg_set_error(s->pg, "not a JSON object");
		failed(s, "write", key);
		return -1;
	}
	rc = pg_exec(s->pg, "INSERT INTO stsproxy_rpt_meta (key, doc) VALUES ($1, $2::jsonb) "
	    "ON CONFLICT (key) DO UPDATE SET doc = EXCLUDED.doc, updated_at = now()", 2, params);
	free(text);
	if (rc < 0)
		failed(s, "write", key);
	return rc;
}

static int
pg_meta_get(void *be, const char *key, json_t **doc)
{
	return meta_read(be, key, doc);
}

static int
pg_meta_put(void *be, const char *key, json_t *doc)
{
	return meta_write(be, key, doc);
}

static int
pg_meta_delete(void *be, const char *key)
{
	struct store_pg *s = be;
	const char *params[1] = { key };

	if (pg_exec(s->pg, "DELETE FROM stsproxy_rpt_meta WHERE key = $1", 1, params) < 0) {
		failed(s, "delete", key);
		return -1;
	}
	return 0;
}

static int
pg_meta_update(void *be, const char *key, json_t *(*update)(void *arg, json_t *current), void *arg)
{
	struct store_pg *s = be;
	json_t *cur = NULL, *next = NULL;
	char lock[96];

	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d, %d)", PG_LOCK_META,
	    pg_lock_key(key));
	if (pg_begin(s->pg) < 0) {
		failed(s, "update", key);
		return -1;
	}
	/* The lock covers a key without a row too, which FOR UPDATE would not. */
	if (pg_exec(s->pg, lock, 0, NULL) < 0 || meta_read(s, key, &cur) < 0)
		goto fail;
	if ((next = update(arg, cur)) == NULL) {
		json_decref(cur);
		pg_rollback(s->pg);
		return 0;
	}
	if (meta_write(s, key, next) < 0)
		goto fail;
	json_decref(cur);
	json_decref(next);
	if (pg_commit(s->pg) != PG_COMMITTED) {
		failed(s, "update", key);
		return -1;
	}
	return 0;
fail:
	failed(s, "update", key);
	json_decref(cur);
	json_decref(next);
	pg_rollback(s->pg);
	return -1;
}

static long
pg_meta_foreach(void *be, const char *prefix, void (*visit)(void *arg, const char *key, json_t *doc),
    void *arg)
{
	struct store_pg *s = be;
	const char *params[1] = { prefix };
	PGresult *res = pg_query(s->pg, "SELECT key, doc::text FROM stsproxy_rpt_meta "
	    "WHERE starts_with(key, $1) ORDER BY key COLLATE \"C\"", 1, params);
	long n = 0;

	if (res == NULL) {
		failed(s, "list", prefix);
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		json_t *doc = json_loads(PQgetvalue(res, i, 1), 0, NULL);

		if (doc == NULL) {
			pg_set_error(s->pg, "the document does not parse; skipped");
			failed(s, "list", PQgetvalue(res, i, 0));
			continue;
		}
		visit(arg, PQgetvalue(res, i, 0), doc);
		json_decref(doc);
		n++;
	}
	PQclear(res);
	return n;
}

/* ---- who is alive, who sends ------------------------------------------------------- */

static bool
pg_owner_alive(void *be, const char *owner, long pid)
{
	struct store_pg *s = be;
	char sql[256];
	PGresult *res;
	bool alive;

	(void)pid;
	if (owner == NULL || owner[0] == '\0')
		return true;	/* not ours to judge: the lease decides */
	if (strcmp(owner, s->owner) == 0)
		return true;
	snprintf(sql, sizeof(sql), "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = "
	    "'advisory' AND classid = %d AND objid = %d AND objsubid = 2 AND granted)",
	    PG_LOCK_INSTANCE, pg_lock_key(owner));
	/* Cannot tell: take it as alive, so nothing is sent twice. */
	if ((res = pg_query(s->pg, sql, 0, NULL)) == NULL)
		return true;
	alive = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return alive;
}

static int
pg_sender_lease(void *be)
{
	struct store_pg *s = be;
	char sql[96];
	PGresult *res;
	bool got;

	if (s->sender_gen != 0 && s->sender_gen == pg_generation(s->pg)) {
		/* Held on this connection: still held while it works. */
		if (pg_exec(s->pg, "SELECT 1", 0, NULL) == 0 && s->sender_gen == pg_generation(s->pg))
			return 1;
		s->sender_gen = 0;
		return -1;
	}
	s->sender_gen = 0;
	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%d, %d)", PG_LOCK_STSPROXY,
	    PG_LOCK_SENDER);
	if ((res = pg_query(s->pg, sql, 0, NULL)) == NULL)
		return -1;
	got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!got)
		return 0;
	s->sender_gen = pg_generation(s->pg);
	return 1;
}

const struct rpt_store_backend rpt_store_pg = {
	.name = "postgresql",
	.blocking = true,
	.apply = pg_apply,
	.foreach = pg_foreach,
	.meta_get = pg_meta_get,
	.meta_put = pg_meta_put,
	.meta_update = pg_meta_update,
	.meta_foreach = pg_meta_foreach,
	.meta_delete = pg_meta_delete,
	.owner_alive = pg_owner_alive,
	.sender_lease = pg_sender_lease,
	.check = pg_check,
	.where = pg_where,
	.close = pg_close,
};

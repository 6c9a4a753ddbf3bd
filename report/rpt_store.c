/*
 * rpt_store.c - the report store every caller sees: counting in memory,
 * batches handed to the store's thread, the exactly-once path of a batch
 * to a shared database (ids, the buffer, the spill to reports.mdb and its
 * replay), and the dispatch to the backend [store] chose
 * (report/rpt_store_backend.h).
 */
#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_REPORT

#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "policy/dbthread.h"
#include "report/rpt_store_backend.h"
#include "report/rpt_store_internal.h"

#define KEY_SEP		'\x1f'
#define SPILL_PREFIX	"~spill\x1f"
/* Counts wait in memory at most this long before they are spilled. */
#define BUFFER_MS	(60 * 1000LL)
/* While degraded, what is buffered is logged this often. */
#define BUFFER_LOG_MS	(60 * 1000LL)

/* A batch sent whose COMMIT went unanswered: retried under its id only. */
struct unknown {
	char	*id;
	json_t	*batch;
};

/* What the loop knows of the thread's side (copied at the end of each flush). */
struct store_status {
	bool	 degraded;
	char	 reason[512];
	size_t	 buffered;		/* records in memory */
	long	 spilled;		/* batches in reports.mdb */
};

struct rpt_store {
	const struct conf		*conf;
	const struct rpt_store_backend	*ops;
	void				*be;
	void				*local;		/* a database's spill: this host's reports.mdb */
	char				 owner[192];
	struct dbthread			*thread;	/* NULL: no loop, all calls inline */

	/* the loop's */
	json_t				*pending;
	struct event			*timer;
	bool				 flushing;	/* a flush job is queued */
	struct store_status		 status;
	char				 health[700];

	/* the thread's (inline without one) */
	json_t				*unsent;	/* certainly not in the database */
	struct unknown			*unknown;
	size_t				 nunknown;
	unsigned long long		 seq;
	long long			 buffered_since;	/* mono ms; 0: nothing buffered */
	long long			 logged_at;
	long				 spilled;
	bool				 spill_checked;	/* reports.mdb looked at once since start */
	bool				 degraded;
	char				 reason[512];
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

char *
rpt_record_key(const char *day, const char *domain, const char *policy_id)
{
	return xasprintf("%s%c%s%c%s", day, KEY_SEP, domain, KEY_SEP, policy_id);
}

void
rpt_record_merge(json_t *into, json_t *delta)
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

/* Fold the records of batch into into (same keys add up). */
static void
batch_merge(json_t *into, json_t *batch)
{
	const char *k;
	json_t *v;

	json_object_foreach(batch, k, v) {
		json_t *cur = json_object_get(into, k);

		if (cur == NULL) {
			cur = json_object();
			json_object_set_new(into, k, cur);
		}
		rpt_record_merge(cur, v);
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
	key = rpt_record_key(day, o->policy_domain, pid);
	{
		json_t *cur = json_object_get(store->pending, key);

		if (cur == NULL) {
			cur = json_object();
			json_object_set_new(store->pending, key, cur);
		}
		rpt_record_merge(cur, delta);
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

/* ---- the path of a batch (the store's thread, or inline) ------------------------ */

static size_t
buffered_records(struct rpt_store *s)
{
	size_t n = json_object_size(s->unsent);

	for (size_t i = 0; i < s->nunknown; i++)
		n += json_object_size(s->unknown[i].batch);
	return n;
}

/* A batch id no other batch of the fleet has: this process, then a count. */
static char *
next_id(struct rpt_store *s)
{
	return xasprintf("%s/%llu", s->owner, ++s->seq);
}

static void
set_degraded(struct rpt_store *s, const char *why)
{
	if (why != NULL && !s->degraded)
		log_warnx("event=report_store_degraded database=%s reason=%s action=\"counting in "
		    "memory, then in %s\"", log_quote(s->ops->where(s->be)), log_quote(why),
		    s->local ? rpt_store_lmdb.where(s->local) : "memory");
	if (why != NULL) {
		snprintf(s->reason, sizeof(s->reason), "%s", why);
		s->degraded = true;
	} else
		s->degraded = false;
}

struct spilled {
	char	*key;
	json_t	*doc;
};

struct spill_list {
	struct spilled	*items;
	size_t		 count;
};

static void
collect_spill(void *arg, const char *key, json_t *doc)
{
	struct spill_list *l = arg;

	l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
	l->items[l->count].key = xstrdup(key);
	l->items[l->count].doc = json_incref(doc);
	l->count++;
}

/* Batches spilled by this host (any process, any earlier run): in the database once. */
static bool
replay_spill(struct rpt_store *s, long *replayed, size_t *records)
{
	struct spill_list l = { 0 };
	bool ok = true;
	long n;

	if ((n = rpt_store_lmdb.meta_foreach(s->local, SPILL_PREFIX, collect_spill, &l)) < 0)
		return true;	/* logged; the database side is not the problem */
	for (size_t i = 0; i < l.count; i++) {
		const char *id = json_string_value(json_object_get(l.items[i].doc, "id"));
		json_t *batch = json_object_get(l.items[i].doc, "batch");
		enum rpt_apply r = RPT_APPLY_FAILED;

		if (ok && id != NULL && json_is_object(batch))
			r = s->ops->apply(s->be, id, batch);
		else if (ok) {
			log_err("event=report_store_spill_corrupt key=%s reason=\"no id or batch\" "
			    "action=removed", log_quote(l.items[i].key));
			r = RPT_APPLY_ALREADY;
		}
		if (ok && (r == RPT_APPLY_OK || r == RPT_APPLY_ALREADY)) {
			/* A crash before this delete replays it again: its id stops it. */
			(void)rpt_store_lmdb.meta_delete(s->local, l.items[i].key);
			(*replayed)++;
			*records += json_object_size(batch);
			n--;
		} else
			ok = false;	/* the rest waits for the next sync */
		free(l.items[i].key);
		json_decref(l.items[i].doc);
	}
	free(l.items);
	s->spilled = n;
	return ok;
}

/* Write a batch, with its id, to this host's reports.mdb: 0 or -1. */
static int
spill_one(struct rpt_store *s, const char *id, json_t *batch)
{
	char *key = xasprintf("%s%s", SPILL_PREFIX, id);
	json_t *doc = json_pack("{s:s, s:O}", "id", id, "batch", batch);
	int rc = rpt_store_lmdb.meta_put(s->local, key, doc);

	if (rc == 0) {
		s->spilled++;
		log_warnx("event=report_store_spilled batch=%s records=%zu path=%s reason=%s", id,
		    json_object_size(batch), rpt_store_lmdb.where(s->local), log_quote(s->reason));
	}
	json_decref(doc);
	free(key);
	return rc;
}

/* The buffer is full, too old, or the store closes: to reports.mdb with it. */
static void
spill(struct rpt_store *s, bool final)
{
	size_t n = buffered_records(s);
	long long now = mono_ms();

	if (n == 0 || s->local == NULL)
		return;
	if (!final && n <= s->conf->store_buffer && now - s->buffered_since < BUFFER_MS)
		return;
	for (size_t i = 0; i < s->nunknown; i++) {
		/* Under its own id: the database may have it already. */
		if (spill_one(s, s->unknown[i].id, s->unknown[i].batch) < 0)
			return;
		free(s->unknown[i].id);
		json_decref(s->unknown[i].batch);
		memmove(s->unknown + i, s->unknown + i + 1, (s->nunknown - i - 1) * sizeof(*s->unknown));
		s->nunknown--;
		i--;
	}
	if (json_object_size(s->unsent) > 0) {
		char *id = next_id(s);

		if (spill_one(s, id, s->unsent) == 0) {
			json_decref(s->unsent);
			s->unsent = json_object();
		}
		free(id);
	}
	if (buffered_records(s) == 0)
		s->buffered_since = 0;
}

/*
 * Bring the primary up to date: spilled batches, batches of unknown
 * fate, then what was never sent, in that order, each under its id.
 * true when nothing of this process waits any more.
 */
static bool
store_sync(struct rpt_store *s, bool final)
{
	long replayed = 0;
	size_t replayed_records = 0;
	bool ok = true, was = s->degraded;

	if (!s->ops->blocking) {
		/* A local store: one atomic write, and a failure is not worth keeping. */
		if (json_object_size(s->unsent) > 0 && s->ops->apply(s->be, NULL, s->unsent) !=
		    RPT_APPLY_OK)
			log_err("event=report_store_failed path=%s lost_records=%zu", s->ops->where(s->be),
			    json_object_size(s->unsent));
		json_decref(s->unsent);
		s->unsent = json_object();
		return true;
	}
	/* What an earlier run (or another process of this host) spilled is
	 * looked for at start and after an outage. */
	if (s->local != NULL && (s->spilled != 0 || !s->spill_checked || was)) {
		ok = replay_spill(s, &replayed, &replayed_records);
		s->spill_checked = true;
	}
	for (size_t i = 0; ok && i < s->nunknown; i++) {
		enum rpt_apply r = s->ops->apply(s->be, s->unknown[i].id, s->unknown[i].batch);

		if (r == RPT_APPLY_OK || r == RPT_APPLY_ALREADY) {
			replayed++;
			replayed_records += json_object_size(s->unknown[i].batch);
			free(s->unknown[i].id);
			json_decref(s->unknown[i].batch);
			memmove(s->unknown + i, s->unknown + i + 1,
			    (s->nunknown - i - 1) * sizeof(*s->unknown));
			s->nunknown--;
			i--;
		} else
			ok = false;
	}
	if (ok && json_object_size(s->unsent) > 0) {
		char *id = next_id(s);

		switch (s->ops->apply(s->be, id, s->unsent)) {
		case RPT_APPLY_OK:
		case RPT_APPLY_ALREADY:
			json_decref(s->unsent);
			s->unsent = json_object();
			free(id);
			break;
		case RPT_APPLY_FAILED:
			/* Nothing applied: it may grow with the next counts. */
			free(id);
			ok = false;
			break;
		case RPT_APPLY_UNKNOWN:
			/* Maybe applied: kept apart, under this id for good. */
			s->unknown = xrealloc(s->unknown, (s->nunknown + 1) * sizeof(*s->unknown));
			s->unknown[s->nunknown].id = id;
			s->unknown[s->nunknown].batch = s->unsent;
			s->nunknown++;
			s->unsent = json_object();
			ok = false;
			break;
		}
	}
	if (!ok) {
		const char *why = NULL;

		if (s->ops->check(s->be, &why) < 0 || why == NULL)
			why = why != NULL ? why : "the database refused a batch (see the log)";
		set_degraded(s, why);
		if (s->buffered_since == 0 && buffered_records(s) > 0)
			s->buffered_since = mono_ms();
		spill(s, final);
		if (mono_ms() - s->logged_at >= BUFFER_LOG_MS) {
			s->logged_at = mono_ms();
			log_warnx("event=report_store_buffering records=%zu spilled_batches=%ld "
			    "reason=%s", buffered_records(s), s->spilled, log_quote(s->reason));
		}
		return false;
	}
	s->buffered_since = 0;
	if (was || replayed > 0) {
		log_notice("event=report_store_recovered database=%s replayed_batches=%ld records=%zu",
		    log_quote(s->ops->where(s->be)), replayed, replayed_records);
		s->logged_at = 0;
	}
	set_degraded(s, NULL);
	return true;
}

/* ---- flushes --------------------------------------------------------------------- */

struct rpt_store_flush {
	struct rpt_store	*store;
	json_t			*batch;		/* taken over; NULL: only catch up */
	bool			 final;
	bool			 complete;
	struct store_status	 status;
	void			(*then)(void *arg, bool complete);
	void			*then_arg;
};

static void
flush_run(void *arg)
{
	struct rpt_store_flush *f = arg;
	struct rpt_store *s = f->store;

	if (f->batch != NULL) {
		batch_merge(s->unsent, f->batch);
		json_decref(f->batch);
		f->batch = NULL;
	}
	f->complete = store_sync(s, f->final) && s->spilled == 0;
	f->status.degraded = s->degraded;
	snprintf(f->status.reason, sizeof(f->status.reason), "%s", s->reason);
	f->status.buffered = buffered_records(s);
	f->status.spilled = s->spilled;
}

static void
flush_done(void *arg, bool cancelled)
{
	struct rpt_store_flush *f = arg;
	struct rpt_store *s = f->store;

	(void)cancelled;
	s->flushing = false;
	s->status = f->status;
	metrics_add("stsproxy_store_flushes_total", f->status.degraded ? "result=\"failed\"" :
	    "result=\"ok\"", 1);
	if (s->ops->blocking) {
		metrics_set("stsproxy_store_degraded", "part=\"reports\"", f->status.degraded ? 1 : 0);
		metrics_set("stsproxy_store_buffered_records", "", (double)f->status.buffered);
		metrics_set("stsproxy_store_spilled_batches", "", (double)f->status.spilled);
	}
	if (f->then != NULL)
		f->then(f->then_arg, f->complete);
	free(f);
}

/* Hand what was counted to the thread (or write it now, without one). */
static struct rpt_store_flush *
flush_start(struct rpt_store *s, void (*then)(void *, bool), void *arg)
{
	struct rpt_store_flush *f = xcalloc(1, sizeof(*f));

	f->store = s;
	f->batch = s->pending;
	f->then = then;
	f->then_arg = arg;
	s->pending = json_object();
	s->flushing = true;
	if (s->thread != NULL) {
		dbthread_submit(s->thread, flush_run, flush_done, f);
		return f;
	}
	flush_run(f);
	flush_done(f, false);
	return NULL;
}

static void
flush_timer(evutil_socket_t fd, short what, void *arg)
{
	struct rpt_store *s = arg;

	(void)fd;
	(void)what;
	/* One flush at a time: a slow database slows the flushes, not the loop. */
	if (s->flushing)
		return;
	if (json_object_size(s->pending) > 0 || s->status.degraded || s->status.spilled > 0)
		(void)flush_start(s, NULL, NULL);
}

struct rpt_store_flush *
rpt_store_flush_then(struct rpt_store *s, void (*done)(void *arg, bool complete), void *arg)
{
	return flush_start(s, done, arg);
}

void
rpt_store_flush_cancel(struct rpt_store_flush *f)
{
	if (f != NULL)
		f->then = NULL;
}

int
rpt_store_flush(struct rpt_store *s)
{
	struct rpt_store_flush f = { .store = s, .batch = s->pending };

	s->pending = json_object();
	flush_run(&f);
	return f.complete ? 0 : -1;
}

/* ---- jobs --------------------------------------------------------------------------- */

struct rpt_store_job *
rpt_store_job(struct rpt_store *s, rpt_store_run run, rpt_store_done done, void *arg)
{
	if (s->thread != NULL && s->ops->blocking)
		return (struct rpt_store_job *)dbthread_submit(s->thread, run, done, arg);
	run(arg);
	done(arg, false);
	return NULL;
}

void
rpt_store_job_cancel(struct rpt_store_job *job)
{
	dbjob_cancel((struct dbjob *)job);
}

/* ---- open, close, status ------------------------------------------------------------ */

/* The relay's name ([hostname], else the system's), its pid, and a random part. */
static void
make_owner(const struct conf *conf, char *out, size_t len)
{
	char host[128];
	unsigned char r[4] = { 0 };

	if (conf->hostname[0] != '\0')
		snprintf(host, sizeof(host), "%s", conf->hostname);
	else if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	(void)RAND_bytes(r, sizeof(r));
	snprintf(out, len, "%s/%ld/%02x%02x%02x%02x", host, (long)getpid(), r[0], r[1], r[2], r[3]);
}

struct rpt_store *
rpt_store_open_backend(const struct conf *conf, struct event_base *base,
    const struct rpt_store_backend *ops, void *be, const char *owner)
{
	struct rpt_store *s = xcalloc(1, sizeof(*s));

	if (owner != NULL)
		snprintf(s->owner, sizeof(s->owner), "%s", owner);
	else
		make_owner(conf, s->owner, sizeof(s->owner));
	s->conf = conf;
	s->ops = ops;
	s->be = be;
	if (ops->blocking && (s->local = rpt_store_lmdb_open(conf)) == NULL)
		/* Where counts wait while the database is away. */
		log_warnx("event=report_store_no_spill reason=\"reports.mdb cannot be opened: "
		    "counts the database does not take stay in memory, up to [store] buffer\"");
	s->pending = json_object();
	s->unsent = json_object();
	if (base != NULL) {
		struct timeval tv = { conf->report_flush_interval, 0 };

		s->thread = dbthread_new(base, "report store");
		s->timer = event_new(base, -1, EV_PERSIST, flush_timer, s);
		event_add(s->timer, &tv);
		/* Connect, and replay what an earlier run spilled, now. */
		if (ops->blocking)
			(void)flush_start(s, NULL, NULL);
	}
	return s;
}

struct rpt_store *
rpt_store_open(const struct conf *conf, struct event_base *base)
{
	char owner[sizeof(((struct rpt_store *)0)->owner)];
	struct rpt_store *s;
	void *be;

	make_owner(conf, owner, sizeof(owner));
	if (strcmp(conf->store_backend, "postgresql") != 0) {
		if ((be = rpt_store_lmdb_open(conf)) == NULL)
			return NULL;
		s = rpt_store_open_backend(conf, base, &rpt_store_lmdb, be, owner);
	} else {
		const char *why = NULL;

		be = rpt_store_pg_open(conf, owner);
		/* A tool cannot work without the database; the relay can. */
		if (base == NULL && rpt_store_pg.check(be, &why) < 0) {
			log_err("event=report_store_failed database=%s reason=%s",
			    log_quote(rpt_store_pg.where(be)), log_quote(why));
			rpt_store_pg.close(be);
			return NULL;
		}
		s = rpt_store_open_backend(conf, base, &rpt_store_pg, be, owner);
	}
	return s;
}

void
rpt_store_close(struct rpt_store *s)
{
	struct rpt_store_flush f;

	if (s == NULL)
		return;
	if (s->timer != NULL)
		event_free(s->timer);
	/* Jobs queued (flushes, outbox writes) finish first, then the last flush. */
	dbthread_free(s->thread);
	s->thread = NULL;
	memset(&f, 0, sizeof(f));
	f.store = s;
	f.batch = s->pending;
	f.final = true;
	s->pending = NULL;
	flush_run(&f);
	if (buffered_records(s) > 0)
		log_err("event=report_store_failed database=%s lost_records=%zu reason=\"neither the "
		    "database nor reports.mdb took them\"", log_quote(s->ops->where(s->be)),
		    buffered_records(s));
	for (size_t i = 0; i < s->nunknown; i++) {
		free(s->unknown[i].id);
		json_decref(s->unknown[i].batch);
	}
	free(s->unknown);
	json_decref(s->unsent);
	if (s->local != NULL)
		rpt_store_lmdb.close(s->local);
	s->ops->close(s->be);
	free(s);
}

const char *
rpt_store_where(struct rpt_store *s)
{
	return s->ops->where(s->be);
}

const char *
rpt_store_health(struct rpt_store *s)
{
	if (!s->status.degraded && s->status.spilled == 0)
		return NULL;
	snprintf(s->health, sizeof(s->health), "report store degraded: %s; %zu records in memory, "
	    "%ld batches spilled to reports.mdb", s->status.degraded ? s->status.reason :
	    "catching up", s->status.buffered, s->status.spilled);
	return s->health;
}

const char *
rpt_store_owner(const struct rpt_store *s)
{
	return s->owner;
}

bool
rpt_store_owner_alive(struct rpt_store *s, const char *owner, long pid)
{
	if (owner != NULL && strcmp(owner, s->owner) == 0)
		return true;
	return s->ops->owner_alive(s->be, owner, pid);
}

int
rpt_store_sender_lease(struct rpt_store *s)
{
	return s->ops->sender_lease(s->be);
}

/* ---- reads and documents: the backend's --------------------------------------------- */

long
rpt_store_foreach(struct rpt_store *s, const char *day, const char *domain,
    rpt_store_visit visit, void *arg)
{
	return s->ops->foreach(s->be, day, domain, visit, arg);
}

int
rpt_store_meta_get(struct rpt_store *s, const char *key, json_t **doc)
{
	return s->ops->meta_get(s->be, key, doc);
}

int
rpt_store_meta_put(struct rpt_store *s, const char *key, json_t *doc)
{
	return s->ops->meta_put(s->be, key, doc);
}

int
rpt_store_meta_update(struct rpt_store *s, const char *key,
    json_t *(*update)(void *arg, json_t *current), void *arg)
{
	return s->ops->meta_update(s->be, key, update, arg);
}

long
rpt_store_meta_foreach(struct rpt_store *s, const char *prefix,
    void (*visit)(void *arg, const char *key, json_t *doc), void *arg)
{
	return s->ops->meta_foreach(s->be, prefix, visit, arg);
}

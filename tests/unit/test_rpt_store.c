/*
 * Unit tests of the TLS-RPT counters (report/rpt_store.c) in a scratch
 * state_dir, and of the path of a batch to a shared database (issue 17)
 * over a scripted one: a batch the database refused is sent again, one
 * whose COMMIT went unanswered is sent again under its id only (counted
 * once whether it was applied or not), what waits too long is spilled to
 * reports.mdb and replayed once, also after a crash between the replay
 * and the removal of the spilled batch.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "conf/log.h"
#include "report/rpt_report.h"
#include "report/rpt_store.h"
#include "report/rpt_store_internal.h"

static struct conf *
scratch_conf(char *dir)
{
	struct strlist errors = { 0 };
	char *text = xasprintf("state_dir = %s\n[report]\nflush_interval = 1s\n", dir);
	struct conf *c = conf_parse_buffer("test", text, strlen(text), &errors);

	free(text);
	return c;
}

static struct delivery_outcome
outcome(const char *domain, enum outcome_action action, enum rpt_result_type result,
    const char *mx)
{
	static struct strlist patterns, lines;
	struct delivery_outcome o = {
		.session = "s", .when = 1700000000 /* 2023-11-14 */, .policy_domain = domain,
		.policy_type = "sts", .mode = "enforce", .policy_id = "1",
		.mx_patterns = &patterns, .policy_lines = &lines, .mx_host = mx,
		.ip = mx ? "127.0.4.1" : NULL, .sending_ip = mx ? "127.0.0.1" : NULL,
		.mx_helo = mx, .result = result, .reason = "certificate expired", .action = action,
	};

	if (patterns.count == 0) {
		strlist_add(&patterns, "*.a.example");
		strlist_add(&lines, "version: STSv1");
		strlist_add(&lines, "mode: enforce");
		strlist_add(&lines, "mx: *.a.example");
		strlist_add(&lines, "max_age: 86400");
	}
	return o;
}

static void
remove_scratch(const char *dir)
{
	char *db = xasprintf("%s/reports.mdb", dir), *lock = xasprintf("%s/reports.mdb-lock", dir);

	unlink(db);
	unlink(lock);
	rmdir(dir);
	free(db);
	free(lock);
}

struct seen {
	long records;
	json_int_t success, failures;
	json_t *last;
};

static void
visit(void *arg, const char *day, const char *domain, json_t *rec)
{
	struct seen *s = arg;
	const char *id;
	json_t *d;

	assert_string_equal(day, "2023-11-14");
	(void)domain;
	s->records++;
	s->success += json_integer_value(json_object_get(rec, "success"));
	json_object_foreach(json_object_get(rec, "failures"), id, d)
		s->failures += json_integer_value(json_object_get(d, "failed-session-count"));
	json_decref(s->last);
	s->last = json_incref(rec);
}

/* RPT §4: successes and failures counted per policy; transient failures left out. */
static void
test_counts_and_persistence(void **state)
{
	char dir[] = "/tmp/rptstore.XXXXXX";
	struct conf *conf;
	struct rpt_store *st;
	struct delivery_outcome o;
	struct seen seen = { 0 };

	(void)state;
	assert_non_null(mkdtemp(dir));
	conf = scratch_conf(dir);
	st = rpt_store_open(conf, NULL);
	assert_non_null(st);
	for (int i = 0; i < 3; i++) {
		o = outcome("a.example", OUTCOME_ACTION_DELIVERED, RPT_RESULT_NONE, "mx1.a.example");
		rpt_store_add(st, &o);
	}
	o = outcome("a.example", OUTCOME_ACTION_FAILED, RPT_RESULT_CERT_EXPIRED, "mx2.a.example");
	rpt_store_add(st, &o);
	rpt_store_add(st, &o);
	o = outcome("a.example", OUTCOME_ACTION_FAILED, RPT_RESULT_NONE, "mx3.a.example");
	rpt_store_add(st, &o);	/* a connection timeout: not reported */
	assert_int_equal(rpt_store_flush(st), 0);
	rpt_store_close(st);

	/* Reopened: the counts survived, one record for the one policy. */
	st = rpt_store_open(conf, NULL);
	assert_int_equal(rpt_store_foreach(st, "2023-11-14", "a.example", visit, &seen), 1);
	assert_int_equal(seen.success, 3);
	assert_int_equal(seen.failures, 2);
	assert_string_equal(json_string_value(json_object_get(json_object_get(seen.last, "policy"),
	    "policy-type")), "sts");
	assert_int_equal(json_array_size(json_object_get(json_object_get(seen.last, "policy"),
	    "policy-string")), 4);

	/* A second flush adds to the same record. */
	o = outcome("a.example", OUTCOME_ACTION_DELIVERED, RPT_RESULT_NONE, "mx1.a.example");
	rpt_store_add(st, &o);
	o = outcome("b.example", OUTCOME_ACTION_POLICY, RPT_RESULT_STS_POLICY_FETCH_ERROR, NULL);
	rpt_store_add(st, &o);
	rpt_store_close(st);
	st = rpt_store_open(conf, NULL);
	json_decref(seen.last);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(rpt_store_foreach(st, "2023-11-14", "a.example", visit, &seen), 1);
	assert_int_equal(seen.success, 4);
	json_decref(seen.last);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(rpt_store_foreach(st, NULL, NULL, visit, &seen), 2);
	assert_int_equal(seen.failures, 3);
	json_decref(seen.last);
	assert_int_equal(rpt_store_foreach(st, "2023-11-15", NULL, visit, &seen), 0);

	/* The JSON builder: RFC 8460 §4 fields from the same counts. */
	{
		struct rpt_identity id;
		long long failures = -1;
		json_t *r, *pol;

		rpt_identity_init(&id, conf, "relay.example");
		r = rpt_report_build(st, &id, "2023-11-14", "a.example", &failures);
		assert_non_null(r);
		assert_int_equal(failures, 2);
		assert_string_equal(json_string_value(json_object_get(json_object_get(r, "date-range"),
		    "start-datetime")), "2023-11-14T00:00:00Z");
		assert_string_equal(json_string_value(json_object_get(r, "report-id")),
		    "2023-11-14.a.example@relay.example");
		assert_int_equal(json_array_size(json_object_get(r, "policies")), 1);	/* RPT-8 */
		pol = json_array_get(json_object_get(r, "policies"), 0);
		assert_int_equal(json_integer_value(json_object_get(json_object_get(pol, "summary"),
		    "total-successful-session-count")), 4);
		assert_int_equal(json_integer_value(json_object_get(json_object_get(pol, "summary"),
		    "total-failure-session-count")), 2);
		assert_int_equal(json_array_size(json_object_get(pol, "failure-details")), 1);
		json_decref(r);
		assert_null(rpt_report_build(st, &id, "2023-11-15", "a.example", NULL));
	}
	rpt_store_close(st);
	conf_free(conf);
	remove_scratch(dir);
}

/* The threaded path: counts reach the file within flush_interval, and on close. */
static void
test_writer_thread(void **state)
{
	char dir[] = "/tmp/rptstore.XXXXXX";
	struct event_base *base = event_base_new();
	struct timeval tv = { 1, 300000 };
	struct conf *conf;
	struct rpt_store *st, *reader;
	struct delivery_outcome o;
	struct seen seen = { 0 };

	(void)state;
	assert_non_null(mkdtemp(dir));
	conf = scratch_conf(dir);
	st = rpt_store_open(conf, base);
	o = outcome("a.example", OUTCOME_ACTION_DELIVERED, RPT_RESULT_NONE, "mx1.a.example");
	rpt_store_hook(st, &o);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	usleep(200000);
	/* A second handle, as another process would have: it sees the batch. */
	reader = rpt_store_open(conf, NULL);
	assert_int_equal(rpt_store_foreach(reader, NULL, NULL, visit, &seen), 1);
	assert_int_equal(seen.success, 1);
	json_decref(seen.last);
	rpt_store_hook(st, &o);
	rpt_store_close(st);
	memset(&seen, 0, sizeof(seen));
	rpt_store_foreach(reader, NULL, NULL, visit, &seen);
	assert_int_equal(seen.success, 2);
	json_decref(seen.last);
	rpt_store_close(reader);
	conf_free(conf);
	event_base_free(base);
	remove_scratch(dir);
}

/* ---- a scripted database ------------------------------------------------------------ */

enum answer {
	A_OK,			/* applied, and said so */
	A_FAIL,			/* refused: nothing applied */
	A_UNKNOWN_APPLIED,	/* applied, but the answer was lost */
	A_UNKNOWN_LOST,		/* not applied, and no answer */
};

static struct {
	json_t		*counts;	/* what the database holds, as a batch */
	struct strlist	 ids;		/* batch ids applied */
	enum answer	 script[16];	/* the next answers; then A_OK (or A_FAIL when down) */
	size_t		 nscript, at;
	bool		 down;
	unsigned	 applies;
} F;

static void
fake_reset(void)
{
	json_decref(F.counts);
	strlist_clear(&F.ids);
	memset(&F, 0, sizeof(F));
	F.counts = json_object();
}

static void
fake_script(int n, ...)
{
	va_list ap;

	va_start(ap, n);
	F.nscript = F.at = 0;
	for (int i = 0; i < n; i++)
		F.script[F.nscript++] = (enum answer)va_arg(ap, int);
	va_end(ap);
}

static enum rpt_apply
fake_apply(void *be, const char *id, json_t *batch)
{
	enum answer a = F.at < F.nscript ? F.script[F.at++] : F.down ? A_FAIL : A_OK;
	const char *k;
	json_t *v;

	(void)be;
	F.applies++;
	assert_non_null(id);	/* a database's batch always has an id */
	if (a == A_FAIL || a == A_UNKNOWN_LOST)
		return a == A_FAIL ? RPT_APPLY_FAILED : RPT_APPLY_UNKNOWN;
	for (size_t i = 0; i < F.ids.count; i++)
		if (strcmp(F.ids.items[i], id) == 0)
			return RPT_APPLY_ALREADY;
	strlist_add(&F.ids, id);
	json_object_foreach(batch, k, v) {
		json_t *cur = json_object_get(F.counts, k);

		if (cur == NULL) {
			cur = json_object();
			json_object_set_new(F.counts, k, cur);
		}
		rpt_record_merge(cur, v);
	}
	return a == A_UNKNOWN_APPLIED ? RPT_APPLY_UNKNOWN : RPT_APPLY_OK;
}

static int
fake_check(void *be, const char **why)
{
	(void)be;
	*why = F.down ? "connection refused (scripted)" : NULL;
	return F.down ? -1 : 0;
}

static const char *
fake_where(void *be)
{
	(void)be;
	return "the scripted database";
}

static void
fake_close(void *be)
{
	(void)be;
}

static const struct rpt_store_backend fake_ops = {
	.name = "fake", .blocking = true, .apply = fake_apply, .check = fake_check,
	.where = fake_where, .close = fake_close,
};

/* Successful sessions the database holds, over all records. */
static long long
fake_total(void)
{
	const char *k;
	json_t *v;
	long long n = 0;

	json_object_foreach(F.counts, k, v)
		n += json_integer_value(json_object_get(v, "success"));
	return n;
}

static void
add_successes(struct rpt_store *st, const char *domain, int n)
{
	struct delivery_outcome o = outcome(domain, OUTCOME_ACTION_DELIVERED, RPT_RESULT_NONE,
	    "mx1.a.example");

	for (int i = 0; i < n; i++)
		rpt_store_add(st, &o);
}

static struct conf *
fleet_conf(char *dir, unsigned buffer)
{
	struct strlist errors = { 0 };
	char *text = xasprintf("state_dir = %s\n[store]\nbuffer = %u\n", dir, buffer);
	struct conf *c = conf_parse_buffer("test", text, strlen(text), &errors);

	free(text);
	assert_non_null(c);
	return c;
}

/* Issue 17: refused, then unanswered (applied or not): every count once. */
static void
test_exactly_once(void **state)
{
	char dir[] = "/tmp/rptstore.XXXXXX";
	struct conf *conf;
	struct rpt_store *st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	conf = fleet_conf(dir, 100000);
	fake_reset();
	st = rpt_store_open_backend(conf, NULL, &fake_ops, NULL, "relay1/42/cafe");
	add_successes(st, "a.example", 3);
	fake_script(1, A_FAIL);
	assert_int_equal(rpt_store_flush(st), -1);
	assert_int_equal(fake_total(), 0);
	/* Refused counts grow with the next ones: one batch, sent once. */
	add_successes(st, "a.example", 2);
	fake_script(1, A_UNKNOWN_APPLIED);
	assert_int_equal(rpt_store_flush(st), -1);
	assert_int_equal(fake_total(), 5);
	/* Sent again under its id: the database has it, nothing is added. */
	fake_script(0);
	assert_int_equal(rpt_store_flush(st), 0);
	assert_int_equal(fake_total(), 5);
	/* Unanswered and not applied: sent again, added once. */
	add_successes(st, "a.example", 1);
	fake_script(1, A_UNKNOWN_LOST);
	assert_int_equal(rpt_store_flush(st), -1);
	assert_int_equal(fake_total(), 5);
	add_successes(st, "b.example", 4);	/* new counts go in a batch of their own */
	fake_script(0);
	assert_int_equal(rpt_store_flush(st), 0);
	assert_int_equal(fake_total(), 10);
	assert_int_equal(F.ids.count, 3);
	assert_non_null(strstr(F.ids.items[0], "relay1/42/cafe/"));
	rpt_store_close(st);
	assert_int_equal(fake_total(), 10);
	conf_free(conf);
	fake_reset();
	remove_scratch(dir);
}

static void
count_spill(void *arg, const char *key, json_t *doc)
{
	json_t **keep = arg;

	(void)key;
	json_decref(*keep);
	*keep = json_incref(doc);
}

/* The spilled batches in dir's reports.mdb; *last gets one of them (may be NULL). */
static long
spilled(struct conf *conf, json_t **last)
{
	struct strlist errors = { 0 };
	char *text = xasprintf("state_dir = %s\n", conf->state_dir);
	struct conf *lc = conf_parse_buffer("test", text, strlen(text), &errors);
	struct rpt_store *lmdb = rpt_store_open(lc, NULL);
	json_t *keep = NULL;
	long n;

	n = rpt_store_meta_foreach(lmdb, "~spill\x1f", count_spill, &keep);
	rpt_store_close(lmdb);
	conf_free(lc);
	free(text);
	if (last != NULL)
		*last = keep;
	else
		json_decref(keep);
	return n;
}

/* Issue 17: the buffer is full, the relay stops: spilled, then replayed once, even twice over. */
static void
test_spill_and_replay(void **state)
{
	char dir[] = "/tmp/rptstore.XXXXXX";
	struct conf *conf;
	struct rpt_store *st;
	json_t *doc = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	conf = fleet_conf(dir, 1);
	fake_reset();
	F.down = true;
	st = rpt_store_open_backend(conf, NULL, &fake_ops, NULL, NULL);
	add_successes(st, "a.example", 2);
	add_successes(st, "b.example", 1);	/* two records: over a buffer of 1 */
	assert_int_equal(rpt_store_flush(st), -1);
	add_successes(st, "c.example", 5);	/* still down: the relay stops */
	rpt_store_close(st);
	assert_int_equal(fake_total(), 0);
	assert_int_equal(spilled(conf, &doc), 2);
	assert_non_null(doc);

	/* The database is back: the next run replays them, once, and removes them. */
	F.down = false;
	st = rpt_store_open_backend(conf, NULL, &fake_ops, NULL, NULL);
	assert_int_equal(rpt_store_flush(st), 0);
	assert_int_equal(fake_total(), 8);
	rpt_store_close(st);
	assert_int_equal(spilled(conf, NULL), 0);

	/* A crash between the replay and the removal: found again, counted once. */
	{
		struct strlist errors = { 0 };
		char *text = xasprintf("state_dir = %s\n", dir);
		struct conf *lc = conf_parse_buffer("test", text, strlen(text), &errors);
		struct rpt_store *lmdb = rpt_store_open(lc, NULL);
		char *key = xasprintf("~spill\x1f%s", json_string_value(json_object_get(doc, "id")));

		assert_int_equal(rpt_store_meta_put(lmdb, key, doc), 0);
		rpt_store_close(lmdb);
		conf_free(lc);
		free(text);
		free(key);
	}
	assert_int_equal(spilled(conf, NULL), 1);
	st = rpt_store_open_backend(conf, NULL, &fake_ops, NULL, NULL);
	assert_int_equal(rpt_store_flush(st), 0);
	assert_int_equal(fake_total(), 8);
	rpt_store_close(st);
	assert_int_equal(spilled(conf, NULL), 0);
	json_decref(doc);
	conf_free(conf);
	fake_reset();
	remove_scratch(dir);
}

/*
 * DANE-20, RPT-9: an MX governed by DANE is counted under a "tlsa" policy
 * of its TLSA base domain; when that is the policy domain of an MTA-STS
 * policy too, one report holds both policies (RFC 8460 section 4.4).
 */
static void
test_tlsa_policy(void **state)
{
	char dir[] = "/tmp/rptstore.XXXXXX";
	struct strlist records = { 0 };
	struct rpt_identity id;
	struct conf *conf;
	struct rpt_store *st;
	struct delivery_outcome o;
	json_t *r, *pols, *tlsa = NULL, *sts = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	conf = scratch_conf(dir);
	st = rpt_store_open(conf, NULL);
	strlist_add(&records, "3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF");
	o = outcome("a.example", OUTCOME_ACTION_DELIVERED, RPT_RESULT_NONE, "mx2.a.example");
	rpt_store_add(st, &o);
	o = outcome("a.example", OUTCOME_ACTION_FAILED, RPT_RESULT_TLSA_INVALID, "a.example");
	o.policy_type = "tlsa";
	o.mode = "";
	o.mx_patterns = NULL;
	o.policy_lines = &records;
	o.reason = "TLSA mismatch (DANE-EE 3 1 1)";
	rpt_store_add(st, &o);
	o.action = OUTCOME_ACTION_DELIVERED;
	o.result = RPT_RESULT_NONE;
	rpt_store_add(st, &o);
	o.action = OUTCOME_ACTION_FAILED;
	o.result = RPT_RESULT_DNSSEC_INVALID;
	o.ip = NULL;
	rpt_store_add(st, &o);
	assert_int_equal(rpt_store_flush(st), 0);
	rpt_identity_init(&id, conf, "relay.example");
	r = rpt_report_build(st, &id, "2023-11-14", "a.example", NULL);
	assert_non_null(r);
	pols = json_object_get(r, "policies");
	assert_int_equal(json_array_size(pols), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *p = json_array_get(pols, i);
		const char *type = json_string_value(json_object_get(json_object_get(p, "policy"),
		    "policy-type"));

		if (strcmp(type, "tlsa") == 0)
			tlsa = p;
		else if (strcmp(type, "sts") == 0)
			sts = p;
	}
	assert_non_null(tlsa);
	assert_non_null(sts);
	assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(tlsa,
	    "policy"), "policy-string"), 0)), records.items[0]);
	assert_null(json_object_get(json_object_get(tlsa, "policy"), "mx-host"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(tlsa, "summary"),
	    "total-successful-session-count")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(tlsa, "summary"),
	    "total-failure-session-count")), 2);
	assert_int_equal(json_array_size(json_object_get(tlsa, "failure-details")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(sts, "summary"),
	    "total-successful-session-count")), 1);
	json_decref(r);
	strlist_clear(&records);
	rpt_store_close(st);
	conf_free(conf);
	remove_scratch(dir);
}

/* RPT-11 case 64, RPT-15, RPT-10: names and dates of a report. */
static void
test_report_identity(void **state)
{
	struct strlist errors = { 0 };
	static const char text[] = "[report]\ncontact = tlsrpt@mail.s.example\norganization = S Inc.\n";
	struct conf *conf = conf_parse_buffer("t", text, sizeof(text) - 1, &errors);
	struct rpt_identity id;
	char *name;

	(void)state;
	rpt_identity_init(&id, conf, "relay.example");
	assert_string_equal(id.submitter, "mail.s.example");
	assert_string_equal(id.organization, "S Inc.");
	name = rpt_report_filename(&id, "2016-08-01", "a.com");
	assert_string_equal(name, "mail.s.example!a.com!1470009600!1470095999!20160801.json.gz");
	free(name);
	assert_int_equal(rpt_day_start("2016-08-01"), 1470009600);
	assert_int_equal(rpt_day_start("2016-8-1x"), -1);
	conf_free(conf);
	conf = conf_parse_buffer("t", "", 0, &errors);
	rpt_identity_init(&id, conf, "relay.example");
	assert_string_equal(id.contact, "postmaster@relay.example");
	assert_string_equal(id.submitter, "relay.example");
	conf_free(conf);
	/* A mailto: contact is used without its scheme: it becomes MAIL FROM and From:. */
	conf = conf_parse_buffer("t", "[report]\ncontact = MailTo:tls@r.example\n", 40, &errors);
	assert_non_null(conf);
	rpt_identity_init(&id, conf, "relay.example");
	assert_string_equal(id.contact, "tls@r.example");
	assert_string_equal(id.submitter, "r.example");
	conf_free(conf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_and_persistence),
		cmocka_unit_test(test_writer_thread),
		cmocka_unit_test(test_tlsa_policy),
		cmocka_unit_test(test_report_identity),
		cmocka_unit_test(test_exactly_once),
		cmocka_unit_test(test_spill_and_replay),
	};

	log_init("test", false, LOG_LEVEL_CRIT);
	return cmocka_run_group_tests_name("rpt_store", tests, NULL, NULL);
}

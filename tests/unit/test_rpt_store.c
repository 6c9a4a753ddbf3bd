/* Unit tests of the TLS-RPT counters (report/rpt_store.c) in a scratch state_dir. */
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
	};

	log_init("test", false, LOG_LEVEL_CRIT);
	return cmocka_run_group_tests_name("rpt_store", tests, NULL, NULL);
}

/*
 * Unit tests of the TLS-RPT report reader (report/rpt_read.c) and its
 * summary (report/rpt_summary.c): reports from stsproxy's own builder,
 * the RFC 8460 Appendix B example, a multi-policy report, the gzip and
 * mail forms, and malformed inputs. Requirements: RPT-7 ... RPT-20.
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
#include <openssl/evp.h>

#include "conf/log.h"
#include "report/rpt_mail.h"
#include "report/rpt_post.h"
#include "report/rpt_read.h"
#include "report/rpt_report.h"
#include "report/rpt_store.h"
#include "report/rpt_summary.h"

static char *
slurp(const char *name, size_t *len)
{
	const char *srcdir = getenv("srcdir");
	char *path = xasprintf("%s/tests/data/rpt_read/%s", srcdir ? srcdir : ".", name);
	FILE *f = fopen(path, "rb");
	struct strbuf sb;
	char buf[4096];
	size_t n;

	if (f == NULL)
		fail_msg("cannot open %s", path);
	strbuf_init(&sb);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_append(&sb, buf, n);
	fclose(f);
	free(path);
	*len = sb.len;
	return strbuf_steal(&sb);
}

/* Read one input; returns the summary document; *docs keeps the documents. */
static json_t *
summarise(const void *data, size_t len, struct rpt_docs *docs, int *valid)
{
	struct rpt_summary *s = rpt_summary_new();
	json_t *doc;

	*valid = rpt_read_input(data, len, docs);
	rpt_summary_add(s, "test", docs);
	doc = rpt_summary_json(s);
	rpt_summary_free(s);
	return doc;
}

static json_int_t
jint(const json_t *o, const char *path)
{
	json_t *v = json_object_get(o, path);

	assert_non_null(v);
	return json_integer_value(v);
}

static const char *
jstr(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	assert_non_null(v);
	return v;
}

/* RFC 8460 Appendix B, as printed (mx-host a bare string: erratum 6241). */
static void
test_appendix_b(void **state)
{
	struct rpt_docs docs = { 0 };
	size_t len;
	char *data = slurp("rfc8460-appendix-b.json", &len);
	int valid;
	json_t *doc = summarise(data, len, &docs, &valid), *d, *types, *mx, *ips;

	(void)state;
	assert_int_equal(valid, 1);
	assert_int_equal(docs.count, 1);
	assert_null(docs.items[0].error);
	assert_int_equal(docs.items[0].warnings.count, 1);
	assert_non_null(strstr(docs.items[0].warnings.items[0], "erratum 6241"));
	d = json_array_get(json_object_get(doc, "domains"), 0);
	assert_string_equal(jstr(d, "policy-domain"), "company-y.example");
	assert_string_equal(jstr(d, "day"), "2016-04-01");
	assert_int_equal(jint(d, "successful-sessions"), 5326);
	assert_int_equal(jint(d, "failed-sessions"), 303);
	/* 303 / 5629 = 0.0538 */
	assert_true(json_real_value(json_object_get(d, "failure-rate")) > 0.0537 &&
	    json_real_value(json_object_get(d, "failure-rate")) < 0.0539);
	/* by result type, most sessions first, each with meaning and fix */
	types = json_object_get(d, "result-types");
	assert_int_equal(json_array_size(types), 3);
	assert_string_equal(jstr(json_array_get(types, 0), "result-type"), "starttls-not-supported");
	assert_int_equal(jint(json_array_get(types, 0), "sessions"), 200);
	assert_string_equal(jstr(json_array_get(types, 1), "result-type"), "certificate-expired");
	assert_string_equal(jstr(json_array_get(types, 2), "failure-reason-code"),
	    "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED");
	assert_non_null(strstr(jstr(json_array_get(types, 1), "meaning"), "expired"));
	assert_non_null(strstr(jstr(json_array_get(types, 1), "fix"), "Renew"));
	/* by sender, by MX, by receiving IP */
	assert_string_equal(jstr(json_array_get(json_object_get(d, "organizations"), 0),
	    "organization-name"), "Company-X");
	mx = json_object_get(d, "mx-hosts");
	assert_int_equal(json_array_size(mx), 3);
	assert_string_equal(jstr(json_array_get(mx, 0), "receiving-mx-hostname"),
	    "mx2.mail.company-y.example");
	assert_int_equal(jint(json_array_get(mx, 2), "failed-sessions"), 3);
	ips = json_object_get(d, "receiving-ips");
	assert_int_equal(json_array_size(ips), 2);
	assert_string_equal(jstr(json_array_get(ips, 0), "receiving-ip"), "203.0.113.56");
	assert_string_equal(jstr(json_array_get(ips, 0), "receiving-mx-hostname"),
	    "mx2.mail.company-y.example");
	json_decref(doc);
	rpt_docs_clear(&docs);
	free(data);
}

/* RPT-9: one domain under sts and tlsa; a second domain without policy. */
static void
test_multi_policy(void **state)
{
	struct rpt_docs docs = { 0 };
	size_t len;
	char *data = slurp("multi-policy.json", &len);
	int valid;
	json_t *doc = summarise(data, len, &docs, &valid), *domains, *a, *b, *t0;

	(void)state;
	assert_int_equal(valid, 1);
	assert_int_equal(docs.items[0].warnings.count, 0);
	domains = json_object_get(doc, "domains");
	assert_int_equal(json_array_size(domains), 2);
	a = json_array_get(domains, 0);
	b = json_array_get(domains, 1);
	assert_string_equal(jstr(a, "policy-domain"), "a.example");
	assert_string_equal(jstr(b, "policy-domain"), "b.example");	/* lower-cased */
	assert_int_equal(jint(a, "successful-sessions"), 95);
	assert_int_equal(jint(a, "failed-sessions"), 10);
	assert_int_equal(jint(json_object_get(a, "policy-types"), "sts"), 1);
	assert_int_equal(jint(json_object_get(a, "policy-types"), "tlsa"), 1);
	t0 = json_array_get(json_object_get(a, "result-types"), 0);
	assert_string_equal(jstr(t0, "result-type"), "validation-failure");
	assert_string_equal(jstr(t0, "failure-reason-code"), "mx-not-in-sts-policy");
	/* our own reason code gets its own advice */
	assert_non_null(strstr(jstr(t0, "meaning"), "not listed in the policy"));
	assert_non_null(strstr(jstr(t0, "fix"), "mx: lines"));
	assert_int_equal(jint(b, "failed-sessions"), 1);
	/* a failure without receiving-ip counts by MX only */
	assert_int_equal(json_array_size(json_object_get(b, "receiving-ips")), 0);
	assert_int_equal(json_array_size(json_object_get(b, "mx-hosts")), 1);
	json_decref(doc);
	rpt_docs_clear(&docs);
	free(data);
}

static struct conf *
scratch_conf(char *dir)
{
	struct strlist errors = { 0 };
	char *text = xasprintf("state_dir = %s\n[report]\nflush_interval = 1s\n"
	    "contact = tlsrpt@relay.example\n", dir);
	struct conf *c = conf_parse_buffer("test", text, strlen(text), &errors);

	free(text);
	return c;
}

/* A report of stsproxy's own builder, as JSON, gzip and mail. */
static void
test_own_reports(void **state)
{
	char dir[] = "/tmp/stsproxy-rptread-XXXXXX";
	struct conf *conf;
	struct rpt_store *store;
	struct rpt_identity id;
	static struct strlist patterns, lines;
	struct rpt_dkim_keys keys = { .count = 0 };
	json_t *report, *doc, *d;
	char *json, *mail, *db, *lock;
	struct strbuf gz;
	struct rpt_docs docs = { 0 };
	long long failures = 0;
	int valid;

	(void)state;
	assert_non_null(mkdtemp(dir));
	conf = scratch_conf(dir);
	assert_non_null(conf);
	store = rpt_store_open(conf, NULL);
	assert_non_null(store);
	strlist_add(&patterns, "*.a.example");
	strlist_add(&lines, "version: STSv1");
	strlist_add(&lines, "mode: enforce");
	strlist_add(&lines, "mx: *.a.example");
	strlist_add(&lines, "max_age: 86400");
	for (int i = 0; i < 5; i++) {
		struct delivery_outcome o = {
			.session = "s", .when = 1700000000, .policy_domain = "a.example",
			.policy_type = "sts", .mode = "enforce", .policy_id = "1",
			.mx_patterns = &patterns, .policy_lines = &lines, .mx_host = "mx1.a.example",
			.ip = "192.0.2.1", .sending_ip = "127.0.0.1", .mx_helo = "mx1.a.example",
			.result = i < 2 ? RPT_RESULT_CERT_EXPIRED : RPT_RESULT_NONE,
			.reason = "certificate expired",
			.action = i < 2 ? OUTCOME_ACTION_FAILED : OUTCOME_ACTION_DELIVERED,
			.sts_pass = i >= 2,
		};

		rpt_store_add(store, &o);
	}
	assert_int_equal(rpt_store_flush(store), 0);
	rpt_identity_init(&id, conf, "relay.example");
	report = rpt_report_build(store, &id, "2023-11-14", "a.example", &failures);
	assert_non_null(report);
	assert_int_equal(failures, 2);

	/* .json */
	json = json_dumps(report, JSON_COMPACT);
	doc = summarise(json, strlen(json), &docs, &valid);
	assert_int_equal(valid, 1);
	assert_int_equal(docs.items[0].warnings.count, 0);	/* our reports are clean */
	d = json_array_get(json_object_get(doc, "domains"), 0);
	assert_string_equal(jstr(d, "day"), "2023-11-14");
	assert_int_equal(jint(d, "successful-sessions"), 3);
	assert_int_equal(jint(d, "failed-sessions"), 2);
	assert_string_equal(jstr(json_array_get(json_object_get(d, "result-types"), 0), "result-type"),
	    "certificate-expired");
	json_decref(doc);
	rpt_docs_clear(&docs);

	/* .json.gz (RPT-12) */
	strbuf_init(&gz);
	assert_int_equal(rpt_gzip(json, strlen(json), &gz), 0);
	doc = summarise(gz.data, gz.len, &docs, &valid);
	assert_int_equal(valid, 1);
	assert_string_equal(docs.items[0].where, "gzip");
	json_decref(doc);
	rpt_docs_clear(&docs);

	/* the mail (RPT-14, RPT-15): multipart/report, base64 gzip attachment */
	mail = rpt_mail_build(&id, &keys, report, "2023-11-14", "a.example", "t@a.example",
	    1700100000);
	doc = summarise(mail, strlen(mail), &docs, &valid);
	assert_int_equal(valid, 1);
	assert_non_null(strstr(docs.items[0].where, "attachment relay.example!a.example!"));
	assert_int_equal(docs.items[0].warnings.count, 0);
	assert_int_equal(jint(json_array_get(json_object_get(doc, "domains"), 0), "failed-sessions"), 2);
	json_decref(doc);
	rpt_docs_clear(&docs);

	free(mail);
	strbuf_free(&gz);
	free(json);
	json_decref(report);
	rpt_store_close(store);
	strlist_clear(&patterns);
	strlist_clear(&lines);
	conf_free(conf);
	db = xasprintf("%s/reports.mdb", dir);
	lock = xasprintf("%s/reports.mdb-lock", dir);
	unlink(db);
	unlink(lock);
	rmdir(dir);
	free(db);
	free(lock);
}

static char *
base64(const void *in, size_t len)
{
	char *out = xmalloc(len / 3 * 4 + 8);
	struct strbuf sb;

	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	/* in lines of 76, as mail has them */
	strbuf_init(&sb);
	for (size_t i = 0, n = strlen(out); i < n; i += 76) {
		strbuf_append(&sb, out + i, n - i < 76 ? n - i : 76);
		strbuf_append(&sb, "\r\n", 2);
	}
	free(out);
	return strbuf_steal(&sb);
}

/* The RFC 8460 section 5.3 message shape, LF line ends, quoted boundary. */
static void
test_mail_forms(void **state)
{
	struct rpt_docs docs = { 0 };
	size_t len;
	char *json = slurp("rfc8460-appendix-b.json", &len), *b64, *msg;
	struct strbuf gz, qp;
	int valid;
	json_t *doc;

	(void)state;
	strbuf_init(&gz);
	assert_int_equal(rpt_gzip(json, len, &gz), 0);
	b64 = base64(gz.data, gz.len);
	msg = xasprintf("From: tlsrpt@mail.sender.example.com\n"
	    "Subject: Report Domain: company-y.example Submitter: company-x.example\n"
	    "TLS-Report-Domain: company-y.example\n"
	    "TLS-Report-Submitter: company-x.example\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/report; report-type=\"tlsrpt\";\n"
	    "\tboundary=\"----=_NextPart_000_024E_01CC9B0A.AFE54C00\"\n"
	    "\n"
	    "This is a multipart message in MIME format.\n"
	    "\n"
	    "------=_NextPart_000_024E_01CC9B0A.AFE54C00\n"
	    "Content-Type: text/plain; charset=\"us-ascii\"\n"
	    "\n"
	    "This is an aggregate TLS report from mail.sender.example.com\n"
	    "\n"
	    "------=_NextPart_000_024E_01CC9B0A.AFE54C00\n"
	    "Content-Type: application/tlsrpt+gzip\n"
	    "Content-Transfer-Encoding: base64\n"
	    "Content-Disposition: attachment;\n"
	    "\tfilename=\"mail.sender.example!company-y.example!1470013207!1470186007!151006.json.gz\"\n"
	    "\n%s\n"
	    "------=_NextPart_000_024E_01CC9B0A.AFE54C00--\n", b64);
	doc = summarise(msg, strlen(msg), &docs, &valid);
	assert_int_equal(valid, 1);
	assert_string_equal(docs.items[0].where,
	    "attachment mail.sender.example!company-y.example!1470013207!1470186007!151006.json.gz");
	assert_int_equal(jint(json_array_get(json_object_get(doc, "domains"), 0), "failed-sessions"),
	    303);
	json_decref(doc);
	rpt_docs_clear(&docs);
	free(msg);

	/* A forwarded report: multipart/mixed > message/rfc822 > multipart/report
	 * > application/tlsrpt+json in quoted-printable; the header names another
	 * domain (RPT-20: the body wins, with a warning). */
	strbuf_init(&qp);
	for (size_t i = 0; i < len; i++) {
		if (i > 0 && i % 70 == 0)
			strbuf_append(&qp, "=\r\n", 3);	/* soft line break */
		if (json[i] == '=')
			strbuf_append(&qp, "=3D", 3);
		else
			strbuf_append(&qp, json + i, 1);
	}
	msg = xasprintf("Subject: Fwd: report\r\n"
	    "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
	    "--outer\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
	    "--outer\r\nContent-Type: message/rfc822\r\n\r\n"
	    "TLS-Report-Domain: other.example\r\nTLS-Report-Submitter: company-x.example\r\n"
	    "Content-Type: multipart/report; report-type=tlsrpt; boundary=inner\r\n\r\n"
	    "--inner\r\nContent-Type: application/tlsrpt+json\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n--inner--\r\n"
	    "--outer--\r\n", qp.data);
	doc = summarise(msg, strlen(msg), &docs, &valid);
	assert_int_equal(valid, 1);
	assert_string_equal(docs.items[0].where, "attachment application/tlsrpt+json");
	json_decref(doc);
	rpt_docs_clear(&docs);
	free(msg);

	strbuf_free(&qp);
	strbuf_free(&gz);
	free(b64);
	free(json);
}

static void
expect_malformed(const void *data, size_t len, const char *reason)
{
	struct rpt_docs docs = { 0 };
	int valid;
	json_t *doc = summarise(data, len, &docs, &valid);

	assert_int_equal(valid, 0);
	assert_true(docs.count >= 1);
	assert_non_null(docs.items[0].error);
	if (strstr(docs.items[0].error, reason) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", reason, docs.items[0].error);
	/* reported, not fatal: the summary lists it */
	assert_int_equal(json_array_size(json_object_get(doc, "malformed")), docs.count);
	assert_int_equal(json_array_size(json_object_get(doc, "domains")), 0);
	json_decref(doc);
	rpt_docs_clear(&docs);
}

static void
expect_file_malformed(const char *name, const char *reason)
{
	size_t len;
	char *data = slurp(name, &len);

	expect_malformed(data, len, reason);
	free(data);
}

static void
test_malformed(void **state)
{
	struct strbuf gz, big;
	char *msg;

	(void)state;
	/* case 63 */
	expect_file_malformed("policies-object.json", "policies is not an array");
	expect_file_malformed("date-backwards.json", "date-range ends before it starts");
	expect_file_malformed("missing-summary.json", "policies[0].summary is missing");
	/* RPT-7: I-JSON has no duplicate names */
	expect_file_malformed("duplicate-name.json", "duplicate object key");
	expect_file_malformed("bad-date.json", "start-datetime is not an RFC 3339 date-time");
	expect_file_malformed("count-string.json",
	    "policies[0].summary.total-failure-session-count is not a non-negative integer");
	expect_malformed("{\"a\": ", 6, "not valid JSON");
	expect_malformed("", 0, "empty");
	expect_malformed("[1, 2]", 6, "not a JSON object");

	/* gzip: truncated, and a bomb stopped at the limit */
	strbuf_init(&gz);
	assert_int_equal(rpt_gzip("{\"organization-name\": \"x\"}", 26, &gz), 0);
	expect_malformed(gz.data, gz.len - 6, "truncated");
	strbuf_free(&gz);
	strbuf_init(&big);
	strbuf_init(&gz);
	{
		char zeros[65536];

		memset(zeros, ' ', sizeof(zeros));
		while (big.len <= RPT_READ_MAX_JSON)
			strbuf_append(&big, zeros, sizeof(zeros));
	}
	assert_int_equal(rpt_gzip(big.data, big.len, &gz), 0);
	assert_true(gz.len < 100000);	/* a small file ... */
	expect_malformed(gz.data, gz.len, "decompresses to more than");	/* ... stopped */
	strbuf_free(&big);
	strbuf_free(&gz);

	/* mail without a report, with a broken attachment, without its boundary */
	msg = "Subject: hello\r\nContent-Type: text/plain\r\n\r\nno report here\r\n";
	expect_malformed(msg, strlen(msg), "no TLS-RPT report in the message");
	msg = "Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\n"
	    "Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	    "!!!! not base64 ****\r\n--b--\r\n";
	expect_malformed(msg, strlen(msg), "invalid base64");
	msg = "Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\n"
	    "Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	    "aGVsbG8=\r\n--b--\r\n";
	expect_malformed(msg, strlen(msg), "not valid JSON");
	msg = "Content-Type: multipart/report\r\n\r\n--b\r\nbody\r\n";
	expect_malformed(msg, strlen(msg), "multipart/report without a boundary");
	msg = "Content-Type: multipart/report; boundary=zz\r\n\r\n--b\r\nbody\r\n";
	expect_malformed(msg, strlen(msg), "without its boundary line");
	msg = "Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\n"
	    "Content-Type: application/tlsrpt+json\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
	    "{}\r\n--b--\r\n";
	expect_malformed(msg, strlen(msg), "x-uuencode is not supported");
}

/* MIME nesting and part counts are bounded. */
static void
test_mime_bounds(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	for (int i = 0; i < 10; i++)
		strbuf_printf(&sb, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
	expect_malformed(sb.data, sb.len, "nested more than");
	strbuf_free(&sb);
	strbuf_init(&sb);
	strbuf_printf(&sb, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	for (int i = 0; i < RPT_READ_MAX_PARTS + 5; i++)
		strbuf_printf(&sb, "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n");
	expect_malformed(sb.data, sb.len, "more than 64 MIME parts");
	strbuf_free(&sb);
}

/* Notes that do not invalidate a report; duplicates count once (RPT-16). */
static void
test_warnings_and_duplicates(void **state)
{
	const char *r = "{\"organization-name\": \"X\", \"date-range\": {\"start-datetime\": "
	    "\"2026-11-01T00:00:00.5+02:00\", \"end-datetime\": \"2026-11-04T00:00:00Z\"}, "
	    "\"contact-info\": \"nobody\", \"report-id\": \"r1\", \"policies\": [{\"policy\": "
	    "{\"policy-type\": \"dane\", \"policy-domain\": \"a.example\"}, \"summary\": "
	    "{\"total-successful-session-count\": 1, \"total-failure-session-count\": 2}, "
	    "\"failure-details\": [{\"result-type\": \"mystery\", \"receiving-ip\": \"999.1.1.1\", "
	    "\"failed-session-count\": 2}]}], \"future-field\": true}";
	struct rpt_docs docs = { 0 };
	struct rpt_summary *s = rpt_summary_new();
	json_t *doc, *t;

	(void)state;
	assert_int_equal(rpt_read_input(r, strlen(r), &docs), 1);
	assert_int_equal(docs.items[0].warnings.count, 5);
	assert_non_null(strstr(docs.items[0].warnings.items[0], "covers 3.1 days"));
	assert_non_null(strstr(docs.items[0].warnings.items[1], "contact-info"));
	assert_non_null(strstr(docs.items[0].warnings.items[2], "policy-type \"dane\""));
	assert_non_null(strstr(docs.items[0].warnings.items[3], "receiving-ip \"999.1.1.1\""));
	assert_non_null(strstr(docs.items[0].warnings.items[4], "\"mystery\" is not in the RFC 8460 registry"));
	rpt_summary_add(s, "one", &docs);
	rpt_summary_add(s, "two", &docs);	/* the same report again */
	doc = rpt_summary_json(s);
	assert_int_equal(rpt_summary_reports(s), 2);
	assert_true(json_is_true(json_object_get(json_array_get(json_object_get(doc, "reports"), 1),
	    "duplicate")));
	/* counted once; the day is the UTC day the report starts (22:00Z on the 31st) */
	assert_int_equal(jint(json_array_get(json_object_get(doc, "domains"), 0), "failed-sessions"), 2);
	assert_string_equal(jstr(json_array_get(json_object_get(doc, "domains"), 0), "day"), "2026-10-31");
	t = json_array_get(json_object_get(json_array_get(json_object_get(doc, "domains"), 0),
	    "result-types"), 0);
	assert_string_equal(jstr(t, "meaning"), "not a result type of the RFC 8460 registry");
	assert_true(json_is_null(json_object_get(t, "fix")));
	json_decref(doc);
	rpt_summary_free(s);
	rpt_docs_clear(&docs);
}

static void
test_datetime(void **state)
{
	time_t t;

	(void)state;
	assert_true(rpt_parse_datetime("2016-04-01T00:00:00Z", &t));
	assert_int_equal(t, 1459468800);
	assert_true(rpt_parse_datetime("2016-04-01t00:00:00.123z", &t));
	assert_int_equal(t, 1459468800);
	assert_true(rpt_parse_datetime("2016-04-01T02:00:00+02:00", &t));
	assert_int_equal(t, 1459468800);
	assert_true(rpt_parse_datetime("2016-03-31T23:00:00-01:00", &t));
	assert_int_equal(t, 1459468800);
	assert_false(rpt_parse_datetime("2016-04-01", &t));
	assert_false(rpt_parse_datetime("2016-04-01 00:00:00Z", &t));
	assert_false(rpt_parse_datetime("2016-13-01T00:00:00Z", &t));
	assert_false(rpt_parse_datetime("2016-04-01T24:00:00Z", &t));
	assert_false(rpt_parse_datetime("2016-04-01T00:00:00", &t));
	assert_false(rpt_parse_datetime("2016-04-01T00:00:00Zjunk", &t));
	assert_false(rpt_parse_datetime("2016-04-01T00:00:00.Z", &t));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_appendix_b),
		cmocka_unit_test(test_multi_policy),
		cmocka_unit_test(test_own_reports),
		cmocka_unit_test(test_mail_forms),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_mime_bounds),
		cmocka_unit_test(test_warnings_and_duplicates),
		cmocka_unit_test(test_datetime),
	};

	log_init("test", false, LOG_LEVEL_CRIT);
	return cmocka_run_group_tests_name("rpt_read", tests, NULL, NULL);
}

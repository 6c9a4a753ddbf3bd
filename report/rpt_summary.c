/*
 * rpt_summary.c - aggregate received TLS-RPT reports per policy domain
 * and UTC day. The running sums are jansson objects keyed by name; the
 * final document sorts them, so output does not depend on input order.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/result_type.h"
#include "report/rpt_summary.h"

#define KEY_SEP		"\x1f"
#define MX_NOT_IN_POLICY	"mx-not-in-sts-policy"

struct rpt_summary {
	json_t	*reports;	/* array: one object per report read */
	json_t	*malformed;	/* array */
	json_t	*seen;		/* "org<US>report-id" -> true */
	json_t	*acc;		/* "domain<US>day" -> running sums */
	size_t	 nreports, nmalformed;
};

struct rpt_summary *
rpt_summary_new(void)
{
	struct rpt_summary *s = xcalloc(1, sizeof(*s));

	s->reports = json_array();
	s->malformed = json_array();
	s->seen = json_object();
	s->acc = json_object();
	return s;
}

void
rpt_summary_free(struct rpt_summary *s)
{
	if (s == NULL)
		return;
	json_decref(s->reports);
	json_decref(s->malformed);
	json_decref(s->seen);
	json_decref(s->acc);
	free(s);
}

size_t
rpt_summary_reports(const struct rpt_summary *s)
{
	return s->nreports;
}

size_t
rpt_summary_malformed(const struct rpt_summary *s)
{
	return s->nmalformed;
}

void
rpt_failure_advice(const char *type, const char *code, const char **meaning, const char **fix)
{
	int t = type ? rpt_result_type_parse(type) : -1;

	if (code != NULL && strcmp(code, MX_NOT_IN_POLICY) == 0) {
		*meaning = "the MX is not listed in the policy's mx: lines, so senders under enforce never deliver to it";
		*fix = "Add the MX to the policy's mx: lines (or a wildcard covering it) and change the id.";
	} else if (t > RPT_RESULT_NONE) {
		*meaning = rpt_result_type_meaning((enum rpt_result_type)t);
		*fix = rpt_result_type_fix((enum rpt_result_type)t);
	} else {
		*meaning = "not a result type of the RFC 8460 registry";
		*fix = "";
	}
}

/* obj[key] += by (an integer), creating it at 0. */
static void
inc(json_t *obj, const char *key, json_int_t by)
{
	json_t *v = json_object_get(obj, key);

	json_object_set_new(obj, key, json_integer((v ? json_integer_value(v) : 0) + by));
}

/* obj[key] as an object, created empty. Borrowed. */
static json_t *
child(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL) {
		v = json_object();
		json_object_set_new(obj, key, v);
	}
	return v;
}

static const char *
str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static json_int_t
num(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void
add_policy(struct rpt_summary *s, const char *org, const char *day, const json_t *p)
{
	json_int_t report_no = (json_int_t)s->nreports;
	const json_t *pol = json_object_get(p, "policy"), *sum = json_object_get(p, "summary");
	const json_t *d;
	char *domain = xstrdup(str(pol, "policy-domain")), *key;
	json_t *a, *o;
	json_int_t ok = num(sum, "total-successful-session-count");
	json_int_t failed = num(sum, "total-failure-session-count");
	size_t i;

	str_lower(domain);
	key = xasprintf("%s" KEY_SEP "%s", domain, day);
	a = child(s->acc, key);
	if (json_object_get(a, "policy-domain") == NULL) {
		json_object_set_new(a, "policy-domain", json_string(domain));
		json_object_set_new(a, "day", json_string(day));
	}
	/* A report with several policies for the domain counts once. */
	if (num(a, "last-report") != report_no + 1) {
		inc(a, "reports", 1);
		json_object_set_new(a, "last-report", json_integer(report_no + 1));
	}
	inc(a, "successful", ok);
	inc(a, "failed", failed);
	inc(child(a, "policy-types"), str(pol, "policy-type"), 1);
	o = child(child(a, "orgs"), org);
	inc(o, "successful", ok);
	inc(o, "failed", failed);
	json_array_foreach(json_object_get(p, "failure-details"), i, d) {
		json_int_t n = num(d, "failed-session-count");
		const char *type = str(d, "result-type"), *code = str(d, "failure-reason-code");
		const char *mx = str(d, "receiving-mx-hostname"), *ip = str(d, "receiving-ip");
		char *tkey = xasprintf("%s" KEY_SEP "%s", type, code ? code : "");

		inc(child(a, "types"), tkey, n);
		if (mx != NULL) {
			json_t *m = child(child(a, "mx"), mx);

			inc(m, "failed", n);
			inc(child(m, "types"), type, n);
		}
		if (ip != NULL) {
			json_t *r = child(child(a, "ips"), ip);

			inc(r, "failed", n);
			if (mx != NULL && json_object_get(r, "mx") == NULL)
				json_object_set_new(r, "mx", json_string(mx));
		}
		free(tkey);
	}
	free(key);
	free(domain);
}

static void
add_report(struct rpt_summary *s, const char *source, const struct rpt_doc *d)
{
	const json_t *r = d->report, *range = json_object_get(r, "date-range"), *p;
	const char *org = str(r, "organization-name"), *rid = str(r, "report-id");
	char *seen_key = xasprintf("%s" KEY_SEP "%s", org, rid), day[11] = "";
	json_t *w = json_array(), *entry;
	bool duplicate = json_object_get(s->seen, seen_key) != NULL;
	time_t start = 0;
	size_t i;

	/* The report belongs to the UTC day it starts on (RPT-10). */
	if (rpt_parse_datetime(str(range, "start-datetime"), &start)) {
		struct tm tm;

		gmtime_r(&start, &tm);
		strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	}
	for (i = 0; i < d->warnings.count; i++)
		json_array_append_new(w, json_string(d->warnings.items[i]));
	entry = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:o}", "source", source,
	    "where", d->where, "organization-name", org, "report-id", rid,
	    "start-datetime", str(range, "start-datetime"), "end-datetime",
	    str(range, "end-datetime"), "policies", (json_int_t)json_array_size(json_object_get(r,
	    "policies")), "duplicate", duplicate, "warnings", w);
	json_array_append_new(s->reports, entry);
	s->nreports++;
	if (!duplicate) {
		json_object_set_new(s->seen, seen_key, json_true());
		json_array_foreach(json_object_get(r, "policies"), i, p)
			add_policy(s, org, day, p);
	}
	free(seen_key);
}

void
rpt_summary_add(struct rpt_summary *s, const char *source, const struct rpt_docs *docs)
{
	for (size_t i = 0; i < docs->count; i++) {
		const struct rpt_doc *d = &docs->items[i];

		if (d->report != NULL) {
			add_report(s, source, d);
		} else {
			json_array_append_new(s->malformed, json_pack("{s:s, s:s, s:s}", "source",
			    source, "where", d->where, "reason", d->error ? d->error : "malformed"));
			s->nmalformed++;
		}
	}
}

void
rpt_summary_add_unreadable(struct rpt_summary *s, const char *source, const char *reason)
{
	json_array_append_new(s->malformed, json_pack("{s:s, s:s, s:s}", "source", source,
	    "where", "input", "reason", reason));
	s->nmalformed++;
}

/* ---- the document -------------------------------------------------------- */

static double
rate(json_int_t part, json_int_t total)
{
	/* four decimals are plenty for a share */
	return total > 0 ? (double)(part * 10000 / total) / 10000.0 : 0.0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of obj, sorted. Borrowed strings; free the array. */
static const char **
sorted_keys(const json_t *obj, size_t *n)
{
	const char **keys = xcalloc(json_object_size(obj) + 1, sizeof(*keys));
	const char *k;
	json_t *v;

	*n = 0;
	json_object_foreach((json_t *)obj, k, v)
		keys[(*n)++] = k;
	qsort(keys, *n, sizeof(*keys), cmp_str);
	return keys;
}

static const char *sort_field, *sort_name;

/* By sort_field descending, then by name (and reason code) for a stable order. */
static int
cmp_desc(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	json_int_t vx = num(x, sort_field), vy = num(y, sort_field);
	const char *cx, *cy;
	int c;

	if (vx != vy)
		return vx > vy ? -1 : 1;
	if ((c = strcmp(str(x, sort_name), str(y, sort_name))) != 0)
		return c;
	cx = str(x, "failure-reason-code");
	cy = str(y, "failure-reason-code");
	return strcmp(cx ? cx : "", cy ? cy : "");
}

/* One row of a summary table: the entry key of obj with its value. */
typedef json_t *(*summary_row)(const char *key, const json_t *value, json_int_t total);

/* A table: a row per member of obj, by field descending, then by name. */
static json_t *
sorted_rows(const json_t *obj, summary_row row, json_int_t total, const char *field,
    const char *name)
{
	size_t n;
	const char **keys = sorted_keys(obj, &n);
	json_t **items = xcalloc(n + 1, sizeof(*items)), *a = json_array();

	for (size_t i = 0; i < n; i++)
		items[i] = row(keys[i], json_object_get(obj, keys[i]), total);
	sort_field = field;
	sort_name = name;
	qsort(items, n, sizeof(*items), cmp_desc);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, items[i]);
	free(items);
	free(keys);
	return a;
}

/* Keys of the result-type table are "type<KEY_SEP>reason code". */
static json_t *
type_row(const char *key, const json_t *count, json_int_t total)
{
	const char *sep = strchr(key, KEY_SEP[0]);
	char *type = xstrndup(key, (size_t)(sep - key));
	const char *code = sep[1] ? sep + 1 : NULL, *meaning, *fix;
	json_int_t c = json_integer_value(count);
	json_t *row;

	rpt_failure_advice(type, code, &meaning, &fix);
	row = json_pack("{s:s, s:o, s:I, s:f, s:s, s:o}", "result-type", type,
	    "failure-reason-code", code ? json_string(code) : json_null(), "sessions", c,
	    "rate", rate(c, total), "meaning", meaning, "fix", *fix ? json_string(fix) :
	    json_null());
	free(type);
	return row;
}

static json_t *
org_row(const char *key, const json_t *o, json_int_t total)
{
	json_int_t os = num(o, "successful"), of = num(o, "failed");

	(void)total;
	return json_pack("{s:s, s:I, s:I, s:f}", "organization-name", key,
	    "successful-sessions", os, "failed-sessions", of, "failure-rate", rate(of, os + of));
}

static json_t *
mx_row(const char *key, const json_t *m, json_int_t total)
{
	(void)total;
	return json_pack("{s:s, s:I, s:O}", "receiving-mx-hostname", key,
	    "failed-sessions", num(m, "failed"), "result-types", json_object_get(m, "types"));
}

static json_t *
ip_row(const char *key, const json_t *r, json_int_t total)
{
	(void)total;
	return json_pack("{s:s, s:o, s:I}", "receiving-ip", key,
	    "receiving-mx-hostname", json_object_get(r, "mx") ?
	    json_copy(json_object_get(r, "mx")) : json_null(), "failed-sessions",
	    num(r, "failed"));
}

static json_t *
domain_json(const json_t *a)
{
	json_int_t ok = num(a, "successful"), failed = num(a, "failed"), total = ok + failed;
	const json_t *types = json_object_get(a, "types"), *orgs = json_object_get(a, "orgs");
	const json_t *mx = json_object_get(a, "mx"), *ips = json_object_get(a, "ips");
	json_t *out;

	out = json_pack("{s:s, s:s, s:I, s:O, s:I, s:I, s:f}", "policy-domain",
	    str(a, "policy-domain"), "day", str(a, "day"), "reports", num(a, "reports"),
	    "policy-types", json_object_get(a, "policy-types"),
	    "successful-sessions", ok, "failed-sessions", failed, "failure-rate", rate(failed, total));

	json_object_set_new(out, "result-types",
	    sorted_rows(types, type_row, total, "sessions", "result-type"));
	json_object_set_new(out, "organizations",
	    sorted_rows(orgs, org_row, total, "failed-sessions", "organization-name"));
	json_object_set_new(out, "mx-hosts",
	    sorted_rows(mx, mx_row, total, "failed-sessions", "receiving-mx-hostname"));
	json_object_set_new(out, "receiving-ips",
	    sorted_rows(ips, ip_row, total, "failed-sessions", "receiving-ip"));
	return out;
}

json_t *
rpt_summary_json(const struct rpt_summary *s)
{
	json_t *domains = json_array();
	const char **keys;
	size_t n;

	keys = sorted_keys(s->acc, &n);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(domains, domain_json(json_object_get(s->acc, keys[i])));
	free(keys);
	return json_pack("{s:O, s:O, s:o}", "reports", s->reports, "malformed", s->malformed,
	    "domains", domains);
}

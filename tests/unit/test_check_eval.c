/*
 * Unit tests of the verdicts of `stsproxy check` (cli/check_eval.c):
 * facts built by hand, checks and exit status asserted. The facts come
 * from real servers in tests/e2e/check.sh; here the rules themselves are
 * pinned down: thresholds, readiness, the id rule, untestable addresses.
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "cli/check.h"

#define NOW	1790000000	/* 2026-09-21 */

static struct sts_policy *
policy(enum sts_mode mode, unsigned long max_age, const char *mx)
{
	struct sts_policy *p = xcalloc(1, sizeof(*p));
	char *line;

	p->mode = mode;
	p->max_age = max_age;
	strlist_add(&p->mx, mx);
	strlist_add(&p->lines, "version: STSv1");
	line = xasprintf("mode: %s", sts_mode_name(mode));
	strlist_add(&p->lines, line);
	free(line);
	line = xasprintf("mx: %s", mx);
	strlist_add(&p->lines, line);
	free(line);
	line = xasprintf("max_age: %lu", max_age);
	strlist_add(&p->lines, line);
	free(line);
	return p;
}

static void
good_probe(struct check_probe *p, size_t host, const char *ip)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&p->addr;

	memset(p, 0, sizeof(*p));
	p->host = host;
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	p->done = true;
	snprintf(p->result.address, sizeof(p->result.address), "%s", ip);
	p->result.connected = p->result.ehlo_ok = p->result.starttls_offered = true;
	p->result.tls_done = p->result.ehlo_tls_ok = true;
	p->result.verdict_known = true;
	p->result.verdict = RPT_RESULT_NONE;
	snprintf(p->result.verdict_reason, sizeof(p->result.verdict_reason), "certificate valid");
	snprintf(p->result.peer.version, sizeof(p->result.peer.version), "TLSv1.3");
	snprintf(p->result.peer.dns_names, sizeof(p->result.peer.dns_names), "mx.a.example");
	p->result.peer.not_after = NOW + 60 * 86400;
}

/* A clean domain in testing: one MX, one address, TLS-RPT by mail. */
static struct check_facts *
clean_facts(void)
{
	struct check_facts *f = xcalloc(1, sizeof(*f));
	struct check_policy_view *v = &f->published;

	f->domain = xstrdup("a.example");
	f->port = 25;
	f->now = NOW;
	f->deadline = 60;
	v->done = true;
	v->source = POLICY_SOURCE_FRESH;
	v->txt_status = DNS_STATUS_OK;
	v->txt_security = DNS_SECURITY_SECURE;
	strlist_add(&v->txt_records, "v=STSv1; id=1;");
	v->txt.status = STS_RECORD_VALID;
	snprintf(v->txt.id, sizeof(v->txt.id), "1");
	v->id = xstrdup("1");
	v->policy = policy(STS_MODE_TESTING, 86400, "mx.a.example");
	v->fetched = true;
	v->fetch.ok = true;
	v->fetch.http_status = 200;
	v->fetch.tls_done = true;
	v->fetch.peer.not_after = NOW + 60 * 86400;
	snprintf(v->fetch.address, sizeof(v->fetch.address), "192.0.2.80");
	snprintf(v->fetch.content_type, sizeof(v->fetch.content_type), "text/plain");
	snprintf(v->fetch.url, sizeof(v->fetch.url), "https://mta-sts.a.example/.well-known/mta-sts.txt");
	f->sender.done = true;
	f->sender.cache_enabled = true;
	f->mx_done = true;
	f->mx_status = MX_STATUS_OK;
	f->nhosts = 1;
	f->hosts = xcalloc(1, sizeof(*f->hosts));
	snprintf(f->hosts[0].name, sizeof(f->hosts[0].name), "mx.a.example");
	f->hosts[0].naddrs = 1;
	f->hosts[0].probed = 1;
	f->nprobes = 1;
	f->probes = xcalloc(CHECK_MAX_PROBES, sizeof(*f->probes));
	good_probe(&f->probes[0], 0, "192.0.2.25");
	f->rpt_done = true;
	f->rpt_dns_status = DNS_STATUS_OK;
	f->rpt.status = TLSRPT_RECORD_VALID;
	strlist_add(&f->rpt.rua, "mailto:tlsrpt@a.example");
	f->nruas = 1;
	f->ruas = xcalloc(1, sizeof(*f->ruas));
	f->ruas[0].uri = xstrdup("mailto:tlsrpt@a.example");
	return f;
}

/* The statuses of every check called name, space-separated. */
static char *
statuses(const struct check_list *l, const char *name)
{
	struct strbuf sb;

	strbuf_init(&sb);
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->items[i].name, name) == 0)
			strbuf_printf(&sb, "%s%s", sb.len ? " " : "", check_status_name(l->items[i].status));
	return sb.data ? strbuf_steal(&sb) : xstrdup("");
}

static void
assert_check(const struct check_facts *f, const char *name, const char *expected, int exit_status)
{
	struct check_list l;
	char *got;

	check_evaluate(f, &l);
	got = statuses(&l, name);
	if (strcmp(got, expected) != 0)
		fail_msg("%s: expected \"%s\", got \"%s\"", name, expected, got);
	assert_int_equal(check_exit_status(&l), exit_status);
	/* every WARN and FAIL says how to fix it; PASS and INFO do not */
	for (size_t i = 0; i < l.count; i++)
		assert_true((l.items[i].fix != NULL) ==
		    (l.items[i].status == CHECK_WARN || l.items[i].status == CHECK_FAIL));
	free(got);
	check_list_clear(&l);
}

static void
test_clean(void **state)
{
	struct check_facts *f = clean_facts();
	struct check_list l;

	(void)state;
	check_evaluate(f, &l);
	assert_int_equal(check_exit_status(&l), 0);
	assert_true(l.ready_for_enforce);
	assert_string_equal(l.mode, "testing");
	check_list_clear(&l);
	assert_check(f, "enforce-readiness", "pass", 0);
	assert_check(f, "policy-id", "info", 0);	/* first check: INFO only */
	check_facts_free(f);
}

/* Certificates: under 14 days warns, at 14 passes; expired is mx-tls's. */
static void
test_expiry(void **state)
{
	struct check_facts *f = clean_facts();

	(void)state;
	f->probes[0].result.peer.not_after = NOW + 13 * 86400 + 3600;
	assert_check(f, "mx-certificate-expiry", "warn", 1);
	assert_check(f, "enforce-readiness", "pass", 1);	/* still ready */
	f->probes[0].result.peer.not_after = NOW + 14 * 86400 + 3600;
	assert_check(f, "mx-certificate-expiry", "pass", 0);
	f->probes[0].result.verdict = RPT_RESULT_CERT_EXPIRED;
	f->probes[0].result.peer.not_after = NOW - 86400;
	assert_check(f, "mx-certificate-expiry", "", 2);
	assert_check(f, "mx-tls", "fail", 2);
	f->published.fetch.peer.not_after = NOW + 86400;
	assert_check(f, "policy-certificate", "warn", 2);
	check_facts_free(f);
}

static void
test_max_age(void **state)
{
	struct check_facts *f = clean_facts();

	(void)state;
	f->published.policy->max_age = 3600;
	assert_check(f, "max-age", "warn", 1);
	f->published.policy->mode = STS_MODE_ENFORCE;
	f->published.policy->max_age = 604799;
	assert_check(f, "max-age", "warn", 1);
	f->published.policy->max_age = 604800;
	assert_check(f, "max-age", "pass", 0);
	f->published.policy->mode = STS_MODE_NONE;
	assert_check(f, "max-age", "info", 2);	/* mode none: not ready */
	check_facts_free(f);
}

/* STS-20: a changed policy under an unchanged id. */
static void
test_policy_id(void **state)
{
	struct check_facts *f = clean_facts();

	(void)state;
	f->previous = policy_cache_entry_new("a.example");
	f->previous->id = xstrdup("1");
	f->previous->policy = policy(STS_MODE_TESTING, 86400, "mx.a.example");
	assert_check(f, "policy-id", "pass", 0);
	sts_policy_free(f->published.policy);
	f->published.policy = policy(STS_MODE_ENFORCE, 604800, "mx.a.example");
	assert_check(f, "policy-id", "fail", 2);
	free(f->previous->id);
	f->previous->id = xstrdup("0");
	assert_check(f, "policy-id", "pass", 0);
	f->sender.cache_enabled = false;
	assert_check(f, "policy-id", "info", 0);
	check_facts_free(f);
}

/* Every MX must match; readiness fails otherwise. */
static void
test_coverage(void **state)
{
	struct check_facts *f = clean_facts();

	(void)state;
	strlist_clear(&f->published.policy->mx);
	strlist_add(&f->published.policy->mx, "*.b.example");
	assert_check(f, "mx-coverage", "fail warn", 2);
	assert_check(f, "enforce-readiness", "fail", 2);
	strlist_clear(&f->published.policy->mx);
	strlist_add(&f->published.policy->mx, "*.a.example");
	assert_check(f, "mx-coverage", "pass", 0);
	check_facts_free(f);
}

/* An IPv6 address without a route here is untestable, not failing; an
 * address over the limit is not probed. Neither lets readiness pass. */
static void
test_untestable(void **state)
{
	struct check_facts *f = clean_facts();
	struct check_probe *p = &f->probes[1];
	struct check_list l;

	(void)state;
	memset(p, 0, sizeof(*p));
	p->addr.ss_family = AF_INET6;
	p->done = true;
	p->result.connect_errno = ENETUNREACH;
	p->result.failed_step = "connect";
	snprintf(p->result.error, sizeof(p->result.error), "connect failed: Network is unreachable");
	f->nprobes = 2;
	f->hosts[0].naddrs = 2;
	assert_check(f, "mx-tls", "pass warn", 1);
	assert_check(f, "enforce-readiness", "warn", 1);
	check_evaluate(f, &l);
	assert_false(l.ready_for_enforce);
	check_list_clear(&l);
	p->result.connect_errno = ECONNREFUSED;
	assert_check(f, "mx-tls", "pass fail", 2);
	f->nprobes = 1;
	f->hosts[0].skipped = 1;
	assert_check(f, "mx-tls", "info pass", 1);
	assert_check(f, "enforce-readiness", "warn", 1);
	check_facts_free(f);
}

/* TXT record, policy fetch, TLS-RPT: the failure classes. */
static void
test_txt_and_fetch(void **state)
{
	struct check_facts *f = clean_facts();

	(void)state;
	f->published.txt.status = STS_RECORD_MULTIPLE;
	assert_check(f, "txt-record", "fail", 2);
	assert_check(f, "enforce-readiness", "fail", 2);
	f->published.txt.status = STS_RECORD_VALID;
	f->published.txt_security = DNS_SECURITY_INSECURE;
	assert_check(f, "txt-dnssec", "info", 0);
	f->published.fetch.ok = false;
	f->published.fetch.http_status = 301;
	assert_check(f, "policy-http", "fail", 2);
	f->published.fetch.http_status = 200;
	snprintf(f->published.fetch.content_type, sizeof(f->published.fetch.content_type),
	    "text/html");
	assert_check(f, "policy-http", "fail", 2);
	f->published.fetch.tls_done = false;
	f->published.fetch.http_status = 0;
	f->published.fetch.type = RPT_RESULT_STS_WEBPKI_INVALID;
	assert_check(f, "policy-certificate", "fail", 2);
	assert_check(f, "policy-host", "pass", 2);
	f->published.fetch.address[0] = '\0';
	assert_check(f, "policy-host", "fail", 2);
	check_facts_free(f);

	f = clean_facts();
	f->rpt.status = TLSRPT_RECORD_ABSENT;
	free(f->ruas[0].uri);
	free(f->ruas);
	f->ruas = NULL;
	f->nruas = 0;
	assert_check(f, "tlsrpt-record", "warn", 1);
	f->rpt.status = TLSRPT_RECORD_INVALID;
	assert_check(f, "tlsrpt-record", "fail", 2);
	check_facts_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_max_age),
		cmocka_unit_test(test_policy_id),
		cmocka_unit_test(test_coverage),
		cmocka_unit_test(test_untestable),
		cmocka_unit_test(test_txt_and_fetch),
	};

	return cmocka_run_group_tests_name("check_eval", tests, NULL, NULL);
}

/*
 * Unit tests of the MX walk (proxy/mx_walk.c): which MX and address an
 * upstream transaction tries next, and the reply it gives up with. The
 * walk needs no sockets: each test plays the dialogue's part, saying how
 * every attempt failed, and checks the routes, the TLS-RPT records the
 * walk makes (skipped MXs) and the final reply, to the letter.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "proxy/mx_walk.h"
#include "proxy/upstream.h"
#include "report/outcome.h"

struct record {
	enum outcome_action	 action;
	char			 mx_host[256];
	enum rpt_result_type	 result;
	char			 policy_type[32];
	char			 policy_domain[256];
	char			 dane[32];
	bool			 would_defer;
};

static struct {
	struct event_base	*base;
	struct runtime		 rt;
	struct conf		*conf;
	struct upstream_txn	 txn;
	struct mx_walk		*walk;
	bool			 ready;
	struct record		 records[16];
	size_t			 nrecords;
} W;

static void
on_outcome(void *arg, const struct delivery_outcome *o)
{
	struct record *r = &W.records[W.nrecords++];

	(void)arg;
	assert_true(W.nrecords <= sizeof(W.records) / sizeof(W.records[0]));
	r->action = o->action;
	snprintf(r->mx_host, sizeof(r->mx_host), "%s", o->mx_host ? o->mx_host : "");
	r->result = o->result;
	snprintf(r->policy_type, sizeof(r->policy_type), "%s", o->policy_type);
	snprintf(r->policy_domain, sizeof(r->policy_domain), "%s", o->policy_domain);
	snprintf(r->dane, sizeof(r->dane), "%s", o->dane ? o->dane : "off");
	r->would_defer = o->would_defer;
}

static void
on_ready(void *arg)
{
	(void)arg;
	W.ready = true;
}

/* An MX host with naddrs loopback addresses 127.0.0.<first>... on port 25. */
static struct mx_host
host(const char *name, size_t naddrs, unsigned first)
{
	struct mx_host h;

	memset(&h, 0, sizeof(h));
	snprintf(h.name, sizeof(h.name), "%s", name);
	for (size_t i = 0; i < naddrs; i++) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&h.addrs[i];

		sin->sin_family = AF_INET;
		sin->sin_port = htons(25);
		sin->sin_addr.s_addr = htonl(0x7f000000u | (first + (unsigned)i));
	}
	h.naddrs = naddrs;
	return h;
}

/*
 * Start a walk over hosts for d.example under conf_text, with mode and
 * patterns (a space-separated list; NULL: no policy), and run the loop
 * until it is ready.
 */
static void
start_walk(const char *conf_text, const struct mx_host *hosts, size_t nhosts, enum sts_mode mode,
    const char *patterns)
{
	struct strlist errors = { 0 };

	W.conf = conf_parse_buffer("test", conf_text, strlen(conf_text), &errors);
	assert_non_null(W.conf);
	assert_int_equal(errors.count, 0);
	W.rt.base = W.base;
	W.rt.conf = W.conf;
	upstream_txn_init(&W.txn, "s1", "d.example", 0);
	if (patterns != NULL) {
		char *copy = strdup(patterns), *save = NULL;

		W.txn.policy.have = true;
		W.txn.policy.mode = mode;
		W.txn.policy.id = strdup("20240101");
		for (char *p = strtok_r(copy, " ", &save); p; p = strtok_r(NULL, " ", &save))
			strlist_add(&W.txn.policy.patterns, p);
		free(copy);
	}
	W.ready = false;
	W.nrecords = 0;
	W.walk = mx_walk_new_resolved(&W.rt, &W.txn, hosts, nhosts, on_ready, NULL);
	/* never from inside the constructor: the caller is not set up yet */
	assert_false(W.ready);
}

/* Run the loop until the walk is ready. */
static void
run_ready(void)
{
	event_base_loop(W.base, EVLOOP_NONBLOCK);
	assert_true(W.ready);
}

static void
start(const char *conf_text, const struct mx_host *hosts, size_t nhosts, enum sts_mode mode,
    const char *patterns)
{
	start_walk(conf_text, hosts, nhosts, mode, patterns);
	run_ready();
}

#define H32 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* DANE facts of host as looked up: state, and the records (text, NULL-ended). */
static struct dane_tlsa *
facts(const char *host, enum dane_state state, const char *const *records)
{
	struct dane_tlsa *t = dane_tlsa_new(host);
	const char *why;

	for (size_t i = 0; records != NULL && records[i] != NULL; i++)
		assert_int_equal(dane_tlsa_add_text(t, records[i], &why), 0);
	if (records != NULL) {
		snprintf(t->qname, sizeof(t->qname), "_25._tcp.%s", host);
		dane_tlsa_finish(t, host);
	} else {
		dane_tlsa_set_state(t, state, "%s for %s", dane_state_name(state), host);
		if (state == DANE_S_FAILED)
			t->failure = RPT_RESULT_DNSSEC_INVALID;
	}
	assert_int_equal(t->state, state);
	return t;
}

static void
finish(void)
{
	mx_walk_free(W.walk);
	upstream_txn_clear(&W.txn);
	conf_free(W.conf);
	W.walk = NULL;
}

/* The next step must be a route to host at 127.0.0.<last_octet>. */
static void
expect_route(const char *host, unsigned last_octet, bool strict, bool plaintext)
{
	struct mx_route route;
	struct smtp_reply r;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&route.addr;

	smtp_reply_init(&r);
	assert_int_equal(mx_walk_next(W.walk, &route, &r), MX_WALK_TRY);
	assert_string_equal(route.mx_host, host);
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000000u | last_octet);
	assert_int_equal(route.strict, strict);
	assert_int_equal(route.plaintext, plaintext);
	smtp_reply_clear(&r);
}

/* The next step must be a route to host under regime kind. */
static struct mx_route
expect_regime(const char *host, enum regime_kind kind)
{
	struct mx_route route;
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(mx_walk_next(W.walk, &route, &r), MX_WALK_TRY);
	assert_string_equal(route.mx_host, host);
	if (route.regime.kind != kind)
		fail_msg("%s: regime %s, expected %s (%s)", host, regime_kind_name(route.regime.kind),
		    regime_kind_name(kind), route.regime.reason);
	smtp_reply_clear(&r);
	return route;
}

/* The next step must be to give up with exactly this reply (flattened). */
static void
expect_give_up(const char *flat)
{
	struct mx_route route;
	struct smtp_reply r;
	char *got;

	smtp_reply_init(&r);
	assert_int_equal(mx_walk_next(W.walk, &route, &r), MX_WALK_GIVE_UP);
	got = smtp_reply_flatten(&r);
	assert_string_equal(got, flat);
	free(got);
	smtp_reply_clear(&r);
}

/* STS-36a, STS-42, STS-54, STS-41: enforce goes through the MXs in
 * order, skips and records the one the policy does not list, tries every
 * address, and defers with 4.7.5 naming each failure. */
static void
test_enforce_skips_unlisted_and_defers(void **state)
{
	struct mx_host hosts[] = {
		host("mx1.other.example", 1, 11),
		host("mx2.d.example", 2, 21),
		host("mx3.d.example", 1, 31),
	};

	(void)state;
	start("", hosts, 3, STS_MODE_ENFORCE, "*.d.example");
	expect_route("mx2.d.example", 21, true, false);
	assert_int_equal(W.nrecords, 1);
	assert_int_equal(W.records[0].action, OUTCOME_ACTION_SKIPPED);
	assert_string_equal(W.records[0].mx_host, "mx1.other.example");
	assert_int_equal(W.records[0].result, RPT_RESULT_VALIDATION_FAILURE);
	assert_string_equal(W.records[0].policy_type, "sts");
	mx_walk_failed(W.walk, MX_FAIL_STARTTLS, "does not offer STARTTLS");
	expect_route("mx2.d.example", 22, true, false);
	mx_walk_failed(W.walk, MX_FAIL_STARTTLS, "does not offer STARTTLS");
	expect_route("mx3.d.example", 31, true, false);
	mx_walk_failed(W.walk, MX_FAIL_POLICY, "certificate has expired");
	expect_give_up("451 4.7.5 MTA-STS: mx1.other.example not in policy; mx2.d.example does not "
	    "offer STARTTLS; mx2.d.example does not offer STARTTLS; mx3.d.example certificate has "
	    "expired [stsproxy session s1]");
	assert_int_equal(W.nrecords, 1);
	finish();
}

/* Spec §11: only STARTTLS missing is 4.7.4; only unreachable MXs 4.4.1. */
static void
test_enforce_reply_by_failure_kind(void **state)
{
	struct mx_host hosts[] = { host("mx1.d.example", 1, 11) };

	(void)state;
	start("", hosts, 1, STS_MODE_ENFORCE, "mx1.d.example");
	expect_route("mx1.d.example", 11, true, false);
	mx_walk_failed(W.walk, MX_FAIL_STARTTLS, "does not offer STARTTLS");
	expect_give_up("451 4.7.4 MTA-STS: mx1.d.example does not offer STARTTLS "
	    "[stsproxy session s1]");
	finish();

	start("", hosts, 1, STS_MODE_ENFORCE, "mx1.d.example");
	expect_route("mx1.d.example", 11, true, false);
	mx_walk_failed(W.walk, MX_FAIL_CONNECT, "connection refused");
	expect_give_up("451 4.4.1 MTA-STS: no MX reachable: mx1.d.example connection refused "
	    "[stsproxy session s1]");
	finish();
}

/* STS-44: testing evaluates strictly, then delivers without the policy
 * from the first MX again; the fallback's failures are not recorded a
 * second time, and the final reply is the plain 4.4.1. */
static void
test_testing_falls_back(void **state)
{
	struct mx_host hosts[] = {
		host("mx1.other.example", 1, 11),
		host("mx2.d.example", 1, 21),
	};
	bool recorded = false;

	(void)state;
	start("", hosts, 2, STS_MODE_TESTING, "*.d.example");
	expect_route("mx2.d.example", 21, true, false);
	mx_walk_failed(W.walk, MX_FAIL_POLICY, "certificate has expired");
	assert_false(W.txn.policy.would_defer);
	expect_route("mx1.other.example", 11, false, false);
	assert_true(W.txn.policy.would_defer);
	assert_int_equal(W.nrecords, 1);	/* the skipped mx1, from the strict walk */
	/* what the dialogue does with a failed attempt of the fallback */
	upstream_record_failed(&W.txn, "mx1.other.example", NULL, NULL, NULL, RPT_RESULT_NONE,
	    "connection refused", &recorded);
	assert_false(recorded);
	assert_int_equal(W.nrecords, 1);
	mx_walk_failed(W.walk, MX_FAIL_CONNECT, "connection refused");
	expect_route("mx2.d.example", 21, false, false);
	mx_walk_failed(W.walk, MX_FAIL_CONNECT, "connection refused");
	expect_give_up("451 4.4.1 No MX of d.example reachable: mx1.other.example not in policy; "
	    "mx2.d.example certificate has expired; mx1.other.example connection refused; "
	    "mx2.d.example connection refused [stsproxy session s1]");
	finish();
}

/* RFC 3207 §4.1: without a policy, a failed TLS handshake is retried in
 * the clear on the same address, and that counts as an attempt. */
static void
test_opportunistic_plaintext_retry(void **state)
{
	struct mx_host hosts[] = { host("mx1.d.example", 1, 11) };

	(void)state;
	start("", hosts, 1, STS_MODE_NONE, NULL);
	expect_route("mx1.d.example", 11, false, false);
	mx_walk_retry_plaintext(W.walk);
	mx_walk_failed(W.walk, MX_FAIL_CONNECT, "handshake failed");
	expect_route("mx1.d.example", 11, false, true);
	mx_walk_failed(W.walk, MX_FAIL_CONNECT, "closed the connection in BANNER");
	expect_give_up("451 4.4.1 No MX of d.example reachable: mx1.d.example handshake failed; "
	    "mx1.d.example closed the connection in BANNER [stsproxy session s1]");
	assert_int_equal(W.nrecords, 0);
	finish();
}

/* [upstream] max_attempts bounds the walk, addresses and retries alike. */
static void
test_max_attempts(void **state)
{
	struct mx_host hosts[] = { host("mx1.d.example", 3, 11) };

	(void)state;
	start("[upstream]\nmax_attempts = 2\n", hosts, 1, STS_MODE_NONE, NULL);
	expect_route("mx1.d.example", 11, false, false);
	mx_walk_failed(W.walk, MX_FAIL_CONNECT, "connection refused");
	expect_route("mx1.d.example", 12, false, false);
	mx_walk_failed(W.walk, MX_FAIL_CONNECT, "connection refused");
	expect_give_up("451 4.4.1 No MX of d.example reachable: mx1.d.example connection refused; "
	    "mx1.d.example connection refused; and no more attempts ([upstream] max_attempts) "
	    "[stsproxy session s1]");
	finish();
}

/* A host without addresses is passed over and named in the reply. */
static void
test_host_without_address(void **state)
{
	struct mx_host hosts[] = {
		host("mx1.d.example", 0, 0),
		host("mx2.d.example", 1, 21),
	};

	(void)state;
	start("", hosts, 2, STS_MODE_NONE, NULL);
	expect_route("mx2.d.example", 21, false, false);
	mx_walk_failed(W.walk, MX_FAIL_CONNECT, "connection refused");
	expect_give_up("451 4.4.1 No MX of d.example reachable: mx1.d.example has no address; "
	    "mx2.d.example connection refused [stsproxy session s1]");
	finish();
}

/* Spec §11: no usable MX at all is permanent, and a 5xx carries no session tag. */
static void
test_no_hosts(void **state)
{
	(void)state;
	start("", NULL, 0, STS_MODE_NONE, NULL);
	expect_give_up("554 5.4.4 No usable MX for d.example: no hosts given");
	finish();
}

/* DANE-10, DANE-4: a usable TLSA RRset makes DANE the MX's only judge; the order stays. */
static void
test_dane_then_opportunistic(void **state)
{
	struct mx_host hosts[] = { host("mx1.d.example", 1, 11), host("mx2.d.example", 1, 21) };
	const char *ee[] = { "3 1 1 " H32, NULL };
	struct mx_route route;

	(void)state;
	start_walk("", hosts, 2, STS_MODE_NONE, NULL);
	mx_walk_set_dane(W.walk, 0, facts("mx1.d.example", DANE_S_USABLE, ee), true);
	mx_walk_set_dane(W.walk, 1, facts("mx2.d.example", DANE_S_NONE, NULL), true);
	run_ready();
	route = expect_regime("mx1.d.example", REGIME_DANE);
	assert_true(route.regime.tls_required && route.regime.authenticate);
	assert_string_equal(route.regime.tlsa->base, "mx1.d.example");
	/* DANE-12: with a secure MX lookup, the next hop is a reference identifier */
	assert_int_equal(route.dane_names->count, 1);
	assert_string_equal(route.dane_names->items[0], "d.example");
	mx_walk_failed(W.walk, MX_FAIL_POLICY, "TLSA mismatch (DANE-EE 3 1 1)");
	route = expect_regime("mx2.d.example", REGIME_OPPORTUNISTIC);
	assert_false(route.regime.tls_required);
	mx_walk_failed(W.walk, MX_FAIL_CONNECT, "connection refused");
	/* no policy, but a DANE failure among the reasons: 4.7.5, never 4.4.1 */
	expect_give_up("451 4.7.5 DANE: mx1.d.example TLSA mismatch (DANE-EE 3 1 1); mx2.d.example "
	    "connection refused [stsproxy session s1]");
	finish();
}

/* DANE-3, case 56: a failed TLSA lookup makes the MX unreachable, whatever MTA-STS says. */
static void
test_dane_lookup_failure(void **state)
{
	struct mx_host hosts[] = { host("mx1.d.example", 1, 11), host("mx2.d.example", 1, 21) };

	(void)state;
	start_walk("", hosts, 2, STS_MODE_ENFORCE, "*.d.example");
	mx_walk_set_dane(W.walk, 0, facts("mx1.d.example", DANE_S_FAILED, NULL), true);
	mx_walk_set_dane(W.walk, 1, facts("mx2.d.example", DANE_S_NONE, NULL), true);
	run_ready();
	expect_regime("mx2.d.example", REGIME_MTA_STS);
	assert_int_equal(W.nrecords, 1);
	assert_int_equal(W.records[0].action, OUTCOME_ACTION_FAILED);
	assert_int_equal(W.records[0].result, RPT_RESULT_DNSSEC_INVALID);
	/* DANE-20: under a tlsa policy of the TLSA base domain (here the host) */
	assert_string_equal(W.records[0].policy_type, "tlsa");
	assert_string_equal(W.records[0].policy_domain, "mx1.d.example");
	assert_string_equal(W.records[0].dane, "lookup-failed");
	mx_walk_failed(W.walk, MX_FAIL_CONNECT, "connection refused");
	/* a failed TLSA lookup among the reasons: spec §11, 4.4.3 */
	expect_give_up("451 4.4.3 MTA-STS and DANE: mx1.d.example lookup-failed for "
	    "mx1.d.example; mx2.d.example connection refused [stsproxy session s1]");
	finish();

	/* only lookup failures: spec §11, 4.4.3 */
	start_walk("", hosts, 1, STS_MODE_NONE, NULL);
	mx_walk_set_dane(W.walk, 0, facts("mx1.d.example", DANE_S_FAILED, NULL), true);
	run_ready();
	expect_give_up("451 4.4.3 DANE: mx1.d.example lookup-failed for mx1.d.example "
	    "[stsproxy session s1]");
	finish();
}

/* STS-46, STS-47: DANE authenticates its MX under enforce; the mx filter still applies. */
static void
test_dane_with_enforce(void **state)
{
	struct mx_host hosts[] = {
		host("mx1.other.example", 1, 11),
		host("mx2.d.example", 1, 21),
		host("mx3.d.example", 1, 31),
	};
	const char *ee[] = { "3 1 1 " H32, NULL };

	(void)state;
	start_walk("", hosts, 3, STS_MODE_ENFORCE, "*.d.example");
	mx_walk_set_dane(W.walk, 0, facts("mx1.other.example", DANE_S_USABLE, ee), true);
	mx_walk_set_dane(W.walk, 1, facts("mx2.d.example", DANE_S_USABLE, ee), true);
	mx_walk_set_dane(W.walk, 2, facts("mx3.d.example", DANE_S_NONE, NULL), true);
	run_ready();
	expect_regime("mx2.d.example", REGIME_DANE);
	assert_int_equal(W.nrecords, 1);
	assert_int_equal(W.records[0].action, OUTCOME_ACTION_SKIPPED);
	assert_string_equal(W.records[0].policy_type, "sts");
	/* STS-46, case 57: DANE fails; MTA-STS is not asked about this MX */
	mx_walk_failed(W.walk, MX_FAIL_POLICY, "TLSA mismatch (DANE-EE 3 1 1)");
	expect_regime("mx3.d.example", REGIME_MTA_STS);
	mx_walk_failed(W.walk, MX_FAIL_POLICY, "certificate expired");
	expect_give_up("451 4.7.5 MTA-STS and DANE: mx1.other.example not in policy; mx2.d.example "
	    "TLSA mismatch (DANE-EE 3 1 1); mx3.d.example certificate expired [stsproxy session s1]");
	finish();
}

/* DANE-8, DANE-9, case 55: secure records, none usable: STARTTLS required, not authenticated. */
static void
test_dane_unusable_records(void **state)
{
	struct mx_host hosts[] = { host("mx1.d.example", 1, 11) };
	const char *pkix[] = { "1 1 1 " H32, "4 1 1 " H32, NULL };
	struct mx_route route;

	(void)state;
	start_walk("", hosts, 1, STS_MODE_NONE, NULL);
	mx_walk_set_dane(W.walk, 0, facts("mx1.d.example", DANE_S_UNUSABLE, pkix), true);
	run_ready();
	route = expect_regime("mx1.d.example", REGIME_DANE_TLS);
	assert_true(route.regime.tls_required);
	assert_false(route.regime.authenticate);
	mx_walk_failed(W.walk, MX_FAIL_STARTTLS, "does not offer STARTTLS");
	expect_give_up("451 4.7.4 DANE: mx1.d.example does not offer STARTTLS [stsproxy session s1]");
	finish();
}

/* DANE-17: dane-only: an MX without usable TLSA records is never used. */
static void
test_dane_required(void **state)
{
	struct mx_host hosts[] = { host("mx1.d.example", 1, 11), host("mx2.d.example", 1, 21) };
	const char *ee[] = { "3 1 1 " H32, NULL };
	const char *conf = "[policy]\noverride = d.example:dane-only\n";

	(void)state;
	start_walk(conf, hosts, 2, STS_MODE_NONE, NULL);
	mx_walk_set_dane(W.walk, 0, facts("mx1.d.example", DANE_S_INSECURE, NULL), true);
	mx_walk_set_dane(W.walk, 1, facts("mx2.d.example", DANE_S_USABLE, ee), true);
	run_ready();
	expect_regime("mx2.d.example", REGIME_DANE);
	assert_int_equal(W.nrecords, 1);
	assert_int_equal(W.records[0].result, RPT_RESULT_DANE_REQUIRED);
	assert_string_equal(W.records[0].policy_type, "tlsa");
	assert_string_equal(W.records[0].dane, "required");
	finish();

	start_walk(conf, hosts, 1, STS_MODE_NONE, NULL);
	mx_walk_set_dane(W.walk, 0, facts("mx1.d.example", DANE_S_MX_INSECURE, NULL), false);
	run_ready();
	expect_give_up("451 4.7.5 DANE: mx1.d.example no usable TLSA record, DANE required "
	    "(mx-insecure for mx1.d.example) [stsproxy session s1]");
	finish();
}

/* Only a host whose TLSA answer is still out stops the walk, and it goes on when it comes. */
static void
test_dane_wait(void **state)
{
	struct mx_host hosts[] = { host("mx1.d.example", 1, 11), host("mx2.d.example", 1, 21) };
	const char *ee[] = { "3 1 1 " H32, NULL };
	struct mx_route route;
	struct smtp_reply r;

	(void)state;
	start_walk("", hosts, 2, STS_MODE_NONE, NULL);
	mx_walk_set_dane(W.walk, 0, facts("mx1.d.example", DANE_S_NONE, NULL), true);
	mx_walk_set_dane(W.walk, 1, NULL, true);
	run_ready();
	expect_regime("mx1.d.example", REGIME_OPPORTUNISTIC);
	mx_walk_failed(W.walk, MX_FAIL_CONNECT, "connection refused");
	smtp_reply_init(&r);
	assert_int_equal(mx_walk_next(W.walk, &route, &r), MX_WALK_WAIT);
	smtp_reply_clear(&r);
	W.ready = false;
	mx_walk_set_dane(W.walk, 1, facts("mx2.d.example", DANE_S_USABLE, ee), true);
	assert_true(W.ready);
	expect_regime("mx2.d.example", REGIME_DANE);
	finish();
}

/* simulate = enforce: what dane-only would have deferred, where it is not set. */
static void
test_dane_simulate(void **state)
{
	struct mx_host hosts[] = { host("mx1.d.example", 1, 11), host("mx2.d.example", 1, 21) };
	const char *ee[] = { "3 1 1 " H32, NULL };
	struct strbuf m;

	(void)state;
	metrics_reset();
	start_walk("[policy]\nsimulate = enforce\n", hosts, 2, STS_MODE_NONE, NULL);
	mx_walk_set_dane(W.walk, 0, facts("mx1.d.example", DANE_S_USABLE, ee), true);
	mx_walk_set_dane(W.walk, 1, facts("mx2.d.example", DANE_S_NONE, NULL), true);
	run_ready();
	expect_regime("mx1.d.example", REGIME_DANE);
	mx_walk_failed(W.walk, MX_FAIL_POLICY, "TLSA mismatch (DANE-EE 3 1 1)");
	/* delivered without DANE: dane-only would have deferred it */
	expect_regime("mx2.d.example", REGIME_OPPORTUNISTIC);
	strbuf_init(&m);
	metrics_render(&m);
	assert_non_null(strstr(m.data, "\nstsproxy_dane_simulated_deferrals_total 1\n"));
	strbuf_free(&m);
	finish();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enforce_skips_unlisted_and_defers),
		cmocka_unit_test(test_enforce_reply_by_failure_kind),
		cmocka_unit_test(test_testing_falls_back),
		cmocka_unit_test(test_opportunistic_plaintext_retry),
		cmocka_unit_test(test_max_attempts),
		cmocka_unit_test(test_host_without_address),
		cmocka_unit_test(test_no_hosts),
		cmocka_unit_test(test_dane_then_opportunistic),
		cmocka_unit_test(test_dane_lookup_failure),
		cmocka_unit_test(test_dane_with_enforce),
		cmocka_unit_test(test_dane_unusable_records),
		cmocka_unit_test(test_dane_required),
		cmocka_unit_test(test_dane_wait),
		cmocka_unit_test(test_dane_simulate),
	};
	int rc;

	log_init("test", false, LOG_LEVEL_CRIT);
	outcome_set_hook(on_outcome, NULL);
	W.base = event_base_new();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	event_base_free(W.base);
	return rc;
}

/*
 * Unit tests of policy/dane.c: TLSA records as DNS and operators write
 * them, which are usable, the RRset identity that bounds connection
 * reuse and resumption, the checks that need no TLSA query, the DANE-TA
 * reference identifiers, and the regime table every MX goes through.
 * The TLSA lookup itself runs against NSD in tests/e2e/dane.sh.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/dane.h"

#define H32 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define H64 H32 H32

static struct dane_tlsa *
tlsa(const char *base, const char *const *records)
{
	struct dane_tlsa *t = dane_tlsa_new(base);
	const char *why = NULL;

	for (size_t i = 0; records[i] != NULL; i++)
		if (dane_tlsa_add_text(t, records[i], &why) != 0)
			fail_msg("%s: %s", records[i], why);
	dane_tlsa_finish(t, base);
	return t;
}

/* RFC 6698 section 2.1: three octets, then the data; shorter is malformed (DANE-3). */
static void
test_rdata(void **state)
{
	struct dane_tlsa *t = dane_tlsa_new("mx.a.com");
	const unsigned char ok[] = { 3, 1, 1, 0xab }, short3[] = { 3, 1, 1 };
	const char *why = NULL;

	(void)state;
	assert_int_equal(dane_tlsa_add_rdata(t, ok, sizeof(ok), &why), 0);
	assert_int_equal(t->count, 1);
	assert_int_equal(t->records[0].len, 1);
	assert_int_equal(t->records[0].data[0], 0xab);
	/* well-formed, but SHA2-256 data of one byte cannot match: unusable */
	assert_string_equal(t->records[0].unusable, "SHA2-256 data is not 32 bytes");
	assert_int_equal(dane_tlsa_add_rdata(t, short3, sizeof(short3), &why), -1);
	assert_string_equal(why, "TLSA record shorter than 4 bytes");
	assert_int_equal(dane_tlsa_add_rdata(t, ok, 0, &why), -1);
	/* bounded: an RRset larger than stsproxy keeps is malformed, not cut */
	for (size_t i = t->count; i < DANE_RECORDS_MAX; i++)
		assert_int_equal(dane_tlsa_add_rdata(t, ok, sizeof(ok), &why), 0);
	assert_int_equal(dane_tlsa_add_rdata(t, ok, sizeof(ok), &why), -1);
	assert_non_null(strstr(why, "more TLSA records"));
	dane_tlsa_free(t);
}

static void
test_text_form(void **state)
{
	struct dane_tlsa *t = dane_tlsa_new("mx.a.com");
	const char *why = NULL;

	(void)state;
	assert_int_equal(dane_tlsa_add_text(t, "3 1 1 " H32, &why), 0);
	assert_null(t->records[0].unusable);
	assert_int_equal(dane_tlsa_add_text(t, " 2  0 2 " H32 " " H32, &why), 0);
	assert_int_equal(t->records[1].len, 64);
	assert_int_equal(dane_tlsa_add_text(t, "3 1 1 abc", &why), -1);
	assert_non_null(strstr(why, "hex"));
	assert_int_equal(dane_tlsa_add_text(t, "3 1", &why), -1);
	assert_int_equal(dane_tlsa_add_text(t, "256 1 1 ab", &why), -1);
	assert_int_equal(dane_tlsa_add_text(t, "x 1 1 ab", &why), -1);
	assert_int_equal(dane_tlsa_add_text(t, "3 1 1 zz", &why), -1);
	assert_int_equal(t->count, 2);
	dane_tlsa_free(t);
}

/* DANE-14 and what OpenSSL can use: usage 2/3, selector 0/1, matching type 0/1/2. */
static void
test_usability(void **state)
{
	const struct {
		const char	*record;
		const char	*unusable;	/* substring, NULL: usable */
	} cases[] = {
		{ "3 1 1 " H32, NULL },
		{ "2 0 1 " H32, NULL },
		{ "3 0 2 " H64, NULL },
		{ "0 0 1 " H32, "PKIX-TA(0)" },
		{ "1 1 1 " H32, "PKIX-EE(1)" },
		{ "4 1 1 " H32, "unknown certificate usage" },
		{ "3 2 1 " H32, "unknown selector" },
		{ "3 1 3 " H32, "unknown matching type" },
		{ "3 1 2 " H32, "SHA2-512 data is not 64 bytes" },
		{ "3 0 0 " H32, "full certificate (0 0) does not parse" },
		{ "3 1 0 " H32, "full public key (x 1 0) does not parse" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *recs[] = { cases[i].record, NULL };
		struct dane_tlsa *t = tlsa("mx.a.com", recs);

		if (cases[i].unusable == NULL) {
			assert_null(t->records[0].unusable);
			assert_int_equal(t->state, DANE_S_USABLE);
		} else {
			assert_non_null(t->records[0].unusable);
			if (strstr(t->records[0].unusable, cases[i].unusable) == NULL)
				fail_msg("%s: '%s' lacks '%s'", cases[i].record, t->records[0].unusable,
				    cases[i].unusable);
			/* DANE-8: secure records, none usable */
			assert_int_equal(t->state, DANE_S_UNUSABLE);
		}
		dane_tlsa_free(t);
	}
}

/* The RRset identity ignores record order, and changes with a record or the base. */
static void
test_identity_and_text(void **state)
{
	const char *ab[] = { "3 1 1 " H32, "2 0 1 " H32, "1 1 1 " H32, NULL };
	const char *ba[] = { "1 1 1 " H32, "2 0 1 " H32, "3 1 1 " H32, NULL };
	const char *a[] = { "3 1 1 " H32, NULL };
	struct dane_tlsa *x = tlsa("mx.a.com", ab), *y = tlsa("mx.a.com", ba);
	struct dane_tlsa *z = tlsa("mx.a.com", a), *w = tlsa("mx2.a.com", ab), *c;

	(void)state;
	assert_int_equal(strlen(x->id), 16);
	assert_string_equal(x->id, y->id);
	assert_string_not_equal(x->id, z->id);
	assert_string_not_equal(x->id, w->id);
	/* RFC 8460 section 4.5 policy-string: one "u s m HEX" per record */
	assert_int_equal(x->text.count, 3);
	assert_string_equal(x->text.items[0], "1 1 1 " "0123456789ABCDEF0123456789ABCDEF"
	    "0123456789ABCDEF0123456789ABCDEF");
	/* the usable parameters, for "TLSA mismatch (...)" */
	assert_string_equal(x->params, "DANE-TA 2 0 1, DANE-EE 3 1 1");
	assert_int_equal(x->usable, 2);
	assert_int_equal(x->state, DANE_S_USABLE);
	c = dane_tlsa_copy(x);
	assert_string_equal(c->id, x->id);
	assert_string_equal(c->text.items[2], x->text.items[2]);
	assert_ptr_not_equal(c->records[0].data, x->records[0].data);
	dane_tlsa_free(c);
	dane_tlsa_free(x);
	dane_tlsa_free(y);
	dane_tlsa_free(z);
	dane_tlsa_free(w);
}

/* DANE-5, DANE-6, DANE-18: no TLSA query at all. */
static void
test_precheck(void **state)
{
	struct mx_host h;
	struct dane_tlsa *t;

	(void)state;
	memset(&h, 0, sizeof(h));
	snprintf(h.name, sizeof(h.name), "mx.a.com");
	h.secure = true;
	assert_null(dane_precheck(&h, true));	/* a lookup is due */
	t = dane_precheck(&h, false);
	assert_int_equal(t->state, DANE_S_MX_INSECURE);
	dane_tlsa_free(t);
	h.secure = false;
	t = dane_precheck(&h, true);
	assert_int_equal(t->state, DANE_S_ADDR_INSECURE);
	dane_tlsa_free(t);
	h.secure = true;
	snprintf(h.name, sizeof(h.name), "192.0.2.1");
	t = dane_precheck(&h, true);
	assert_int_equal(t->state, DANE_S_OFF);
	assert_non_null(strstr(t->reason, "IP address"));
	dane_tlsa_free(t);
}

/* DANE-12: the names a DANE-TA(2) certificate may carry besides the base. */
static void
test_reference_ids(void **state)
{
	const char *recs[] = { "2 0 1 " H32, NULL };
	struct dane_tlsa *t = tlsa("mx1.a.com", recs);
	struct strlist ids = { 0 };

	(void)state;
	dane_reference_ids(t, "a.com", NULL, true, &ids);
	assert_int_equal(ids.count, 1);
	assert_string_equal(ids.items[0], "a.com");
	strlist_clear(&ids);
	/* an insecure MX lookup: the MX host name only (it is the base) */
	dane_reference_ids(t, "a.com", NULL, false, &ids);
	assert_int_equal(ids.count, 0);
	dane_tlsa_free(t);
	/* the base is the CNAME-expanded host; the MX name and the next hop's CNAME target count */
	t = dane_tlsa_new("mx1.a.com");
	dane_tlsa_finish(t, "mail.provider.net");
	dane_reference_ids(t, "a.com", "b.com", true, &ids);
	assert_int_equal(ids.count, 3);
	assert_string_equal(ids.items[0], "mx1.a.com");
	assert_string_equal(ids.items[1], "a.com");
	assert_string_equal(ids.items[2], "b.com");
	strlist_clear(&ids);
	dane_tlsa_free(t);
}

static enum regime_kind
regime(enum dane_state state, bool required, bool strict, struct route_regime *r)
{
	struct dane_tlsa *t = dane_tlsa_new("mx.a.com");

	dane_tlsa_set_state(t, state, "state %s", dane_state_name(state));
	t->failure = state == DANE_S_FAILED ? RPT_RESULT_DNSSEC_INVALID : RPT_RESULT_NONE;
	route_regime_decide(t, required, strict, r);
	dane_tlsa_free(t);
	r->tlsa = NULL;
	return r->kind;
}

/* RFC 8461 section 2, STS-46, STS-47, DANE-3, DANE-8, DANE-9, DANE-17. */
static void
test_regime_table(void **state)
{
	struct route_regime r;

	(void)state;
	/* usable TLSA: DANE, whatever MTA-STS says */
	assert_int_equal(regime(DANE_S_USABLE, false, false, &r), REGIME_DANE);
	assert_true(r.tls_required && r.authenticate);
	assert_int_equal(regime(DANE_S_USABLE, false, true, &r), REGIME_DANE);
	assert_int_equal(regime(DANE_S_USABLE, true, true, &r), REGIME_DANE);
	/* a failed TLSA lookup: unreachable, whatever MTA-STS says */
	assert_int_equal(regime(DANE_S_FAILED, false, true, &r), REGIME_UNREACHABLE);
	assert_int_equal(r.failure, RPT_RESULT_DNSSEC_INVALID);
	assert_int_equal(regime(DANE_S_FAILED, false, false, &r), REGIME_UNREACHABLE);
	/* unusable only: never cleartext; MTA-STS may still authenticate */
	assert_int_equal(regime(DANE_S_UNUSABLE, false, false, &r), REGIME_DANE_TLS);
	assert_true(r.tls_required);
	assert_false(r.authenticate);
	assert_int_equal(regime(DANE_S_UNUSABLE, false, true, &r), REGIME_MTA_STS);
	assert_true(r.tls_required && r.authenticate);
	assert_int_equal(regime(DANE_S_UNUSABLE, true, false, &r), REGIME_UNREACHABLE);
	assert_int_equal(r.failure, RPT_RESULT_DANE_REQUIRED);
	/* no DANE: today's MTA-STS or opportunistic TLS, unless DANE is required */
	for (enum dane_state s = DANE_S_OFF; s <= DANE_S_INSECURE; s++) {
		assert_int_equal(regime(s, false, true, &r), REGIME_MTA_STS);
		assert_int_equal(regime(s, false, false, &r), REGIME_OPPORTUNISTIC);
		assert_false(r.tls_required);
		assert_int_equal(regime(s, true, false, &r), REGIME_UNREACHABLE);
		assert_int_equal(r.failure, RPT_RESULT_DANE_REQUIRED);
		assert_non_null(strstr(r.reason, "DANE required"));
	}
	route_regime_decide(NULL, false, false, &r);
	assert_int_equal(r.kind, REGIME_OPPORTUNISTIC);
	assert_string_equal(regime_kind_name(REGIME_DANE_TLS), "dane-tls-only");
	assert_string_equal(dane_state_name(DANE_S_FAILED), "lookup-failed");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rdata),
		cmocka_unit_test(test_text_form),
		cmocka_unit_test(test_usability),
		cmocka_unit_test(test_identity_and_text),
		cmocka_unit_test(test_precheck),
		cmocka_unit_test(test_reference_ids),
		cmocka_unit_test(test_regime_table),
	};

	return cmocka_run_group_tests_name("dane", tests, NULL, NULL);
}

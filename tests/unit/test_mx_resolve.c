/* Unit tests of the MX set helpers: ordering (SMTP-3) and MX target names. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/mx_resolve.h"

static void
set_hosts(struct mx_host *h)
{
	static const struct { const char *name; unsigned pref; } in[] = {
		{ "c", 20 }, { "a", 10 }, { "b", 10 }, { "d", 30 },
	};

	memset(h, 0, 4 * sizeof(*h));
	for (size_t i = 0; i < 4; i++) {
		snprintf(h[i].name, sizeof(h[i].name), "%s", in[i].name);
		h[i].preference = in[i].pref;
	}
}

/* SMTP-3: lowest preference first, equal preferences in random order. */
static void
test_sort_shuffle(void **state)
{
	struct mx_host h[4];
	int a_first = 0, b_first = 0;

	(void)state;
	for (int run = 0; run < 200; run++) {
		set_hosts(h);
		mx_sort_shuffle(h, 4);
		assert_int_equal(h[0].preference, 10);
		assert_int_equal(h[1].preference, 10);
		assert_string_equal(h[2].name, "c");
		assert_string_equal(h[3].name, "d");
		if (h[0].name[0] == 'a')
			a_first++;
		else
			b_first++;
	}
	/* 200 fair coin flips: both orders show up (fails with p = 2^-199). */
	assert_true(a_first > 0 && b_first > 0);
}

static void
test_wire_names(void **state)
{
	char out[256];

	(void)state;
	assert_int_equal(dns_name_from_wire((const unsigned char *)"\x03MX1\x07" "example\x03" "com", 17,
	    out, sizeof(out)), 17);
	assert_string_equal(out, "mx1.example.com");
	/* SMTP-6: the null MX target is the root. */
	assert_int_equal(dns_name_from_wire((const unsigned char *)"", 1, out, sizeof(out)), 1);
	assert_string_equal(out, ".");
	/* A compression pointer, a bad byte, a truncated label: refused. */
	assert_int_equal(dns_name_from_wire((const unsigned char *)"\xc0\x0c", 2, out, sizeof(out)), -1);
	assert_int_equal(dns_name_from_wire((const unsigned char *)"\x03m x\x00", 5, out, sizeof(out)), -1);
	assert_int_equal(dns_name_from_wire((const unsigned char *)"\x05mx", 3, out, sizeof(out)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sort_shuffle),
		cmocka_unit_test(test_wire_names),
	};

	return cmocka_run_group_tests_name("mx_resolve", tests, NULL, NULL);
}

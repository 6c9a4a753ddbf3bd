/* Unit tests of mx pattern syntax and matching: tests/data/mx_*.jsonl. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "policy/mx_match.h"
#include "tests/unit/cases.h"

static void
test_match_case(void **state)
{
	json_t *c = *state;

	assert_int_equal(mx_pattern_matches(case_str(c, "pattern"), case_str(c, "host")),
	    json_is_true(json_object_get(c, "match")));
}

static void
test_pattern_case(void **state)
{
	json_t *c = *state;
	const char *why = NULL;
	bool valid = mx_pattern_valid(case_str(c, "pattern"), &why);

	assert_int_equal(valid, json_is_true(json_object_get(c, "valid")));
	if (!valid)
		assert_non_null(why);
}

static void
test_match_any(void **state)
{
	struct strlist l = { 0 };
	const char *m = NULL;

	(void)state;
	strlist_add(&l, "mx1.a.com");
	strlist_add(&l, "*.b.net");
	assert_true(mx_match_any(&l, "x.b.net", &m));
	assert_string_equal(m, "*.b.net");
	assert_false(mx_match_any(&l, "b.net", NULL));
	strlist_clear(&l);
}

int
main(void)
{
	const struct CMUnitTest extra[] = { cmocka_unit_test(test_match_any) };
	int rc = cases_run("mx_match cases", "mx_match.jsonl", test_match_case);

	rc += cases_run("mx_pattern cases", "mx_pattern.jsonl", test_pattern_case);
	return rc + cmocka_run_group_tests_name("mx_match lists", extra, NULL, NULL);
}

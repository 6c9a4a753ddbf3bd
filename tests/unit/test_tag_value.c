/*
 * Unit tests of the tag=value reader shared by the _mta-sts and
 * _smtp._tls records (policy/tag_value.c): tests/data/tag_value.jsonl
 * and tests/data/tag_value_select.jsonl.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/tag_value.h"
#include "tests/unit/cases.h"

#define TV_VERSION "v=T1"

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Walk a record, reading every value as an extension; "name=value ..." or the reason. */
static bool
walk(const char *rec, size_t len, size_t max, char *out, size_t out_len)
{
	struct tag_value tv;
	enum tag_value_step step;
	const char *name;
	size_t nlen;
	char reason[160];

	out[0] = '\0';
	if (!tag_value_begin(&tv, rec, len, max, TV_VERSION, reason, sizeof(reason))) {
		snprintf(out, out_len, "%s", reason);
		return false;
	}
	while ((step = tag_value_next(&tv, &name, &nlen)) == TAG_VALUE_FIELD) {
		const unsigned char *value = tv.p;

		assert_true(nlen >= 1 && nlen <= TAG_VALUE_MAX_NAME);
		if (!tag_value_skip_extension(&tv)) {
			snprintf(out, out_len, "%s", reason);
			return false;
		}
		assert_true(tv.p > value && tv.p <= tv.end);
		snprintf(out + strlen(out), out_len - strlen(out), "%s%.*s=%.*s", out[0] ? " " : "",
		    (int)nlen, name, (int)(tv.p - value), (const char *)value);
	}
	assert_true(tv.p <= tv.end);
	if (step == TAG_VALUE_ERROR) {
		snprintf(out, out_len, "%s", reason);
		return false;
	}
	return true;
}

static void
test_record_case(void **state)
{
	json_t *c = *state, *fields = json_object_get(c, "fields"), *f;
	const char *rec = case_str(c, "rec");
	size_t max = json_object_get(c, "max") ? (size_t)json_integer_value(json_object_get(c, "max")) : 4096;
	char got[4096], want[4096] = "";
	size_t i;
	bool ok = walk(rec, strlen(rec), max, got, sizeof(got));

	if (case_str(c, "error") != NULL) {
		assert_false(ok);
		assert_string_equal(got, case_str(c, "error"));
		return;
	}
	json_array_foreach(fields, i, f)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s", i ? " " : "",
		    json_string_value(f));
	if (!ok)
		fail_msg("'%s': %s", rec, got);
	assert_string_equal(got, want);
}

static void
test_select_case(void **state)
{
	json_t *c = *state, *txt = json_object_get(c, "txt");
	const char *recs[8];
	size_t lens[8], n = json_array_size(txt), which = 99, candidates;
	char reason[160] = "";

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		recs[i] = json_string_value(json_array_get(txt, i));
		lens[i] = strlen(recs[i]);
	}
	candidates = tag_value_select(recs, lens, n, TV_VERSION, &which, reason, sizeof(reason));
	assert_int_equal(candidates, json_integer_value(json_object_get(c, "candidates")));
	if (candidates == 1)
		assert_int_equal(which, json_integer_value(json_object_get(c, "which")));
	else
		assert_string_equal(reason, case_str(c, "reason"));
}

/* Bytes the JSON vectors cannot carry well: NUL, and a record cut short. */
static void
test_bytes(void **state)
{
	char got[256];

	(void)state;
	assert_false(walk("v=T1; a=b\0c", 11, 4096, got, sizeof(got)));
	assert_string_equal(got, "expected ';' at offset 9");
	/* The length bounds the read, not a NUL: "a=bc" is cut at "a=b". */
	assert_true(walk("v=T1; a=bc", 9, 4096, got, sizeof(got)));
	assert_string_equal(got, "a=b");
	assert_false(walk("v=T1; a=bc", 8, 4096, got, sizeof(got)));
	assert_string_equal(got, "empty extension value at offset 8");
	assert_false(walk("v=T", 3, 4096, got, sizeof(got)));
	assert_string_equal(got, "record does not start with v=T1");
	/* No reason buffer at all is fine. */
	{
		struct tag_value tv;

		assert_false(tag_value_begin(&tv, "x", 1, 4096, TV_VERSION, NULL, 0));
	}
}

/* A field "n" with a digits-only value, as id= and rua= read their own. */
static enum tag_value_field
digits_field(void *arg, struct tag_value *tv, const char *name, size_t name_len)
{
	size_t len;

	(*(unsigned *)arg)++;
	if (name_len != 1 || name[0] != 'n')
		return TAG_VALUE_EXTENSION;
	tag_value_take(tv, is_digit, &len);
	if (len == 0 || !tag_value_at_value_end(tv)) {
		tag_value_fail(tv, "n takes digits");
		return TAG_VALUE_BAD;
	}
	return TAG_VALUE_KNOWN;
}

static bool
parse(const char *rec, char *reason, unsigned *fields)
{
	*fields = 0;
	reason[0] = '\0';
	return tag_value_parse(rec, strlen(rec), 4096, TV_VERSION, "n", digits_field, fields, reason,
	    160);
}

/* tag_value_parse(): known fields to the parser, the rest read as extensions. */
static void
test_parse(void **state)
{
	char reason[160];
	unsigned fields;

	(void)state;
	assert_true(parse("v=T1; x=y; n=12; n=3;", reason, &fields));
	assert_int_equal(fields, 3);
	assert_false(parse("v=T1; x=y", reason, &fields));
	assert_string_equal(reason, "required field n is missing");
	assert_false(parse("v=T1", reason, &fields));
	assert_string_equal(reason, "required field n is missing");
	assert_int_equal(fields, 0);
	assert_false(parse("v=T1; n=1x", reason, &fields));
	assert_string_equal(reason, "n takes digits");
	assert_false(parse("v=T1; n=1; x=", reason, &fields));
	assert_string_equal(reason, "empty extension value at offset 13");
	assert_false(parse("v=T1; n=1 x", reason, &fields));
	assert_string_equal(reason, "expected ';' at offset 10");
	assert_false(parse("v=T2; n=1", reason, &fields));
	assert_string_equal(reason, "record does not start with v=T1");
}

int
main(void)
{
	const struct CMUnitTest extra[] = {
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_parse),
	};
	int rc = cases_run("tag_value records", "tag_value.jsonl", test_record_case);

	rc += cases_run("tag_value select", "tag_value_select.jsonl", test_select_case);
	return rc + cmocka_run_group_tests_name("tag_value bytes", extra, NULL, NULL);
}

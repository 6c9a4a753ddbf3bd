/*
 * Unit tests of the policy file parser: tests/data/sts_policy.jsonl.
 *
 * Each case gives the sender's verdict ("expect": valid or invalid, and
 * what a valid policy holds) and the linter's findings: "lint_errors"
 * (errors a valid policy carries, all tolerated by the sender, matched as
 * "LINE: message") and "warnings" (substrings, matched the same way).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/mx_match.h"
#include "policy/sts_policy.h"
#include "tests/unit/cases.h"

/* needle is matched against "LINE: message". */
static bool
diag_has(const struct policy_diags *d, enum policy_diag_severity sev, const char *needle)
{
	for (size_t i = 0; i < d->count; i++) {
		char *text = xasprintf("%d: %s", d->items[i].line, d->items[i].message);
		bool found = d->items[i].severity == sev && strstr(text, needle) != NULL;

		free(text);
		if (found)
			return true;
	}
	return false;
}

static void
test_policy_case(void **state)
{
	json_t *c = *state, *v;
	const char *body = case_str(c, "body");
	struct policy_diags diags = { 0 };
	struct sts_policy *pol;
	char *reason = NULL;
	size_t i;

	pol = sts_policy_parse(body, strlen(body), 65536, &diags, &reason);
	if (strcmp(case_str(c, "expect"), "valid") == 0) {
		if (pol == NULL)
			fail_msg("expected valid, got: %s", reason);
		assert_string_equal(sts_mode_name(pol->mode), case_str(c, "mode"));
		assert_int_equal(pol->max_age, json_integer_value(json_object_get(c, "max_age")));
		assert_int_equal(pol->mx.count, json_array_size(json_object_get(c, "mx")));
		json_array_foreach(json_object_get(c, "mx"), i, v)
			assert_string_equal(pol->mx.items[i], json_string_value(v));
		/* Lenient as a sender: whatever errors a valid policy has, it
		 * has only tolerated ones, and exactly those listed. */
		assert_int_equal(policy_diags_count(&diags, POLICY_DIAG_ERROR),
		    json_array_size(json_object_get(c, "lint_errors")));
		assert_int_equal(policy_diags_tolerated(&diags),
		    json_array_size(json_object_get(c, "lint_errors")));
		json_array_foreach(json_object_get(c, "matches"), i, v)
			if (!mx_match_any(&pol->mx, json_string_value(v), NULL))
				fail_msg("MX %s matches no pattern", json_string_value(v));
		if (json_object_get(c, "lines") != NULL)
			assert_int_equal(pol->lines.count,
			    json_integer_value(json_object_get(c, "lines")));
	} else {
		assert_null(pol);
		assert_non_null(reason);
		if (strstr(reason, case_str(c, "error")) == NULL)
			fail_msg("reason '%s' lacks '%s'", reason, case_str(c, "error"));
	}
	json_array_foreach(json_object_get(c, "lint_errors"), i, v)
		if (!diag_has(&diags, POLICY_DIAG_ERROR, json_string_value(v)))
			fail_msg("no lint error containing '%s'", json_string_value(v));
	json_array_foreach(json_object_get(c, "warnings"), i, v)
		if (!diag_has(&diags, POLICY_DIAG_WARNING, json_string_value(v)))
			fail_msg("no warning containing '%s'", json_string_value(v));
	free(reason);
	sts_policy_free(pol);
	policy_diags_clear(&diags);
}

static void
test_policy_size_limit(void **state)
{
	const char body[] = "version: STSv1\nmode: none\nmax_age: 1\n";
	char *reason = NULL;

	(void)state;
	assert_null(sts_policy_parse(body, sizeof(body) - 1, 10, NULL, &reason));
	assert_non_null(strstr(reason, "more than the limit"));
	free(reason);
}

static void
test_policy_lines_kept(void **state)
{
	const char body[] = "version: STSv1\r\nmode: enforce\r\nmx: a.b\r\nmax_age: 5\r\n";
	struct sts_policy *pol, *copy;

	(void)state;
	pol = sts_policy_parse(body, sizeof(body) - 1, 65536, NULL, NULL);
	assert_non_null(pol);
	/* RPT policy-string: one element per line, without line breaks. */
	assert_int_equal(pol->lines.count, 4);
	assert_string_equal(pol->lines.items[2], "mx: a.b");
	copy = sts_policy_dup(pol);
	sts_policy_free(pol);
	assert_string_equal(copy->lines.items[3], "max_age: 5");
	sts_policy_free(copy);
}

/* The grammar sets no line limit: only the body limit bounds a line. */
static void
test_policy_long_line(void **state)
{
	const char head[] = "version: STSv1\nmode: enforce\nmx: mx.a.com\nmax_age: 86400\nnote: ";
	size_t vlen = 60000, len = sizeof(head) - 1 + vlen + 1;
	char *body = xmalloc(len);
	struct policy_diags diags = { 0 };
	struct sts_policy *pol;
	char *reason = NULL;

	(void)state;
	memcpy(body, head, sizeof(head) - 1);
	memset(body + sizeof(head) - 1, 'x', vlen);
	body[len - 1] = '\n';
	pol = sts_policy_parse(body, len, 65536, &diags, &reason);
	assert_non_null(pol);
	assert_int_equal(policy_diags_count(&diags, POLICY_DIAG_ERROR), 0);
	assert_true(diag_has(&diags, POLICY_DIAG_WARNING, "5: line of 60006 bytes"));
	sts_policy_free(pol);
	policy_diags_clear(&diags);
	/* A long value of a known field is invalid, and the message quotes
	 * only the start of it. */
	memcpy(body + sizeof(head) - 1 - 6, "mx:   ", 6);
	assert_null(sts_policy_parse(body, len, 65536, NULL, &reason));
	assert_non_null(strstr(reason, "line 5: mx: 'xxx"));
	assert_true(strlen(reason) < 200);
	free(reason);
	free(body);
}

int
main(void)
{
	const struct CMUnitTest extra[] = {
		cmocka_unit_test(test_policy_size_limit),
		cmocka_unit_test(test_policy_lines_kept),
		cmocka_unit_test(test_policy_long_line),
	};
	int rc = cases_run("sts_policy cases", "sts_policy.jsonl", test_policy_case);

	return rc + cmocka_run_group_tests_name("sts_policy limits", extra, NULL, NULL);
}

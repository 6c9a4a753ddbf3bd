/* Unit tests of the SMTP command parser: tests/data/smtp_command.jsonl. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/util.h"
#include "proxy/smtp_command.h"
#include "tests/unit/cases.h"

static void
test_command_case(void **state)
{
	json_t *c = *state;
	const char *line = case_str(c, "line"), *want_err = case_str(c, "error");
	const char *verb = case_str(c, "verb");
	json_t *rep = json_object_get(c, "repeat");
	struct smtp_command cmd;
	struct smtp_error err;
	struct smtp_path path;
	struct strbuf buf;
	char got[32];
	int rc;

	strbuf_init(&buf);
	if (rep != NULL)
		for (json_int_t i = 0; i < json_integer_value(rep); i++)
			strbuf_append(&buf, "x", 1);
	else
		strbuf_append(&buf, line, strlen(line));
	rc = smtp_command_parse(buf.data, buf.len, &cmd, &err);
	if (rc == 0 && verb != NULL)
		assert_string_equal(cmd.verb == SMTP_VERB_UNKNOWN ? "" : smtp_verb_name(cmd.verb), verb);
	if (rc == 0 && (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT))
		rc = smtp_path_parse(cmd.arg, cmd.verb == SMTP_VERB_MAIL, &path, &err);
	if (want_err != NULL) {
		assert_int_equal(rc, -1);
		snprintf(got, sizeof(got), "%d %s", err.code, err.enhanced);
		assert_string_equal(got, want_err);
		assert_non_null(err.text);
	} else {
		assert_int_equal(rc, 0);
		if (case_str(c, "arg"))
			assert_string_equal(cmd.arg, case_str(c, "arg"));
		if (case_str(c, "address"))
			assert_string_equal(path.address, case_str(c, "address"));
		if (case_str(c, "domain"))
			assert_string_equal(path.domain, case_str(c, "domain"));
		if (json_object_get(c, "null"))
			assert_true(path.null_path);
		if (json_object_get(c, "utf8"))
			assert_true(path.utf8);
		if (case_str(c, "params")) {
			struct strbuf p;

			strbuf_init(&p);
			for (size_t i = 0; i < path.nparams; i++)
				strbuf_printf(&p, "%s%s%s%s", i ? " " : "", path.params[i].key,
				    path.params[i].has_value ? "=" : "", path.params[i].value);
			assert_string_equal(p.data, case_str(c, "params"));
			strbuf_free(&p);
		}
	}
	strbuf_free(&buf);
}

static void
test_xtext(void **state)
{
	(void)state;
	assert_true(smtp_xtext_valid("rfc822+3Bx"));
	assert_false(smtp_xtext_valid("a+3b"));	/* hex must be upper case */
	assert_false(smtp_xtext_valid("a b"));
	assert_false(smtp_xtext_valid("a=b"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_xtext) };
	int failed = cmocka_run_group_tests_name("smtp_command", tests, NULL, NULL);

	return failed + cases_run("smtp_command_cases", "smtp_command.jsonl", test_command_case);
}

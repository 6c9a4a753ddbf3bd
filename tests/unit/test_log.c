/*
 * Unit tests of conf/log.c: what log_format = json makes of key=value
 * lines (numeric keys as JSON numbers, everything else as strings, ts
 * in ISO 8601) and how addresses are written for to= and from=.
 */
#include "config.h"

#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "conf/log.h"

/* Log one line as JSON to a file and read it back as an object. */
static json_t *
json_line(const char *fmt, ...)
{
	char path[] = "/tmp/test_log.XXXXXX", line[4096];
	int fd = mkstemp(path);
	const char *why;
	va_list ap;
	char buf[2048];
	FILE *f;
	json_t *o;

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(log_set_file(path, &why), 0);
	log_set_json(true);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_write(LOG_SUB_MAIN, LOG_LEVEL_NOTICE, "%s", buf);
	assert_int_equal(log_set_file(NULL, &why), 0);
	log_set_json(false);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	unlink(path);
	o = json_loads(line, 0, NULL);
	assert_non_null(o);
	return o;
}

/* Counts and sizes become numbers; ids that look like numbers stay strings. */
static void
test_json_numbers(void **state)
{
	json_t *o;

	(void)state;
	o = json_line("session=0123456789012345 event=message to=%s size=4096 rcpts=2 "
	    "id=20260101 reply=\"250 2.0.0 Ok\"", log_quote_address("u@d.example"));
	assert_true(json_is_integer(json_object_get(o, "size")));
	assert_int_equal(json_integer_value(json_object_get(o, "size")), 4096);
	assert_int_equal(json_integer_value(json_object_get(o, "rcpts")), 2);
	assert_string_equal(json_string_value(json_object_get(o, "session")), "0123456789012345");
	assert_string_equal(json_string_value(json_object_get(o, "id")), "20260101");
	assert_string_equal(json_string_value(json_object_get(o, "to")), "<u@d.example>");
	assert_string_equal(json_string_value(json_object_get(o, "reply")), "250 2.0.0 Ok");
	json_decref(o);
	/* A numeric key with a value that is not a number stays a string. */
	o = json_line("event=x count=- pid=-12 size=12a");
	assert_string_equal(json_string_value(json_object_get(o, "count")), "-");
	assert_int_equal(json_integer_value(json_object_get(o, "pid")), -12);
	assert_string_equal(json_string_value(json_object_get(o, "size")), "12a");
	json_decref(o);
}

static void
test_json_ts_iso8601(void **state)
{
	json_t *o;
	regex_t re;

	(void)state;
	o = json_line("event=started");
	assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
	    "\\.[0-9]{3}Z$", REG_EXTENDED | REG_NOSUB), 0);
	assert_int_equal(regexec(&re, json_string_value(json_object_get(o, "ts")), 0, NULL, 0), 0);
	regfree(&re);
	json_decref(o);
}

/* The table log_key_numeric() searches must stay sorted. */
static void
test_numeric_keys(void **state)
{
	static const char *const numeric[] = { "after_unanswered", "attempts", "count", "mx_count",
	    "size", "with_failures", "worker", "workers" };
	static const char *const text[] = { "session", "id", "policy_id", "reply", "mx", "to",
	    "status", "retry_in", "a", "zz" };

	(void)state;
	for (size_t i = 0; i < sizeof(numeric) / sizeof(numeric[0]); i++)
		assert_true(log_key_numeric(numeric[i]));
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		assert_false(log_key_numeric(text[i]));
}

static void
test_quote_address(void **state)
{
	(void)state;
	assert_string_equal(log_quote_address("u@d.example"), "<u@d.example>");
	assert_string_equal(log_quote_address(""), "<>");
	assert_string_equal(log_quote_address("a=b@d.example"), "\"<a=b@d.example>\"");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_numbers),
		cmocka_unit_test(test_json_ts_iso8601),
		cmocka_unit_test(test_numeric_keys),
		cmocka_unit_test(test_quote_address),
	};

	log_init("test", false, LOG_LEVEL_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of DKIM relaxed canonicalisation: the RFC 6376 §3.4.5 example. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "report/dkim.h"

static void
test_header_relaxed(void **state)
{
	struct strbuf out;

	(void)state;
	strbuf_init(&out);
	dkim_canon_header_relaxed("A: X", 4, &out);
	assert_string_equal(out.data, "a:X");
	strbuf_free(&out);
	strbuf_init(&out);
	dkim_canon_header_relaxed("B : Y\t\r\n\tZ  ", 12, &out);
	assert_string_equal(out.data, "b:Y Z");
	strbuf_free(&out);
}

static void
test_body_relaxed(void **state)
{
	static const char body[] = " C \r\nD \t E\r\n\r\n\r\n";
	struct strbuf out;

	(void)state;
	strbuf_init(&out);
	dkim_canon_body_relaxed(body, sizeof(body) - 1, &out);
	assert_string_equal(out.data, " C\r\nD E\r\n");
	strbuf_free(&out);
	/* An empty body stays empty; a last line without CR LF gets one. */
	strbuf_init(&out);
	dkim_canon_body_relaxed("", 0, &out);
	assert_int_equal(out.len, 0);
	dkim_canon_body_relaxed("x", 1, &out);
	assert_string_equal(out.data, "x\r\n");
	strbuf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_relaxed),
		cmocka_unit_test(test_body_relaxed),
	};

	return cmocka_run_group_tests_name("dkim", tests, NULL, NULL);
}

/* Unit tests of the DATA filter (SMTP smuggling defence): tests/data/data_filter.jsonl. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "proxy/data_filter.h"
#include "tests/unit/cases.h"

/* Feed in in pieces of chunk bytes; return the output as a new string. */
static char *
run(const char *in, size_t chunk, struct data_filter *f, bool *done, size_t *used)
{
	struct evbuffer *out = evbuffer_new();
	size_t len = strlen(in), off = 0;
	char *s;

	data_filter_init(f);
	*done = false;
	while (off < len && !*done) {
		size_t n = len - off < chunk ? len - off : chunk;
		off += data_filter_feed(f, in + off, n, out, done);
	}
	*used = off;
	s = calloc(1, evbuffer_get_length(out) + 1);
	evbuffer_remove(out, s, evbuffer_get_length(out));
	evbuffer_free(out);
	return s;
}

static void
test_filter_case(void **state)
{
	json_t *c = *state;

	/* The same result whatever the TCP segmentation. */
	for (size_t chunk = 1; chunk <= 64; chunk = chunk < 4 ? chunk + 1 : chunk * 4) {
		struct data_filter f;
		bool done;
		size_t used;
		char *out = run(case_str(c, "in"), chunk, &f, &done, &used);

		assert_string_equal(out, case_str(c, "out"));
		assert_int_equal(done, json_is_true(json_object_get(c, "done")));
		if (json_object_get(c, "used"))
			assert_int_equal(used, json_integer_value(json_object_get(c, "used")));
		if (json_object_get(c, "bare_lf"))
			assert_int_equal(f.bare_lf, json_integer_value(json_object_get(c, "bare_lf")));
		if (json_object_get(c, "bare_cr"))
			assert_int_equal(f.bare_cr, json_integer_value(json_object_get(c, "bare_cr")));
		assert_int_equal(f.bytes_out, strlen(out));
		free(out);
	}
}

int
main(void)
{
	return cases_run("data_filter_cases", "data_filter.jsonl", test_filter_case);
}

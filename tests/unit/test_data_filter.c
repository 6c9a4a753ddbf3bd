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

/* Feed in (len bytes) in pieces of chunk bytes; return the output as a new string. */
static char *
run(const char *in, size_t len, size_t chunk, struct data_filter *f, bool *done, size_t *used,
    size_t *outlen)
{
	struct evbuffer *out = evbuffer_new();
	size_t off = 0;
	char *s;

	data_filter_init(f);
	*done = false;
	while (off < len && !*done) {
		size_t n = len - off < chunk ? len - off : chunk;
		off += data_filter_feed(f, in + off, n, out, done);
	}
	*used = off;
	*outlen = evbuffer_get_length(out);
	s = calloc(1, evbuffer_get_length(out) + 1);
	evbuffer_remove(out, s, evbuffer_get_length(out));
	evbuffer_free(out);
	return s;
}

static void
test_filter_case(void **state)
{
	json_t *c = *state;
	json_t *in = json_object_get(c, "in"), *want = json_object_get(c, "out");

	/* The same result whatever the TCP segmentation. */
	for (size_t chunk = 1; chunk <= 64; chunk = chunk < 4 ? chunk + 1 : chunk * 4) {
		struct data_filter f;
		bool done;
		size_t used, outlen;
		char *out = run(json_string_value(in), json_string_length(in), chunk, &f, &done, &used,
		    &outlen);

		/* Byte for byte: a NUL must not hide the rest of the output. */
		assert_int_equal(outlen, json_string_length(want));
		assert_memory_equal(out, json_string_value(want), outlen);
		assert_int_equal(done, json_is_true(json_object_get(c, "done")));
		if (json_object_get(c, "used"))
			assert_int_equal(used, json_integer_value(json_object_get(c, "used")));
		if (json_object_get(c, "bare_lf"))
			assert_int_equal(f.bare_lf, json_integer_value(json_object_get(c, "bare_lf")));
		if (json_object_get(c, "bare_cr"))
			assert_int_equal(f.bare_cr, json_integer_value(json_object_get(c, "bare_cr")));
		if (json_object_get(c, "nul"))
			assert_int_equal(f.nul, json_integer_value(json_object_get(c, "nul")));
		assert_int_equal(f.bytes_out, outlen);
		free(out);
	}
}

int
main(void)
{
	return cases_run("data_filter_cases", "data_filter.jsonl", test_filter_case);
}

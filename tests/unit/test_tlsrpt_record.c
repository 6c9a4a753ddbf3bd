/* Unit tests of the _smtp._tls record parser: tests/data/tlsrpt_record.jsonl. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "report/tlsrpt_record.h"
#include "tests/unit/cases.h"

static void
test_record_case(void **state)
{
	json_t *c = *state, *txt = json_object_get(c, "txt"), *rua = json_object_get(c, "rua");
	const char *recs[8];
	size_t lens[8], n = json_array_size(txt);
	struct tlsrpt_record_result r;

	for (size_t i = 0; i < n; i++) {
		recs[i] = json_string_value(json_array_get(txt, i));
		lens[i] = strlen(recs[i]);
	}
	tlsrpt_record_select(recs, lens, n, &r);
	assert_string_equal(tlsrpt_record_status_name(r.status), case_str(c, "status"));
	if (r.status != TLSRPT_RECORD_VALID)
		assert_true(r.reason[0] != '\0');
	if (rua != NULL) {
		assert_int_equal(r.rua.count, json_array_size(rua));
		for (size_t i = 0; i < r.rua.count; i++)
			assert_string_equal(r.rua.items[i], json_string_value(json_array_get(rua, i)));
	}
	if (json_object_get(c, "skipped"))
		assert_int_equal(r.skipped, json_integer_value(json_object_get(c, "skipped")));
	if (case_str(c, "mailto")) {
		char addr[320];

		assert_int_equal(tlsrpt_mailto_address(r.rua.items[0], addr, sizeof(addr)), 0);
		assert_string_equal(addr, case_str(c, "mailto"));
	}
	tlsrpt_record_result_clear(&r);
}

int
main(void)
{
	return cases_run("tlsrpt_record_cases", "tlsrpt_record.jsonl", test_record_case);
}

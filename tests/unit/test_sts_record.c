/* Unit tests of the _mta-sts TXT parser: tests/data/sts_record.jsonl. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "policy/sts_record.h"
#include "tests/unit/cases.h"

static void
test_record_case(void **state)
{
	json_t *c = *state, *txt = json_object_get(c, "txt"), *rec;
	size_t n = json_array_size(txt), i;
	char joined[8][4096];
	const char *recs[8];
	size_t lens[8];
	struct sts_record_result res;

	assert_true(n <= 8);
	json_array_foreach(txt, i, rec) {
		size_t j;
		json_t *part;

		/* The resolver joins multi-string records (STS-6); do the same. */
		joined[i][0] = '\0';
		json_array_foreach(rec, j, part)
			strcat(joined[i], json_string_value(part));
		recs[i] = joined[i];
		lens[i] = strlen(joined[i]);
	}
	sts_record_select(recs, lens, n, &res);
	assert_string_equal(sts_record_status_name(res.status), case_str(c, "expect"));
	if (res.status == STS_RECORD_VALID)
		assert_string_equal(res.id, case_str(c, "id"));
	else
		assert_true(res.reason[0] != '\0');
}

static void
test_record_bounds(void **state)
{
	static char big[STS_RECORD_MAX_LEN + 2];
	char id[STS_ID_MAX_LEN + 1], reason[160];

	(void)state;
	memset(big, 'a', sizeof(big));
	memcpy(big, "v=STSv1; id=a; x=", 17);
	assert_false(sts_record_parse(big, sizeof(big), id, reason, sizeof(reason)));
	assert_non_null(strstr(reason, "longer than"));
	/* A NUL byte inside a record is just a byte outside the grammar. */
	assert_false(sts_record_parse("v=STSv1; id=a\0b", 15, id, reason, sizeof(reason)));
}

int
main(void)
{
	const struct CMUnitTest extra[] = {
		cmocka_unit_test(test_record_bounds),
	};
	int rc = cases_run("sts_record cases", "sts_record.jsonl", test_record_case);

	return rc + cmocka_run_group_tests_name("sts_record bounds", extra, NULL, NULL);
}

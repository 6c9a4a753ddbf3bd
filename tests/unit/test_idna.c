/* Unit tests of the U-label to A-label conversion (conf/idna.c): tests/data/idna.jsonl. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/idna.h"
#include "tests/unit/cases.h"

static void
test_idna_case(void **state)
{
	json_t *c = *state;
	const char *why = NULL;
	char *got = idna_to_alabel(case_str(c, "in"), &why);

	if (json_object_get(c, "out") != NULL) {
		if (got == NULL)
			fail_msg("'%s' refused: %s", case_str(c, "in"), why);
		assert_string_equal(got, case_str(c, "out"));
		/* The A-label form is ASCII and converts to itself. */
		assert_false(idna_is_utf8(got));
		{
			char *again = idna_to_alabel(got, &why);

			assert_non_null(again);
			assert_string_equal(again, got);
			free(again);
		}
	} else {
		if (got != NULL)
			fail_msg("'%s' accepted as '%s'", case_str(c, "in"), got);
		assert_non_null(why);
		if (strstr(why, case_str(c, "error")) == NULL)
			fail_msg("reason '%s' lacks '%s'", why, case_str(c, "error"));
	}
	free(got);
}

int
main(void)
{
	return cases_run("idna_cases", "idna.jsonl", test_idna_case);
}

#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/cases.h"

static int
case_setup(void **state)
{
	(void)state;
	return 0;
}

int
cases_run(const char *group, const char *file, case_fn fn)
{
	const char *srcdir = getenv("srcdir");
	char path[1024], line[65536];
	struct CMUnitTest *tests = NULL;
	json_t **objs = NULL;
	size_t n = 0;
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), "%s/tests/data/%s", srcdir ? srcdir : ".", file);
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "cannot open %s\n", path);
		return 1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		json_error_t err;
		json_t *o;

		if (line[0] == '\n' || line[0] == '#')
			continue;
		if ((o = json_loads(line, JSON_ALLOW_NUL, &err)) == NULL) {
			fprintf(stderr, "%s:%zu: %s\n", path, n + 1, err.text);
			fclose(f);
			return 1;
		}
		objs = realloc(objs, (n + 1) * sizeof(*objs));
		tests = realloc(tests, (n + 1) * sizeof(*tests));
		objs[n] = o;
		tests[n] = (struct CMUnitTest){
			.name = json_string_value(json_object_get(o, "req")),
			.test_func = fn,
			.setup_func = case_setup,
			.initial_state = o,
		};
		n++;
	}
	fclose(f);
	rc = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		json_decref(objs[i]);
	free(objs);
	free(tests);
	return rc;
}

const char *
case_str(json_t *c, const char *key)
{
	return json_string_value(json_object_get(c, key));
}

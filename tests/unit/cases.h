/*
 * cases.h - run a cmocka group with one test per line of a JSON-lines
 * file under tests/data/. Each line is an object with a "req" key naming
 * the requirement it checks; the test function receives the object as its
 * state (borrowed; freed after the group).
 */
#ifndef STSPROXY_TEST_CASES_H
#define STSPROXY_TEST_CASES_H

#include <jansson.h>

typedef void (*case_fn)(void **state);

/** Run fn once per case in tests/data/<file>; returns failures, or 1 if unreadable. */
int cases_run(const char *group, const char *file, case_fn fn);

/** Helpers for reading a case. */
const char *case_str(json_t *c, const char *key);

#endif

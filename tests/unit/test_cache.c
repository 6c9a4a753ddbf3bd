/*
 * Unit tests of the LMDB policy cache, of the merge of two writers (what
 * the shared cache of a fleet does when relays race, issue 17), of reads
 * from the loop, and of the cache rules (policy_decide).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "conf/conf.h"
#include "conf/log.h"
#include "policy/cache.h"
#include "policy/engine.h"

struct fixture {
	char		 dir[64];
	struct conf	*conf;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct strlist errors = { 0 };
	char text[256];

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/stsproxy-unit.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(text, sizeof(text), "state_dir = %s\n[policy]\ncache_size = 1M\n", fx->dir);
	fx->conf = conf_parse_buffer("t", text, strlen(text), &errors);
	assert_non_null(fx->conf);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	conf_free(fx->conf);
	free(fx);
	return 0;
}

static struct policy_cache_entry *
entry_with_policy(const char *domain, const char *id, enum sts_mode mode, time_t fetched,
    unsigned long max_age)
{
	struct policy_cache_entry *e = policy_cache_entry_new(domain);

	e->id = strdup(id);
	e->policy = calloc(1, sizeof(*e->policy));
	e->policy->mode = mode;
	e->policy->max_age = max_age;
	strlist_add(&e->policy->mx, "*.a.com");
	strlist_add(&e->policy->lines, "mx: *.a.com");
	e->fetched_at = fetched;
	e->expires_at = fetched + (time_t)max_age;
	return e;
}

static void
test_store_lookup(void **state)
{
	struct fixture *fx = *state;
	struct policy_cache *c = policy_cache_open(fx->conf, NULL);
	struct policy_cache_entry *e = entry_with_policy("a.com", "id1", STS_MODE_ENFORCE, 1000, 86400);
	struct policy_cache_entry *got;

	assert_true(policy_cache_enabled(c));
	e->fail_id = strdup("id2");
	e->fail_at = 2000;
	e->fail_type = RPT_RESULT_STS_WEBPKI_INVALID;
	e->fail_reason = strdup("certificate has expired");
	e->fail_count = 3;
	assert_int_equal(policy_cache_store(c, e), 0);
	got = policy_cache_lookup(c, "a.com");
	assert_non_null(got);
	assert_string_equal(got->id, "id1");
	assert_int_equal(got->policy->mode, STS_MODE_ENFORCE);
	assert_int_equal(got->expires_at, 1000 + 86400);
	assert_string_equal(got->policy->mx.items[0], "*.a.com");
	assert_int_equal(got->fail_type, RPT_RESULT_STS_WEBPKI_INVALID);
	assert_int_equal(got->fail_count, 3);
	assert_null(policy_cache_lookup(c, "b.com"));
	policy_cache_entry_free(got);
	policy_cache_entry_free(e);
	policy_cache_close(c);

	/* Persistent: a second open (another process) sees it. */
	c = policy_cache_open(fx->conf, NULL);
	got = policy_cache_lookup(c, "a.com");
	assert_non_null(got);
	policy_cache_entry_free(got);
	assert_int_equal(policy_cache_remove(c, "a.com"), 0);
	assert_int_equal(policy_cache_remove(c, "a.com"), -1);
	policy_cache_close(c);
}

static void
count_entry(const struct policy_cache_entry *e, void *arg)
{
	(void)e;
	(*(int *)arg)++;
}

static void
test_foreach_and_purge(void **state)
{
	struct fixture *fx = *state;
	struct policy_cache *c = policy_cache_open(fx->conf, NULL);
	int n = 0;

	for (int i = 0; i < 50; i++) {
		char d[32];
		struct policy_cache_entry *e;

		snprintf(d, sizeof(d), "d%d.example", i);
		e = entry_with_policy(d, "x", STS_MODE_TESTING, 1, 10);
		assert_int_equal(policy_cache_store(c, e), 0);
		policy_cache_entry_free(e);
	}
	assert_int_equal(policy_cache_foreach(c, count_entry, &n), 50);
	assert_int_equal(n, 50);
	assert_int_equal(policy_cache_purge_all(c), 50);
	n = 0;
	assert_int_equal(policy_cache_foreach(c, count_entry, &n), 0);
	policy_cache_close(c);
}

static void
test_corrupt_file_rebuilt(void **state)
{
	struct fixture *fx = *state;
	char path[128];
	FILE *f;
	struct policy_cache *c;
	struct policy_cache_entry *e = entry_with_policy("a.com", "id1", STS_MODE_ENFORCE, 1, 100);

	snprintf(path, sizeof(path), "%s/policy.mdb", fx->dir);
	f = fopen(path, "w");
	for (int i = 0; i < 4096; i++)
		fputs("garbage!", f);
	fclose(f);
	c = policy_cache_open(fx->conf, NULL);
	assert_true(policy_cache_enabled(c));
	assert_int_equal(policy_cache_store(c, e), 0);
	policy_cache_entry_free(e);
	policy_cache_close(c);
}

static void
test_unusable_dir_disables(void **state)
{
	struct strlist errors = { 0 };
	const char text[] = "state_dir = /proc/version/sub\n";
	struct conf *conf = conf_parse_buffer("t", text, strlen(text), &errors);
	struct policy_cache *c = policy_cache_open(conf, NULL);
	struct policy_cache_entry *e = policy_cache_entry_new("a.com");

	(void)state;
	assert_false(policy_cache_enabled(c));
	assert_null(policy_cache_lookup(c, "a.com"));
	assert_int_equal(policy_cache_store(c, e), -1);
	policy_cache_entry_free(e);
	policy_cache_close(c);
	conf_free(conf);
}

static void
test_decode_rejects_garbage(void **state)
{
	(void)state;
	assert_null(policy_cache_entry_decode("{", 1));
	assert_null(policy_cache_entry_decode("{\"format\":1}", 12));
	assert_null(policy_cache_entry_decode("{\"format\":9,\"domain\":\"a\"}", 25));
	assert_null(policy_cache_entry_decode(
	    "{\"format\":1,\"domain\":\"a\",\"policy\":{\"id\":\"x\",\"mode\":\"strict\"}}", 61));
}

static void
with_failure(struct policy_cache_entry *e, const char *id, time_t at, unsigned count)
{
	e->fail_id = strdup(id);
	e->fail_at = at;
	e->fail_type = RPT_RESULT_STS_POLICY_FETCH_ERROR;
	e->fail_reason = strdup("HTTP 503");
	e->fail_count = count;
}

/* Issue 17: two relays write one domain; the later fetch and the later failure win, in any order. */
static void
test_merge(void **state)
{
	struct policy_cache_entry *old = entry_with_policy("a.com", "id1", STS_MODE_TESTING, 1000, 86400);
	struct policy_cache_entry *new = entry_with_policy("a.com", "id2", STS_MODE_ENFORCE, 2000, 86400);
	struct policy_cache_entry *m1, *m2, *stale;

	(void)state;
	m1 = policy_cache_entry_merge(old, new);
	m2 = policy_cache_entry_merge(new, old);
	assert_string_equal(m1->id, "id2");
	assert_true(policy_cache_entry_equal(m1, m2));	/* order does not matter */
	assert_true(policy_cache_entry_equal(m1, new));
	policy_cache_entry_free(m1);
	policy_cache_entry_free(m2);

	/* A relay with a stale policy records a failure: the newer policy stays, the failure joins it. */
	stale = policy_cache_entry_dup(old);
	with_failure(stale, "id3", 3000, 1);
	m1 = policy_cache_entry_merge(new, stale);
	assert_string_equal(m1->id, "id2");
	assert_int_equal(m1->fetched_at, 2000);
	assert_string_equal(m1->fail_id, "id3");
	assert_int_equal(m1->fail_at, 3000);
	policy_cache_entry_free(m1);

	/* A fetch that succeeded after the failure ends it, as in the engine. */
	with_failure(old, "id2", 1500, 4);
	m1 = policy_cache_entry_merge(old, new);
	assert_null(m1->fail_id);
	assert_string_equal(m1->id, "id2");
	policy_cache_entry_free(m1);

	/* Idempotent, and NULL (no row yet) gives the other side. */
	m1 = policy_cache_entry_merge(stale, stale);
	assert_true(policy_cache_entry_equal(m1, stale));
	policy_cache_entry_free(m1);
	m1 = policy_cache_entry_merge(NULL, new);
	assert_true(policy_cache_entry_equal(m1, new));
	policy_cache_entry_free(m1);
	assert_false(policy_cache_entry_equal(new, stale));
	policy_cache_entry_free(stale);
	policy_cache_entry_free(old);
	policy_cache_entry_free(new);
}

struct read_state {
	int				 calls;
	struct policy_cache_entry	*entry;
};

static void
got_read(void *arg, struct policy_cache_entry *entry)
{
	struct read_state *st = arg;

	st->calls++;
	st->entry = entry;
}

/* A read from the loop answers later, never inside the call, and can be cancelled. */
static void
test_read_from_loop(void **state)
{
	struct fixture *fx = *state;
	struct event_base *base = event_base_new();
	struct policy_cache *c = policy_cache_open(fx->conf, base);
	struct policy_cache_entry *e = entry_with_policy("a.com", "id1", STS_MODE_ENFORCE, 1000, 86400);
	struct read_state st = { 0 };

	assert_int_equal(policy_cache_store(c, e), 0);
	assert_non_null(policy_cache_read_start(c, "a.com", got_read, &st));
	assert_int_equal(st.calls, 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(st.calls, 1);
	assert_non_null(st.entry);
	assert_string_equal(st.entry->id, "id1");
	policy_cache_entry_free(st.entry);
	st.entry = NULL;
	assert_non_null(policy_cache_read_start(c, "b.com", got_read, &st));
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(st.calls, 2);
	assert_null(st.entry);
	policy_cache_read_cancel(policy_cache_read_start(c, "a.com", got_read, &st));
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(st.calls, 2);
	policy_cache_entry_free(e);
	policy_cache_close(c);
	event_base_free(base);
}

static struct sts_record_result
txt(const char *id)
{
	struct sts_record_result r = { .status = STS_RECORD_VALID };

	snprintf(r.id, sizeof(r.id), "%s", id);
	return r;
}

static void
test_decide_rules(void **state)
{
	struct policy_cache_entry *e = entry_with_policy("a.com", "id1", STS_MODE_ENFORCE, 1000, 600);
	struct sts_record_result same = txt("id1"), other = txt("id2"), absent = { .status = STS_RECORD_ABSENT };

	(void)state;
	/* STS-20: no cache -> fetch; same id -> cache; new id -> fetch */
	assert_int_equal(policy_decide(NULL, &same, 1100, 0), POLICY_ACTION_FETCH);
	assert_int_equal(policy_decide(e, &same, 1100, 0), POLICY_ACTION_USE_CACHE);
	assert_int_equal(policy_decide(e, &other, 1100, 0), POLICY_ACTION_FETCH);
	/* STS-31: expired, same id -> fetch again */
	assert_int_equal(policy_decide(e, &same, 1600, 0), POLICY_ACTION_FETCH);
	/* STS-10 / STS-32: DNS failure or no record -> cache (or nothing) */
	assert_int_equal(policy_decide(e, NULL, 1100, 0), POLICY_ACTION_USE_CACHE);
	assert_int_equal(policy_decide(e, &absent, 1100, 0), POLICY_ACTION_USE_CACHE);
	assert_int_equal(policy_decide(NULL, NULL, 1100, 0), POLICY_ACTION_USE_CACHE);
	/* STS-33: a refresh fetches whatever the TXT says */
	assert_int_equal(policy_decide(e, &same, 1100, POLICY_F_REFRESH), POLICY_ACTION_FETCH);
	assert_int_equal(policy_decide(e, &absent, 1100, POLICY_F_REFRESH), POLICY_ACTION_FETCH);
	assert_int_equal(policy_decide(NULL, &absent, 1100, POLICY_F_REFRESH), POLICY_ACTION_USE_CACHE);
	/* STS-18: the same id failed 299 s ago -> back off; 300 s -> fetch */
	e->fail_id = strdup("id2");
	e->fail_at = 1100;
	assert_int_equal(policy_decide(e, &other, 1100 + 299, 0), POLICY_ACTION_BACKOFF);
	assert_int_equal(policy_decide(e, &other, 1100 + 300, 0), POLICY_ACTION_FETCH);
	struct sts_record_result third = txt("id3");
	assert_int_equal(policy_decide(e, &third, 1101, 0), POLICY_ACTION_FETCH);
	policy_cache_entry_free(e);
}

static void
test_refresh_due(void **state)
{
	struct policy_cache_entry *e = entry_with_policy("a.com", "id1", STS_MODE_ENFORCE, 1000, 200000);

	(void)state;
	assert_false(policy_refresh_due(e, 1000 + 86399, 86400));
	assert_true(policy_refresh_due(e, 1000 + 86400, 86400));
	assert_false(policy_refresh_due(e, 1000 + 200000, 86400));	/* expired */
	e->fail_id = strdup("id1");
	e->fail_at = 1000 + 86400;
	assert_false(policy_refresh_due(e, 1000 + 86400 + 10, 86400));
	assert_true(policy_refresh_due(e, 1000 + 86400 + 300, 86400));
	policy_cache_entry_free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_and_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file_rebuilt, setup, teardown),
		cmocka_unit_test(test_unusable_dir_disables),
		cmocka_unit_test(test_decode_rejects_garbage),
		cmocka_unit_test(test_merge),
		cmocka_unit_test_setup_teardown(test_read_from_loop, setup, teardown),
		cmocka_unit_test(test_decide_rules),
		cmocka_unit_test(test_refresh_due),
	};

	log_init("test", false, LOG_LEVEL_CRIT);
	return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}

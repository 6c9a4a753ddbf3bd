/*
 * Unit tests of proxy/limits.c: the soft descriptor limit is raised to
 * the hard one, and max_connections and the upstream pool are sized
 * against it. The tests lower this process's own limits, so they run in
 * order: the hard limit, once lowered, stays lowered.
 */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "proxy/limits.h"

static struct conf *
parse(const char *text)
{
	struct strlist errors = { 0 };
	struct conf *c = conf_parse_buffer("t.conf", text, strlen(text), &errors);

	assert_non_null(c);
	return c;
}

/* What every plan must keep: the sessions, the pool and the allowance fit. */
static void
assert_fits(const struct limits_plan *p)
{
	assert_true(p->in_use + LIMITS_FD_ALLOWANCE + p->pool_size +
	    LIMITS_FDS_PER_SESSION * p->max_connections <= p->soft);
}

static void
test_soft_raised_to_hard(void **state)
{
	struct rlimit rl;
	struct conf *c = parse("");
	struct limits_plan p;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2048)
		skip();
	rl.rlim_cur = 256;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(limits_init(), 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(rl.rlim_cur == rl.rlim_max || rl.rlim_max == RLIM_INFINITY);
	limits_plan(c, &p);
	assert_true(p.soft >= 2048);
	assert_false(p.lowered);
	assert_int_equal(p.max_connections, 500);
	assert_int_equal(p.pool_size, 200);
	assert_int_equal(p.needed, p.in_use + LIMITS_FD_ALLOWANCE + 200 + LIMITS_FDS_PER_SESSION * 500);
	assert_int_equal(limits_max_connections(c), 500);
	assert_int_equal(limits_pool_size(c), 200);
	limits_log(c);
	conf_free(c);
}

static void
test_open_descriptors_counted(void **state)
{
	struct limits_plan before, after;
	struct conf *c = parse("");
	int fds[5];

	(void)state;
	assert_int_equal(limits_init(), 0);
	limits_plan(c, &before);
	for (int i = 0; i < 5; i++)
		assert_true((fds[i] = open("/dev/null", O_RDONLY)) >= 0);
	assert_int_equal(limits_init(), 0);
	limits_plan(c, &after);
	assert_int_equal(after.in_use, before.in_use + 5);
	for (int i = 0; i < 5; i++)
		close(fds[i]);
	conf_free(c);
}

/* --nofile=256: the pool is the larger figure, so it shrinks with the sessions. */
static void
test_lowered_under_256(void **state)
{
	struct rlimit rl = { 256, 256 };
	struct conf *c = parse("");
	struct limits_plan p;
	unsigned avail;

	(void)state;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur != 256) {
		/* valgrind keeps a limit of its own, above its descriptors */
		conf_free(c);
		skip();
	}
	assert_int_equal(limits_init(), 0);
	limits_plan(c, &p);
	assert_int_equal(p.soft, 256);
	assert_true(p.lowered);
	avail = 256 - p.in_use - LIMITS_FD_ALLOWANCE;
	assert_int_equal(p.max_connections, avail / 3);
	assert_int_equal(p.pool_size, avail - 2 * (avail / 3));
	assert_fits(&p);
	limits_log(c);
	conf_free(c);
}

/* A small pool: the sessions get what it leaves, the pool stays whole. */
static void
test_lowered_small_pool(void **state)
{
	struct conf *c = parse("[upstream]\nreuse_pool_size = 10\n");
	struct limits_plan p;
	unsigned avail;

	(void)state;
	limits_plan(c, &p);
	if (p.soft != 256) {
		conf_free(c);
		skip();
	}
	assert_true(p.lowered);
	avail = 256 - p.in_use - LIMITS_FD_ALLOWANCE;
	assert_int_equal(p.max_connections, (avail - 10) / 2);
	assert_int_equal(p.pool_size, 10);
	assert_fits(&p);
	conf_free(c);
}

/* A configuration that fits is taken as it is, even under a low limit. */
static void
test_fitting_conf_kept(void **state)
{
	struct conf *c = parse("[server]\nmax_connections = 40\n[upstream]\nreuse = no\n");
	struct limits_plan p;

	(void)state;
	limits_plan(c, &p);
	assert_false(p.lowered);
	assert_int_equal(p.max_connections, 40);
	assert_int_equal(p.pool_size, 0);
	assert_fits(&p);
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_soft_raised_to_hard),
		cmocka_unit_test(test_open_descriptors_counted),
		cmocka_unit_test(test_lowered_under_256),
		cmocka_unit_test(test_lowered_small_pool),
		cmocka_unit_test(test_fitting_conf_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

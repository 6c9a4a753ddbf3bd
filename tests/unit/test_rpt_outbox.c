/*
 * Unit tests of the TLS-RPT outbox (report/rpt_outbox.c) in a scratch
 * state_dir: claims (issue 13 §3: a report reaches a destination once,
 * whoever sends it), planning, strict decoding, the format earlier
 * versions wrote, and the daily plan.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/log.h"
#include "report/rpt_outbox.h"

#define DAY	"2023-11-14"
#define DOM	"a.example"
#define RUA	"https://r.a.example/tlsrpt"
#define KEY	"~out\x1f" DAY "\x1f" DOM "\x1f" RUA

static struct {
	char			 dir[64];
	struct conf		*conf;
	struct rpt_store	*store;
} T;

static int
setup(void **state)
{
	struct strlist errors = { 0 };
	char *text;

	(void)state;
	snprintf(T.dir, sizeof(T.dir), "/tmp/stsproxy-outbox-XXXXXX");
	assert_non_null(mkdtemp(T.dir));
	text = xasprintf("state_dir = %s\n", T.dir);
	T.conf = conf_parse_buffer("test", text, strlen(text), &errors);
	free(text);
	assert_non_null(T.conf);
	T.store = rpt_store_open(T.conf, NULL);
	assert_non_null(T.store);
	return 0;
}

static int
teardown(void **state)
{
	char *db = xasprintf("%s/reports.mdb", T.dir), *lock = xasprintf("%s/reports.mdb-lock", T.dir);

	(void)state;
	rpt_store_close(T.store);
	conf_free(T.conf);
	unlink(db);
	unlink(lock);
	rmdir(T.dir);
	free(db);
	free(lock);
	return 0;
}

/* Write a raw record, as another version or a damaged file would have it. */
static void
put_raw(const char *key, const char *text)
{
	json_t *doc = json_loads(text, 0, NULL);

	assert_non_null(doc);
	assert_int_equal(rpt_store_meta_put(T.store, key, doc), 0);
	json_decref(doc);
}

/* A pid that is certainly gone: a child that has exited and been reaped. */
static pid_t
dead_pid(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

/* Issue 13 §3: one claim at a time; a delivered entry is not claimed again. */
static void
test_claim(void **state)
{
	struct rpt_outbox_entry e;

	(void)state;
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), 0);
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, RUA, false, &e), RPT_CLAIM_TAKEN);
	assert_int_equal(e.state, RPT_OUTBOX_NEW);
	assert_int_equal(e.claim_pid, getpid());
	/* Claimed, so nobody else, not even this process again. */
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, RUA, false, &e), RPT_CLAIM_BUSY);
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, RUA, true, &e), RPT_CLAIM_BUSY);
	assert_int_equal(rpt_outbox_release(T.store, DAY, DOM, RUA), 0);
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), 1);
	assert_int_equal(e.claim_pid, 0);
	assert_int_equal(e.state, RPT_OUTBOX_NEW);

	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, RUA, false, &e), RPT_CLAIM_TAKEN);
	e.state = RPT_OUTBOX_DELIVERED;
	e.delivered_at = 1700100000;
	e.delivered_by = RPT_BY_COMMAND;
	e.attempts = 1;
	assert_int_equal(rpt_outbox_put(T.store, &e), 0);
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), 1);
	assert_int_equal(e.claim_pid, 0);	/* a result drops the claim */
	assert_int_equal(e.delivered_by, RPT_BY_COMMAND);
	assert_int_equal(e.delivered_at, 1700100000);
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, RUA, false, &e), RPT_CLAIM_DELIVERED);
	assert_int_equal(e.claim_pid, 0);
	/* --force: delivered before, sent again. */
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, RUA, true, &e), RPT_CLAIM_TAKEN);
	assert_int_equal(e.state, RPT_OUTBOX_DELIVERED);
}

/* A claim lapses when its process is gone, or after the lease. */
static void
test_claim_lapses(void **state)
{
	struct rpt_outbox_entry e;
	char *doc;

	(void)state;
	doc = xasprintf("{\"day\": \"%s\", \"domain\": \"%s\", \"rua\": \"%s\", \"state\": "
	    "\"pending\", \"claim\": {\"pid\": %ld, \"until\": %lld}}", DAY, DOM, RUA,
	    (long)dead_pid(), (long long)time(NULL) + 3600);
	put_raw(KEY, doc);
	free(doc);
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), 1);
	assert_false(rpt_outbox_claimed(&e, time(NULL)));
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, RUA, false, &e), RPT_CLAIM_TAKEN);
	assert_int_equal(e.claim_pid, getpid());

	/* pid 1 is alive, but its lease ran out. */
	doc = xasprintf("{\"day\": \"%s\", \"domain\": \"%s\", \"rua\": \"%s\", \"state\": "
	    "\"pending\", \"claim\": {\"pid\": 1, \"until\": %lld}}", DAY, DOM, RUA,
	    (long long)time(NULL) - 1);
	put_raw(KEY, doc);
	free(doc);
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, RUA, false, &e), RPT_CLAIM_TAKEN);
	/* ...and within its lease it holds. */
	doc = xasprintf("{\"day\": \"%s\", \"domain\": \"%s\", \"rua\": \"%s\", \"state\": "
	    "\"pending\", \"claim\": {\"pid\": 1, \"until\": %lld}}", DAY, DOM, RUA,
	    (long long)time(NULL) + 60);
	put_raw(KEY, doc);
	free(doc);
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, RUA, false, &e), RPT_CLAIM_BUSY);
	assert_int_equal(e.claim_pid, 1);
	/* Releasing is only for the claim's owner. */
	assert_int_equal(rpt_outbox_release(T.store, DAY, DOM, RUA), 0);
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), 1);
	assert_int_equal(e.claim_pid, 1);
}

/* The daemon plans: missing and NEW become PENDING; what is done stays done. */
static void
test_plan(void **state)
{
	struct rpt_outbox_entry e;

	(void)state;
	assert_int_equal(rpt_outbox_plan(T.store, DAY, DOM, RUA, 1700090000, &e), 0);
	assert_int_equal(e.state, RPT_OUTBOX_PENDING);
	assert_int_equal(e.next, 1700090000);
	/* Planned twice (a restart): unchanged. */
	assert_int_equal(rpt_outbox_plan(T.store, DAY, DOM, RUA, 1700095000, &e), 0);
	assert_int_equal(e.next, 1700090000);

	/* report send touched it first (NEW, with its failure noted). */
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, "mailto:t@a.example", false, &e),
	    RPT_CLAIM_TAKEN);
	snprintf(e.error, sizeof(e.error), "report send: refused");
	assert_int_equal(rpt_outbox_put(T.store, &e), 0);
	assert_int_equal(rpt_outbox_plan(T.store, DAY, DOM, "mailto:t@a.example", 1700090000, &e), 0);
	assert_int_equal(e.state, RPT_OUTBOX_PENDING);
	assert_string_equal(e.error, "report send: refused");

	/* Delivered by report send before the daemon planned: stays delivered. */
	assert_int_equal(rpt_outbox_entry_init(&e, DAY, "b.example", RUA), 0);
	e.state = RPT_OUTBOX_DELIVERED;
	e.delivered_by = RPT_BY_COMMAND;
	assert_int_equal(rpt_outbox_put(T.store, &e), 0);
	assert_int_equal(rpt_outbox_plan(T.store, DAY, "b.example", RUA, 1700090000, &e), 0);
	assert_int_equal(e.state, RPT_OUTBOX_DELIVERED);
	assert_int_equal(e.delivered_by, RPT_BY_COMMAND);
}

struct seen {
	unsigned	 count;
	char		 last[8192];
};

static void
visit(void *arg, const struct rpt_outbox_entry *e)
{
	struct seen *s = arg;

	s->count++;
	snprintf(s->last, sizeof(s->last), "%s %s %s %s", e->day, e->domain, e->rua,
	    rpt_outbox_state_name(e->state));
}

/* What version 1 wrote is read as it was; what is broken is never half read. */
static void
test_decoding(void **state)
{
	struct rpt_outbox_entry e;
	struct seen seen = { 0 };

	(void)state;
	put_raw(KEY, "{\"day\": \"" DAY "\", \"domain\": \"" DOM "\", \"rua\": \"" RUA "\", "
	    "\"state\": \"pending\", \"first\": 1700090000, \"attempts\": 2, \"next\": 1700091200, "
	    "\"error\": \"r.a.example answered HTTP 500\"}");
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), 1);
	assert_int_equal(e.state, RPT_OUTBOX_PENDING);
	assert_int_equal(e.attempts, 2);
	assert_int_equal(e.first, 1700090000);
	assert_int_equal(e.next, 1700091200);
	assert_string_equal(e.error, "r.a.example answered HTTP 500");
	assert_int_equal(e.claim_pid, 0);

	/* A missing state (the old code compared it with strcmp). */
	put_raw(KEY, "{\"day\": \"" DAY "\", \"domain\": \"" DOM "\", \"rua\": \"" RUA "\"}");
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), -1);
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, RUA, false, &e), RPT_CLAIM_ERROR);
	assert_int_equal(rpt_outbox_plan(T.store, DAY, DOM, RUA, 1, &e), -1);
	/* Mistyped members. */
	put_raw(KEY, "{\"day\": \"" DAY "\", \"domain\": \"" DOM "\", \"rua\": \"" RUA "\", "
	    "\"state\": \"pending\", \"next\": \"soon\"}");
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), -1);
	put_raw(KEY, "{\"day\": \"" DAY "\", \"domain\": \"" DOM "\", \"rua\": \"" RUA "\", "
	    "\"state\": \"sent\"}");
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), -1);
	put_raw(KEY, "{\"day\": \"" DAY "\", \"domain\": \"" DOM "\", \"rua\": \"" RUA "\", "
	    "\"state\": \"delivered\", \"by\": \"someone\"}");
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), -1);
	put_raw(KEY, "{\"day\": \"" DAY "\", \"domain\": \"" DOM "\", \"rua\": \"" RUA "\", "
	    "\"state\": \"pending\", \"claim\": {\"pid\": 0}}");
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), -1);
	/* A record under another destination's key. */
	put_raw(KEY, "{\"day\": \"" DAY "\", \"domain\": \"other.example\", \"rua\": \"" RUA "\", "
	    "\"state\": \"pending\"}");
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), -1);
	/* Not an object. */
	put_raw(KEY, "[1]");
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), -1);
	/* The walk skips what is broken and shows the rest. */
	put_raw(KEY, "{\"day\": \"" DAY "\", \"domain\": \"" DOM "\", \"rua\": \"" RUA "\"}");
	assert_int_equal(rpt_outbox_plan(T.store, DAY, "b.example", RUA, 1, NULL), 0);
	assert_int_equal(rpt_outbox_foreach(T.store, visit, &seen), 2);
	assert_int_equal(seen.count, 1);
	assert_string_equal(seen.last, DAY " b.example " RUA " pending");
}

/* The daily plan: typed, strictly read. */
static void
test_day_plan(void **state)
{
	struct rpt_plan plan = { RPT_PLAN_WAITING, 1700100000 }, got;

	(void)state;
	assert_int_equal(rpt_plan_get(T.store, DAY, &got), 0);
	assert_int_equal(rpt_plan_put(T.store, DAY, &plan), 0);
	assert_int_equal(rpt_plan_get(T.store, DAY, &got), 1);
	assert_int_equal(got.state, RPT_PLAN_WAITING);
	assert_int_equal(got.send_at, 1700100000);
	plan.state = RPT_PLAN_PLANNED;
	assert_int_equal(rpt_plan_put(T.store, DAY, &plan), 0);
	assert_int_equal(rpt_plan_get(T.store, DAY, &got), 1);
	assert_int_equal(got.state, RPT_PLAN_PLANNED);
	put_raw("~plan\x1f" DAY, "{\"send_at\": 5}");
	assert_int_equal(rpt_plan_get(T.store, DAY, &got), -1);
	put_raw("~plan\x1f" DAY, "{\"state\": \"waiting\"}");
	assert_int_equal(rpt_plan_get(T.store, DAY, &got), -1);
}

/* Bounds: what does not fit an entry is refused, not cut. */
static void
test_bounds(void **state)
{
	struct rpt_outbox_entry e;
	char long_domain[300];

	(void)state;
	memset(long_domain, 'a', sizeof(long_domain) - 1);
	long_domain[sizeof(long_domain) - 1] = '\0';
	assert_int_equal(rpt_outbox_entry_init(&e, DAY, long_domain, RUA), -1);
	assert_int_equal(rpt_outbox_entry_init(&e, DAY, DOM, ""), -1);
	assert_int_equal(rpt_outbox_claim(T.store, DAY, long_domain, RUA, false, &e), RPT_CLAIM_ERROR);
}

/* A destination too long for an LMDB key (511 bytes) still has its entry. */
static void
test_long_destination(void **state)
{
	struct rpt_outbox_entry e;
	char rua[2048];
	struct seen seen = { 0 };

	(void)state;
	snprintf(rua, sizeof(rua), "https://r.a.example/");
	memset(rua + strlen(rua), 'p', 1500);
	rua[strlen("https://r.a.example/") + 1500] = '\0';
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, rua, false, &e), RPT_CLAIM_TAKEN);
	e.state = RPT_OUTBOX_DELIVERED;
	assert_int_equal(rpt_outbox_put(T.store, &e), 0);
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, rua, &e), 1);
	assert_string_equal(e.rua, rua);
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, rua, false, &e), RPT_CLAIM_DELIVERED);
	/* Another long one is another entry. */
	rua[100] = 'q';
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, rua, &e), 0);
	assert_int_equal(rpt_outbox_foreach(T.store, visit, &seen), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_lapses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decoding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_day_plan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_destination, setup, teardown),
	};

	log_init("test", false, LOG_LEVEL_CRIT);
	return cmocka_run_group_tests_name("rpt_outbox", tests, NULL, NULL);
}

/*
 * Unit tests of the one delivery path of TLS-RPT reports
 * (report/rpt_deliver.c), with a scratch report database and a scripted
 * mailer behind the function table proxy/ hands to report/. Issue 13 §3:
 * a report delivered to a destination, by the daemon or by report send,
 * is not delivered there again (unless forced); report send records its
 * deliveries; the daemon's failures are retried within RPT-19's window;
 * report send's failures leave the daemon's schedule alone. The https:
 * transport is exercised by tests/e2e/reports.sh.
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

#include "conf/clock.h"
#include "conf/log.h"
#include "report/rpt_deliver.h"

#define DAY	"2023-11-14"
#define DOM	"a.example"
#define RUA	"mailto:tlsrpt@a.example"

/* The scripted mailer: answers each send from the loop, as the real one does. */
struct fake_job {
	struct event	*ev;
	rpt_mail_done	 done;
	void		*arg;
	bool		 accept;
};

static struct {
	char			 dir[64];
	struct conf		*conf;
	struct event_base	*base;
	struct rpt_store	*store;
	struct rpt_identity	 id;
	struct rpt_dkim_keys	 keys;
	struct rpt_mailer	 mailer;
	struct rpt_deliver_env	 env;
	/* the mailer's side */
	bool			 accept;	/* how the next mails are answered */
	unsigned		 sends, cancels;
	char			 last_to[320];
	bool			 last_has_report;
	struct fake_job		*pending;
	/* the caller's side */
	unsigned		 results;
	struct rpt_delivery_result result;
	char			 reason[256];
} T;

static void
fake_answer(evutil_socket_t fd, short what, void *arg)
{
	struct fake_job *job = arg;

	(void)fd;
	(void)what;
	T.pending = NULL;
	job->done(job->arg, job->accept, job->accept ? "accepted: 250 ok" :
	    "recipient refused: 550 5.1.1 no such user");
	event_free(job->ev);
	free(job);
}

static void *
fake_send(void *ctx, const char *from, const char *to, const char *msg, rpt_mail_done done,
    void *arg)
{
	struct fake_job *job = calloc(1, sizeof(*job));

	(void)ctx;
	assert_string_equal(from, T.id.contact);
	T.sends++;
	snprintf(T.last_to, sizeof(T.last_to), "%s", to);
	T.last_has_report = strstr(msg, "TLS-Report-Domain: " DOM) != NULL;
	job->done = done;
	job->arg = arg;
	job->accept = T.accept;
	job->ev = event_new(T.base, -1, 0, fake_answer, job);
	event_active(job->ev, EV_TIMEOUT, 1);
	T.pending = job;
	return job;
}

static void
fake_cancel(void *p)
{
	struct fake_job *job = p;

	T.cancels++;
	T.pending = NULL;
	event_free(job->ev);
	free(job);
}

static int
setup(void **state)
{
	struct strlist errors = { 0 };
	struct delivery_outcome o = {
		.session = "s", .when = 1700000000 /* 2023-11-14 */, .policy_domain = DOM,
		.policy_type = NULL, .mx_host = "mx.a.example", .ip = "127.0.4.1",
		.sending_ip = "127.0.0.1", .result = RPT_RESULT_STARTTLS_NOT_SUPPORTED,
		.action = OUTCOME_ACTION_DELIVERED,
	};
	char *text;

	(void)state;
	memset(&T, 0, sizeof(T));
	snprintf(T.dir, sizeof(T.dir), "/tmp/stsproxy-deliver-XXXXXX");
	assert_non_null(mkdtemp(T.dir));
	text = xasprintf("state_dir = %s\nhostname = relay.example\n[report]\n"
	    "retry_interval = 10m\ncontact = tlsrpt@relay.example\n", T.dir);
	T.conf = conf_parse_buffer("test", text, strlen(text), &errors);
	free(text);
	assert_non_null(T.conf);
	T.base = event_base_new();
	T.store = rpt_store_open(T.conf, NULL);
	assert_non_null(T.store);
	rpt_store_add(T.store, &o);
	assert_int_equal(rpt_store_flush(T.store), 0);
	rpt_identity_init(&T.id, T.conf, "relay.example");
	T.mailer = (struct rpt_mailer){ fake_send, fake_cancel, NULL };
	T.env = (struct rpt_deliver_env){
		.base = T.base, .conf = T.conf, .store = T.store, .id = &T.id, .mailer = &T.mailer,
		.keys = &T.keys, .by = RPT_BY_COMMAND,
	};
	T.accept = true;
	clock_set_offset(0);
	return 0;
}

static int
teardown(void **state)
{
	char *db = xasprintf("%s/reports.mdb", T.dir), *lock = xasprintf("%s/reports.mdb-lock", T.dir);

	(void)state;
	rpt_store_close(T.store);
	event_base_free(T.base);
	conf_free(T.conf);
	unlink(db);
	unlink(lock);
	rmdir(T.dir);
	free(db);
	free(lock);
	clock_set_offset(0);
	return 0;
}

static void
got(void *arg, const struct rpt_delivery_result *r)
{
	(void)arg;
	T.results++;
	T.result = *r;
	snprintf(T.reason, sizeof(T.reason), "%s", r->reason);
	assert_string_equal(r->day, DAY);
	assert_string_equal(r->rua, RUA);
}

/* One delivery to the end; its status. */
static enum rpt_delivery_status
deliver(enum rpt_sender_kind by, const char *domain, bool force)
{
	unsigned before = T.results;

	T.env.by = by;
	assert_non_null(rpt_deliver_start(&T.env, DAY, domain, RUA, force, got, NULL));
	assert_int_equal(T.results, before);	/* never from inside start */
	for (int i = 0; i < 100 && T.results == before; i++)
		event_base_loop(T.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(T.results, before + 1);
	return T.result.status;
}

static struct rpt_outbox_entry
entry(void)
{
	struct rpt_outbox_entry e;

	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), 1);
	return e;
}

/* Issue 13 §3: report send, then the daemon: one arrival. */
static void
test_command_then_daemon(void **state)
{
	(void)state;
	assert_int_equal(deliver(RPT_BY_COMMAND, DOM, false), RPT_DELIVERY_DELIVERED);
	assert_int_equal(T.sends, 1);
	assert_string_equal(T.last_to, "tlsrpt@a.example");
	assert_true(T.last_has_report);
	assert_true(T.result.recorded);
	assert_int_equal(entry().state, RPT_OUTBOX_DELIVERED);
	assert_int_equal(entry().delivered_by, RPT_BY_COMMAND);
	/* The daemon plans the day afterwards: the entry stays delivered... */
	assert_int_equal(rpt_outbox_plan(T.store, DAY, DOM, RUA, clock_now(), NULL), 0);
	assert_int_equal(entry().state, RPT_OUTBOX_DELIVERED);
	/* ...and a delivery it tried anyway would not send. */
	assert_int_equal(deliver(RPT_BY_DAEMON, DOM, false), RPT_DELIVERY_ALREADY);
	assert_int_equal(T.result.entry.delivered_by, RPT_BY_COMMAND);
	assert_int_equal(deliver(RPT_BY_COMMAND, DOM, false), RPT_DELIVERY_ALREADY);
	assert_int_equal(T.sends, 1);
	assert_int_equal(entry().claim_pid, 0);
}

/* The daemon first, then report send: one arrival; --force sends again. */
static void
test_daemon_then_command(void **state)
{
	(void)state;
	assert_int_equal(rpt_outbox_plan(T.store, DAY, DOM, RUA, clock_now(), NULL), 0);
	assert_int_equal(deliver(RPT_BY_DAEMON, DOM, false), RPT_DELIVERY_DELIVERED);
	assert_int_equal(entry().delivered_by, RPT_BY_DAEMON);
	assert_int_equal(deliver(RPT_BY_COMMAND, DOM, false), RPT_DELIVERY_ALREADY);
	assert_int_equal(T.sends, 1);
	assert_int_equal(deliver(RPT_BY_COMMAND, DOM, true), RPT_DELIVERY_DELIVERED);
	assert_int_equal(T.sends, 2);
	assert_int_equal(entry().delivered_by, RPT_BY_COMMAND);
	assert_int_equal(entry().attempts, 2);
}

/* RPT-19: the daemon retries with backoff within 24 hours, then gives up. */
static void
test_daemon_retries(void **state)
{
	struct rpt_outbox_entry e;

	(void)state;
	T.accept = false;
	assert_int_equal(rpt_outbox_plan(T.store, DAY, DOM, RUA, clock_now(), NULL), 0);
	assert_int_equal(deliver(RPT_BY_DAEMON, DOM, false), RPT_DELIVERY_FAILED);
	assert_non_null(strstr(T.reason, "550 5.1.1"));
	e = entry();
	assert_int_equal(e.state, RPT_OUTBOX_PENDING);
	assert_int_equal(e.attempts, 1);
	assert_in_range(e.next - clock_now(), 599, 600);
	assert_non_null(strstr(e.error, "550 5.1.1"));
	assert_int_equal(e.claim_pid, 0);
	assert_int_equal(deliver(RPT_BY_DAEMON, DOM, false), RPT_DELIVERY_FAILED);
	assert_in_range(entry().next - clock_now(), 1199, 1200);	/* doubled */
	/* A day later the window is over. */
	clock_set_offset(86400);
	assert_int_equal(deliver(RPT_BY_DAEMON, DOM, false), RPT_DELIVERY_FAILED);
	assert_int_equal(entry().state, RPT_OUTBOX_EXPIRED);
	/* report send can still deliver an expired report by hand. */
	T.accept = true;
	assert_int_equal(deliver(RPT_BY_COMMAND, DOM, false), RPT_DELIVERY_DELIVERED);
	assert_int_equal(entry().state, RPT_OUTBOX_DELIVERED);
}

/* report send's failure is noted and changes nothing the daemon does. */
static void
test_command_failure(void **state)
{
	struct rpt_outbox_entry before, after;

	(void)state;
	T.accept = false;
	assert_int_equal(deliver(RPT_BY_COMMAND, DOM, false), RPT_DELIVERY_FAILED);
	after = entry();
	assert_int_equal(after.state, RPT_OUTBOX_NEW);	/* the daemon does not send NEW ones */
	assert_int_equal(after.attempts, 0);
	assert_non_null(strstr(after.error, "report send: recipient refused"));
	assert_int_equal(rpt_outbox_plan(T.store, DAY, DOM, RUA, clock_now(), NULL), 0);
	before = entry();
	assert_int_equal(before.state, RPT_OUTBOX_PENDING);
	assert_int_equal(deliver(RPT_BY_COMMAND, DOM, false), RPT_DELIVERY_FAILED);
	after = entry();
	assert_int_equal(after.state, RPT_OUTBOX_PENDING);
	assert_int_equal(after.next, before.next);
	assert_int_equal(after.attempts, before.attempts);
	assert_int_equal(after.first, 0);
}

/* Cancelled in flight: the mail is stopped and the entry is as it was. */
static void
test_cancel(void **state)
{
	struct rpt_delivery *d;

	(void)state;
	assert_int_equal(rpt_outbox_plan(T.store, DAY, DOM, RUA, clock_now(), NULL), 0);
	T.env.by = RPT_BY_DAEMON;
	d = rpt_deliver_start(&T.env, DAY, DOM, RUA, false, got, NULL);
	assert_non_null(T.pending);
	assert_int_equal(entry().claim_pid, getpid());
	rpt_delivery_cancel(d);
	assert_int_equal(T.cancels, 1);
	assert_int_equal(T.results, 0);
	assert_int_equal(entry().claim_pid, 0);
	assert_int_equal(entry().state, RPT_OUTBOX_PENDING);
	assert_int_equal(entry().attempts, 0);
	/* A claim held elsewhere: busy, nothing sent. */
	assert_int_equal(rpt_outbox_claim(T.store, DAY, DOM, RUA, false, &(struct rpt_outbox_entry){ 0 }),
	    RPT_CLAIM_TAKEN);
	assert_int_equal(deliver(RPT_BY_COMMAND, DOM, false), RPT_DELIVERY_BUSY);
	assert_int_equal(T.sends, 1);
}

/* What cannot leave leaves no trace: no mailer, or no traffic. */
static void
test_nothing_to_send(void **state)
{
	struct rpt_outbox_entry e;

	(void)state;
	T.env.mailer = NULL;
	T.env.no_mail = "no [report] dkim_key";
	assert_int_equal(deliver(RPT_BY_COMMAND, DOM, false), RPT_DELIVERY_SKIPPED);
	assert_string_equal(T.reason, "no [report] dkim_key");
	assert_int_equal(rpt_outbox_get(T.store, DAY, DOM, RUA, &e), 0);
	T.env.mailer = &T.mailer;
	/* No traffic for that domain: report send releases, the daemon gives up. */
	assert_int_equal(deliver(RPT_BY_COMMAND, "b.example", false), RPT_DELIVERY_NO_REPORT);
	assert_int_equal(rpt_outbox_get(T.store, DAY, "b.example", RUA, &e), 1);
	assert_int_equal(e.claim_pid, 0);
	assert_int_equal(e.state, RPT_OUTBOX_NEW);
	assert_int_equal(rpt_outbox_plan(T.store, DAY, "b.example", RUA, clock_now(), NULL), 0);
	assert_int_equal(deliver(RPT_BY_DAEMON, "b.example", false), RPT_DELIVERY_NO_REPORT);
	assert_int_equal(rpt_outbox_get(T.store, DAY, "b.example", RUA, &e), 1);
	assert_int_equal(e.state, RPT_OUTBOX_EXPIRED);
	assert_int_equal(T.sends, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_command_then_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_then_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_to_send, setup, teardown),
	};

	log_init("test", false, LOG_LEVEL_CRIT);
	return cmocka_run_group_tests_name("rpt_deliver", tests, NULL, NULL);
}

/*
 * Unit tests of the LMTP fan-out (proxy/fanout.c) on its own, with a
 * fake upstream per domain: what the client session's dialogues
 * (test_smtp_server, lmtp_*.dlg) cannot see from the wire. The fan-out
 * never calls back from inside its own verbs; it may be freed from
 * inside its callback; the body reaches every route that took DATA, as
 * the same bytes, and only those; the verbs refuse to run out of order;
 * the domain bound counts domains, not recipients.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "conf/log.h"
#include "proxy/fanout.h"

/* A fake upstream: READY at once, 250 to RCPT, 354 to DATA, 250 at the end. */
struct upstream {
	upstream_cb		 cb;
	void			*arg;
	char			 domain[64];
	struct evbuffer		*body;
	struct event		*ev;
	enum upstream_event	 pending;
	int			 code;
	bool			 freed;
};

#define MAX_UP 8
static struct {
	struct event_base	*base;
	struct runtime		 rt;
	struct upstream		*ups[MAX_UP];
	size_t			 nups;
	bool			 in_verb;	/* inside a fanout_* call */
	unsigned		 events[FANOUT_EV_DONE + 1];
	char			 order[512];	/* "R:addr:code F:addr:code ..." */
	bool			 free_on_rcpt;
	struct fanout		*f;
	bool			 called_after_free;
} T;

static void
fire(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *up = arg;
	struct smtp_reply r;

	(void)fd;
	(void)what;
	smtp_reply_init(&r);
	smtp_reply_set(&r, up->code, NULL, "%s", up->domain);
	up->cb(up->arg, up->pending, &r);
	smtp_reply_clear(&r);
}

static void
later(struct upstream *up, enum upstream_event ev, int code)
{
	up->pending = ev;
	up->code = code;
	event_active(up->ev, EV_TIMEOUT, 0);
}

static struct upstream *
fake_open(struct runtime *rt, const char *session, const char *domain, const struct smtp_path *mail,
    upstream_cb cb, void *arg)
{
	struct upstream *up = calloc(1, sizeof(*up));

	(void)session;
	(void)mail;
	up->cb = cb;
	up->arg = arg;
	snprintf(up->domain, sizeof(up->domain), "%s", domain);
	up->body = evbuffer_new();
	up->ev = event_new(rt->base, -1, 0, fire, up);
	assert_true(T.nups < MAX_UP);
	T.ups[T.nups++] = up;
	later(up, UPSTREAM_EV_READY, 0);
	return up;
}

static int
fake_rcpt(struct upstream *up, const struct smtp_path *rcpt)
{
	/* a domain's recipients only reach its own upstream */
	assert_non_null(strstr(rcpt->address, up->domain));
	later(up, UPSTREAM_EV_REPLY, strncmp(rcpt->address, "no", 2) == 0 ? 550 : 250);
	return 0;
}

static int
fake_data(struct upstream *up)
{
	later(up, UPSTREAM_EV_REPLY, 354);
	return 0;
}

static struct evbuffer *
fake_body(struct upstream *up)
{
	return up->body;
}

static bool
fake_body_full(struct upstream *up)
{
	(void)up;
	return false;
}

static int
fake_body_end(struct upstream *up)
{
	later(up, UPSTREAM_EV_REPLY, 250);
	return 0;
}

static void
fake_free(struct upstream *up)
{
	if (up == NULL)
		return;
	event_del(up->ev);
	up->freed = true;
	up->cb = NULL;
}

static const char *
fake_mx_host(const struct upstream *up)
{
	(void)up;
	return "mx.fake";
}

static const struct upstream_ops ops = {
	.open = fake_open, .rcpt = fake_rcpt, .data = fake_data, .body = fake_body,
	.body_full = fake_body_full, .body_end = fake_body_end, .free = fake_free,
	.mx_host = fake_mx_host,
};

static void
on_event(void *arg, enum fanout_event ev, const struct fanout_answer *a)
{
	(void)arg;
	if (T.in_verb)
		fail_msg("callback from inside a fanout verb");
	if (T.f == NULL)
		T.called_after_free = true;
	T.events[ev]++;
	if (ev == FANOUT_EV_RCPT || ev == FANOUT_EV_FINAL)
		snprintf(T.order + strlen(T.order), sizeof(T.order) - strlen(T.order), "%c:%s:%d ",
		    ev == FANOUT_EV_RCPT ? 'R' : 'F', a->address, a->reply->code);
	if (ev == FANOUT_EV_RCPT && T.free_on_rcpt) {
		fanout_free(T.f);
		T.f = NULL;
	}
}

static void
loop(void)
{
	for (int i = 0; i < 20; i++)
		event_base_loop(T.base, EVLOOP_NONBLOCK);
}

static void
rcpt(const char *address)
{
	struct smtp_path p;
	const char *at = strchr(address, '@');

	memset(&p, 0, sizeof(p));
	snprintf(p.address, sizeof(p.address), "%s", address);
	snprintf(p.domain, sizeof(p.domain), "%s", at + 1);
	T.in_verb = true;
	fanout_rcpt(T.f, &p, at + 1);
	T.in_verb = false;
}

static int
setup(void **state)
{
	struct smtp_path mail;
	struct strlist errors = { 0 };

	(void)state;
	memset(&T, 0, sizeof(T));
	T.base = event_base_new();
	T.rt.base = T.base;
	T.rt.conf = conf_parse_buffer("t", "", 0, &errors);
	memset(&mail, 0, sizeof(mail));
	snprintf(mail.address, sizeof(mail.address), "s@c.example");
	T.f = fanout_new(&T.rt, &ops, "0123456789abcdef", &mail, 2, on_event, NULL);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	fanout_free(T.f);
	loop();
	for (size_t i = 0; i < T.nups; i++) {
		assert_true(T.ups[i]->freed);	/* every upstream let go */
		evbuffer_free(T.ups[i]->body);
		event_free(T.ups[i]->ev);
		free(T.ups[i]);
	}
	conf_free((struct conf *)T.rt.conf);
	event_base_free(T.base);
	return 0;
}

/* LMTP-3, LMTP-7: replies in RCPT order, the body to each route that took a recipient. */
static void
test_transaction(void **state)
{
	struct evbuffer *chunk = evbuffer_new();

	(void)state;
	rcpt("x@a.example");
	rcpt("no1@b.example");
	rcpt("x2@a.example");
	rcpt("x@c.example");	/* a third domain: beyond max_domains = 2 */
	rcpt("no2@b.example");
	assert_int_equal(fanout_domains(T.f), 2);
	assert_true(fanout_rcpts_pending(T.f));
	T.in_verb = true;
	assert_int_equal(fanout_data(T.f), -1);	/* replies still owed */
	T.in_verb = false;
	loop();
	assert_string_equal(T.order, "R:x@a.example:250 R:no1@b.example:550 R:x2@a.example:250 "
	    "R:x@c.example:452 R:no2@b.example:550 ");
	assert_false(fanout_rcpts_pending(T.f));
	/* answered at once, and owed to nobody before it: still from the loop, not the verb */
	rcpt("late@c.example");
	assert_true(fanout_rcpts_pending(T.f));
	loop();
	assert_non_null(strstr(T.order, "R:late@c.example:452 "));
	assert_false(fanout_rcpts_pending(T.f));
	assert_int_equal(fanout_accepted(T.f), 2);
	T.in_verb = true;
	assert_int_equal(fanout_data(T.f), 0);
	T.in_verb = false;
	loop();
	assert_int_equal(T.events[FANOUT_EV_DATA], 1);
	/* b took no recipient: no DATA, let go at once */
	assert_true(T.ups[1]->freed);
	evbuffer_add_printf(chunk, "hello\r\n");
	T.in_verb = true;
	fanout_body_write(T.f, chunk);
	assert_int_equal(evbuffer_get_length(chunk), 0);
	evbuffer_add_printf(chunk, ".\r\n");
	fanout_body_write(T.f, chunk);
	fanout_body_end(T.f);
	T.in_verb = false;
	assert_int_equal(evbuffer_get_length(T.ups[0]->body), 10);
	assert_int_equal(evbuffer_get_length(T.ups[1]->body), 0);
	loop();
	assert_int_equal(T.events[FANOUT_EV_FINAL], 2);
	assert_int_equal(T.events[FANOUT_EV_DONE], 1);
	assert_non_null(strstr(T.order, "F:x@a.example:250 F:x2@a.example:250 "));
	evbuffer_free(chunk);
}

/* Two routes in the body get the same bytes, each its own copy. */
static void
test_body_copies(void **state)
{
	struct evbuffer *chunk = evbuffer_new();
	char big[100000];

	(void)state;
	rcpt("x@a.example");
	rcpt("y@b.example");
	loop();
	assert_int_equal(fanout_data(T.f), 0);
	loop();
	memset(big, 'q', sizeof(big));
	evbuffer_add(chunk, big, sizeof(big));
	fanout_body_write(T.f, chunk);
	assert_int_equal(evbuffer_get_length(chunk), 0);
	assert_int_equal(evbuffer_get_length(T.ups[0]->body), sizeof(big));
	assert_int_equal(evbuffer_get_length(T.ups[1]->body), sizeof(big));
	assert_memory_equal(evbuffer_pullup(T.ups[0]->body, -1), big, sizeof(big));
	assert_memory_equal(evbuffer_pullup(T.ups[1]->body, -1), big, sizeof(big));
	/* too big after all: both routes cut, each recipient hears the 552 */
	{
		struct smtp_reply r;

		smtp_reply_init(&r);
		smtp_reply_set(&r, 552, "5.3.4", "too big");
		fanout_body_abort(T.f, &r);
		smtp_reply_clear(&r);
	}
	assert_true(T.ups[0]->freed && T.ups[1]->freed);
	fanout_body_end(T.f);
	loop();
	assert_non_null(strstr(T.order, "F:x@a.example:552 F:y@b.example:552 "));
	assert_int_equal(T.events[FANOUT_EV_DONE], 1);
	evbuffer_free(chunk);
}

/* Freed from inside its own callback: no further callback, no use after free (valgrind, ASan). */
static void
test_free_in_callback(void **state)
{
	(void)state;
	T.free_on_rcpt = true;
	rcpt("x@a.example");
	rcpt("y@a.example");
	rcpt("z@b.example");
	loop();
	assert_int_equal(T.events[FANOUT_EV_RCPT], 1);
	assert_false(T.called_after_free);
	for (size_t i = 0; i < T.nups; i++)
		assert_true(T.ups[i]->freed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_copies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_callback, setup, teardown),
	};

	log_init("test", false, LOG_LEVEL_CRIT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

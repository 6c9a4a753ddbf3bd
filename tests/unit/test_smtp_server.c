/*
 * Unit tests of the client session state machine (proxy/smtp_server.c),
 * driven by SMTP dialogue files under tests/data/smtp_server/. The test
 * plays the client over a socketpair and a scripted fake upstream answers
 * for the MX side, so every reply path runs without DNS or servers.
 *
 * Dialogue lines:
 *   # req: ...        the requirement checked (comments otherwise)
 *   C: TEXT           client sends TEXT CR LF
 *   R: BYTES          client sends BYTES raw (\r \n \t \0 \\ escapes)
 *   S: PATTERN        the next server line must match (fnmatch)
 *   U: KIND REPLY     queue the fake upstream's answer: KIND is open-failed,
 *                     rcpt, data, end or lost (lost: the connection drops
 *                     while the body streams; lost-data: instead of the DATA
 *                     reply; lost-end: after the final dot, instead of the
 *                     final reply); REPLY is "code text"
 *   B: BYTES          what the upstream must have received as the body
 *                     (after the Received line), escapes as in R:
 *   E: closed         the server must close the connection
 *   N: opens COUNT    how many upstream transactions were opened
 *   D: domains D...   the recipient domains they were opened for, in order
 *                     (A-labels: what DNS and the policy see)
 *   T: ADDRESS        the last RCPT address handed to an upstream (what goes
 *                     upstream: as the client sent it)
 *   K: KEY = VALUE    a [server] configuration line, read before the
 *                     session starts (anywhere in the file)
 *
 * The fake upstream checks what the real one promises its caller: it
 * gets only recipients of its own domain, never calls back after
 * free(), and frees itself later from the loop, not on the caller's stack.
 */
#include "config.h"

#include <fnmatch.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>

#include "conf/idna.h"
#include "conf/log.h"
#include "proxy/smtp_server.h"
#include "tests/unit/dialogue.h"

#define MAX_QUEUE 32

struct fake_queue {
	char	*items[MAX_QUEUE];
	size_t	 head, tail;
};

/* The test's whole world; one per dialogue. */
struct world {
	struct event_base	*base;
	struct conf		*conf;
	struct runtime		 rt;
	struct smtp_server_env	 env;
	struct dialogue_peer	 client;	/* the client's end */
	struct fake_queue	 open_failed, rcpt, data, end, lost, lost_data, lost_end;
	unsigned		 opens;
	char			 last_rcpt[600];	/* of the last rcpt() */
	char			 domains[1024];	/* opened for, space-separated */
	struct evbuffer		*last_body;	/* body of the last transaction */
};

static struct world *W;

/* The scripted upstream. */
struct upstream {
	upstream_cb		 cb;
	void			*arg;
	char			 domain[256];
	struct evbuffer		*body;
	struct event		*ev;
	enum upstream_event	 pending;
	char			*reply;	/* pending reply text "code text" */
	bool			 lose_in_body;
	char			*lost_reply;
};

static char *
queue_pop(struct fake_queue *q)
{
	if (q->head == q->tail)
		return NULL;
	return q->items[q->head++];
}

static void
fake_fire(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *up = arg;
	struct smtp_reply r;
	enum upstream_event ev = up->pending;

	(void)fd;
	(void)what;
	smtp_reply_init(&r);
	if (up->reply != NULL) {
		int code = atoi(up->reply);
		const char *text = strlen(up->reply) > 4 ? up->reply + 4 : "";

		smtp_reply_set(&r, code, NULL, "%s", text);
	}
	up->cb(up->arg, ev, &r);
	smtp_reply_clear(&r);
}

static void
fake_schedule(struct upstream *up, enum upstream_event ev, char *reply)
{
	up->pending = ev;
	up->reply = reply;
	event_active(up->ev, EV_TIMEOUT, 0);
}

static struct upstream *
fake_open(struct runtime *rt, const char *session, const char *domain,
    const struct smtp_path *mail, upstream_cb cb, void *arg)
{
	struct upstream *up = calloc(1, sizeof(*up));
	char *failed = queue_pop(&W->open_failed);

	(void)session;
	(void)mail;
	up->cb = cb;
	up->arg = arg;
	snprintf(up->domain, sizeof(up->domain), "%s", domain);
	snprintf(W->domains + strlen(W->domains), sizeof(W->domains) - strlen(W->domains), "%s%s",
	    W->domains[0] ? " " : "", domain);
	up->body = evbuffer_new();
	up->ev = event_new(rt->base, -1, 0, fake_fire, up);
	up->lost_reply = queue_pop(&W->lost);
	W->opens++;
	if (failed)
		fake_schedule(up, UPSTREAM_EV_FAILED, failed);
	else
		fake_schedule(up, UPSTREAM_EV_READY, NULL);
	return up;
}

static int
fake_rcpt(struct upstream *up, const struct smtp_path *rcpt)
{
	char *r = queue_pop(&W->rcpt);

	snprintf(W->last_rcpt, sizeof(W->last_rcpt), "%s", rcpt->address);
	{
		/* The upstream was opened for the A-label form of the domain. */
		const char *why;
		char *alabel = idna_to_alabel(rcpt->domain, &why);

		if (alabel == NULL || strcasecmp(alabel, up->domain) != 0)
			fail_msg("RCPT for %s sent to the upstream of %s", rcpt->domain, up->domain);
		free(alabel);
	}
	fake_schedule(up, UPSTREAM_EV_REPLY, r ? r : "250 2.1.5 ok");
	return 0;
}

static int
fake_data(struct upstream *up)
{
	char *r = queue_pop(&W->data), *lost = queue_pop(&W->lost_data);

	if (lost != NULL) {
		fake_schedule(up, UPSTREAM_EV_LOST, lost);
		return 0;
	}
	fake_schedule(up, UPSTREAM_EV_REPLY, r ? r : "354 go ahead");
	if (up->lost_reply != NULL && (r == NULL || atoi(r) == 354))
		up->lose_in_body = true;
	return 0;
}

static struct evbuffer *
fake_body(struct upstream *up)
{
	if (up->lose_in_body) {
		/* Drop "the connection" as soon as body bytes flow. */
		up->lose_in_body = false;
		fake_schedule(up, UPSTREAM_EV_LOST, up->lost_reply);
	}
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
	char *r = queue_pop(&W->end), *lost = queue_pop(&W->lost_end);

	if (lost != NULL) {
		fake_schedule(up, UPSTREAM_EV_LOST, lost);
		return 0;
	}
	fake_schedule(up, UPSTREAM_EV_REPLY, r ? r : "250 2.0.0 queued");
	return 0;
}

static void
fake_reap(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *up = arg;

	(void)fd;
	(void)what;
	if (W->last_body)
		evbuffer_free(W->last_body);
	W->last_body = up->body;
	event_free(up->ev);
	free(up);
}

/* As upstream_free(): no callback from now on, freed later from the loop. */
static void
fake_free(struct upstream *up)
{
	if (up == NULL)
		return;
	event_del(up->ev);
	up->cb = NULL;
	event_base_once(W->base, -1, EV_TIMEOUT, fake_reap, up, NULL);
}

static const char *
fake_mx_host(const struct upstream *up)
{
	(void)up;
	return "mx.fake.example";
}

/* No first_rcpt: the fake gets every RCPT through rcpt() after READY. */
static const struct upstream_ops fake_ops = {
	.open = fake_open, .rcpt = fake_rcpt, .data = fake_data, .body = fake_body,
	.body_full = fake_body_full, .body_end = fake_body_end, .free = fake_free,
	.mx_host = fake_mx_host, .first_rcpt = NULL,
};

static void
pump(int ms)
{
	dialogue_pump(&W->client, ms);
}

/* The next server line, or NULL after 3 s or when it closed. Caller frees. */
static char *
server_line(void)
{
	return dialogue_line(&W->client);
}

static void
closed_cb(void *arg, struct smtp_server *s)
{
	(void)arg;
	(void)s;
}

static void
run_dialogue(void **state)
{
	const char *path = *state;
	FILE *f = fopen(path, "r");
	char line[8192];
	int sv[2], lineno = 0;
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	struct strlist errors = { 0 };
	static const char conf_base[] =
	    "hostname = relay.example\n[server]\nmax_recipients = 100\nmax_message_size = 65536\n";
	struct strbuf conf_text;

	assert_non_null(f);
	strbuf_init(&conf_text);
	strbuf_printf(&conf_text, "%s", conf_base);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "K: ", 3) == 0)
			strbuf_printf(&conf_text, "%s", line + 3);
	rewind(f);
	W = calloc(1, sizeof(*W));
	W->base = event_base_new();
	W->conf = conf_parse_buffer("test", conf_text.data, conf_text.len, &errors);
	if (W->conf == NULL)
		fail_msg("%s: configuration: %s", path, errors.count ? errors.items[0] : "?");
	strbuf_free(&conf_text);
	W->rt.base = W->base;
	W->rt.conf = W->conf;
	snprintf(W->rt.hostname, sizeof(W->rt.hostname), "relay.example");
	W->env.rt = &W->rt;
	W->env.ops = &fake_ops;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	W->client.base = W->base;
	dialogue_peer_reset(&W->client, sv[1]);
	smtp_server_new(&W->env, sv[0], (struct sockaddr *)&peer, closed_cb, NULL);

	while (fgets(line, sizeof(line), f) != NULL) {
		char *text = line + 3, *got;
		size_t n;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (strlen(line) < 3 || line[1] != ':')
			fail_msg("%s:%d: malformed line", path, lineno);
		switch (line[0]) {
		case 'C':
			dprintf(W->client.fd, "%s\r\n", text);
			break;
		case 'R':
			n = dialogue_unescape(text);
			assert_int_equal(write(W->client.fd, text, n), (ssize_t)n);
			break;
		case 'S':
			got = server_line();
			if (got == NULL || fnmatch(text, got, 0) != 0)
				fail_msg("%s:%d: expected '%s', got '%s'", path, lineno, text,
				    got ? got : "(closed)");
			free(got);
			break;
		case 'U': {
			char *sp = strchr(text, ' ');
			struct fake_queue *q;

			assert_non_null(sp);
			*sp++ = '\0';
			q = !strcmp(text, "open-failed") ? &W->open_failed : !strcmp(text, "rcpt") ?
			    &W->rcpt : !strcmp(text, "data") ? &W->data : !strcmp(text, "end") ?
			    &W->end : !strcmp(text, "lost") ? &W->lost : !strcmp(text, "lost-data") ?
			    &W->lost_data : !strcmp(text, "lost-end") ? &W->lost_end : NULL;
			if (q == NULL)
				fail_msg("%s:%d: unknown upstream kind %s", path, lineno, text);
			q->items[q->tail++] = strdup(sp);
			break;
		}
		case 'B': {
			size_t len;
			char *body, *eoh;

			for (int i = 0; i < 100 && W->last_body == NULL; i++)
				pump(1);
			assert_non_null(W->last_body);
			n = dialogue_unescape(text);
			len = evbuffer_get_length(W->last_body);
			body = (char *)evbuffer_pullup(W->last_body, -1);
			/* Skip the Received line the relay adds (checked by the e2e tests). */
			eoh = body ? strstr(body, "\r\n\t") : NULL;
			assert_true(len >= 9 && strncmp(body, "Received:", 9) == 0);
			eoh = memmem(body, len, "\r\n", 2);
			while (eoh && eoh[2] == '\t')
				eoh = memmem(eoh + 2, len - (size_t)(eoh + 2 - body), "\r\n", 2);
			assert_non_null(eoh);
			eoh += 2;
			if ((size_t)(body + len - eoh) != n || memcmp(eoh, text, n) != 0)
				fail_msg("%s:%d: body mismatch: got '%.*s'", path, lineno,
				    (int)(body + len - eoh), eoh);
			break;
		}
		case 'E':
			for (int i = 0; i < 3000 && !W->client.closed; i++)
				pump(1);
			if (!W->client.closed)
				fail_msg("%s:%d: server did not close", path, lineno);
			break;
		case 'N':
			assert_int_equal(W->opens, (unsigned)atoi(text + strlen("opens ")));
			break;
		case 'K':
			break;
		case 'T':
			for (int i = 0; i < 100 && W->last_rcpt[0] == '\0'; i++)
				pump(1);
			if (strcmp(W->last_rcpt, text) != 0)
				fail_msg("%s:%d: the upstream got RCPT '%s'", path, lineno, W->last_rcpt);
			break;
		case 'D':
			if (strcmp(W->domains, text + strlen("domains ")) != 0)
				fail_msg("%s:%d: upstreams opened for '%s'", path, lineno, W->domains);
			break;
		default:
			fail_msg("%s:%d: unknown directive %c", path, lineno, line[0]);
		}
	}
	fclose(f);
	close(W->client.fd);
	/* Let the session see EOF and free itself (and its upstream) from the loop. */
	for (int i = 0; i < 50; i++)
		event_base_loop(W->base, EVLOOP_NONBLOCK);
	if (W->last_body)
		evbuffer_free(W->last_body);
	for (struct fake_queue *q = &W->open_failed; q <= &W->lost_end; q++)
		for (size_t i = 0; i < q->tail; i++)
			free(q->items[i]);
	conf_free(W->conf);
	event_base_free(W->base);
	free(W);
}

int
main(void)
{
	log_init("test", false, LOG_LEVEL_CRIT);
	signal(SIGPIPE, SIG_IGN);
	return dialogue_run_folder("smtp_server_dialogues", "smtp_server", run_dialogue, NULL);
}

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
 *   P: lmtp [unix] [tls]  the session speaks LMTP (fanout.h), with a
 *                     Unix-domain peer, with a TLS context (read before the
 *                     session starts, anywhere in the file)
 *   X: COUNT BYTES    client sends BYTES (escapes as in R:) COUNT times,
 *                     without blocking while the server pauses it
 *
 * Per domain (LMTP: several upstreams at once), U: takes KIND@DOMAIN:
 * that domain's upstream answers from its own queue first. Two more
 * kinds: "delay@DOMAIN MS" delays every answer of that domain's upstream
 * by MS milliseconds; "slow@DOMAIN BYTES" makes its body buffer full at
 * BYTES, drained 20 ms later (backpressure).
 *   Y: DOMAIN BYTES   what DOMAIN's upstream received as the body (after
 *                     the Received line); "-" for no body at all
 *   Q: DOMAIN MAX     the most bytes that waited in DOMAIN's body buffer
 *                     were at most MAX
 *
 * The fake upstream checks what the real one promises its caller: it
 * gets only recipients of its own domain, never calls back after
 * free(), and frees itself later from the loop, not on the caller's stack.
 */
#include "config.h"

#include <errno.h>
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
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/ssl.h>

#include "conf/idna.h"
#include "conf/log.h"
#include "proxy/smtp_server.h"
#include "tests/unit/dialogue.h"

#define MAX_QUEUE 32
#define MAX_DOMAINS 8

struct fake_queue {
	char	*items[MAX_QUEUE];
	size_t	 head, tail;
};

enum fake_kind { K_OPEN_FAILED, K_RCPT, K_DATA, K_END, K_LOST, K_LOST_DATA, K_LOST_END, K_COUNT };
static const char *const kind_names[K_COUNT] = { "open-failed", "rcpt", "data", "end", "lost",
	"lost-data", "lost-end" };

/* What the script says about one recipient domain's upstream. */
struct fake_domain {
	char			 name[64];
	struct fake_queue	 q[K_COUNT];
	unsigned		 delay_ms;
	size_t			 slow_at;	/* body "full" at this many bytes; 0: never */
	size_t			 max_buffered;
	struct evbuffer		*body;		/* of its last upstream, when freed */
	bool			 had_body;
};

/* The test's whole world; one per dialogue. */
struct world {
	struct event_base	*base;
	struct conf		*conf;
	struct runtime		 rt;
	struct smtp_server_env	 env;
	struct dialogue_peer	 client;	/* the client's end */
	struct fake_queue	 q[K_COUNT];	/* any domain */
	struct fake_domain	 domains_script[MAX_DOMAINS];
	size_t			 ndomains_script;
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
	struct fake_domain	*script;	/* its domain's, or NULL */
	struct evbuffer		*sent;		/* slow: what "went out" */
	struct event		*drain_ev;
	bool			 full_said;
	bool			 body_given;
};

static struct fake_domain *
fake_domain(const char *name, bool create)
{
	for (size_t i = 0; i < W->ndomains_script; i++)
		if (strcasecmp(W->domains_script[i].name, name) == 0)
			return &W->domains_script[i];
	if (!create)
		return NULL;
	if (W->ndomains_script == MAX_DOMAINS)
		fail_msg("too many domains in the script");
	snprintf(W->domains_script[W->ndomains_script].name, sizeof(W->domains_script[0].name), "%s",
	    name);
	return &W->domains_script[W->ndomains_script++];
}

static char *
queue_pop1(struct fake_queue *q)
{
	if (q->head == q->tail)
		return NULL;
	return q->items[q->head++];
}

/* The next scripted answer of this kind: the domain's own first, then anyone's. */
static char *
queue_pop(const struct upstream *up, enum fake_kind k)
{
	char *r = up->script ? queue_pop1(&up->script->q[k]) : NULL;

	return r ? r : queue_pop1(&W->q[k]);
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
	if (up->script != NULL && up->script->delay_ms > 0) {
		struct timeval tv = { up->script->delay_ms / 1000, (up->script->delay_ms % 1000) * 1000 };

		event_add(up->ev, &tv);
	} else
		event_active(up->ev, EV_TIMEOUT, 0);
}

static void
note_buffered(struct upstream *up)
{
	size_t n = evbuffer_get_length(up->body);

	if (up->script != NULL && up->sent != NULL && n > up->script->max_buffered)
		up->script->max_buffered = n;
}

/* slow@: the buffered body "goes out" and the client may be read again. */
static void
fake_drain(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *up = arg;

	(void)fd;
	(void)what;
	note_buffered(up);
	evbuffer_add_buffer(up->sent, up->body);
	if (up->full_said && up->cb != NULL) {
		up->full_said = false;
		up->cb(up->arg, UPSTREAM_EV_WRITABLE, NULL);
	}
}

static struct upstream *
fake_open(struct runtime *rt, const char *session, const char *domain,
    const struct smtp_path *mail, upstream_cb cb, void *arg)
{
	struct upstream *up = calloc(1, sizeof(*up));
	char *failed;

	(void)session;
	(void)mail;
	up->cb = cb;
	up->arg = arg;
	up->script = fake_domain(domain, false);
	if (up->script != NULL && up->script->slow_at > 0) {
		up->sent = evbuffer_new();
		up->drain_ev = event_new(rt->base, -1, 0, fake_drain, up);
	}
	failed = queue_pop(up, K_OPEN_FAILED);
	snprintf(up->domain, sizeof(up->domain), "%s", domain);
	snprintf(W->domains + strlen(W->domains), sizeof(W->domains) - strlen(W->domains), "%s%s",
	    W->domains[0] ? " " : "", domain);
	up->body = evbuffer_new();
	up->ev = event_new(rt->base, -1, 0, fake_fire, up);
	up->lost_reply = queue_pop(up, K_LOST);
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
	char *r = queue_pop(up, K_RCPT);

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
	char *r = queue_pop(up, K_DATA), *lost = queue_pop(up, K_LOST_DATA);

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
	up->body_given = true;
	note_buffered(up);
	return up->body;
}

static bool
fake_body_full(struct upstream *up)
{
	struct timeval tv = { 0, 20 * 1000 };

	note_buffered(up);
	if (up->sent == NULL || evbuffer_get_length(up->body) < up->script->slow_at)
		return false;
	up->full_said = true;
	if (!evtimer_pending(up->drain_ev, NULL))
		evtimer_add(up->drain_ev, &tv);
	return true;
}

static int
fake_body_end(struct upstream *up)
{
	char *r = queue_pop(up, K_END), *lost = queue_pop(up, K_LOST_END);

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
	if (up->sent != NULL) {
		/* slow@: the body is what went out and what still waited */
		evbuffer_prepend_buffer(up->body, up->sent);
		evbuffer_free(up->sent);
		event_free(up->drain_ev);
	}
	if (up->script != NULL) {
		if (up->script->body != NULL)
			evbuffer_free(up->script->body);
		up->script->body = evbuffer_new();
		evbuffer_add(up->script->body, evbuffer_pullup(up->body, -1),
		    evbuffer_get_length(up->body));
		up->script->had_body = up->body_given;
	}
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
	if (up->drain_ev != NULL)
		event_del(up->drain_ev);
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

/* body (after the Received lines the relay adds) must be the n bytes of text. */
static void
check_body(const char *path, int lineno, struct evbuffer *b, const char *text, size_t n)
{
	size_t len = evbuffer_get_length(b);
	char *body = (char *)evbuffer_pullup(b, -1), *eoh;

	/* Skip the Received line the relay adds (checked by the e2e tests). */
	if (!(len >= 9 && strncmp(body, "Received:", 9) == 0))
		fail_msg("%s:%d: the body does not start with Received:", path, lineno);
	eoh = memmem(body, len, "\r\n", 2);
	while (eoh && eoh[2] == '\t')
		eoh = memmem(eoh + 2, len - (size_t)(eoh + 2 - body), "\r\n", 2);
	assert_non_null(eoh);
	eoh += 2;
	if ((size_t)(body + len - eoh) != n || memcmp(eoh, text, n) != 0)
		fail_msg("%s:%d: body mismatch: got '%.*s'", path, lineno, (int)(body + len - eoh), eoh);
}

/* Write n bytes without blocking: while the session pauses the client, run its loop. */
static void
client_write(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(W->client.fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			pump(1);
		else
			fail_msg("client write failed: %s", strerror(errno));
	}
}

static void
run_dialogue(void **state)
{
	const char *path = *state;
	FILE *f = fopen(path, "r");
	char line[8192];
	int sv[2], lineno = 0;
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	struct sockaddr_un unix_peer = { .sun_family = AF_UNIX };
	bool use_unix = false, use_tls = false, size_set = false;
	struct strlist errors = { 0 };
	static const char conf_base[] =
	    "hostname = relay.example\n[server]\nmax_recipients = 100\n";
	struct strbuf conf_text;

	assert_non_null(f);
	W = calloc(1, sizeof(*W));
	strbuf_init(&conf_text);
	strbuf_printf(&conf_text, "%s", conf_base);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "K: ", 3) == 0)
			strbuf_printf(&conf_text, "%s", line + 3);
		if (strncmp(line, "K: max_message_size", 19) == 0)
			size_set = true;
		if (strncmp(line, "P: lmtp", 7) == 0) {
			W->env.lmtp = true;
			use_unix = strstr(line, " unix") != NULL;
			use_tls = strstr(line, " tls") != NULL;
		}
	}
	if (!size_set)
		strbuf_printf(&conf_text, "max_message_size = 65536\n");
	rewind(f);
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
	/* STARTTLS is only advertised in these dialogues, never started. */
	if (use_tls)
		W->env.tls_ctx = SSL_CTX_new(TLS_server_method());
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	W->client.base = W->base;
	dialogue_peer_reset(&W->client, sv[1]);
	smtp_server_new(&W->env, sv[0], use_unix ? (struct sockaddr *)&unix_peer :
	    (struct sockaddr *)&peer, closed_cb, NULL);

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
			client_write(text, n);
			break;
		case 'X': {
			char *sp = strchr(text, ' ');
			int count = atoi(text);

			assert_non_null(sp);
			n = dialogue_unescape(++sp);
			for (int i = 0; i < count; i++)
				client_write(sp, n);
			break;
		}
		case 'P':
			break;
		case 'S':
			got = server_line();
			if (got == NULL || fnmatch(text, got, 0) != 0)
				fail_msg("%s:%d: expected '%s', got '%s'", path, lineno, text,
				    got ? got : "(closed)");
			free(got);
			break;
		case 'U': {
			char *sp = strchr(text, ' '), *at;
			struct fake_domain *d = NULL;
			struct fake_queue *q = NULL;

			assert_non_null(sp);
			*sp++ = '\0';
			if ((at = strchr(text, '@')) != NULL) {
				*at++ = '\0';
				d = fake_domain(at, true);
			}
			if (d != NULL && strcmp(text, "delay") == 0) {
				d->delay_ms = (unsigned)atoi(sp);
				break;
			}
			if (d != NULL && strcmp(text, "slow") == 0) {
				d->slow_at = (size_t)atol(sp);
				break;
			}
			for (int k = 0; k < K_COUNT; k++)
				if (strcmp(text, kind_names[k]) == 0)
					q = d != NULL ? &d->q[k] : &W->q[k];
			if (q == NULL)
				fail_msg("%s:%d: unknown upstream kind %s", path, lineno, text);
			q->items[q->tail++] = strdup(sp);
			break;
		}
		case 'Y': {
			char *sp = strchr(text, ' ');
			struct fake_domain *d;

			assert_non_null(sp);
			*sp++ = '\0';
			d = fake_domain(text, true);
			for (int i = 0; i < 100 && d->body == NULL; i++)
				pump(1);
			if (d->body == NULL)
				fail_msg("%s:%d: no upstream of %s was freed", path, lineno, text);
			if (strcmp(sp, "-") == 0) {
				if (d->had_body || evbuffer_get_length(d->body) > 0)
					fail_msg("%s:%d: %s's upstream got a body", path, lineno, text);
				break;
			}
			n = dialogue_unescape(sp);
			check_body(path, lineno, d->body, sp, n);
			break;
		}
		case 'Q': {
			char *sp = strchr(text, ' ');
			struct fake_domain *d;

			assert_non_null(sp);
			*sp++ = '\0';
			d = fake_domain(text, true);
			if (d->max_buffered > (size_t)atol(sp))
				fail_msg("%s:%d: %zu bytes waited for %s", path, lineno, d->max_buffered, text);
			break;
		}
		case 'B':
			for (int i = 0; i < 100 && W->last_body == NULL; i++)
				pump(1);
			assert_non_null(W->last_body);
			n = dialogue_unescape(text);
			check_body(path, lineno, W->last_body, text, n);
			break;
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
	for (int k = 0; k < K_COUNT; k++) {
		for (size_t i = 0; i < W->q[k].tail; i++)
			free(W->q[k].items[i]);
		for (size_t d = 0; d < W->ndomains_script; d++)
			for (size_t i = 0; i < W->domains_script[d].q[k].tail; i++)
				free(W->domains_script[d].q[k].items[i]);
	}
	for (size_t d = 0; d < W->ndomains_script; d++)
		if (W->domains_script[d].body != NULL)
			evbuffer_free(W->domains_script[d].body);
	if (W->env.tls_ctx != NULL)
		SSL_CTX_free(W->env.tls_ctx);
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

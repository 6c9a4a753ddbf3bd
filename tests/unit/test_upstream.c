/*
 * Unit tests of the upstream state machine (proxy/upstream.c, with the
 * walk, connection and records it uses), driven by dialogue files under
 * tests/data/upstream/ (the walk alone: test_mx_walk). The test plays
 * the MX server on a loopback socket; every MX host of the dialogue
 * resolves to it, so the walk over several MXs is a series of accepted
 * connections.
 *
 * Dialogue lines:
 *   # req: ...            the requirement checked
 *   policy: MODE PATTERN...  enforce/testing/none with mx patterns; absent: no policy
 *   mx: HOST...           the MX hosts, in preference order
 *   tlsa: N RECORD|lookup-failed  the N-th MX host (from 1) has this secure TLSA
 *                         record ("3 1 1 HEX"; repeat for more), or its TLSA
 *                         lookup failed
 *   mail: ARG             MAIL FROM argument the client gave ("FROM:<a@b> SIZE=1")
 *   accept                the next connection from the relay must arrive
 *   S: TEXT               the server sends TEXT CR LF
 *   R: BYTES              the server sends raw BYTES (\r \n \0 escapes)
 *   C: PATTERN            the relay's next line must match (fnmatch)
 *   close                 the server closes the connection
 *   eof                   the relay closes the connection without another
 *                         byte (no QUIT: a connection it dropped)
 *   A: rcpt ARG | data | body BYTES | end     call the upstream API
 *   A: free               upstream_free(): the relay lets go of the transaction
 *   E: EVENT [PATTERN]    the next event (ready, failed, reply, lost) with
 *                         its reply flattened ("451 4.7.5 text / line 2")
 *   O: PATTERN            the next TLS-RPT outcome the upstream recorded, as
 *                         "action=A mx=M result=R sts=pass|fail tls=V|no
 *                         starttls=yes|no would_defer=yes|no reason=TEXT
 *                         reply=TEXT" (fnmatch), and for an MX under DANE
 *                         " policy=tlsa dane=WORD" after it
 *
 * Every outcome recorded must be asserted by an O: line: after the
 * dialogue (and the upstream_free() that ends it) none may be left over.
 */
#include "config.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "conf/log.h"
#include "policy/tls.h"
#include "proxy/upstream_internal.h"
#include "report/outcome.h"
#include "tests/unit/dialogue.h"

struct event_rec {
	enum upstream_event	 ev;
	char			*reply;
};

static struct {
	struct event_base	*base;
	struct runtime		 rt;
	int			 lfd;
	struct dialogue_peer	 mx;		/* the MX server's end; closed: the relay hung up */
	struct event_rec	 events[64];
	size_t			 ev_head, ev_tail;
	bool			 active;	/* a dialogue is running: dialogue_end() has work */
	struct upstream		*up;
	bool			 freed;		/* A: free was called */
	char			*outcomes[64];	/* formatted, as O: lines see them */
	size_t			 oc_head, oc_tail;
} T;

static void
on_outcome(void *arg, const struct delivery_outcome *o)
{
	(void)arg;
	if (T.oc_tail == sizeof(T.outcomes) / sizeof(T.outcomes[0]))
		fail_msg("too many outcomes");
	bool tlsa = o->policy_type != NULL && strcmp(o->policy_type, "tlsa") == 0;

	if (asprintf(&T.outcomes[T.oc_tail++],
	    "action=%s mx=%s result=%s sts=%s tls=%s starttls=%s would_defer=%s reason=%s reply=%s%s%s",
	    outcome_action_name(o->action), o->mx_host ? o->mx_host : "-",
	    rpt_result_type_name(o->result), o->sts_pass ? "pass" : "fail",
	    o->tls_version ? o->tls_version : "no", o->starttls_offered ? "yes" : "no",
	    o->would_defer ? "yes" : "no", o->reason ? o->reason : "", o->upstream_reply ? o->upstream_reply : "",
	    tlsa ? " policy=tlsa dane=" : "", tlsa ? o->dane : "") < 0)
		fail_msg("asprintf");
}

static const char *const ev_names[] = { "ready", "failed", "reply", "writable", "lost" };

static void
on_event(void *arg, enum upstream_event ev, const struct smtp_reply *r)
{
	(void)arg;
	if (ev == UPSTREAM_EV_WRITABLE)
		return;
	T.events[T.ev_tail].ev = ev;
	T.events[T.ev_tail].reply = r ? smtp_reply_flatten(r) : strdup("");
	T.ev_tail++;
}

static void
pump(int ms)
{
	dialogue_pump(&T.mx, ms);
}

/* The relay's next line, or NULL after 3 s or when it closed. Caller frees. */
static char *
relay_line(void)
{
	return dialogue_line(&T.mx);
}

/*
 * Let go of the upstream, answer its QUIT, close the sockets. Also the
 * teardown of a failed dialogue, so one failure does not cascade into
 * the next dialogue's upstream_count().
 */
static void
dialogue_end(void)
{
	if (!T.active)
		return;
	T.active = false;
	if (T.up != NULL && !T.freed)
		upstream_free(T.up);
	T.up = NULL;
	for (int i = 0; i < 2000 && upstream_count() > 0; i++) {
		if (T.mx.fd >= 0) {
			/* Answer a QUIT as a server would; a silent server hangs up. */
			char *q = NULL;

			pump(1);
			if (memchr(T.mx.inbuf, '\n', T.mx.inlen) && (q = relay_line()) != NULL &&
			    strcmp(q, "QUIT") == 0)
				dprintf(T.mx.fd, "221 bye\r\n");
			free(q);
			if (i == 100) {
				close(T.mx.fd);
				T.mx.fd = -1;
			}
		} else
			pump(1);
	}
	if (T.mx.fd >= 0)
		close(T.mx.fd);
	T.mx.fd = -1;
	close(T.lfd);
	for (size_t i = 0; i < T.ev_tail; i++)
		free(T.events[i].reply);
	T.ev_tail = T.ev_head = 0;
}

static int
dialogue_teardown(void **state)
{
	(void)state;
	dialogue_end();
	return 0;
}

static void
run_dialogue(void **state)
{
	const char *path = *state;
	FILE *f = fopen(path, "r");
	char line[16384];
	int lineno = 0;
	struct mx_host hosts[8];
	struct dane_tlsa *tlsa[8] = { 0 };	/* until the upstream takes them */
	size_t nhosts = 0;
	struct strlist patterns = { 0 };
	bool have_policy = false;
	enum sts_mode mode = STS_MODE_NONE;
	struct smtp_path mail;
	struct smtp_error perr;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	assert_non_null(f);
	memset(hosts, 0, sizeof(hosts));
	for (size_t i = 0; i < T.oc_tail; i++)
		free(T.outcomes[i]);
	T.active = true;
	T.up = NULL;
	T.freed = false;
	dialogue_peer_reset(&T.mx, -1);
	T.ev_head = T.ev_tail = 0;
	T.oc_head = T.oc_tail = 0;
	T.lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(T.lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(T.lfd, 8), 0);
	getsockname(T.lfd, (struct sockaddr *)&sin, &slen);
	assert_int_equal(smtp_path_parse("FROM:<a@client.example>", true, &mail, &perr), 0);

#define START_UP() do {							\
		if (T.up == NULL) {						\
			T.up = upstream_new_resolved(&T.rt, "test", "d.example", &mail, hosts, \
			    nhosts, mode, have_policy ? &patterns : NULL, 0, on_event, NULL); \
			for (size_t k = 0; k < nhosts; k++)			\
				if (tlsa[k] != NULL) {				\
					if (tlsa[k]->state != DANE_S_FAILED)	\
						dane_tlsa_finish(tlsa[k], hosts[k].name); \
					upstream_set_dane(T.up, k, tlsa[k], true); \
					tlsa[k] = NULL;				\
				}						\
		}								\
	} while (0)

	while (fgets(line, sizeof(line), f) != NULL) {
		char *text = line + 3, *got;
		size_t n;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (strncmp(line, "policy: ", 8) == 0) {
			char *save = NULL, *tok = strtok_r(line + 8, " ", &save);

			have_policy = true;
			mode = !strcmp(tok, "enforce") ? STS_MODE_ENFORCE : !strcmp(tok, "testing") ?
			    STS_MODE_TESTING : STS_MODE_NONE;
			while ((tok = strtok_r(NULL, " ", &save)) != NULL)
				strlist_add(&patterns, tok);
		} else if (strncmp(line, "mx: ", 4) == 0) {
			char *save = NULL;

			for (char *tok = strtok_r(line + 4, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
				struct mx_host *h = &hosts[nhosts++];

				snprintf(h->name, sizeof(h->name), "%s", tok);
				h->preference = (unsigned)nhosts * 10;
				memcpy(&h->addrs[0], &sin, sizeof(sin));
				h->naddrs = 1;
			}
		} else if (strncmp(line, "tlsa: ", 6) == 0) {
			char *rest;
			size_t k = strtoul(line + 6, &rest, 10) - 1;
			const char *why;

			assert_true(k < nhosts);
			rest += strspn(rest, " ");
			if (tlsa[k] == NULL)
				tlsa[k] = dane_tlsa_new(hosts[k].name);
			if (strcmp(rest, "lookup-failed") == 0) {
				tlsa[k]->failure = RPT_RESULT_DNSSEC_INVALID;
				dane_tlsa_set_state(tlsa[k], DANE_S_FAILED, "TLSA lookup failed: bogus");
			} else {
				snprintf(tlsa[k]->qname, sizeof(tlsa[k]->qname), "_25._tcp.%s", hosts[k].name);
				if (dane_tlsa_add_text(tlsa[k], rest, &why) != 0)
					fail_msg("%s:%d: %s", path, lineno, why);
			}
		} else if (strncmp(line, "mail: ", 6) == 0) {
			assert_int_equal(smtp_path_parse(line + 6, true, &mail, &perr), 0);
		} else if (strcmp(line, "accept") == 0) {
			struct pollfd p = { .fd = T.lfd, .events = POLLIN };

			START_UP();
			for (int i = 0; i < 3000; i++) {
				event_base_loop(T.base, EVLOOP_NONBLOCK);
				if (poll(&p, 1, 1) > 0)
					break;
			}
			if (T.mx.fd >= 0)
				close(T.mx.fd);
			dialogue_peer_reset(&T.mx, accept(T.lfd, NULL, NULL));
			if (T.mx.fd < 0)
				fail_msg("%s:%d: the relay did not connect", path, lineno);
		} else if (strcmp(line, "eof") == 0) {
			for (int i = 0; i < 3000 && !T.mx.closed; i++)
				pump(1);
			if (!T.mx.closed || T.mx.inlen > 0)
				fail_msg("%s:%d: expected the relay to hang up, got %s '%.*s'", path, lineno,
				    T.mx.closed ? "bytes" : "nothing", (int)T.mx.inlen, T.mx.inbuf);
		} else if (strcmp(line, "close") == 0) {
			close(T.mx.fd);
			T.mx.fd = -1;
		} else if (line[0] == 'S' || line[0] == 'R') {
			if (line[0] == 'S')
				dprintf(T.mx.fd, "%s\r\n", text);
			else {
				n = dialogue_unescape(text);
				assert_int_equal(write(T.mx.fd, text, n), (ssize_t)n);
			}
		} else if (line[0] == 'C') {
			got = relay_line();
			if (got == NULL || fnmatch(text, got, 0) != 0)
				fail_msg("%s:%d: expected '%s', got '%s'", path, lineno, text,
				    got ? got : "(nothing)");
			free(got);
		} else if (line[0] == 'A') {
			START_UP();
			if (strncmp(text, "rcpt ", 5) == 0) {
				struct smtp_path rcpt;

				assert_int_equal(smtp_path_parse(text + 5, false, &rcpt, &perr), 0);
				assert_int_equal(upstream_rcpt(T.up, &rcpt), 0);
			} else if (strcmp(text, "data") == 0) {
				assert_int_equal(upstream_data(T.up), 0);
			} else if (strncmp(text, "body ", 5) == 0) {
				n = dialogue_unescape(text + 5);
				assert_non_null(upstream_body(T.up));
				evbuffer_add(upstream_body(T.up), text + 5, n);
			} else if (strcmp(text, "end") == 0) {
				assert_int_equal(upstream_body_end(T.up), 0);
			} else if (strcmp(text, "free") == 0) {
				upstream_free(T.up);
				T.freed = true;
			} else
				fail_msg("%s:%d: unknown action", path, lineno);
		} else if (line[0] == 'E') {
			char *sp = strchr(text, ' ');
			struct event_rec *e;

			START_UP();
			for (int i = 0; i < 3000 && T.ev_head == T.ev_tail; i++)
				pump(1);
			if (T.ev_head == T.ev_tail)
				fail_msg("%s:%d: no event", path, lineno);
			e = &T.events[T.ev_head++];
			if (sp)
				*sp++ = '\0';
			if (strcmp(ev_names[e->ev], text) != 0 || (sp && fnmatch(sp, e->reply, 0) != 0))
				fail_msg("%s:%d: expected event '%s %s', got '%s %s'", path, lineno, text,
				    sp ? sp : "", ev_names[e->ev], e->reply);
		} else if (line[0] == 'O') {
			for (int i = 0; i < 3000 && T.oc_head == T.oc_tail; i++)
				pump(1);
			if (T.oc_head == T.oc_tail)
				fail_msg("%s:%d: no outcome recorded", path, lineno);
			got = T.outcomes[T.oc_head++];
			if (fnmatch(text, got, 0) != 0)
				fail_msg("%s:%d: expected outcome '%s', got '%s'", path, lineno, text, got);
		} else
			fail_msg("%s:%d: unknown line", path, lineno);
	}
	fclose(f);
	dialogue_end();
	assert_int_equal(upstream_count(), 0);
	if (T.oc_head != T.oc_tail)
		fail_msg("%s: outcome not asserted by an O: line: '%s'", path, T.outcomes[T.oc_head]);
	strlist_clear(&patterns);
	for (size_t k = 0; k < 8; k++)
		dane_tlsa_free(tlsa[k]);
}

int
main(void)
{
	static const char conf_text[] = "hostname = relay.example\n[upstream]\nconnect_timeout = 2s\n"
	    "command_timeout = 5s\n";
	struct strlist errors = { 0 };
	struct conf *conf;
	char *err = NULL;
	int rc;

	log_init("test", false, LOG_LEVEL_CRIT);
	signal(SIGPIPE, SIG_IGN);
	outcome_set_hook(on_outcome, NULL);
	conf = conf_parse_buffer("test", conf_text, sizeof(conf_text) - 1, &errors);
	T.base = event_base_new();
	T.mx.base = T.base;
	T.rt.base = T.base;
	T.rt.conf = conf;
	T.rt.ssl_ctx = tls_client_ctx_new(conf, &err);
	snprintf(T.rt.hostname, sizeof(T.rt.hostname), "relay.example");
	rc = dialogue_run_folder("upstream_dialogues", "upstream", run_dialogue, dialogue_teardown);
	for (size_t i = 0; i < T.oc_tail; i++)
		free(T.outcomes[i]);
	SSL_CTX_free(T.rt.ssl_ctx);
	event_base_free(T.base);
	conf_free(conf);
	return rc;
}

#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_DNS

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "conf/log.h"
#include "policy/dns_probe.h"

#define DNS_TYPE_NS		2
#define DNS_HEADER_LEN		12

enum dns_probe_state {
	DNS_PROBE_S_START,	/* made, nothing asked yet */
	DNS_PROBE_S_ASKING,	/* queries out; waiting for answers or the timeout */
	DNS_PROBE_S_PASSED,	/* the path answered: nothing more to do */
	DNS_PROBE_S_FAILED,	/* warned, resolver marked down; the retry timer runs */
};

/* One forwarder asked directly. */
struct probe_target {
	struct dns_probe	*probe;
	const char		*spec;		/* "ADDR" or "ADDR@PORT", borrowed from conf */
	int			 fd;		/* -1 once done */
	struct event		*ev;
	uint16_t		 id;
	int			 rcode;		/* of its reply; -1 without one */
	char			 result[128];	/* "REFUSED", "no reply within 10s", ... */
};

struct dns_probe {
	struct event_base	*base;
	const struct conf	*conf;		/* borrowed */
	struct resolver		*resolver;	/* borrowed */
	enum dns_probe_state	 state;
	unsigned		 attempts;
	bool			 warned;	/* the warning is logged once, retries quietly */
	struct event		*timer;		/* forwarders' timeout while asking; the retry after */
	struct resolver_query	*query;		/* recursion: ". NS" */
	char			 recursion_result[160];
	bool			 recursion_ok;
	bool			 recursion_bogus;
	struct probe_target	*targets;	/* forwarders */
	size_t			 ntargets;
	size_t			 pending;	/* targets still waiting for a reply */
};

static void dns_probe_enter_state(struct dns_probe *p, enum dns_probe_state next);
static enum dns_probe_state dns_probe_decide(const struct dns_probe *p);

static const char *
dns_probe_state_name(enum dns_probe_state s)
{
	switch (s) {
	case DNS_PROBE_S_START: return "start";
	case DNS_PROBE_S_ASKING: return "asking";
	case DNS_PROBE_S_PASSED: return "passed";
	case DNS_PROBE_S_FAILED: return "failed";
	}
	return "?";
}

bool
dns_probe_reply_ok(const unsigned char *buf, size_t len, uint16_t id, int *rcode)
{
	if (len < DNS_HEADER_LEN)
		return false;
	if (((unsigned)buf[0] << 8 | buf[1]) != id)
		return false;
	/* QR set (a response), opcode QUERY. */
	if ((buf[2] & 0x80) == 0 || (buf[2] & 0x78) != 0)
		return false;
	*rcode = buf[3] & 0x0f;
	return true;
}

static bool
forwarders_mode(const struct dns_probe *p)
{
	return p->ntargets > 0;
}

static void
target_close(struct probe_target *t)
{
	if (t->ev != NULL) {
		event_free(t->ev);
		t->ev = NULL;
	}
	if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
}

/* "ADDR" or "ADDR@PORT" (validated by the configuration) to a socket address. */
static int
target_address(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *at = strchr(spec, '@');
	size_t alen = at ? (size_t)(at - spec) : strlen(spec);
	int port = at ? atoi(at + 1) : 53;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	if (alen >= sizeof(addr) || port < 1 || port > 65535)
		return -1;
	memcpy(addr, spec, alen);
	addr[alen] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*sslen = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*sslen = sizeof(*sin6);
		return 0;
	}
	return -1;
}

static void
target_done(struct probe_target *t)
{
	struct dns_probe *p = t->probe;

	target_close(t);
	if (--p->pending == 0) {
		evtimer_del(p->timer);
		dns_probe_enter_state(p, dns_probe_decide(p));
	}
}

static void
target_readable(evutil_socket_t fd, short what, void *arg)
{
	struct probe_target *t = arg;
	unsigned char buf[512];
	ssize_t n;
	int rcode;

	(void)what;
	if ((n = recv(fd, buf, sizeof(buf), 0)) < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		/* On a connected UDP socket an ICMP error arrives here. */
		snprintf(t->result, sizeof(t->result), "%s", errno == ECONNREFUSED ?
		    "connection refused (nothing serves DNS there)" : strerror(errno));
		target_done(t);
		return;
	}
	if (!dns_probe_reply_ok(buf, (size_t)n, t->id, &rcode))
		return;		/* not our reply: keep waiting */
	t->rcode = rcode;
	snprintf(t->result, sizeof(t->result), "%s", dns_rcode_name(rcode));
	target_done(t);
}

/* Send ". NS" (recursion desired) to one forwarder; 0, or -1 with t->result set. */
static int
target_ask(struct probe_target *t)
{
	struct dns_probe *p = t->probe;
	struct sockaddr_storage ss;
	socklen_t sslen;
	unsigned char q[DNS_HEADER_LEN + 5] = { 0 };
	unsigned char rnd[2] = { 0x5a, 0xa5 };

	t->rcode = -1;
	if (target_address(t->spec, &ss, &sslen) != 0) {
		snprintf(t->result, sizeof(t->result), "not an address");
		return -1;
	}
	/* The id only has to tell our reply from stray ones: the socket is
	 * connected, so only the forwarder's address can answer. */
	(void)RAND_bytes(rnd, sizeof(rnd));
	t->id = (uint16_t)(rnd[0] << 8 | rnd[1]);
	q[0] = rnd[0];
	q[1] = rnd[1];
	q[2] = 0x01;			/* RD */
	q[5] = 1;			/* QDCOUNT */
	q[DNS_HEADER_LEN] = 0;		/* the root */
	q[DNS_HEADER_LEN + 2] = DNS_TYPE_NS;
	q[DNS_HEADER_LEN + 4] = 1;	/* IN */
	t->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->fd < 0 || connect(t->fd, (struct sockaddr *)&ss, sslen) != 0 ||
	    send(t->fd, q, sizeof(q), 0) != (ssize_t)sizeof(q)) {
		snprintf(t->result, sizeof(t->result), "cannot send: %s", strerror(errno));
		target_close(t);
		return -1;
	}
	t->ev = event_new(p->base, t->fd, EV_READ | EV_PERSIST, target_readable, t);
	if (t->ev == NULL || event_add(t->ev, NULL) != 0) {
		snprintf(t->result, sizeof(t->result), "cannot watch the socket");
		target_close(t);
		return -1;
	}
	return 0;
}

static void
recursion_answer(void *arg, const struct dns_answer *ans)
{
	struct dns_probe *p = arg;

	p->query = NULL;
	/* A root server always has the root's NS set: anything else means
	 * the path is broken (SERVFAIL is what libunbound says when no root
	 * server can be reached). */
	p->recursion_ok = ans->status == DNS_STATUS_OK;
	p->recursion_bogus = ans->status == DNS_STATUS_BOGUS;
	if (ans->status == DNS_STATUS_SERVFAIL || ans->status == DNS_STATUS_NXDOMAIN)
		snprintf(p->recursion_result, sizeof(p->recursion_result), "%s",
		    dns_rcode_name(ans->rcode));
	else
		snprintf(p->recursion_result, sizeof(p->recursion_result), "%s%s%s",
		    dns_status_name(ans->status), ans->why ? ": " : "", ans->why ? ans->why : "");
	dns_probe_enter_state(p, dns_probe_decide(p));
}

/* "127.0.9.9: no reply within 3s, 10.0.0.1: REFUSED" */
static void
forwarders_summary(const struct dns_probe *p, char *out, size_t outlen, bool failed_only)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < p->ntargets && o < outlen; i++) {
		const struct probe_target *t = &p->targets[i];

		if (failed_only && t->rcode >= 0)
			continue;
		o += (size_t)snprintf(out + o, outlen - o, "%s%s: %s", o ? ", " : "", t->spec,
		    t->result);
	}
}

static void
probe_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns_probe *p = arg;

	(void)fd;
	(void)what;
	if (p->state == DNS_PROBE_S_FAILED) {
		dns_probe_enter_state(p, DNS_PROBE_S_ASKING);
		return;
	}
	/* Asking forwarders: the silent ones have had their [dns] timeout. */
	for (size_t i = 0; i < p->ntargets; i++) {
		struct probe_target *t = &p->targets[i];

		if (t->fd >= 0) {
			snprintf(t->result, sizeof(t->result), "no reply within %us", p->conf->dns_timeout);
			target_close(t);
		}
	}
	p->pending = 0;
	dns_probe_enter_state(p, dns_probe_decide(p));
}

static void
probe_failed(struct dns_probe *p)
{
	char what[512], why[768];
	const char *hint;
	struct timeval retry = { DNS_PROBE_RETRY_SECONDS, 0 };

	if (forwarders_mode(p)) {
		forwarders_summary(p, what, sizeof(what), false);
		hint = "no forwarder answers; check that [dns] forwarders run and are reachable "
		    "from this host (ADDRESS@PORT for a port other than 53)";
	} else {
		snprintf(what, sizeof(what), "%s", p->recursion_result);
		hint = p->recursion_bogus ?
		    "DNSSEC validation of the root fails; check [dns] trust_anchor_file and the clock" :
		    "outbound DNS seems blocked; set [dns] forwarders = <your validating resolver>";
	}
	snprintf(why, sizeof(why), "resolver: DNS probe failed (%s: %s): %s",
	    forwarders_mode(p) ? "forwarders" : "recursion from the root, . NS", what, hint);
	resolver_set_path_down(p->resolver, why);
	/* One warning says it all; the retries stay quiet until one passes. */
	log_msg(p->warned ? LOG_LEVEL_INFO : LOG_LEVEL_WARNING,
	    "event=dns_probe_failed path=%s %s=%s attempt=%u retry_in=%ds hint=%s",
	    forwarders_mode(p) ? "forwarders" : "recursion",
	    forwarders_mode(p) ? "forwarders" : "result", log_quote(what), p->attempts,
	    DNS_PROBE_RETRY_SECONDS, log_quote(hint));
	p->warned = true;
	evtimer_add(p->timer, &retry);
}

static void
probe_passed(struct dns_probe *p)
{
	char what[512];

	if (forwarders_mode(p)) {
		/* A dead forwarder next to working ones costs time on some queries. */
		forwarders_summary(p, what, sizeof(what), true);
		if (what[0] != '\0')
			log_warnx("event=dns_forwarder_unreachable forwarders=%s", log_quote(what));
		forwarders_summary(p, what, sizeof(what), false);
	} else {
		snprintf(what, sizeof(what), "%s", p->recursion_result);
	}
	if (p->warned) {
		log_notice("event=dns_probe_ok path=%s result=%s attempt=%u",
		    forwarders_mode(p) ? "forwarders" : "recursion", log_quote(what), p->attempts);
		resolver_set_path_down(p->resolver, NULL);
	} else {
		log_info("event=dns_probe_ok path=%s result=%s",
		    forwarders_mode(p) ? "forwarders" : "recursion", log_quote(what));
	}
}

/* The one decision, once every answer is in: does the path work? */
static enum dns_probe_state
dns_probe_decide(const struct dns_probe *p)
{
	if (!forwarders_mode(p))
		return p->recursion_ok ? DNS_PROBE_S_PASSED : DNS_PROBE_S_FAILED;
	/* Forwarders: any one that answers, whatever it says, is a working path. */
	for (size_t i = 0; i < p->ntargets; i++)
		if (p->targets[i].rcode >= 0)
			return DNS_PROBE_S_PASSED;
	return DNS_PROBE_S_FAILED;
}

static void
dns_probe_enter_state(struct dns_probe *p, enum dns_probe_state next)
{
	log_debug("event=dns_probe_state transition=%s->%s attempt=%u",
	    dns_probe_state_name(p->state), dns_probe_state_name(next), p->attempts);
	p->state = next;
	switch (next) {
	case DNS_PROBE_S_ASKING:
		p->attempts++;
		if (!forwarders_mode(p)) {
			p->query = resolver_query(p->resolver, ".", DNS_TYPE_NS, recursion_answer, p);
			if (p->query == NULL) {
				snprintf(p->recursion_result, sizeof(p->recursion_result),
				    "cannot start the query");
				dns_probe_enter_state(p, DNS_PROBE_S_FAILED);
			}
			break;
		}
		p->pending = 0;
		for (size_t i = 0; i < p->ntargets; i++)
			if (target_ask(&p->targets[i]) == 0)
				p->pending++;
		if (p->pending == 0) {
			dns_probe_enter_state(p, DNS_PROBE_S_FAILED);
		} else {
			struct timeval tv = { p->conf->dns_timeout, 0 };

			evtimer_add(p->timer, &tv);
		}
		break;
	case DNS_PROBE_S_START:
		break;
	case DNS_PROBE_S_PASSED:
		probe_passed(p);
		break;
	case DNS_PROBE_S_FAILED:
		probe_failed(p);
		break;
	}
}

struct dns_probe *
dns_probe_start(struct event_base *base, const struct conf *conf, struct resolver *resolver)
{
	struct dns_probe *p = xcalloc(1, sizeof(*p));

	p->base = base;
	p->conf = conf;
	p->resolver = resolver;
	p->ntargets = conf->dns_forwarders.count;
	if (p->ntargets > 0) {
		p->targets = xcalloc(p->ntargets, sizeof(*p->targets));
		for (size_t i = 0; i < p->ntargets; i++) {
			p->targets[i].probe = p;
			p->targets[i].spec = conf->dns_forwarders.items[i];
			p->targets[i].fd = -1;
			p->targets[i].rcode = -1;
		}
	}
	if ((p->timer = evtimer_new(base, probe_timer, p)) == NULL) {
		log_warnx("event=dns_probe_not_started reason=\"cannot make a timer\"");
		free(p->targets);
		free(p);
		return NULL;
	}
	p->state = DNS_PROBE_S_START;
	dns_probe_enter_state(p, DNS_PROBE_S_ASKING);
	return p;
}

void
dns_probe_free(struct dns_probe *p)
{
	if (p == NULL)
		return;
	resolver_cancel(p->query);
	for (size_t i = 0; i < p->ntargets; i++)
		target_close(&p->targets[i]);
	free(p->targets);
	event_free(p->timer);
	free(p);
}

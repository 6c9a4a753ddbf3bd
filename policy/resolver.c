#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_DNS

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <unbound.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "policy/resolver.h"

#define DNS_RCODE_NOERROR	0
#define DNS_RCODE_FORMERR	1
#define DNS_RCODE_SERVFAIL	2
#define DNS_RCODE_NXDOMAIN	3
#define DNS_RCODE_NOTIMPL	4
#define DNS_RCODE_REFUSED	5

/*
 * Answers kept in process for their TTL (at most ANSWER_MAX_TTL):
 * libunbound caches too, but reaching it costs a round trip through its
 * thread, and the relay asks the same few questions (MX, A, AAAA, TXT of
 * busy domains) for every message. Only definite answers are kept (data,
 * NODATA, NXDOMAIN), never bogus ones, with their DNSSEC state.
 * Direct-mapped and bounded; refcounted so that a query can hold an
 * answer that a newer one replaces in the table.
 */
#define ANSWER_SLOTS	4096
#define ANSWER_MAX_TTL	60

struct kept_answer {
	unsigned		 refs;
	char			*qname;
	int			 qtype;
	time_t			 until;		/* monotonic seconds */
	enum dns_status		 status;
	enum dns_security	 security;
	int			 rcode;
	char			*canonname;
	size_t			 count;
	unsigned char		**data;
	int			*len;
};

struct resolver_query {
	struct resolver		*resolver;
	struct kept_answer	*kept;		/* answered from memory: no libunbound query */
	struct resolver_query	*prev, *next;
	int			 async_id;
	struct event		*timer;
	resolver_cb		 cb;
	void			*arg;
	char			*name;
	int			 rrtype;
};

struct resolver {
	struct event_base	*base;
	struct ub_ctx		*ctx;
	struct event		*ev;
	unsigned		 timeout;
	struct resolver_query	*pending;
	unsigned		 unanswered;	/* timeouts and local errors in a row */
	struct kept_answer	*kept[ANSWER_SLOTS];
	char			 health[160];
	char			*path_down;	/* why the start-up probe failed, or NULL */
	char			 health_text[512];	/* what resolver_health() returns */
};

/* After this many timeouts in a row with no answer between, /healthz says not ready. */
#define UNANSWERED_UNHEALTHY	3

static void
resolver_unlink(struct resolver_query *q)
{
	struct resolver *r = q->resolver;

	if (q->prev)
		q->prev->next = q->next;
	else
		r->pending = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static time_t
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void
kept_release(struct kept_answer *k)
{
	if (k == NULL || --k->refs > 0)
		return;
	for (size_t i = 0; i < k->count; i++)
		free(k->data[i]);
	free(k->data);
	free(k->len);
	free(k->qname);
	free(k->canonname);
	free(k);
}

static unsigned
kept_slot(const char *qname, int qtype)
{
	unsigned h = 2166136261u ^ (unsigned)qtype;

	for (const unsigned char *p = (const unsigned char *)qname; *p; p++)
		h = (h ^ (unsigned)(*p | 0x20)) * 16777619u;
	return h % ANSWER_SLOTS;
}

static void
kept_store(struct resolver *r, const struct dns_answer *ans, const char *qname, int qtype)
{
	struct kept_answer *k;
	unsigned slot;

	if (ans->ttl <= 0 || ans->security == DNS_SECURITY_BOGUS ||
	    (ans->status != DNS_STATUS_OK && ans->status != DNS_STATUS_NODATA &&
	    ans->status != DNS_STATUS_NXDOMAIN))
		return;
	k = xcalloc(1, sizeof(*k));
	k->refs = 1;
	k->qname = xstrdup(qname);
	k->qtype = qtype;
	k->until = mono_now() + (ans->ttl < ANSWER_MAX_TTL ? ans->ttl : ANSWER_MAX_TTL);
	k->status = ans->status;
	k->security = ans->security;
	k->rcode = ans->rcode;
	k->canonname = ans->canonname ? xstrdup(ans->canonname) : NULL;
	k->count = ans->count;
	if (k->count > 0) {
		k->data = xcalloc(k->count, sizeof(*k->data));
		k->len = xcalloc(k->count, sizeof(*k->len));
		for (size_t i = 0; i < k->count; i++) {
			k->data[i] = xmalloc((size_t)ans->len[i] + 1);
			memcpy(k->data[i], ans->data[i], (size_t)ans->len[i]);
			k->len[i] = ans->len[i];
		}
	}
	slot = kept_slot(qname, qtype);
	kept_release(r->kept[slot]);
	r->kept[slot] = k;
}

static struct kept_answer *
kept_find(struct resolver *r, const char *qname, int qtype)
{
	unsigned slot = kept_slot(qname, qtype);
	struct kept_answer *k = r->kept[slot];

	if (k == NULL || k->qtype != qtype || strcasecmp(k->qname, qname) != 0)
		return NULL;
	if (mono_now() >= k->until) {
		kept_release(k);
		r->kept[slot] = NULL;
		return NULL;
	}
	return k;
}

static void
query_free(struct resolver_query *q)
{
	kept_release(q->kept);
	if (q->timer)
		event_free(q->timer);
	free(q->name);
	free(q);
}

static void
resolver_readable(evutil_socket_t fd, short what, void *arg)
{
	struct resolver *r = arg;
	int rc;

	(void)fd;
	(void)what;
	if ((rc = ub_process(r->ctx)) != 0)
		log_warnx("event=dns_process_failed error=%s", log_quote(ub_strerror(rc)));
}

/*
 * Special-use names that libunbound answers by itself by default (an
 * empty "static" local zone: NXDOMAIN for every name under it). A lab or
 * CI world built on such names serves them through [dns] forwarders, and
 * a local NXDOMAIN there bounces its mail with 550 5.1.2. "transparent"
 * sends the queries on to the forwarders or to recursion, which answer
 * as the DNS really is (the public root has none of these names).
 * localhost. and its reverse zones stay local. "nodefault" would be the
 * natural setting, but libunbound 1.17 silently ignores it through
 * ub_ctx_set_option(). The last two zones are defaults from unbound 1.19
 * and 1.22 on; naming a zone that is not a default changes nothing.
 */
static const char *const special_use_zones[] = {
	"test.",		/* RFC 6761 */
	"invalid.",		/* RFC 6761 */
	"onion.",		/* RFC 7686 */
	"home.arpa.",		/* RFC 8375 */
	"resolver.arpa.",	/* RFC 9462 */
	"service.arpa.",	/* RFC 9665 */
};

static int
resolver_open_special_zones(struct ub_ctx *ctx, int *rc)
{
	char zone[64];

	for (size_t i = 0; i < sizeof(special_use_zones) / sizeof(special_use_zones[0]); i++) {
		snprintf(zone, sizeof(zone), "%s transparent", special_use_zones[i]);
		if ((*rc = ub_ctx_set_option(ctx, "local-zone:", zone)) != 0)
			return -1;
	}
	/* The private-address reverse zones of RFC 6303 (AS112): no default
	 * local zone at all, so they resolve like any other name. */
	if ((*rc = ub_ctx_set_option(ctx, "unblock-lan-zones:", "yes")) != 0)
		return -1;
	return 0;
}

struct resolver *
resolver_new(struct event_base *base, const struct conf *conf, char **err)
{
	struct resolver *r = xcalloc(1, sizeof(*r));
	int rc;

	r->base = base;
	r->timeout = conf->dns_timeout;
	if ((r->ctx = ub_ctx_create()) == NULL) {
		*err = xstrdup("cannot create the libunbound context");
		free(r);
		return NULL;
	}
	/* A worker thread, not a forked process: cheaper and it shares the
	 * cache across queries. */
	if ((rc = ub_ctx_async(r->ctx, 1)) != 0)
		goto fail;
	/* Local forwarders (127.0.0.1, a sidecar resolver) are common; the
	 * libunbound default refuses to query loopback addresses. */
	if ((rc = ub_ctx_set_option(r->ctx, "do-not-query-localhost:", "no")) != 0)
		goto fail;
	for (size_t i = 0; i < conf->dns_forwarders.count; i++)
		if ((rc = ub_ctx_set_fwd(r->ctx, conf->dns_forwarders.items[i])) != 0)
			goto fail;
	if (resolver_open_special_zones(r->ctx, &rc) != 0)
		goto fail;
	if (conf->dns_dnssec) {
		struct stat sb;

		if (stat(conf->dns_trust_anchor_file, &sb) != 0) {
			*err = xasprintf("[dns] trust_anchor_file %s: %s (install dns-root-data, "
			    "or set dnssec = no)", conf->dns_trust_anchor_file, strerror(errno));
			ub_ctx_delete(r->ctx);
			free(r);
			return NULL;
		}
		if ((rc = ub_ctx_add_ta_file(r->ctx, conf->dns_trust_anchor_file)) != 0) {
			*err = xasprintf("[dns] trust_anchor_file %s: %s",
			    conf->dns_trust_anchor_file, ub_strerror(rc));
			ub_ctx_delete(r->ctx);
			free(r);
			return NULL;
		}
	}
	r->ev = event_new(base, ub_fd(r->ctx), EV_READ | EV_PERSIST, resolver_readable, r);
	if (r->ev == NULL || event_add(r->ev, NULL) != 0) {
		*err = xstrdup("cannot watch the libunbound descriptor");
		if (r->ev)
			event_free(r->ev);
		ub_ctx_delete(r->ctx);
		free(r);
		return NULL;
	}
	return r;
fail:
	*err = xasprintf("libunbound setup: %s", ub_strerror(rc));
	ub_ctx_delete(r->ctx);
	free(r);
	return NULL;
}

/* Records in a zone-file trust anchor that can anchor validation. */
static long
count_anchor_records(FILE *f)
{
	char line[4096];
	long n = 0;

	while (fgets(line, sizeof(line), f) != NULL) {
		char *save = NULL, *semi = strchr(line, ';');

		if (semi != NULL)
			*semi = '\0';
		for (char *tok = strtok_r(line, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save))
			if (strcasecmp(tok, "DS") == 0 || strcasecmp(tok, "DNSKEY") == 0) {
				n++;
				break;
			}
	}
	return n;
}

int
resolver_check_trust_anchor(const struct conf *conf, char **err)
{
	const char *path = conf->dns_trust_anchor_file;
	struct ub_ctx *ctx;
	char *logbuf = NULL;
	size_t loglen = 0;
	FILE *f, *log;
	int rc;

	if (!conf->dns_dnssec)
		return 0;
	if ((f = fopen(path, "r")) == NULL) {
		*err = xasprintf("[dns] trust_anchor_file %s: %s (install dns-root-data, or set dnssec = no)",
		    path, strerror(errno));
		return -1;
	}
	if (count_anchor_records(f) == 0) {
		fclose(f);
		*err = xasprintf("[dns] trust_anchor_file %s holds no DS or DNSKEY record: DNSSEC would "
		    "validate nothing", path);
		return -1;
	}
	fclose(f);
	if ((ctx = ub_ctx_create()) == NULL) {
		*err = xstrdup("cannot create the libunbound context");
		return -1;
	}
	/* Catch libunbound's own explanation instead of letting it reach stderr. */
	if ((log = open_memstream(&logbuf, &loglen)) != NULL)
		ub_ctx_debugout(ctx, log);
	rc = ub_ctx_add_ta_file(ctx, path);
	/*
	 * Anchors are read when the context is finalised, which the public
	 * API does on the first query or on a change of local data; removing
	 * data that is not there finalises without a query and changes nothing.
	 */
	if (rc == 0)
		rc = ub_ctx_data_remove(ctx, "stsproxy-trust-anchor-check.invalid.");
	ub_ctx_delete(ctx);
	if (log != NULL)
		fclose(log);
	if (rc != 0) {
		/* "[ts] libunbound[pid:0] error: parse error in FILE:2:7 : ...": keep the first reason. */
		const char *why = logbuf != NULL ? strstr(logbuf, "error: ") : NULL;
		size_t wl = why != NULL ? strcspn(why + 7, "\n") : 0;

		if (why != NULL)
			*err = xasprintf("[dns] trust_anchor_file %s: %.*s", path, (int)wl, why + 7);
		else
			*err = xasprintf("[dns] trust_anchor_file %s: %s", path, ub_strerror(rc));
	}
	free(logbuf);
	return rc == 0 ? 0 : -1;
}

void
resolver_free(struct resolver *r)
{
	if (r == NULL)
		return;
	while (r->pending != NULL) {
		struct resolver_query *q = r->pending;

		if (q->kept == NULL)
			ub_cancel(r->ctx, q->async_id);
		resolver_unlink(q);
		query_free(q);
	}
	for (unsigned i = 0; i < ANSWER_SLOTS; i++)
		kept_release(r->kept[i]);
	free(r->path_down);
	event_free(r->ev);
	ub_ctx_delete(r->ctx);
	free(r);
}

static const char *
result_label(const struct dns_answer *ans)
{
	switch (ans->status) {
	case DNS_STATUS_TIMEOUT: return "timeout";
	case DNS_STATUS_ERROR: return "error";
	case DNS_STATUS_NODATA: return "NODATA";
	default: break;
	}
	return dns_rcode_name(ans->rcode);
}

const char *
dns_rcode_name(int rcode)
{
	switch (rcode) {
	case DNS_RCODE_NOERROR: return "NOERROR";
	case DNS_RCODE_FORMERR: return "FORMERR";
	case DNS_RCODE_SERVFAIL: return "SERVFAIL";
	case DNS_RCODE_NXDOMAIN: return "NXDOMAIN";
	case DNS_RCODE_NOTIMPL: return "NOTIMPL";
	case DNS_RCODE_REFUSED: return "REFUSED";
	default: return "other";
	}
}

/* Count the answer and keep the resolver's health: answers of any kind
 * (even NXDOMAIN) prove the path works; only silence does not. A failed
 * start-up probe needs more: a definite answer (SERVFAIL is what
 * libunbound also says when it reaches nobody). */
static void
account(struct resolver *r, const struct dns_answer *ans)
{
	if (r->path_down != NULL && (ans->status == DNS_STATUS_OK ||
	    ans->status == DNS_STATUS_NODATA || ans->status == DNS_STATUS_NXDOMAIN)) {
		log_notice("event=resolver_healthy reason=\"a DNS answer arrived after the start-up "
		    "probe failed\" qname=%s", ans->qname);
		resolver_set_path_down(r, NULL);
	}
	char labels[64];

	snprintf(labels, sizeof(labels), "result=\"%s\",security=\"%s\"", result_label(ans),
	    ans->status == DNS_STATUS_TIMEOUT || ans->status == DNS_STATUS_ERROR ? "none" :
	    ans->security == DNS_SECURITY_SECURE ? "secure" :
	    ans->security == DNS_SECURITY_BOGUS ? "bogus" : "insecure");
	metrics_add("stsproxy_dns_answers_total", labels, 1);
	if (ans->status == DNS_STATUS_TIMEOUT || ans->status == DNS_STATUS_ERROR) {
		if (++r->unanswered == UNANSWERED_UNHEALTHY)
			log_warnx("event=resolver_unhealthy unanswered=%u last=%s reason=%s", r->unanswered,
			    ans->qname, log_quote(ans->why ? ans->why : "-"));
		snprintf(r->health, sizeof(r->health), "resolver: %u queries in a row unanswered, last %s: %s",
		    r->unanswered, ans->qname, ans->why ? ans->why : "-");
	} else {
		if (r->unanswered >= UNANSWERED_UNHEALTHY)
			log_notice("event=resolver_healthy after_unanswered=%u", r->unanswered);
		r->unanswered = 0;
	}
}

void
resolver_set_path_down(struct resolver *r, const char *why)
{
	free(r->path_down);
	r->path_down = why ? xstrdup(why) : NULL;
}

const char *
resolver_health(struct resolver *r)
{
	if (r->unanswered >= UNANSWERED_UNHEALTHY && r->path_down != NULL)
		snprintf(r->health_text, sizeof(r->health_text), "%s; %s", r->health,
		    r->path_down);
	else if (r->unanswered >= UNANSWERED_UNHEALTHY)
		snprintf(r->health_text, sizeof(r->health_text), "%s", r->health);
	else if (r->path_down != NULL)
		snprintf(r->health_text, sizeof(r->health_text), "%s", r->path_down);
	else
		return NULL;
	return r->health_text;
}

static void
deliver(struct resolver_query *q, struct dns_answer *ans)
{
	resolver_cb cb = q->cb;
	void *arg = q->arg;

	ans->qname = q->name;
	ans->qtype = q->rrtype;
	account(q->resolver, ans);
	log_debug("event=dns_answer qname=%s qtype=%d result=%s security=%s why=%s", q->name, q->rrtype,
	    result_label(ans), ans->security == DNS_SECURITY_SECURE ? "secure" :
	    ans->security == DNS_SECURITY_BOGUS ? "bogus" : "insecure", log_quote(ans->why ? ans->why : "-"));
	resolver_unlink(q);
	cb(arg, ans);
	query_free(q);
}

static void
resolver_done(void *mydata, int err, struct ub_result *result)
{
	struct resolver_query *q = mydata;
	struct dns_answer ans = { 0 };

	if (err != 0) {
		ans.status = DNS_STATUS_ERROR;
		ans.why = ub_strerror(err);
		deliver(q, &ans);
		return;
	}
	ans.rcode = result->rcode;
	ans.ttl = result->ttl > 0 ? result->ttl : 0;
	ans.canonname = result->canonname;
	ans.security = result->bogus ? DNS_SECURITY_BOGUS :
	    result->secure ? DNS_SECURITY_SECURE : DNS_SECURITY_INSECURE;
	ans.why = result->why_bogus;
	if (result->bogus) {
		ans.status = DNS_STATUS_BOGUS;
	} else if (result->rcode == DNS_RCODE_NXDOMAIN) {
		ans.status = DNS_STATUS_NXDOMAIN;
	} else if (result->rcode != DNS_RCODE_NOERROR) {
		ans.status = DNS_STATUS_SERVFAIL;
	} else if (!result->havedata) {
		ans.status = DNS_STATUS_NODATA;
	} else {
		ans.status = DNS_STATUS_OK;
		for (ans.count = 0; result->data[ans.count] != NULL; ans.count++)
			;
		ans.data = (const unsigned char *const *)result->data;
		ans.len = result->len;
	}
	kept_store(q->resolver, &ans, q->name, q->rrtype);
	deliver(q, &ans);
	ub_resolve_free(result);
}

static void
resolver_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct resolver_query *q = arg;
	struct dns_answer ans = { 0 };

	(void)fd;
	(void)what;
	ub_cancel(q->resolver->ctx, q->async_id);
	ans.status = DNS_STATUS_TIMEOUT;
	ans.why = "no answer within [dns] timeout";
	deliver(q, &ans);
}

static void
kept_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct resolver_query *q = arg;
	const struct kept_answer *k = q->kept;
	struct dns_answer ans = { 0 };

	(void)fd;
	(void)what;
	ans.status = k->status;
	ans.security = k->security;
	ans.rcode = k->rcode;
	ans.canonname = k->canonname;
	ans.count = k->count;
	ans.data = (const unsigned char *const *)k->data;
	ans.len = k->len;
	ans.ttl = (int)(k->until - mono_now());
	deliver(q, &ans);
}

struct resolver_query *
resolver_query(struct resolver *r, const char *name, int rrtype, resolver_cb cb, void *arg)
{
	struct resolver_query *q = xcalloc(1, sizeof(*q));
	struct timeval tv = { .tv_sec = r->timeout };
	int rc;

	q->resolver = r;
	q->cb = cb;
	q->arg = arg;
	q->name = xstrdup(name);
	q->rrtype = rrtype;
	if ((q->kept = kept_find(r, name, rrtype)) != NULL) {
		/* still answered later, from the loop, as the API promises */
		q->kept->refs++;
		q->async_id = -1;
		q->timer = event_new(r->base, -1, 0, kept_deliver, q);
		event_active(q->timer, EV_TIMEOUT, 1);
		q->next = r->pending;
		if (r->pending)
			r->pending->prev = q;
		r->pending = q;
		return q;
	}
	/* ub_resolve_async never calls back from inside itself; the answer
	 * arrives through ub_process() on the loop. */
	rc = ub_resolve_async(r->ctx, name, rrtype, 1 /* IN */, q, resolver_done, &q->async_id);
	if (rc != 0) {
		log_warnx("event=dns_query_failed name=%s error=%s", log_quote(name),
		    log_quote(ub_strerror(rc)));
		query_free(q);
		return NULL;
	}
	q->timer = evtimer_new(r->base, resolver_timeout, q);
	evtimer_add(q->timer, &tv);
	q->next = r->pending;
	if (r->pending)
		r->pending->prev = q;
	r->pending = q;
	return q;
}

void
resolver_cancel(struct resolver_query *q)
{
	if (q == NULL)
		return;
	if (q->kept == NULL)
		ub_cancel(q->resolver->ctx, q->async_id);
	resolver_unlink(q);
	query_free(q);
}

int
dns_txt_join(const unsigned char *rdata, int len, struct strbuf *out)
{
	int pos = 0;

	while (pos < len) {
		int n = rdata[pos];

		if (pos + 1 + n > len)
			return -1;
		strbuf_append(out, (const char *)rdata + pos + 1, (size_t)n);
		pos += 1 + n;
	}
	if (out->data == NULL)
		strbuf_append(out, "", 0);
	return 0;
}

const char *
dns_status_name(enum dns_status status)
{
	switch (status) {
	case DNS_STATUS_OK: return "ok";
	case DNS_STATUS_NODATA: return "nodata";
	case DNS_STATUS_NXDOMAIN: return "nxdomain";
	case DNS_STATUS_SERVFAIL: return "servfail";
	case DNS_STATUS_TIMEOUT: return "timeout";
	case DNS_STATUS_BOGUS: return "bogus";
	case DNS_STATUS_ERROR: return "error";
	}
	return "?";
}

const char *
dns_security_name(enum dns_security security)
{
	switch (security) {
	case DNS_SECURITY_INSECURE: return "insecure";
	case DNS_SECURITY_SECURE: return "secure";
	case DNS_SECURITY_BOGUS: return "bogus";
	}
	return "?";
}

int
dns_name_from_wire(const unsigned char *wire, int len, char *out, size_t outlen)
{
	size_t o = 0;
	int i = 0;

	if (len <= 0 || outlen < 2)
		return -1;
	while (i < len) {
		unsigned lab = wire[i++];

		if (lab == 0) {
			if (o == 0)
				out[o++] = '.';	/* the root: a null MX target */
			out[o] = '\0';
			return i;
		}
		/* libunbound hands us uncompressed names: a pointer is an error. */
		if (lab > 63 || i + (int)lab > len || o + lab + 2 > outlen ||
		    (o ? o + 1 : 0) + lab > 253)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (unsigned k = 0; k < lab; k++) {
			unsigned char c = wire[i + (int)k];

			/* Host names only: anything else cannot be an MX we connect to. */
			if (!(c == '-' || c == '_' || (c >= '0' && c <= '9') ||
			    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
				return -1;
			out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		i += (int)lab;
	}
	return -1;
}

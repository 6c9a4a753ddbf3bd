/*
 * check_run.c - gather the facts of `stsproxy check DOMAIN`.
 *
 * Everything starts at once on the runtime's loop: two policy lookups
 * (as published, and as this host's cache sees it), the MX set, the
 * _smtp._tls record. Answers start the next steps: probes of the MX
 * addresses and TLSA lookups once the MX set is known (policy/dane.c, as
 * the relay asks) and a DANE handshake where the records are usable, the diagnostic
 * fetch when the TXT record leaves senders no policy, resolution and a
 * TLS probe of each https: rua. A counter of outstanding operations ends
 * the loop when it reaches zero; the deadline cancels whatever is left.
 */
#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_MAIN

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/http.h>

#include "conf/clock.h"
#include "conf/log.h"
#include "policy/fetch.h"
#include "cli/check.h"
#include "report/rpt_sender.h"

struct check_ctx {
	struct runtime		*rt;
	struct check_facts	*f;
	unsigned		 pending;
	bool			 over;
	unsigned		 step_timeout;
	struct event		*deadline_ev;
	struct policy_lookup	*published_lookup, *sender_lookup;
	struct policy_fetch	*diag_fetch;
	struct mx_lookup	*mx_lookup;
	struct dane_hosts	*dane_lookups;	/* the TLSA lookups still out */
	size_t			 dane_pending;
	struct rpt_record_lookup *rpt_lookup;
};

static void
op_started(struct check_ctx *c)
{
	c->pending++;
}

static void
op_done(struct check_ctx *c)
{
	if (--c->pending == 0 && !c->over) {
		c->over = true;
		event_base_loopexit(c->rt->base, NULL);
	}
}

/* ---- policy ------------------------------------------------------------- */

static void
diags_copy(struct policy_diags *dst, const struct policy_diags *src)
{
	if (src == NULL || src->count == 0)
		return;
	dst->items = xcalloc(src->count, sizeof(*dst->items));
	for (size_t i = 0; i < src->count; i++) {
		dst->items[i] = src->items[i];
		dst->items[i].message = xstrdup(src->items[i].message);
	}
	dst->count = src->count;
}

static void
view_fill(struct check_policy_view *v, const struct policy_result *r)
{
	v->done = true;
	v->source = r->source;
	v->txt_status = r->txt_status;
	v->txt_security = r->txt_security;
	v->txt_canonname = xstrdup(r->txt_canonname);
	if (r->txt_records != NULL)
		strlist_copy(&v->txt_records, r->txt_records);
	v->txt = r->txt;
	v->id = xstrdup(r->id);
	v->policy = r->policy ? sts_policy_dup(r->policy) : NULL;
	v->fetched_at = r->fetched_at;
	v->expires_at = r->expires_at;
	if (r->fetch != NULL) {
		v->fetched = true;
		v->fetch = *r->fetch;
		v->fetch.body = NULL;
	}
	diags_copy(&v->diags, r->parse_diags);
	v->cache_enabled = r->cache_enabled;
}

static void
view_clear(struct check_policy_view *v)
{
	free(v->txt_canonname);
	strlist_clear(&v->txt_records);
	free(v->id);
	sts_policy_free(v->policy);
	policy_diags_clear(&v->diags);
}

/* No sender fetches without a usable TXT record, but the owner needs to
 * know whether the policy host is right too: same fetcher, same parser. */
static void
diagnostic_fetched(void *arg, const struct fetch_result *r)
{
	struct check_ctx *c = arg;
	struct check_policy_view *v = &c->f->published;

	c->diag_fetch = NULL;
	v->fetched = true;
	v->fetch = *r;
	v->fetch.body = NULL;
	if (r->ok)
		v->policy = sts_policy_parse(r->body, r->body_len, c->rt->conf->policy_max_body,
		    &v->diags, NULL);
	op_done(c);
}

static void
published_done(void *arg, const struct policy_result *r)
{
	struct check_ctx *c = arg;

	c->published_lookup = NULL;
	view_fill(&c->f->published, r);
	if (r->fetch == NULL && !c->over) {
		c->f->diagnostic_fetch = true;
		op_started(c);
		c->diag_fetch = policy_fetch_start(c->rt->base, c->rt->resolver, c->rt->ssl_ctx,
		    c->rt->conf, c->f->domain, diagnostic_fetched, c);
	}
	op_done(c);
}

static void
sender_done(void *arg, const struct policy_result *r)
{
	struct check_ctx *c = arg;

	c->sender_lookup = NULL;
	view_fill(&c->f->sender, r);
	op_done(c);
}

/* ---- MX set, probes and TLSA -------------------------------------------- */

static void
probe_done(void *arg, const struct mx_probe_result *r)
{
	struct check_probe *p = arg;
	struct check_ctx *c = p->run;

	p->probe = NULL;
	p->done = true;
	p->result = *r;
	p->result.host = NULL;		/* borrowed from the probe, which is going */
	op_done(c);
}

static void
dane_probe_done(void *arg, const struct mx_probe_result *r)
{
	struct check_host *h = arg;

	h->dane_probe = NULL;
	h->dane_probed = true;
	h->dane_result = *r;
	h->dane_result.host = NULL;	/* borrowed from the probe, which is going */
	op_done(h->run);
}

/* Host i's DANE facts (DANE-5 ... DANE-7); usable records get a DANE handshake. */
static void
dane_known(void *arg, size_t i, struct dane_tlsa *t)
{
	struct check_ctx *c = arg;
	struct check_facts *f = c->f;
	struct check_host *h = &f->hosts[i];
	struct check_probe *first = NULL;

	if (--c->dane_pending == 0)
		c->dane_lookups = NULL;
	h->tlsa_done = true;
	h->dane = t;
	dane_reference_ids(t, f->domain, f->mx_canonname, f->mx_secure, &h->dane_names);
	for (size_t k = 0; k < f->nprobes && first == NULL; k++)
		if (f->probes[k].host == i)
			first = &f->probes[k];
	if (t->state == DANE_S_USABLE && first != NULL) {
		op_started(c);
		h->dane_probe = mx_probe_start(c->rt->base, c->rt->ssl_ctx, MX_PROBE_SMTP, h->name,
		    (struct sockaddr *)&first->addr, c->rt->hostname, c->step_timeout, dane_probe_done, h);
		mx_probe_set_dane(h->dane_probe, t, &h->dane_names);
	}
	op_done(c);
}

static void
mx_resolved(void *arg, const struct mx_set *set)
{
	struct check_ctx *c = arg;
	struct check_facts *f = c->f;

	c->mx_lookup = NULL;
	f->mx_done = true;
	f->mx_status = set->status;
	f->mx_reason = xstrdup(set->reason);
	f->mx_secure = set->mx_secure;
	f->mx_canonname = xstrdup(set->canonname);
	f->nhosts = set->nhosts;
	f->hosts = xcalloc(set->nhosts ? set->nhosts : 1, sizeof(*f->hosts));
	f->probes = xcalloc(CHECK_MAX_PROBES, sizeof(*f->probes));
	for (size_t i = 0; i < set->nhosts; i++) {
		struct check_host *h = &f->hosts[i];

		h->run = c;
		snprintf(h->name, sizeof(h->name), "%s", set->hosts[i].name);
		h->preference = set->hosts[i].preference;
		h->implicit = set->hosts[i].implicit;
		h->naddrs = set->hosts[i].naddrs;
		h->a_status = set->hosts[i].a_status;
		h->aaaa_status = set->hosts[i].aaaa_status;
	}
	/* At most CHECK_MAX_PROBES addresses, spread over the hosts in
	 * preference order: every host's first address before any second. */
	for (size_t round = 0, more = 1; more; round++) {
		more = 0;
		for (size_t i = 0; i < set->nhosts; i++) {
			struct check_host *h = &f->hosts[i];

			if (round >= set->hosts[i].naddrs)
				continue;
			more = 1;
			if (f->nprobes >= CHECK_MAX_PROBES) {
				h->skipped++;
				continue;
			}
			f->probes[f->nprobes].run = c;
			f->probes[f->nprobes].host = i;
			f->probes[f->nprobes].addr = set->hosts[i].addrs[round];
			f->nprobes++;
			h->probed++;
		}
	}
	for (size_t i = 0; i < f->nprobes; i++) {
		struct check_probe *p = &f->probes[i];

		op_started(c);
		p->probe = mx_probe_start(c->rt->base, c->rt->ssl_ctx, MX_PROBE_SMTP,
		    f->hosts[p->host].name, (struct sockaddr *)&p->addr, c->rt->hostname,
		    c->step_timeout, probe_done, p);
	}
	/* The TLSA records as a DANE sender (the relay) asks for them. */
	c->dane_pending = set->nhosts;
	for (size_t i = 0; i < set->nhosts; i++)
		op_started(c);
	if (set->nhosts > 0)
		c->dane_lookups = dane_hosts_start(c->rt->resolver, set->hosts, set->nhosts,
		    set->mx_secure, f->port, dane_known, c);
	op_done(c);
}

/* ---- TLS-RPT ------------------------------------------------------------- */

static void
rua_probed(void *arg, const struct mx_probe_result *r)
{
	struct check_rua *rua = arg;

	rua->probe = NULL;
	rua->probed = true;
	rua->result = *r;
	rua->result.host = NULL;
	op_done(rua->run);
}

static void
rua_resolved(void *arg, const struct mx_set *set)
{
	struct check_rua *rua = arg;
	struct check_ctx *c = rua->run;

	rua->lookup = NULL;
	rua->resolved = true;
	rua->resolve_status = set->status;
	snprintf(rua->resolve_reason, sizeof(rua->resolve_reason), "%s",
	    set->reason ? set->reason : "");
	if (set->status == MX_STATUS_OK && set->nhosts == 1 && set->hosts[0].naddrs > 0) {
		rua->naddrs = set->hosts[0].naddrs;
		op_started(c);
		/* The first address, as a report sender would try first. */
		rua->probe = mx_probe_start(c->rt->base, c->rt->ssl_ctx, MX_PROBE_TLS, rua->host,
		    (const struct sockaddr *)&set->hosts[0].addrs[0], c->rt->hostname,
		    c->step_timeout, rua_probed, rua);
	}
	op_done(c);
}

static void
start_rua(struct check_ctx *c, struct check_rua *rua, unsigned *https_started)
{
	struct evhttp_uri *uri;
	const char *scheme, *host;

	rua->run = c;
	rua->https = strncasecmp(rua->uri, "https:", 6) == 0;
	if (!rua->https)
		return;
	uri = evhttp_uri_parse(rua->uri);
	scheme = uri ? evhttp_uri_get_scheme(uri) : NULL;
	host = uri ? evhttp_uri_get_host(uri) : NULL;
	if (scheme != NULL && host != NULL && *host != '\0') {
		snprintf(rua->host, sizeof(rua->host), "%s", host);
		rua->port = evhttp_uri_get_port(uri) > 0 ? (unsigned)evhttp_uri_get_port(uri) : 443;
	}
	if (uri != NULL)
		evhttp_uri_free(uri);
	if (rua->host[0] == '\0')
		return;
	if (*https_started >= CHECK_MAX_RUA_PROBES) {
		rua->over_limit = true;
		return;
	}
	(*https_started)++;
	op_started(c);
	rua->lookup = mx_resolve_host(c->rt->resolver, rua->host, c->rt->conf->upstream_ipv6,
	    rua->port, rua_resolved, rua);
	if (rua->lookup == NULL) {
		rua->resolved = true;
		rua->resolve_status = MX_STATUS_NO_HOSTS;
		snprintf(rua->resolve_reason, sizeof(rua->resolve_reason),
		    "'%.120s' is not a host name", rua->host);
		op_done(c);
	}
}

static void
rpt_found(void *arg, const struct rpt_record_facts *r)
{
	struct check_ctx *c = arg;
	struct check_facts *f = c->f;
	unsigned https_started = 0;

	c->rpt_lookup = NULL;
	f->rpt_done = true;
	f->rpt_dns_status = r->dns_status;
	f->rpt_security = r->security;
	strlist_copy(&f->rpt_records, r->records);
	f->rpt.status = r->record->status;
	f->rpt.skipped = r->record->skipped;
	memcpy(f->rpt.reason, r->record->reason, sizeof(f->rpt.reason));
	strlist_copy(&f->rpt.rua, &r->record->rua);
	if (r->record->status == TLSRPT_RECORD_VALID) {
		f->nruas = r->record->rua.count;
		f->ruas = xcalloc(f->nruas ? f->nruas : 1, sizeof(*f->ruas));
		for (size_t i = 0; i < f->nruas; i++) {
			f->ruas[i].uri = xstrdup(r->record->rua.items[i]);
			start_rua(c, &f->ruas[i], &https_started);
		}
	}
	op_done(c);
}

/* ---- the run ------------------------------------------------------------- */

/* Stop whatever is still running; none of their callbacks will run. */
static void
cancel_all(struct check_ctx *c)
{
	struct check_facts *f = c->f;

	policy_lookup_cancel(c->published_lookup);
	policy_lookup_cancel(c->sender_lookup);
	policy_fetch_cancel(c->diag_fetch);
	mx_lookup_cancel(c->mx_lookup);
	rpt_record_lookup_cancel(c->rpt_lookup);
	c->published_lookup = c->sender_lookup = NULL;
	c->diag_fetch = NULL;
	c->mx_lookup = NULL;
	c->rpt_lookup = NULL;
	for (size_t i = 0; i < f->nprobes; i++) {
		mx_probe_cancel(f->probes[i].probe);
		f->probes[i].probe = NULL;
	}
	dane_hosts_cancel(c->dane_lookups);
	c->dane_lookups = NULL;
	for (size_t i = 0; i < f->nhosts; i++) {
		mx_probe_cancel(f->hosts[i].dane_probe);
		f->hosts[i].dane_probe = NULL;
	}
	for (size_t i = 0; i < f->nruas; i++) {
		mx_lookup_cancel(f->ruas[i].lookup);
		mx_probe_cancel(f->ruas[i].probe);
		f->ruas[i].lookup = NULL;
		f->ruas[i].probe = NULL;
	}
}

static void
deadline_passed(evutil_socket_t fd, short what, void *arg)
{
	struct check_ctx *c = arg;

	(void)fd;
	(void)what;
	log_notice("event=check_deadline domain=%s seconds=%u pending=%u", c->f->domain,
	    c->f->deadline, c->pending);
	c->f->timed_out = true;
	cancel_all(c);
	c->over = true;
	event_base_loopexit(c->rt->base, NULL);
}

struct check_facts *
check_run(struct runtime *rt, const char *domain, unsigned port, unsigned deadline)
{
	struct check_facts *f;
	struct check_ctx c = { .rt = rt };
	struct timeval tv = { deadline, 0 };
	char *name = domain_normalize(domain);

	if (name == NULL)
		return NULL;
	f = xcalloc(1, sizeof(*f));
	f->domain = name;
	f->port = port;
	f->deadline = deadline;
	f->now = clock_now();
	c.f = f;
	/* Per step, never longer than the relay would wait, nor than half
	 * the whole check. */
	c.step_timeout = CHECK_STEP_TIMEOUT;
	if (rt->conf->upstream_connect_timeout < c.step_timeout)
		c.step_timeout = rt->conf->upstream_connect_timeout;
	if (deadline / 2 < c.step_timeout)
		c.step_timeout = deadline / 2 > 0 ? deadline / 2 : 1;
	f->previous = policy_cache_lookup(rt->cache, f->domain);

	op_started(&c);		/* held while everything starts */
	op_started(&c);
	c.published_lookup = policy_engine_resolve(rt->engine, f->domain, POLICY_F_NO_CACHE,
	    published_done, &c);
	op_started(&c);
	c.sender_lookup = policy_engine_resolve(rt->engine, f->domain, 0, sender_done, &c);
	op_started(&c);
	c.mx_lookup = mx_resolve(rt->resolver, f->domain, NULL, rt->conf->upstream_ipv6, port,
	    mx_resolved, &c);
	if (c.mx_lookup == NULL) {
		f->mx_done = true;
		f->mx_status = MX_STATUS_TEMPFAIL;
		f->mx_reason = xstrdup("cannot start the MX lookup");
		op_done(&c);
	}
	op_started(&c);
	c.rpt_lookup = rpt_record_lookup(rt->resolver, f->domain, rpt_found, &c);
	if (c.rpt_lookup == NULL) {
		f->rpt_done = true;
		f->rpt_dns_status = DNS_STATUS_ERROR;
		op_done(&c);
	}
	c.deadline_ev = evtimer_new(rt->base, deadline_passed, &c);
	evtimer_add(c.deadline_ev, &tv);
	op_done(&c);
	if (!c.over)
		event_base_dispatch(rt->base);
	cancel_all(&c);
	event_free(c.deadline_ev);
	return f;
}

void
check_facts_free(struct check_facts *f)
{
	if (f == NULL)
		return;
	view_clear(&f->published);
	view_clear(&f->sender);
	policy_cache_entry_free(f->previous);
	free(f->mx_reason);
	free(f->mx_canonname);
	for (size_t i = 0; i < f->nhosts; i++) {
		dane_tlsa_free(f->hosts[i].dane);
		strlist_clear(&f->hosts[i].dane_names);
	}
	free(f->hosts);
	free(f->probes);
	strlist_clear(&f->rpt_records);
	tlsrpt_record_result_clear(&f->rpt);
	for (size_t i = 0; i < f->nruas; i++)
		free(f->ruas[i].uri);
	free(f->ruas);
	free(f->domain);
	free(f);
}

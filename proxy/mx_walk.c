#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_UPSTREAM

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "policy/engine.h"
#include "policy/mx_match.h"
#include "proxy/mx_walk.h"
#include "proxy/upstream.h"

/* Room for the per-MX failure list in a reply line (RFC 5321 §4.5.3.1.5). */
#define FAILURES_MAX	400

/*
 * The phases of the walk over the MX list (STS-42): in the strict phase
 * every MX must meet the policy (enforce, and testing's evaluation); the
 * opportunistic phase is delivery without a policy, and testing's
 * fallback.
 */
enum walk_phase {
	PHASE_STRICT,
	PHASE_OPPORTUNISTIC,
};

/* One MX host's DANE facts. */
struct dane_slot {
	struct dane_tlsa	*tlsa;		/* NULL while its lookup runs */
	struct strlist		 names;		/* DANE-TA reference identifiers (DANE-12) */
};

struct mx_walk {
	struct runtime		*rt;
	const struct conf	*conf;
	struct upstream_txn	*txn;		/* borrowed; its policy is filled in here */
	mx_walk_ready_cb	 ready;
	void			*arg;
	struct event		*kick;		/* resolution finished without a callback */

	/* resolution, MX set and policy both, in parallel */
	struct mx_lookup	*mx_lookup;
	struct policy_lookup	*policy_lookup;
	bool			 mx_done, policy_done;
	enum mx_status		 mx_status;
	char			*mx_reason;
	struct mx_host		*hosts;
	size_t			 nhosts;

	/* the walk */
	enum walk_phase		 phase;
	size_t			 host_i, addr_i;
	bool			 host_checked;
	unsigned		 attempts;
	struct strbuf		 failures;	/* "host reason; host reason" for the reply */
	unsigned		 fail_kinds;	/* bit per enum mx_fail */
	struct mx_route		 route;		/* the last route handed out */
	bool			 plaintext_retry; /* TLS failed: the same address in the clear next */

	/* DANE, one verdict per host */
	bool			 dane_on;	/* [tls] dane, a real MX set, not a report mail */
	bool			 dane_required;	/* [policy] override DOMAIN:dane-only (DANE-17) */
	bool			 mx_secure;	/* the MX RRset was DNSSEC-secure (DANE-5) */
	char			*mx_canonname;	/* where CNAMEs led the MX lookup, or NULL */
	struct dane_slot	*dane;		/* [nhosts] when dane_on */
	struct dane_hosts	*dane_lookups;	/* the TLSA lookups still out */
	struct route_regime	 regime;	/* of the host being tried */
	bool			 waiting;	/* mx_walk_next() said WAIT for host_i */
	bool			 dane_failed;	/* a DANE failure is among the reasons */
	bool			 dane_simulated; /* simulate = enforce has spoken for this walk */
};

static void
add_failure(struct mx_walk *walk, enum mx_fail kind, const char *host, const char *reason)
{
	walk->fail_kinds |= 1u << kind;
	if (walk->failures.len > FAILURES_MAX)
		return;
	strbuf_printf(&walk->failures, "%s%s %s", walk->failures.len ? "; " : "", host, reason);
	if (walk->failures.len > FAILURES_MAX)
		strbuf_printf(&walk->failures, "; ...");
}

static const char *
failures(const struct mx_walk *walk, const char *none)
{
	return walk->failures.len ? walk->failures.data : none;
}

void
mx_walk_failed(struct mx_walk *walk, enum mx_fail kind, const char *reason)
{
	/* A failure under DANE's rules is DANE's, whatever the dialogue saw. */
	if (kind != MX_FAIL_CONNECT && (walk->route.regime.kind == REGIME_DANE ||
	    walk->route.regime.kind == REGIME_DANE_TLS))
		walk->dane_failed = true;
	add_failure(walk, kind, walk->hosts[walk->host_i].name, reason);
}

void
mx_walk_retry_plaintext(struct mx_walk *walk)
{
	walk->plaintext_retry = true;
}

/* The reply when the MX set could not be had (spec §11). */
static void
resolution_failed(struct mx_walk *walk, struct smtp_reply *r)
{
	const struct upstream_txn *txn = walk->txn;
	char labels[48];

	switch (walk->mx_status) {
	case MX_STATUS_OK:
		fatalx("resolution_failed: the MX set is fine");
	case MX_STATUS_NULL_MX:
		smtp_reply_own(r, txn->session, 556, "5.1.10",
		    "Recipient domain %s accepts no mail (null MX)", txn->domain);
		break;
	case MX_STATUS_NXDOMAIN:
		smtp_reply_own(r, txn->session, 550, "5.1.2", "Recipient domain %s does not exist",
		    txn->domain);
		break;
	case MX_STATUS_NO_HOSTS:
		smtp_reply_own(r, txn->session, 554, "5.4.4", "No usable MX for %s: %s", txn->domain,
		    walk->mx_reason);
		break;
	case MX_STATUS_TEMPFAIL:
		smtp_reply_own(r, txn->session, 451, "4.4.3", "MX lookup for %s failed: %s",
		    txn->domain, walk->mx_reason);
		break;
	}
	snprintf(labels, sizeof(labels), "status=\"%s\"", mx_status_name(walk->mx_status));
	metrics_add("stsproxy_dns_failures_total", labels, 1);
	log_notice("session=%s event=mx_lookup_failed domain=%s to=%s status=%s reason=%s",
	    txn->session, txn->domain, upstream_txn_recipients(txn), mx_status_name(walk->mx_status),
	    log_quote(walk->mx_reason));
}

/*
 * The reply when no MX met what enforce or DANE asks of it: what the
 * client gets, and what testing under simulate = enforce logs, with the
 * regimes that failed named first. Spec §11 by the kinds of failure:
 * only STARTTLS missing is 4.7.4, any certificate, policy or DANE
 * failure 4.7.5, failed TLSA lookups 4.4.3. STS-41/43: never 5xx.
 */
static void
defer_reply(const struct mx_walk *walk, bool enforce, bool dane, struct smtp_reply *r)
{
	const char *session = walk->txn->session, *why = failures(walk, "no MX host could be tried");
	const char *who = enforce && dane ? "MTA-STS and DANE: " : enforce ? "MTA-STS: " : "DANE: ";
	unsigned k = walk->fail_kinds;

	if (k == 1u << MX_FAIL_STARTTLS)
		smtp_reply_own(r, session, 451, "4.7.4", "%s%s", who, why);
	else if (k & (1u << MX_FAIL_POLICY | 1u << MX_FAIL_STARTTLS))
		smtp_reply_own(r, session, 451, "4.7.5", "%s%s", who, why);
	else if (k & 1u << MX_FAIL_DNS)
		smtp_reply_own(r, session, 451, "4.4.3", "%s%s", who, why);
	else
		smtp_reply_own(r, session, 451, "4.4.1", "%sno MX reachable: %s", who, why);
}

/* No MX left: the reply every recipient of this transaction gets (spec §11). */
static void
give_up(struct mx_walk *walk, struct smtp_reply *r)
{
	const struct upstream_txn *txn = walk->txn;
	const char *why = failures(walk, "no MX host could be tried");
	bool enforce = walk->phase == PHASE_STRICT && txn->policy.mode == STS_MODE_ENFORCE;

	if (enforce || walk->dane_failed) {
		if (enforce)
			metrics_add("stsproxy_policy_deferrals_total", "", 1);
		if (walk->dane_failed)
			metrics_add("stsproxy_dane_deferrals_total", "", 1);
		defer_reply(walk, enforce, walk->dane_failed, r);
	} else
		smtp_reply_own(r, txn->session, 451, "4.4.1", "No MX of %s reachable: %s",
		    txn->domain, why);
	log_notice("session=%s event=deferred domain=%s to=%s mode=%s attempts=%u reason=%s",
	    txn->session, txn->domain, upstream_txn_recipients(txn), upstream_txn_mode(txn),
	    walk->attempts, log_quote(why));
}

/* The strict phase found nothing: enforce defers, testing falls back. */
static bool
strict_phase_exhausted(struct mx_walk *walk)
{
	struct upstream_txn *txn = walk->txn;

	if (txn->policy.mode != STS_MODE_TESTING)
		return false;
	txn->policy.would_defer = true;
	log_notice("session=%s event=would_defer domain=%s to=%s mode=testing policy_id=%s reason=%s",
	    txn->session, txn->domain, upstream_txn_recipients(txn),
	    txn->policy.id ? txn->policy.id : "-", log_quote(failures(walk, "no MX")));
	if (strcmp(walk->conf->policy_simulate, "enforce") == 0) {
		struct smtp_reply r;
		char *flat;

		smtp_reply_init(&r);
		defer_reply(walk, true, walk->dane_failed, &r);
		flat = smtp_reply_flatten(&r);
		log_notice("session=%s event=sts_simulate domain=%s to=%s mode=enforce result=defer "
		    "reply=%s", txn->session, txn->domain, upstream_txn_recipients(txn),
		    log_quote(flat));
		free(flat);
		smtp_reply_clear(&r);
	}
	walk->phase = PHASE_OPPORTUNISTIC;
	walk->host_i = walk->addr_i = 0;
	walk->host_checked = false;
	return true;
}

/* Past the current MX host, to the first address of the next. */
static void
next_host(struct mx_walk *walk)
{
	walk->host_i++;
	walk->addr_i = 0;
	walk->host_checked = false;
}

static bool
dane_pending(const struct mx_walk *walk, size_t i)
{
	return walk->dane_on && walk->dane[i].tlsa == NULL;
}

static size_t
dane_pending_count(const struct mx_walk *walk)
{
	size_t n = 0;

	for (size_t i = 0; i < walk->nhosts; i++)
		n += dane_pending(walk, i);
	return n;
}

static bool
dane_usable(const struct mx_walk *walk, size_t i)
{
	return walk->dane_on && walk->dane[i].tlsa != NULL &&
	    walk->dane[i].tlsa->state == DANE_S_USABLE;
}

/*
 * simulate = enforce, for a domain that publishes TLSA records for some
 * MX but is not dane-only: the walk is about to deliver to host_i
 * without DANE. Had DOMAIN:dane-only been set, would the message have
 * been deferred? Certainly when no later MX has usable TLSA records
 * either; then log the reply it would have got, once.
 */
static void
simulate_dane_only(struct mx_walk *walk)
{
	const struct upstream_txn *txn = walk->txn;
	bool capable = false;
	struct strbuf why;
	struct smtp_reply r;
	char *flat;

	if (walk->dane_simulated || !walk->dane_on || walk->dane_required ||
	    strcmp(walk->conf->policy_simulate, "enforce") != 0)
		return;
	for (size_t i = 0; i < walk->nhosts; i++) {
		if (i >= walk->host_i && (dane_pending(walk, i) || dane_usable(walk, i)))
			return;		/* dane-only would still try that one, or cannot tell yet */
		capable |= dane_usable(walk, i);
	}
	if (!capable)
		return;			/* no TLSA anywhere: dane-only is not what this domain is about */
	walk->dane_simulated = true;
	strbuf_init(&why);
	strbuf_printf(&why, "%s", walk->failures.data ? walk->failures.data : "");
	for (size_t i = walk->host_i; i < walk->nhosts; i++)
		strbuf_printf(&why, "%s%s no usable TLSA record, DANE required", why.len ? "; " : "",
		    walk->hosts[i].name);
	smtp_reply_init(&r);
	smtp_reply_own(&r, txn->session, 451, "4.7.5", "DANE: %s", why.data);
	flat = smtp_reply_flatten(&r);
	metrics_add("stsproxy_dane_simulated_deferrals_total", "", 1);
	log_notice("session=%s event=dane_simulate domain=%s to=%s mode=dane-only result=defer "
	    "reply=%s", txn->session, txn->domain, upstream_txn_recipients(txn), log_quote(flat));
	free(flat);
	smtp_reply_clear(&r);
	strbuf_free(&why);
}

/*
 * host_i is about to be tried: its regime (DANE, MTA-STS, opportunistic)
 * from its DANE facts. false when the regime makes it unreachable
 * (DANE-3, DANE-17): recorded and named in the reply.
 */
static bool
host_regime(struct mx_walk *walk)
{
	const struct mx_host *h = &walk->hosts[walk->host_i];
	const struct dane_slot *d = walk->dane_on ? &walk->dane[walk->host_i] : NULL;

	route_regime_decide(d ? d->tlsa : NULL, walk->dane_required, walk->phase == PHASE_STRICT,
	    &walk->regime);
	if (walk->regime.kind != REGIME_UNREACHABLE)
		return true;
	walk->dane_failed = true;
	upstream_record_unreachable(walk->txn, h->name, &walk->regime);
	add_failure(walk, walk->regime.failure == RPT_RESULT_DNSSEC_INVALID ? MX_FAIL_DNS :
	    MX_FAIL_POLICY, h->name, walk->regime.reason);
	log_info("session=%s event=mx_unusable domain=%s mx=%s result=%s reason=%s",
	    walk->txn->session, walk->txn->domain, h->name, rpt_result_type_name(walk->regime.failure),
	    log_quote(walk->regime.reason));
	return false;
}

enum mx_walk_step
mx_walk_next(struct mx_walk *walk, struct mx_route *route, struct smtp_reply *reply)
{
	if (walk->mx_status != MX_STATUS_OK) {
		resolution_failed(walk, reply);
		return MX_WALK_GIVE_UP;
	}
	for (;;) {
		const struct mx_host *h;

		if (walk->plaintext_retry) {
			/* Same address again, without STARTTLS. */
			walk->plaintext_retry = false;
			walk->route.plaintext = true;
			walk->attempts++;
			*route = walk->route;
			return MX_WALK_TRY;
		}
		if (walk->host_i >= walk->nhosts) {
			if (walk->phase == PHASE_STRICT && strict_phase_exhausted(walk))
				continue;
			give_up(walk, reply);
			return MX_WALK_GIVE_UP;
		}
		if (walk->attempts >= walk->conf->upstream_max_attempts) {
			add_failure(walk, MX_FAIL_CONNECT, "and", "no more attempts ([upstream] max_attempts)");
			give_up(walk, reply);
			return MX_WALK_GIVE_UP;
		}
		h = &walk->hosts[walk->host_i];
		if (!walk->host_checked) {
			/* STS-47: the mx filter applies to every MX, DANE or not. */
			if (walk->phase == PHASE_STRICT &&
			    !mx_match_any(&walk->txn->policy.patterns, h->name, NULL)) {
				/* STS-36a, STS-54: treated as unreachable. */
				upstream_record_skipped(walk->txn, h->name);
				add_failure(walk, MX_FAIL_POLICY, h->name, "not in policy");
				next_host(walk);
				continue;
			}
			if (h->naddrs == 0) {
				add_failure(walk, MX_FAIL_CONNECT, h->name, "has no address");
				next_host(walk);
				continue;
			}
			/* DANE-4: the order stays; only this host's answer is awaited. */
			if (dane_pending(walk, walk->host_i)) {
				walk->waiting = true;
				return MX_WALK_WAIT;
			}
			walk->host_checked = true;
			if (!host_regime(walk)) {
				next_host(walk);
				continue;
			}
			if (walk->regime.kind != REGIME_DANE)
				simulate_dane_only(walk);
		}
		if (walk->addr_i >= h->naddrs) {
			next_host(walk);
			continue;
		}
		walk->route.mx_host = h->name;
		walk->route.addr = h->addrs[walk->addr_i++];
		walk->route.strict = walk->phase == PHASE_STRICT;
		walk->route.plaintext = false;
		walk->route.regime = walk->regime;
		walk->route.dane_names = walk->dane_on ? &walk->dane[walk->host_i].names : NULL;
		walk->attempts++;
		*route = walk->route;
		return MX_WALK_TRY;
	}
}

/* MX set and policy are both known: choose the phase, tell the owner. */
static void
resolution_done(struct mx_walk *walk)
{
	const struct upstream_policy *p = &walk->txn->policy;

	if (!walk->mx_done || !walk->policy_done)
		return;
	walk->phase = p->have && (p->mode == STS_MODE_ENFORCE || p->mode == STS_MODE_TESTING) ?
	    PHASE_STRICT : PHASE_OPPORTUNISTIC;
	walk->ready(walk->arg);
}

/* Host i's DANE facts are in (tlsa owned from now on). */
static void
dane_known(struct mx_walk *walk, size_t i, struct dane_tlsa *tlsa)
{
	struct dane_slot *d = &walk->dane[i];

	d->tlsa = tlsa;
	strlist_clear(&d->names);
	dane_reference_ids(tlsa, walk->txn->domain, walk->mx_canonname, walk->mx_secure, &d->names);
	log_info("session=%s event=tlsa domain=%s mx=%s state=%s base=%s records=%zu usable=%zu "
	    "reason=%s", walk->txn->session, walk->txn->domain, walk->hosts[i].name,
	    dane_state_name(tlsa->state), tlsa->base[0] ? tlsa->base : "-", tlsa->count, tlsa->usable,
	    log_quote(tlsa->reason));
	if (walk->waiting && walk->host_i == i) {
		walk->waiting = false;
		walk->ready(walk->arg);
	}
}

static void
on_dane(void *arg, size_t i, struct dane_tlsa *tlsa)
{
	struct mx_walk *walk = arg;

	/* the last answer: the handle is gone */
	if (walk->dane_lookups != NULL && dane_pending_count(walk) == 1)
		walk->dane_lookups = NULL;
	dane_known(walk, i, tlsa);
}

static void
dane_slots(struct mx_walk *walk)
{
	walk->dane = xcalloc(walk->nhosts ? walk->nhosts : 1, sizeof(*walk->dane));
}

/* DANE-1 ... DANE-7: every host's TLSA records, in parallel, as the MX set arrives. */
static void
dane_start(struct mx_walk *walk)
{
	dane_slots(walk);
	walk->dane_lookups = dane_hosts_start(walk->rt->resolver, walk->hosts, walk->nhosts,
	    walk->mx_secure, walk->conf->upstream_port, on_dane, walk);
}

static void
on_mx_set(void *arg, const struct mx_set *set)
{
	struct mx_walk *walk = arg;
	struct strbuf list;

	walk->mx_lookup = NULL;
	walk->mx_done = true;
	walk->mx_status = set->status;
	walk->mx_reason = xstrdup(set->reason ? set->reason : "");
	walk->mx_secure = set->mx_secure;
	walk->mx_canonname = xstrdup(set->canonname);
	if (set->nhosts > 0) {
		walk->hosts = xcalloc(set->nhosts, sizeof(*walk->hosts));
		memcpy(walk->hosts, set->hosts, set->nhosts * sizeof(*walk->hosts));
		walk->nhosts = set->nhosts;
	}
	if (walk->dane_on && set->status == MX_STATUS_OK)
		dane_start(walk);
	else
		walk->dane_on = false;
	strbuf_init(&list);
	for (size_t i = 0; i < walk->nhosts; i++)
		strbuf_printf(&list, "%s%u:%s/%zu", i ? "," : "", walk->hosts[i].preference,
		    walk->hosts[i].name, walk->hosts[i].naddrs);
	log_info("session=%s event=mx_set domain=%s status=%s dnssec=%s mx=%s", walk->txn->session,
	    walk->txn->domain, mx_status_name(set->status), set->mx_secure ? "secure" : "insecure",
	    list.data ? list.data : "-");
	strbuf_free(&list);
	resolution_done(walk);
}

static void
on_policy(void *arg, const struct policy_result *res)
{
	struct mx_walk *walk = arg;
	struct upstream_txn *txn = walk->txn;
	struct upstream_policy *p = &txn->policy;
	char labels[64];

	walk->policy_lookup = NULL;
	walk->policy_done = true;
	snprintf(labels, sizeof(labels), "source=\"%s\"", policy_source_name(res->source));
	metrics_add("stsproxy_policy_lookups_total", labels, 1);
	if (res->failure != RPT_RESULT_NONE) {
		snprintf(labels, sizeof(labels), "result=\"%s\"", rpt_result_type_name(res->failure));
		metrics_add("stsproxy_policy_failures_total", labels, 1);
	}
	if (res->source != POLICY_SOURCE_NONE && res->policy != NULL) {
		p->have = true;
		p->mode = res->mode;
		p->id = xstrdup(res->id ? res->id : "");
		strlist_copy(&p->patterns, &res->policy->mx);
		strlist_copy(&p->lines, &res->policy->lines);
	}
	log_info("session=%s event=policy domain=%s source=%s mode=%s id=%s%s%s note=%s",
	    txn->session, txn->domain, policy_source_name(res->source),
	    p->have ? sts_mode_name(p->mode) : "none", p->id ? p->id : "-",
	    res->override_mode ? " override=" : "", res->override_mode ? res->override_mode : "",
	    log_quote(res->note ? res->note : ""));
	if (res->failure != RPT_RESULT_NONE && res->failure_reportable)
		upstream_record_policy_failure(txn, res->failure, res->failure_reason);
	resolution_done(walk);
}

static void
kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	resolution_done(arg);
}

static struct mx_walk *
walk_alloc(struct runtime *rt, struct upstream_txn *txn, mx_walk_ready_cb ready, void *arg)
{
	struct mx_walk *walk = xcalloc(1, sizeof(*walk));

	walk->rt = rt;
	walk->conf = rt->conf;
	walk->txn = txn;
	walk->ready = ready;
	walk->arg = arg;
	walk->kick = event_new(rt->base, -1, 0, kick, walk);
	strbuf_init(&walk->failures);
	/* RPT-18: a TLS report goes out without MTA-STS or DANE. */
	walk->dane_on = rt->conf->tls_dane && !(txn->flags & UPSTREAM_F_NO_POLICY);
	walk->dane_required = walk->dane_on && conf_dane_required(rt->conf, txn->domain);
	return walk;
}

struct mx_walk *
mx_walk_new_resolved(struct runtime *rt, struct upstream_txn *txn, const struct mx_host *hosts,
    size_t nhosts, mx_walk_ready_cb ready, void *arg)
{
	struct mx_walk *walk = walk_alloc(rt, txn, ready, arg);

	/* Nothing is looked up here: DANE only through mx_walk_set_dane(). */
	walk->dane_on = false;
	walk->dane_required = false;
	walk->mx_done = walk->policy_done = true;
	walk->mx_status = nhosts ? MX_STATUS_OK : MX_STATUS_NO_HOSTS;
	walk->mx_reason = xstrdup(nhosts ? "" : "no hosts given");
	if (nhosts > 0) {
		walk->hosts = xcalloc(nhosts, sizeof(*walk->hosts));
		memcpy(walk->hosts, hosts, nhosts * sizeof(*hosts));
		walk->nhosts = nhosts;
	}
	event_active(walk->kick, EV_TIMEOUT, 0);
	return walk;
}

struct mx_walk *
mx_walk_new(struct runtime *rt, struct upstream_txn *txn, mx_walk_ready_cb ready, void *arg)
{
	struct mx_walk *walk = walk_alloc(rt, txn, ready, arg);

	/* MX set and policy in parallel; the walk starts when both are in. */
	walk->mx_lookup = mx_resolve(rt->resolver, txn->domain, rt->hostname, rt->conf->upstream_ipv6,
	    rt->conf->upstream_port, on_mx_set, walk);
	if (walk->mx_lookup == NULL) {
		walk->mx_done = true;
		walk->mx_status = MX_STATUS_TEMPFAIL;
		walk->mx_reason = xstrdup("the resolver could not start the MX lookup");
	}
	if (!(txn->flags & UPSTREAM_F_NO_POLICY))
		walk->policy_lookup = policy_engine_resolve(rt->engine, txn->domain, 0, on_policy, walk);
	if (walk->policy_lookup == NULL)
		walk->policy_done = true;
	if (walk->mx_done && walk->policy_done)
		event_active(walk->kick, EV_TIMEOUT, 0);
	return walk;
}

void
mx_walk_set_dane(struct mx_walk *walk, size_t i, struct dane_tlsa *tlsa, bool mx_secure)
{
	if (i >= walk->nhosts)
		fatalx("mx_walk_set_dane: no host %zu", i);
	if (!walk->dane_on) {
		walk->dane_on = true;
		walk->dane_required = conf_dane_required(walk->conf, walk->txn->domain);
		dane_slots(walk);
		for (size_t k = 0; k < walk->nhosts; k++)
			walk->dane[k].tlsa = dane_tlsa_new(walk->hosts[k].name);	/* DANE_S_OFF */
	}
	walk->mx_secure = mx_secure;
	dane_tlsa_free(walk->dane[i].tlsa);
	walk->dane[i].tlsa = NULL;
	if (tlsa != NULL)
		dane_known(walk, i, tlsa);
}

void
mx_walk_free(struct mx_walk *walk)
{
	if (walk == NULL)
		return;
	dane_hosts_cancel(walk->dane_lookups);
	for (size_t i = 0; walk->dane != NULL && i < walk->nhosts; i++) {
		dane_tlsa_free(walk->dane[i].tlsa);
		strlist_clear(&walk->dane[i].names);
	}
	free(walk->dane);
	free(walk->mx_canonname);
	event_free(walk->kick);
	mx_lookup_cancel(walk->mx_lookup);
	if (walk->policy_lookup != NULL)
		policy_lookup_cancel(walk->policy_lookup);
	free(walk->mx_reason);
	free(walk->hosts);
	strbuf_free(&walk->failures);
	free(walk);
}

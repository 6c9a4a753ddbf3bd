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
 * The reply when the strict walk found no MX meeting the policy: what
 * enforce gives the client, and what testing under simulate = enforce
 * logs. STS-41/43: never 5xx for a policy failure.
 */
static void
policy_defer_reply(const struct mx_walk *walk, struct smtp_reply *r)
{
	const char *session = walk->txn->session, *why = failures(walk, "no MX host could be tried");

	if (walk->fail_kinds == 1u << MX_FAIL_STARTTLS)
		smtp_reply_own(r, session, 451, "4.7.4", "MTA-STS: %s", why);
	else if (walk->fail_kinds & (1u << MX_FAIL_POLICY | 1u << MX_FAIL_STARTTLS))
		smtp_reply_own(r, session, 451, "4.7.5", "MTA-STS: %s", why);
	else
		smtp_reply_own(r, session, 451, "4.4.1", "MTA-STS: no MX reachable: %s", why);
}

/* No MX left: the reply every recipient of this transaction gets (spec §11). */
static void
give_up(struct mx_walk *walk, struct smtp_reply *r)
{
	const struct upstream_txn *txn = walk->txn;
	const char *why = failures(walk, "no MX host could be tried");

	if (walk->phase == PHASE_STRICT && txn->policy.mode == STS_MODE_ENFORCE) {
		metrics_add("stsproxy_policy_deferrals_total", "", 1);
		policy_defer_reply(walk, r);
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
		policy_defer_reply(walk, &r);
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
			walk->host_checked = true;
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
		}
		if (walk->addr_i >= h->naddrs) {
			next_host(walk);
			continue;
		}
		walk->route.mx_host = h->name;
		walk->route.addr = h->addrs[walk->addr_i++];
		walk->route.strict = walk->phase == PHASE_STRICT;
		walk->route.plaintext = false;
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

static void
on_mx_set(void *arg, const struct mx_set *set)
{
	struct mx_walk *walk = arg;
	struct strbuf list;

	walk->mx_lookup = NULL;
	walk->mx_done = true;
	walk->mx_status = set->status;
	walk->mx_reason = xstrdup(set->reason ? set->reason : "");
	if (set->nhosts > 0) {
		walk->hosts = xcalloc(set->nhosts, sizeof(*walk->hosts));
		memcpy(walk->hosts, set->hosts, set->nhosts * sizeof(*walk->hosts));
		walk->nhosts = set->nhosts;
	}
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
	return walk;
}

struct mx_walk *
mx_walk_new_resolved(struct runtime *rt, struct upstream_txn *txn, const struct mx_host *hosts,
    size_t nhosts, mx_walk_ready_cb ready, void *arg)
{
	struct mx_walk *walk = walk_alloc(rt, txn, ready, arg);

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
mx_walk_free(struct mx_walk *walk)
{
	if (walk == NULL)
		return;
	event_free(walk->kick);
	mx_lookup_cancel(walk->mx_lookup);
	if (walk->policy_lookup != NULL)
		policy_lookup_cancel(walk->policy_lookup);
	free(walk->mx_reason);
	free(walk->hosts);
	strbuf_free(&walk->failures);
	free(walk);
}

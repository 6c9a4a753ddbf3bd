#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "conf/idna.h"
#include "conf/log.h"
#include "conf/netaddr.h"
#include "policy/dane.h"
#include "policy/mx_match.h"
#include "policy/mx_resolve.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "proxy/runtime.h"

struct policy_cmd {
	struct runtime	*rt;
	const char	*path;		/* the configuration file, NULL: embedded defaults */
	const char	*domain;
	bool		 json;
	int		 status;

	/* the policy part, kept until the MX part is in too */
	bool		 policy_done;
	json_t		*doc;		/* --json */
	char		*text;		/* text output so far */
	size_t		 text_len;
	bool		 sts_strict;	/* enforce or testing: the MX filter and PKIX apply */
	struct strlist	 patterns;	/* its mx patterns */

	/* the MX set and every host's DANE facts */
	struct mx_lookup *mx_lookup;
	struct dane_hosts *dane_lookups;
	bool		 mx_done;
	enum mx_status	 mx_status;
	char		*mx_reason;
	bool		 mx_secure;
	char		*mx_canonname;
	struct mx_host	*hosts;
	size_t		 nhosts, dane_pending;
	struct dane_tlsa **tlsa;	/* [nhosts]; NULL entries with DANE off */
};

static void maybe_finish(struct policy_cmd *pc);

static json_t *
json_strlist(const struct strlist *l)
{
	json_t *a = json_array();

	for (size_t i = 0; l != NULL && i < l->count; i++)
		json_array_append_new(a, json_string(l->items[i]));
	return a;
}

static json_t *
json_time(time_t t)
{
	char buf[32];

	return t == 0 ? json_null() : json_string(format_time(t, buf, sizeof(buf)));
}

static json_t *
json_string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* Which configuration, state_dir and DNS the answer came from. */
static json_t *
json_config(const struct conf *conf, const char *path)
{
	return json_pack("{s:s?, s:s, s:o, s:b}", "file", path, "state_dir", conf->state_dir,
	    "dns_forwarders", json_strlist(&conf->dns_forwarders), "dnssec", conf->dns_dnssec);
}

/*
 * Why the lookup itself failed, leaving nothing to act on, or NULL: the
 * TXT query got no usable answer (SERVFAIL, timeout, DNSSEC bogus), or the
 * record announced a policy whose host gave no HTTP answer at all. Not a
 * failure: a definite answer (no record, HTTP 404, a bad certificate or
 * policy), or a cached policy that applies meanwhile (STS-10, STS-19).
 */
static const char *
lookup_failure(const struct policy_result *r, char *buf, size_t len)
{
	if (r->source != POLICY_SOURCE_NONE)
		return NULL;
	switch (r->txt_status) {
	case DNS_STATUS_SERVFAIL:
	case DNS_STATUS_TIMEOUT:
	case DNS_STATUS_BOGUS:
	case DNS_STATUS_ERROR:
		snprintf(buf, len, "the TXT lookup of _mta-sts.%s failed (%s)", r->domain,
		    dns_status_name(r->txt_status));
		return buf;
	default:
		break;
	}
	if (r->fetch != NULL && !r->fetch->ok && r->fetch->http_status == 0 && !r->fetch->tls_done &&
	    r->fetch->type == RPT_RESULT_STS_POLICY_FETCH_ERROR) {
		snprintf(buf, len, "the policy fetch from %s got no answer (%s)", r->fetch->url,
		    r->fetch->reason);
		return buf;
	}
	return NULL;
}

static json_t *
policy_json(const struct policy_cmd *pc, const struct policy_result *r)
{
	json_t *o = json_object(), *txt = json_object(), *v = json_object();
	char *txtname = xasprintf("_mta-sts.%s", r->domain), failed[1024];
	const char *why = lookup_failure(r, failed, sizeof(failed));

	json_object_set_new(o, "config", json_config(pc->rt->conf, pc->path));
	json_object_set_new(o, "domain", json_string(r->domain));
	json_object_set_new(v, "mode", json_string(r->source == POLICY_SOURCE_NONE ? "no-policy" :
	    sts_mode_name(r->mode)));
	json_object_set_new(v, "source", json_string(policy_source_name(r->source)));
	json_object_set_new(v, "id", json_string_or_null(r->id));
	json_object_set_new(v, "override", json_string_or_null(r->override_mode));
	json_object_set_new(v, "note", json_string_or_null(r->note));
	json_object_set_new(v, "lookup_failed", json_string_or_null(why));
	json_object_set_new(o, "verdict", v);

	json_object_set_new(txt, "name", json_string(txtname));
	json_object_set_new(txt, "status", json_string(dns_status_name(r->txt_status)));
	json_object_set_new(txt, "dnssec", json_string(dns_security_name(r->txt_security)));
	json_object_set_new(txt, "canonical_name", json_string_or_null(r->txt_canonname));
	json_object_set_new(txt, "records", json_strlist(r->txt_records));
	json_object_set_new(txt, "record_status", json_string(sts_record_status_name(r->txt.status)));
	json_object_set_new(txt, "id", r->txt.status == STS_RECORD_VALID ? json_string(r->txt.id) :
	    json_null());
	json_object_set_new(txt, "reason", r->txt.status == STS_RECORD_VALID ? json_null() :
	    json_string(r->txt.reason));
	json_object_set_new(o, "txt", txt);
	free(txtname);

	if (r->fetch != NULL) {
		const struct fetch_result *f = r->fetch;
		json_t *fo = json_object();

		json_object_set_new(fo, "url", json_string(f->url));
		json_object_set_new(fo, "address", json_string(f->address));
		json_object_set_new(fo, "ok", json_boolean(f->ok));
		json_object_set_new(fo, "http_status", f->http_status ? json_integer(f->http_status) :
		    json_null());
		json_object_set_new(fo, "content_type", f->http_status ? json_string(f->content_type) :
		    json_null());
		if (f->tls_done) {
			json_t *t = json_object();

			json_object_set_new(t, "version", json_string(f->peer.version));
			json_object_set_new(t, "cipher", json_string(f->peer.cipher));
			json_object_set_new(t, "subject", json_string(f->peer.subject));
			json_object_set_new(t, "issuer", json_string(f->peer.issuer));
			json_object_set_new(t, "not_after", json_time(f->peer.not_after));
			json_object_set_new(fo, "tls", t);
		} else {
			json_object_set_new(fo, "tls", json_null());
		}
		json_object_set_new(fo, "result_type", f->ok ? json_null() :
		    json_string(rpt_result_type_name(f->type)));
		json_object_set_new(fo, "reason", f->ok ? json_null() : json_string(f->reason));
		json_object_set_new(o, "fetch", fo);
	} else {
		json_object_set_new(o, "fetch", json_null());
	}

	if (r->policy != NULL) {
		json_t *p = json_object();

		json_object_set_new(p, "mode", json_string(sts_mode_name(r->policy->mode)));
		json_object_set_new(p, "max_age", json_integer((json_int_t)r->policy->max_age));
		json_object_set_new(p, "mx", json_strlist(&r->policy->mx));
		json_object_set_new(p, "lines", json_strlist(&r->policy->lines));
		json_object_set_new(p, "fetched_at", json_time(r->fetched_at));
		json_object_set_new(p, "expires_at", json_time(r->expires_at));
		json_object_set_new(o, "policy", p);
	} else {
		json_object_set_new(o, "policy", json_null());
	}

	if (r->failure != RPT_RESULT_NONE) {
		json_t *f = json_object();

		json_object_set_new(f, "result_type", json_string(rpt_result_type_name(r->failure)));
		json_object_set_new(f, "reason", json_string_or_null(r->failure_reason));
		json_object_set_new(f, "reportable", json_boolean(r->failure_reportable));
		json_object_set_new(f, "backoff", json_boolean(r->backoff));
		json_object_set_new(f, "next_fetch_at", json_time(r->next_fetch_at));
		json_object_set_new(o, "failure", f);
	} else {
		json_object_set_new(o, "failure", json_null());
	}
	json_t *d = json_array();
	for (size_t i = 0; r->parse_diags && i < r->parse_diags->count; i++) {
		const struct policy_diag *pd = &r->parse_diags->items[i];
		json_t *x = json_object();

		json_object_set_new(x, "line", json_integer(pd->line));
		json_object_set_new(x, "severity", json_string(pd->severity == POLICY_DIAG_ERROR ?
		    "error" : "warning"));
		json_object_set_new(x, "tolerated", json_boolean(pd->tolerated));
		json_object_set_new(x, "message", json_string(pd->message));
		json_array_append_new(d, x);
	}
	json_object_set_new(o, "diagnostics", d);
	json_object_set_new(o, "cache", json_pack("{s:b}", "enabled", r->cache_enabled));
	return o;
}

static void
policy_text(FILE *out, const struct policy_cmd *pc, const struct policy_result *r)
{
	char t1[32], t2[32], failed[1024];
	const char *why = lookup_failure(r, failed, sizeof(failed));

	format_config_header(out, pc->rt->conf, pc->path);
	fprintf(out, "domain:   %s\n", r->domain);
	fprintf(out, "txt:      _mta-sts.%s  status=%s dnssec=%s%s%s\n", r->domain,
	    dns_status_name(r->txt_status), dns_security_name(r->txt_security),
	    r->txt_canonname ? " cname=" : "", r->txt_canonname ? r->txt_canonname : "");
	for (size_t i = 0; i < r->txt_records->count; i++)
		fprintf(out, "  record: \"%s\"\n", r->txt_records->items[i]);
	if (r->txt.status == STS_RECORD_VALID)
		fprintf(out, "  valid, id=%s\n", r->txt.id);
	else
		fprintf(out, "  %s: %s\n", sts_record_status_name(r->txt.status), r->txt.reason);
	if (r->fetch != NULL) {
		const struct fetch_result *f = r->fetch;

		fprintf(out, "fetch:    %s\n", f->url);
		if (f->address[0])
			fprintf(out, "  address: %s\n", f->address);
		if (f->tls_done)
			fprintf(out, "  tls:     %s %s\n  cert:    subject=%s issuer=%s expires=%s\n",
			    f->peer.version, f->peer.cipher, f->peer.subject, f->peer.issuer,
			    format_time(f->peer.not_after, t1, sizeof(t1)));
		if (f->http_status)
			fprintf(out, "  http:    %d, Content-Type: %s\n", f->http_status,
			    f->content_type[0] ? f->content_type : "(none)");
		if (!f->ok)
			fprintf(out, "  failed:  %s (%s)\n", f->reason, rpt_result_type_name(f->type));
	}
	for (size_t i = 0; r->parse_diags && i < r->parse_diags->count; i++)
		fprintf(out, "  policy line %d: %s: %s\n", r->parse_diags->items[i].line,
		    r->parse_diags->items[i].severity == POLICY_DIAG_WARNING ? "warning" :
		    r->parse_diags->items[i].tolerated ? "error (tolerated)" : "error",
		    r->parse_diags->items[i].message);
	if (r->policy != NULL) {
		fprintf(out, "policy:   id=%s mode=%s max_age=%lu fetched=%s expires=%s\n", r->id,
		    sts_mode_name(r->policy->mode), r->policy->max_age,
		    format_time(r->fetched_at, t1, sizeof(t1)),
		    format_time(r->expires_at, t2, sizeof(t2)));
		for (size_t i = 0; i < r->policy->mx.count; i++)
			fprintf(out, "  mx:     %s\n", r->policy->mx.items[i]);
	}
	if (r->failure != RPT_RESULT_NONE)
		fprintf(out, "failure:  %s: %s%s%s\n", rpt_result_type_name(r->failure),
		    r->failure_reason ? r->failure_reason : "",
		    r->backoff ? " (back-off)" : "", r->failure_reportable ? "" : " (not reported)");
	fprintf(out, "cache:    %s\n", r->cache_enabled ? "enabled" : "disabled");
	if (why != NULL) {
		/* Not the engine's note, which says what a sender does: "no policy applies". */
		/* STS-10, STS-19 */
		fprintf(out, "verdict:  unknown: %s; nothing is cached, so until it answers senders deliver "
		    "without MTA-STS (a lookup or fetch that fails never holds mail back by itself)\n",
		    why);
		return;
	}
	fprintf(out, "verdict:  %s%s%s (%s)\n", r->source == POLICY_SOURCE_NONE ? "no policy" :
	    sts_mode_name(r->mode), r->override_mode ? " by override, policy says " : "",
	    r->override_mode ? sts_mode_name(r->policy->mode) : "", policy_source_name(r->source));
	if (r->note)
		fprintf(out, "  %s\n", r->note);
}

static void
policy_done(void *arg, const struct policy_result *r)
{
	struct policy_cmd *pc = arg;
	char failed[1024];
	const char *why = lookup_failure(r, failed, sizeof(failed));

	if (pc->json) {
		pc->doc = policy_json(pc, r);
	} else {
		FILE *out = open_memstream(&pc->text, &pc->text_len);

		if (out == NULL)
			fatalx("open_memstream failed");
		policy_text(out, pc, r);
		fclose(out);
	}
	/* "No policy" would be a guess: say the lookup failed, and why. */
	if (why != NULL) {
		fprintf(stderr, "stsproxy: %s: lookup failed: %s\n", r->domain, why);
		pc->status = EXIT_ERROR;
	} else
		pc->status = (r->source != POLICY_SOURCE_NONE && r->mode != STS_MODE_NONE) ?
		    EXIT_POLICY : EXIT_NO_POLICY;
	/* What the relay's walk would make of each MX: enforce and testing
	 * are evaluated strictly (testing then falls back, STS-44). */
	pc->sts_strict = r->source != POLICY_SOURCE_NONE && r->policy != NULL &&
	    (r->mode == STS_MODE_ENFORCE || r->mode == STS_MODE_TESTING);
	if (pc->sts_strict)
		strlist_copy(&pc->patterns, &r->policy->mx);
	pc->policy_done = true;
	maybe_finish(pc);
}

/* ---- the MX set, each host's DANE facts and the regime that governs it ---- */

/* The regime of host i as the relay's walk decides it, with why. */
static const char *
host_regime(const struct policy_cmd *pc, size_t i, char *why, size_t len)
{
	const struct mx_host *h = &pc->hosts[i];
	struct route_regime rg;

	if (pc->sts_strict && !mx_match_any(&pc->patterns, h->name, NULL)) {
		/* STS-47: the enforce filter applies to every MX, DANE or not. */
		snprintf(why, len, "not in the MTA-STS policy's mx patterns%s",
		    pc->tlsa[i] != NULL && pc->tlsa[i]->state == DANE_S_USABLE ?
		    ", usable TLSA records or not (RFC 8461 section 2)" : "");
		return "skipped";
	}
	if (h->naddrs == 0) {
		snprintf(why, len, "no address");
		return "unreachable";
	}
	route_regime_decide(pc->tlsa[i], pc->rt->conf->tls_dane &&
	    conf_dane_required(pc->rt->conf, pc->domain), pc->sts_strict, &rg);
	snprintf(why, len, "%s", rg.reason);
	return regime_kind_name(rg.kind);
}

static const char *
addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	netaddr_ntop((const struct sockaddr *)ss, buf, len);
	return buf;
}

/* Whether the TLSA state came from a TLSA answer (its DNSSEC state means something). */
static bool
tlsa_asked(const struct dane_tlsa *t)
{
	return t != NULL && t->state != DANE_S_OFF && t->state != DANE_S_MX_INSECURE &&
	    t->state != DANE_S_ADDR_INSECURE;
}

static json_t *
mx_json(const struct policy_cmd *pc)
{
	json_t *m = json_object(), *hosts = json_array();
	char why[400], ip[64];

	json_object_set_new(m, "status", json_string(mx_status_name(pc->mx_status)));
	json_object_set_new(m, "reason", pc->mx_status == MX_STATUS_OK ? json_null() :
	    json_string(pc->mx_reason));
	json_object_set_new(m, "dnssec", json_string(pc->mx_secure ? "secure" : "insecure"));
	json_object_set_new(m, "canonical_name", json_string_or_null(pc->mx_canonname));
	json_object_set_new(m, "dane", json_boolean(pc->rt->conf->tls_dane));
	json_object_set_new(m, "dane_required", json_boolean(pc->rt->conf->tls_dane &&
	    conf_dane_required(pc->rt->conf, pc->domain)));
	for (size_t i = 0; i < pc->nhosts; i++) {
		const struct mx_host *h = &pc->hosts[i];
		const struct dane_tlsa *t = pc->tlsa[i];
		json_t *x = json_object(), *addrs = json_array();
		const char *regime = host_regime(pc, i, why, sizeof(why));

		for (size_t k = 0; k < h->naddrs; k++)
			json_array_append_new(addrs, json_string(addr_text(&h->addrs[k], ip, sizeof(ip))));
		json_object_set_new(x, "host", json_string(h->name));
		json_object_set_new(x, "preference", json_integer(h->preference));
		json_object_set_new(x, "addresses", addrs);
		json_object_set_new(x, "address_dnssec", h->naddrs ?
		    json_string(h->secure ? "secure" : "insecure") : json_null());
		json_object_set_new(x, "canonical_name", json_string_or_null(h->canonname[0] ?
		    h->canonname : NULL));
		if (t != NULL) {
			json_t *tj = json_object(), *recs = json_array();

			for (size_t k = 0; k < t->count; k++)
				json_array_append_new(recs, json_pack("{s:s, s:b, s:s?}", "record",
				    t->text.items[k], "usable", t->records[k].unusable == NULL,
				    "unusable", t->records[k].unusable));
			json_object_set_new(tj, "state", json_string(dane_state_name(t->state)));
			json_object_set_new(tj, "query", tlsa_asked(t) ? json_string(t->qname) : json_null());
			json_object_set_new(tj, "dnssec", tlsa_asked(t) && t->status != DNS_STATUS_ERROR ?
			    json_string(dns_security_name(t->security)) : json_null());
			json_object_set_new(tj, "base", json_string_or_null(t->base[0] ? t->base : NULL));
			json_object_set_new(tj, "id", json_string_or_null(t->id[0] ? t->id : NULL));
			json_object_set_new(tj, "reason", json_string(t->reason));
			json_object_set_new(tj, "records", recs);
			json_object_set_new(x, "tlsa", tj);
		} else
			json_object_set_new(x, "tlsa", json_null());
		json_object_set_new(x, "regime", json_string(regime));
		json_object_set_new(x, "reason", json_string(why));
		json_array_append_new(hosts, x);
	}
	json_object_set_new(m, "hosts", hosts);
	return m;
}

static void
mx_text(FILE *out, const struct policy_cmd *pc)
{
	char why[400], ip[64];

	fprintf(out, "mx:       status=%s dnssec=%s%s%s dane=%s%s\n", mx_status_name(pc->mx_status),
	    pc->mx_secure ? "secure" : "insecure", pc->mx_canonname ? " cname=" : "",
	    pc->mx_canonname ? pc->mx_canonname : "", pc->rt->conf->tls_dane ? "on" : "off",
	    pc->rt->conf->tls_dane && conf_dane_required(pc->rt->conf, pc->domain) ?
	    " (required: [policy] override dane-only)" : "");
	if (pc->mx_status != MX_STATUS_OK)
		fprintf(out, "  %s\n", pc->mx_reason);
	for (size_t i = 0; i < pc->nhosts; i++) {
		const struct mx_host *h = &pc->hosts[i];
		const struct dane_tlsa *t = pc->tlsa[i];
		const char *regime = host_regime(pc, i, why, sizeof(why));

		fprintf(out, "  %u %s", h->preference, h->name);
		if (h->canonname[0])
			fprintf(out, " (cname %s)", h->canonname);
		fprintf(out, "  address%s", h->naddrs == 1 ? "" : "es");
		for (size_t k = 0; k < h->naddrs; k++)
			fprintf(out, "%s%s", k ? ", " : " ", addr_text(&h->addrs[k], ip, sizeof(ip)));
		if (h->naddrs == 0)
			fprintf(out, " none");
		else
			fprintf(out, " dnssec=%s", h->secure ? "secure" : "insecure");
		fputc('\n', out);
		if (t != NULL && tlsa_asked(t))
			fprintf(out, "    tlsa:   %s %s dnssec=%s%s%s\n", t->qname, dane_state_name(t->state),
			    t->status == DNS_STATUS_ERROR ? "-" : dns_security_name(t->security),
			    t->base[0] ? " base=" : "", t->base);
		else if (t != NULL)
			fprintf(out, "    tlsa:   not asked: %s\n", t->reason);
		for (size_t k = 0; t != NULL && k < t->count; k++)
			fprintf(out, "      %s  %s%s\n", t->text.items[k],
			    t->records[k].unusable ? "unusable: " : "usable",
			    t->records[k].unusable ? t->records[k].unusable : "");
		fprintf(out, "    regime: %s: %s\n", regime, why);
	}
}

/* Both parts are in: one document. */
static void
maybe_finish(struct policy_cmd *pc)
{
	if (!pc->policy_done || !pc->mx_done)
		return;
	if (pc->json) {
		json_object_set_new(pc->doc, "mx", mx_json(pc));
		json_dumpf(pc->doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
	} else {
		fwrite(pc->text, 1, pc->text_len, stdout);
		mx_text(stdout, pc);
	}
	event_base_loopexit(pc->rt->base, NULL);
}

static void
on_dane_host(void *arg, size_t i, struct dane_tlsa *t)
{
	struct policy_cmd *pc = arg;

	pc->tlsa[i] = t;
	if (--pc->dane_pending > 0)
		return;
	pc->dane_lookups = NULL;
	pc->mx_done = true;
	maybe_finish(pc);
}

static void
on_mx_set(void *arg, const struct mx_set *set)
{
	struct policy_cmd *pc = arg;

	pc->mx_lookup = NULL;
	pc->mx_status = set->status;
	pc->mx_reason = xstrdup(set->reason ? set->reason : "");
	pc->mx_secure = set->mx_secure;
	pc->mx_canonname = xstrdup(set->canonname);
	pc->nhosts = set->nhosts;
	pc->hosts = xcalloc(set->nhosts ? set->nhosts : 1, sizeof(*pc->hosts));
	if (set->nhosts > 0)
		memcpy(pc->hosts, set->hosts, set->nhosts * sizeof(*pc->hosts));
	pc->tlsa = xcalloc(set->nhosts ? set->nhosts : 1, sizeof(*pc->tlsa));
	if (!pc->rt->conf->tls_dane || set->nhosts == 0) {
		pc->mx_done = true;
		maybe_finish(pc);
		return;
	}
	pc->dane_pending = set->nhosts;
	pc->dane_lookups = dane_hosts_start(pc->rt->resolver, pc->hosts, pc->nhosts, pc->mx_secure,
	    pc->rt->conf->upstream_port, on_dane_host, pc);
}

static void
policy_cmd_clear(struct policy_cmd *pc)
{
	mx_lookup_cancel(pc->mx_lookup);
	dane_hosts_cancel(pc->dane_lookups);
	for (size_t i = 0; pc->tlsa != NULL && i < pc->nhosts; i++)
		dane_tlsa_free(pc->tlsa[i]);
	free(pc->tlsa);
	free(pc->hosts);
	free(pc->mx_reason);
	free(pc->mx_canonname);
	free(pc->text);
	json_decref(pc->doc);
	strlist_clear(&pc->patterns);
}

/* The linter's findings as one JSON document, for scripts and CI. */
static void
lint_json(const char *path, const struct sts_policy *pol, const struct policy_diags *diags,
    const struct strlist *mx)
{
	json_t *o = json_object(), *d = json_array(), *m = json_array();
	size_t errors = policy_diags_count(diags, POLICY_DIAG_ERROR);

	json_object_set_new(o, "file", json_string(path));
	/* valid: every sender takes it; readable: stsproxy as a sender does (lenient). */
	json_object_set_new(o, "valid", json_boolean(pol != NULL && errors == 0));
	json_object_set_new(o, "readable_by_stsproxy", json_boolean(pol != NULL));
	json_object_set_new(o, "mode", pol ? json_string(sts_mode_name(pol->mode)) : json_null());
	json_object_set_new(o, "max_age", pol ? json_integer((json_int_t)pol->max_age) : json_null());
	json_object_set_new(o, "mx_patterns", json_strlist(pol ? &pol->mx : NULL));
	for (size_t i = 0; i < diags->count; i++)
		json_array_append_new(d, json_pack("{s:o, s:s, s:s}", "line",
		    diags->items[i].line > 0 ? json_integer(diags->items[i].line) : json_null(),
		    "severity", diags->items[i].severity == POLICY_DIAG_ERROR ? "error" : "warning",
		    "message", diags->items[i].message));
	json_object_set_new(o, "diagnostics", d);
	for (size_t i = 0; pol != NULL && i < mx->count; i++) {
		const char *matched = NULL;
		bool ok = mx_match_any(&pol->mx, mx->items[i], &matched);

		json_array_append_new(m, json_pack("{s:s, s:b, s:s?}", "host", mx->items[i], "allowed", ok,
		    "pattern", ok ? matched : NULL));
	}
	json_object_set_new(o, "mx", m);
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(o);
}

static int
lint_file(const struct conf *conf, const char *path, const struct strlist *mx, bool json)
{
	FILE *f = fopen(path, "rb");
	struct policy_diags diags = { 0 };
	struct sts_policy *pol;
	struct strbuf sb;
	char chunk[4096];
	size_t n, errors, warnings;
	int rc = EXIT_POLICY;
	/* Lint accepts a larger file than senders do, to say by how much. */
	size_t limit = conf->policy_max_body;

	if (f == NULL) {
		fprintf(stderr, "stsproxy: %s: %s\n", path, strerror(errno));
		return EXIT_ERROR;
	}
	strbuf_init(&sb);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && sb.len <= 16 * limit)
		strbuf_append(&sb, chunk, n);
	fclose(f);
	pol = sts_policy_parse(sb.data ? sb.data : "", sb.len, limit, &diags, NULL);
	errors = policy_diags_count(&diags, POLICY_DIAG_ERROR);
	warnings = policy_diags_count(&diags, POLICY_DIAG_WARNING);
	/* Strict as a linter: what stsproxy reads past, others may not. */
	if (pol == NULL || errors > 0)
		rc = EXIT_NO_POLICY;
	for (size_t i = 0; pol != NULL && i < mx->count; i++)
		if (!mx_match_any(&pol->mx, mx->items[i], NULL))
			rc = EXIT_NO_POLICY;
	if (json) {
		lint_json(path, pol, &diags, mx);
		goto out;
	}
	for (size_t i = 0; i < diags.count; i++) {
		const struct policy_diag *d = &diags.items[i];

		if (d->line > 0)
			printf("%s:%d: %s: %s\n", path, d->line,
			    d->severity == POLICY_DIAG_ERROR ? "error" : "warning", d->message);
		else
			printf("%s: %s: %s\n", path,
			    d->severity == POLICY_DIAG_ERROR ? "error" : "warning", d->message);
	}
	if (pol == NULL) {
		printf("%s: INVALID: %zu error%s, %zu warning%s; senders will treat the fetch as "
		    "failed (sts-policy-invalid)\n", path, errors, errors == 1 ? "" : "s",
		    warnings, warnings == 1 ? "" : "s");
	} else if (errors > 0) {
		printf("%s: OUTSIDE THE GRAMMAR: %zu error%s, %zu warning%s; stsproxy as a sender "
		    "reads it as mode %s, max_age %lu, %zu mx pattern%s, but stricter senders treat "
		    "the fetch as failed (sts-policy-invalid): fix the errors\n", path, errors,
		    errors == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s",
		    sts_mode_name(pol->mode), pol->max_age, pol->mx.count,
		    pol->mx.count == 1 ? "" : "s");
	} else {
		printf("%s: valid: mode %s, max_age %lu, %zu mx pattern%s, %zu warning%s\n", path,
		    sts_mode_name(pol->mode), pol->max_age, pol->mx.count,
		    pol->mx.count == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s");
	}
	for (size_t i = 0; pol != NULL && i < mx->count; i++) {
		const char *matched = NULL;

		if (mx_match_any(&pol->mx, mx->items[i], &matched))
			printf("mx %s: allowed (pattern %s)\n", mx->items[i], matched);
		else
			printf("mx %s: NOT allowed by any mx pattern\n", mx->items[i]);
	}
out:
	sts_policy_free(pol);
	policy_diags_clear(&diags);
	strbuf_free(&sb);
	return rc;
}

void
cmd_policy_usage(FILE *out)
{
	fprintf(out, "usage: stsproxy policy DOMAIN [--json] [--no-cache]\n"
	    "       stsproxy policy --file FILE [--mx HOST]... [--json]\n"
	    "\n"
	    "The MTA-STS policy a sender applies to DOMAIN now: TXT record, fetch, policy,\n"
	    "failure and verdict; then each MX with the DNSSEC state of its MX, address\n"
	    "and TLSA answers, its TLSA records, and the regime that governs it (DANE,\n"
	    "MTA-STS, opportunistic) and why. DOMAIN may also be an email address (user@example.com)\n"
	    "or the policy URL (https://mta-sts.example.com/.well-known/mta-sts.txt).\n"
	    "With --file, lint a policy file before publishing it; each --mx HOST (repeat\n"
	    "it, or give several hosts after one) is checked against its mx patterns.\n"
	    "\n"
	    "  --json      one JSON document instead of text\n"
	    "  --no-cache  neither read nor write the policy cache\n"
	    "\n"
	    "Exit status: 0 a policy in enforce or testing applies (the file is valid and\n"
	    "allows every --mx host), 1 no policy applies (the file is invalid or a host is\n"
	    "not allowed), 2 usage or configuration error, or the lookup itself failed\n"
	    "(DNS timeout, SERVFAIL or bogus, policy host not answering) with nothing cached.\n");
}

int
cmd_policy(const struct conf *conf, const char *path, int argc, char **argv)
{
	struct policy_cmd pc = { .status = EXIT_ERROR, .path = path };
	const char *target = NULL, *file = NULL, *how, *why;
	unsigned flags = 0;
	struct strlist mx = { 0 };
	char *domain = NULL;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			pc.json = true;
		else if (strcmp(argv[i], "--no-cache") == 0)
			flags |= POLICY_F_NO_CACHE;
		else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc && file == NULL)
			file = argv[++i];
		else if (strcmp(argv[i], "--mx") == 0 && i + 1 < argc && argv[i + 1][0] != '-') {
			/* --mx a --mx b and --mx a b both add up. */
			while (i + 1 < argc && argv[i + 1][0] != '-')
				strlist_add(&mx, argv[++i]);
		} else if (argv[i][0] != '-' && target == NULL)
			target = argv[i];
		else {
			cmd_policy_usage(stderr);
			strlist_clear(&mx);
			return EXIT_ERROR;
		}
	}
	if (file != NULL) {
		if (target != NULL || flags) {
			cmd_policy_usage(stderr);
			strlist_clear(&mx);
			return EXIT_ERROR;
		}
		rc = lint_file(conf, file, &mx, pc.json);
		strlist_clear(&mx);
		return rc;
	}
	if (target == NULL || mx.count > 0) {
		cmd_policy_usage(stderr);
		strlist_clear(&mx);
		return EXIT_ERROR;
	}
	if ((why = cli_policy_domain(target, &domain, &how)) != NULL) {
		fprintf(stderr, "stsproxy: %s: %s\n", target, why);
		return EXIT_ERROR;
	}
	if (idna_is_utf8(domain)) {
		/* The policy of bücher.example is that of xn--bcher-kva.example. */
		char *alabel = idna_to_alabel(domain, &why);

		if (alabel == NULL) {
			fprintf(stderr, "stsproxy: %s: not a valid internationalised domain name: %s\n",
			    target, why);
			free(domain);
			return EXIT_ERROR;
		}
		free(domain);
		domain = alabel;
		if (how == NULL)
			how = "the A-label form of";
	}
	if (how != NULL)
		fprintf(stderr, "stsproxy: looking up %s, %s %s\n", domain, how, target);
	if ((pc.rt = runtime_new(conf)) == NULL) {
		free(domain);
		return EXIT_ERROR;
	}
	pc.domain = domain;
	/* The MX set and its TLSA records in parallel with the policy, as the relay asks. */
	pc.mx_lookup = mx_resolve(pc.rt->resolver, domain, pc.rt->hostname, conf->upstream_ipv6,
	    conf->upstream_port, on_mx_set, &pc);
	if (pc.mx_lookup == NULL) {
		pc.mx_status = MX_STATUS_TEMPFAIL;
		pc.mx_reason = xstrdup("the resolver could not start the MX lookup");
		pc.mx_done = true;
	}
	policy_engine_resolve(pc.rt->engine, domain, flags, policy_done, &pc);
	event_base_dispatch(pc.rt->base);
	policy_cmd_clear(&pc);
	runtime_free(pc.rt);
	free(domain);
	return pc.status;
}

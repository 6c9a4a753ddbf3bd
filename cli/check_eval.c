/*
 * check_eval.c - the verdicts of `stsproxy check`: facts in, checks out.
 *
 * The order follows the publishing steps of the deployment guides: the
 * TXT record, the policy host and file, the id and max_age, the MX set
 * against the policy, each MX's STARTTLS and certificate, DANE (TLSA
 * records and a handshake judged by them),
 * the _smtp._tls record and its destinations, and last the readiness
 * for enforce. Every non-passing check says what to do in one sentence.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/fetch.h"
#include "policy/mx_match.h"
#include "cli/check.h"
#include "cli/format.h"

const char *
check_status_name(enum check_status status)
{
	switch (status) {
	case CHECK_PASS: return "pass";
	case CHECK_INFO: return "info";
	case CHECK_WARN: return "warn";
	case CHECK_FAIL: return "fail";
	}
	return "?";
}

static void
add(struct check_list *l, const char *name, const char *subject, enum check_status status,
    const char *fix, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void
add(struct check_list *l, const char *name, const char *subject, enum check_status status,
    const char *fix, const char *fmt, ...)
{
	struct check_item *it;
	va_list ap;

	l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
	it = &l->items[l->count++];
	it->name = xstrdup(name);
	it->subject = xstrdup(subject);
	it->status = status;
	va_start(ap, fmt);
	it->evidence = xvasprintf(fmt, ap);
	va_end(ap);
	it->fix = (status == CHECK_WARN || status == CHECK_FAIL) && fix != NULL && *fix ?
	    xstrdup(fix) : NULL;
}

void
check_list_clear(struct check_list *l)
{
	for (size_t i = 0; i < l->count; i++) {
		free(l->items[i].name);
		free(l->items[i].subject);
		free(l->items[i].evidence);
		free(l->items[i].fix);
	}
	free(l->items);
	memset(l, 0, sizeof(*l));
}

int
check_exit_status(const struct check_list *l)
{
	int rc = 0;

	for (size_t i = 0; i < l->count; i++) {
		if (l->items[i].status == CHECK_FAIL)
			return 2;
		if (l->items[i].status == CHECK_WARN)
			rc = 1;
	}
	return rc;
}

static bool
dns_failed(enum dns_status s)
{
	return s != DNS_STATUS_OK && s != DNS_STATUS_NODATA && s != DNS_STATUS_NXDOMAIN;
}

static long
days_left(time_t when, time_t now)
{
	return (long)((when - now) / 86400);
}

/* "names: a, b; issuer: /CN=x; expires 2026-12-01T00:00:00Z" */
static char *
describe_cert(const struct tls_peer_info *peer)
{
	char t[32];

	return xasprintf("names: %s; issuer: %s; expires %s", peer->dns_names[0] ?
	    peer->dns_names : "(no DNS subjectAltName)", peer->issuer[0] ? peer->issuer : "?",
	    format_time(peer->not_after, t, sizeof(t)));
}

/* reason without a leading "host: ", which the subject already says. */
static const char *
without_host(const char *reason, const char *host)
{
	size_t n = strlen(host);

	return strncmp(reason, host, n) == 0 && strncmp(reason + n, ": ", 2) == 0 ?
	    reason + n + 2 : reason;
}

/* ---- _mta-sts TXT ------------------------------------------------------ */

static void
eval_txt(const struct check_facts *f, struct check_list *l)
{
	const struct check_policy_view *v = &f->published;
	char *name = xasprintf("_mta-sts.%s", f->domain);
	struct strbuf recs;

	strbuf_init(&recs);
	for (size_t i = 0; i < v->txt_records.count; i++)
		strbuf_printf(&recs, "%s\"%s\"", i ? ", " : "", v->txt_records.items[i]);
	if (!v->done) {
		add(l, "txt-record", name, CHECK_FAIL,
		    "Make sure the domain's name servers and mta-sts.<domain> answer promptly, then run the check again.",
		    "the policy lookup (TXT record, then the policy fetch) did not finish within the %us of the check",
		    f->deadline);
	} else if (dns_failed(v->txt_status)) {
		add(l, "txt-record", name, CHECK_FAIL,
		    "Make the domain's name servers answer TXT queries for _mta-sts (NODATA when there is no record), with valid DNSSEC if the zone is signed.",
		    "%s", v->txt.reason);
	} else {
		switch (v->txt.status) {
		case STS_RECORD_VALID:
			add(l, "txt-record", name, CHECK_PASS, NULL, "one valid record %s%s%s; id=%s",
			    recs.data ? recs.data : "", v->txt_canonname ? " via CNAME " : "",
			    v->txt_canonname ? v->txt_canonname : "", v->txt.id);
			break;
		case STS_RECORD_ABSENT:
			add(l, "txt-record", name, CHECK_FAIL,
			    "Once the policy file is served, publish the TXT record \"v=STSv1; id=YYYYMMDDhhmm\" (any 1 to 32 letters and digits) at _mta-sts.<domain>.",
			    "%s%s%s", v->txt.reason, recs.len ? "; records found: " : "",
			    recs.data ? recs.data : "");
			break;
		case STS_RECORD_MULTIPLE:
			add(l, "txt-record", name, CHECK_FAIL,
			    "Keep exactly one TXT record starting with v=STSv1 and delete the others: with two, senders see no policy at all (RFC 8461 section 3.1).",
			    "%s: %s", v->txt.reason, recs.data ? recs.data : "");
			break;
		case STS_RECORD_INVALID:
			add(l, "txt-record", name, CHECK_FAIL,
			    "Write the record exactly as \"v=STSv1; id=ID\" where ID is 1 to 32 letters and digits (no dashes, dots or spaces), e.g. a timestamp 202611231046.",
			    "%s: %s", recs.data ? recs.data : "", v->txt.reason);
			break;
		}
	}
	if (v->done && !dns_failed(v->txt_status) && v->txt.status != STS_RECORD_ABSENT) {
		if (v->txt_security == DNS_SECURITY_SECURE)
			add(l, "txt-dnssec", name, CHECK_PASS, NULL, "DNSSEC: secure");
		else
			add(l, "txt-dnssec", name, CHECK_INFO, NULL,
			    "DNSSEC: insecure (not signed); MTA-STS does not need it: the policy itself is authenticated by HTTPS");
	} else if (v->done && v->txt_status == DNS_STATUS_BOGUS) {
		add(l, "txt-dnssec", name, CHECK_FAIL,
		    "Repair the zone's DNSSEC chain (DS at the parent, unexpired signatures): validating resolvers answer SERVFAIL, so senders see no policy.",
		    "DNSSEC: bogus");
	}
	strbuf_free(&recs);
	free(name);
}

/* ---- the policy host and file ----------------------------------------- */

static void
eval_policy_host(const struct check_facts *f, struct check_list *l)
{
	const struct check_policy_view *v = &f->published;
	const struct fetch_result *r = &v->fetch;
	char *host = xasprintf("mta-sts.%s", f->domain);
	char *fix;

	if (!v->fetched) {
		/* A fetch always runs (the sender's, or the diagnostic one), so
		 * only the deadline leaves none. */
		add(l, "policy-host", host, CHECK_FAIL,
		    "Make sure mta-sts.<domain> answers HTTPS promptly, then run the check again.",
		    "no answer within the %us of the check", f->deadline);
		free(host);
		return;
	}
	if (r->address[0] == '\0') {
		fix = xasprintf("Publish an A (and AAAA) record for %s pointing at the web server that serves the policy.", host);
		add(l, "policy-host", host, CHECK_FAIL, fix, "%s", without_host(r->reason, host));
		free(fix);
		free(host);
		return;
	}
	if (!r->tls_done && r->type != RPT_RESULT_STS_WEBPKI_INVALID) {
		fix = xasprintf("Make the web server at %s answer HTTPS (TLS 1.2 or later) on port 443 for %s.",
		    r->address, host);
		add(l, "policy-host", host, CHECK_FAIL, fix, "%s resolves to %s, but: %s", host,
		    r->address, without_host(r->reason, host));
		free(fix);
		free(host);
		return;
	}
	add(l, "policy-host", host, CHECK_PASS, NULL, "%s resolves to %s and answers on port 443",
	    host, r->address);
	if (!r->tls_done) {
		fix = xasprintf("Give %s a certificate from a public CA whose subjectAltName includes %s, and renew it automatically.",
		    host, host);
		add(l, "policy-certificate", host, CHECK_FAIL, fix, "%s (sts-webpki-invalid)",
		    without_host(r->reason, host));
		free(fix);
	} else {
		char *cert = describe_cert(&r->peer);
		long days = days_left(r->peer.not_after, f->now);

		if (r->peer.not_after != 0 && days < CHECK_EXPIRY_WARN_DAYS)
			add(l, "policy-certificate", host, CHECK_WARN,
			    "Renew the certificate of mta-sts.<domain> now and automate its renewal: when it expires, senders cannot refresh the policy.",
			    "valid for %s, but expires in %ld day%s (%s, %s)", host, days,
			    days == 1 ? "" : "s", r->peer.version, cert);
		else
			add(l, "policy-certificate", host, CHECK_PASS, NULL, "valid for %s (%s, %s)",
			    host, r->peer.version, cert);
		free(cert);
	}
	/* HTTP: exactly one 200 text/plain answer, no redirect, within the size. */
	if (r->ok) {
		add(l, "policy-http", r->url, CHECK_PASS, NULL, "HTTP %d, Content-Type: %s, %zu bytes%s",
		    r->http_status, r->content_type, r->body_len, f->diagnostic_fetch ?
		    " (fetched for this check only: without a usable TXT record senders do not fetch it)" :
		    "");
	} else if (r->http_status >= 300 && r->http_status < 400) {
		add(l, "policy-http", r->url, CHECK_FAIL,
		    "Serve the policy file directly at this URL with HTTP 200: senders never follow redirects (RFC 8461 section 3.3).",
		    "%s", r->reason);
	} else if (r->http_status != 0 && r->http_status != 200) {
		add(l, "policy-http", r->url, CHECK_FAIL,
		    "Put the policy file at /.well-known/mta-sts.txt on mta-sts.<domain> so that it is served with HTTP 200.",
		    "%s", r->reason);
	} else if (r->http_status == 200 && !fetch_content_type_ok(r->content_type)) {
		add(l, "policy-http", r->url, CHECK_FAIL,
		    "Serve the file as text/plain (nginx: default_type text/plain; Apache: AddType text/plain .txt); senders reject any other type.",
		    "%s", r->reason);
	} else if (r->type == RPT_RESULT_STS_POLICY_INVALID) {
		add(l, "policy-http", r->url, CHECK_FAIL,
		    "Keep the policy file small (a few hundred bytes): senders refuse large ones.",
		    "%s", r->reason);
	} else if (r->tls_done) {
		add(l, "policy-http", r->url, CHECK_FAIL,
		    "Make the web server answer GET /.well-known/mta-sts.txt with the file and HTTP 200.",
		    "%s", r->reason);
	}
	free(host);
}

static void
eval_policy_file(const struct check_facts *f, struct check_list *l)
{
	const struct check_policy_view *v = &f->published;
	const struct sts_policy *p = v->policy;

	if (!v->fetched || !v->fetch.ok)
		return;		/* no body reached the parser */
	for (size_t i = 0; i < v->diags.count; i++) {
		const struct policy_diag *d = &v->diags.items[i];
		char subject[64];

		snprintf(subject, sizeof(subject), d->line > 0 ? "line %d" : "file", d->line);
		if (d->severity == POLICY_DIAG_ERROR)
			add(l, "policy-file", subject, CHECK_FAIL,
			    "Correct the file as the message says and lint it with stsproxy policy --file before publishing: until then senders treat the policy as invalid (sts-policy-invalid).",
			    "error: %s", d->message);
		else
			add(l, "policy-file", subject, CHECK_WARN,
			    "Correct the file as the message says: the RFC tolerates it, but some senders' parsers do not.",
			    "warning: %s", d->message);
	}
	if (v->diags.count == 0 && p != NULL)
		add(l, "policy-file", "file", CHECK_PASS, NULL,
		    "valid, no lint finding: mode %s, max_age %lu, %zu mx pattern%s", sts_mode_name(p->mode),
		    p->max_age, p->mx.count, p->mx.count == 1 ? "" : "s");
}

/* Forgetting to change the id with the policy: senders keep the old one. */
static void
eval_policy_id(const struct check_facts *f, struct check_list *l)
{
	const struct check_policy_view *v = &f->published;
	const struct policy_cache_entry *prev = f->previous;
	char *subject, t[32];

	if (v->txt.status != STS_RECORD_VALID || v->policy == NULL || v->source == POLICY_SOURCE_NONE)
		return;
	subject = xasprintf("id %s", v->txt.id);
	if (!f->sender.cache_enabled && f->sender.done) {
		add(l, "policy-id", subject, CHECK_INFO, NULL,
		    "the policy cache of this host is disabled, so the id cannot be compared with an earlier check");
	} else if (prev == NULL || prev->policy == NULL || prev->id == NULL) {
		add(l, "policy-id", subject, CHECK_INFO, NULL,
		    "first check of this domain from this host; the policy is now cached under id %s, and later checks say whether the id changes with the policy",
		    v->txt.id);
	} else if (strcmp(prev->id, v->txt.id) == 0) {
		if (strlist_equal(&prev->policy->lines, &v->policy->lines))
			add(l, "policy-id", subject, CHECK_PASS, NULL,
			    "id %s is unchanged and so is the policy (cached %s)", v->txt.id,
			    format_time(prev->fetched_at, t, sizeof(t)));
		else
			add(l, "policy-id", subject, CHECK_FAIL,
			    "Change the id in the _mta-sts TXT record (e.g. to the date and time, 202611231046) every time you change the policy file.",
			    "the policy changed (mode %s -> %s, max_age %lu -> %lu, %zu -> %zu mx patterns) but the id is still %s: senders that cached it on or before %s keep the old policy until it expires",
			    sts_mode_name(prev->policy->mode), sts_mode_name(v->policy->mode),
			    prev->policy->max_age, v->policy->max_age, prev->policy->mx.count,
			    v->policy->mx.count, v->txt.id, format_time(prev->fetched_at, t, sizeof(t)));
	} else {
		add(l, "policy-id", subject, CHECK_PASS, NULL,
		    "id changed from %s (cached %s) to %s: senders fetch the policy again",
		    prev->id, format_time(prev->fetched_at, t, sizeof(t)), v->txt.id);
	}
	free(subject);
}

static void
eval_max_age(const struct check_facts *f, struct check_list *l)
{
	const struct sts_policy *p = f->published.policy;
	char subject[48];

	if (p == NULL)
		return;
	snprintf(subject, sizeof(subject), "max_age %lu", p->max_age);
	switch (p->mode) {
	case STS_MODE_NONE:
		add(l, "max-age", subject, CHECK_INFO, NULL,
		    "mode none withdraws the policy: keep publishing it until the max_age of the last active policy has passed, then remove the records");
		break;
	case STS_MODE_TESTING:
		if (p->max_age < 86400)
			add(l, "max-age", subject, CHECK_WARN,
			    "Use at least a day (86400) in testing; raise it to a week or more (604800) when you switch to enforce.",
			    "testing with max_age %lu (under a day): senders fetch the policy very often",
			    p->max_age);
		else
			add(l, "max-age", subject, CHECK_PASS, NULL,
			    "testing with max_age %lu (%lu day%s); for enforce the guides recommend at least a week (604800)",
			    p->max_age, p->max_age / 86400, p->max_age / 86400 == 1 ? "" : "s");
		break;
	case STS_MODE_ENFORCE:
		if (p->max_age < CHECK_ENFORCE_MAX_AGE)
			add(l, "max-age", subject, CHECK_WARN,
			    "Raise max_age to at least 604800 (a week; many use 31557600) and change the id.",
			    "enforce with max_age %lu (%.1f days), under the week the guides recommend: a sender that has not seen the policy for that long is unprotected again",
			    p->max_age, (double)p->max_age / 86400);
		else
			add(l, "max-age", subject, CHECK_PASS, NULL, "enforce with max_age %lu (%lu days)",
			    p->max_age, p->max_age / 86400);
		break;
	}
}

/* ---- the MX set ---------------------------------------------------------- */

static void
eval_mx_records(const struct check_facts *f, struct check_list *l)
{
	struct strbuf sb;

	if (!f->mx_done) {
		add(l, "mx-records", f->domain, CHECK_FAIL,
		    "Make sure the domain's name servers answer MX queries, then run the check again.",
		    "no answer within the %us of the check", f->deadline);
		return;
	}
	strbuf_init(&sb);
	for (size_t i = 0; i < f->nhosts; i++)
		strbuf_printf(&sb, "%s%u %s (%zu address%s)", i ? ", " : "", f->hosts[i].preference,
		    f->hosts[i].name, f->hosts[i].naddrs, f->hosts[i].naddrs == 1 ? "" : "es");
	switch (f->mx_status) {
	case MX_STATUS_OK:
		if (f->nhosts == 1 && f->hosts[0].implicit)
			add(l, "mx-records", f->domain, CHECK_WARN,
			    "Publish MX records and list each of them in the policy: with none, senders deliver to the domain's own address.",
			    "no MX record: senders use the domain itself as the MX (%s)", sb.data);
		else
			add(l, "mx-records", f->domain, CHECK_PASS, NULL, "%zu MX host%s: %s; DNSSEC %s",
			    f->nhosts, f->nhosts == 1 ? "" : "s", sb.data,
			    f->mx_secure ? "secure" : "insecure");
		break;
	case MX_STATUS_NULL_MX:
		add(l, "mx-records", f->domain, CHECK_WARN,
		    "A domain that accepts no mail needs no MTA-STS policy: remove the _mta-sts record, or publish real MX records.",
		    "%s", f->mx_reason ? f->mx_reason : "null MX");
		break;
	default:
		add(l, "mx-records", f->domain, CHECK_FAIL,
		    "Publish MX records whose hosts have A (or AAAA) records: senders cannot deliver otherwise.",
		    "%s: %s", mx_status_name(f->mx_status), f->mx_reason ? f->mx_reason : "");
		break;
	}
	strbuf_free(&sb);
}

static bool
policy_applies(const struct sts_policy *p)
{
	return p != NULL && p->mode != STS_MODE_NONE;
}

/* Every MX must match an mx: pattern (the guides: list every MX). */
static void
eval_mx_coverage(const struct check_facts *f, struct check_list *l)
{
	const struct sts_policy *p = f->published.policy;

	if (!policy_applies(p) || f->mx_status != MX_STATUS_OK)
		return;
	for (size_t i = 0; i < f->nhosts; i++) {
		const char *matched = NULL;

		if (mx_match_any(&p->mx, f->hosts[i].name, &matched)) {
			add(l, "mx-coverage", f->hosts[i].name, CHECK_PASS, NULL, "matches mx: %s", matched);
		} else {
			char *fix = xasprintf("Add \"mx: %s\" (or a wildcard covering it) to the policy and change the id; keep the policy in step with the MX records.",
			    f->hosts[i].name);
			struct strbuf pats;

			strbuf_init(&pats);
			for (size_t k = 0; k < p->mx.count; k++)
				strbuf_printf(&pats, "%s%s", k ? ", " : "", p->mx.items[k]);
			add(l, "mx-coverage", f->hosts[i].name, CHECK_FAIL, fix,
			    "no mx: line of the policy matches it (patterns: %s); under enforce senders never deliver to it (validation-failure, mx-not-in-sts-policy)",
			    pats.data ? pats.data : "none");
			strbuf_free(&pats);
			free(fix);
		}
	}
	for (size_t k = 0; k < p->mx.count; k++) {
		bool used = false;

		for (size_t i = 0; i < f->nhosts && !used; i++)
			used = mx_pattern_matches(p->mx.items[k], f->hosts[i].name);
		if (!used)
			add(l, "mx-coverage", p->mx.items[k], CHECK_WARN,
			    "Remove mx: lines for hosts that are no longer MXs (and change the id), or publish the MX they were meant for.",
			    "the pattern matches no MX of the domain");
	}
}

/* The address cannot be reached from here for lack of a route (IPv6). */
static bool
untestable(const struct mx_probe_result *r, const struct sockaddr_storage *addr)
{
	int e = r->connect_errno;

	return !r->connected && addr->ss_family == AF_INET6 &&
	    (e == ENETUNREACH || e == EHOSTUNREACH || e == EADDRNOTAVAIL || e == EAFNOSUPPORT);
}

/* PASS, WARN (untestable from here) or FAIL of one probed MX address. */
static enum check_status
probe_status(const struct check_probe *p)
{
	const struct mx_probe_result *r = &p->result;

	if (!p->done)
		return CHECK_FAIL;
	if (r->verdict_known)
		return r->verdict == RPT_RESULT_NONE && r->ehlo_tls_ok ? CHECK_PASS : CHECK_FAIL;
	return untestable(r, &p->addr) ? CHECK_WARN : CHECK_FAIL;
}

static void
eval_mx_tls(const struct check_facts *f, struct check_list *l)
{
	for (size_t i = 0; i < f->nhosts; i++) {
		const struct check_host *h = &f->hosts[i];

		if (h->naddrs == 0)
			add(l, "mx-tls", h->name, CHECK_FAIL,
			    "Publish A (and AAAA) records for the MX host, or remove its MX record.",
			    "no address (A: %s, AAAA: %s)", dns_status_name(h->a_status),
			    dns_status_name(h->aaaa_status));
		if (h->skipped > 0)
			add(l, "mx-tls", h->name, CHECK_INFO, NULL,
			    "%zu more address%s not probed (at most %d MX addresses per check)", h->skipped,
			    h->skipped == 1 ? "" : "es", CHECK_MAX_PROBES);
	}
	for (size_t i = 0; i < f->nprobes; i++) {
		const struct check_probe *p = &f->probes[i];
		const struct mx_probe_result *r = &p->result;
		const char *host = f->hosts[p->host].name;
		char *subject = xasprintf("%s %s", host, r->address[0] ? r->address : "?");
		enum check_status st = probe_status(p);
		char *cert = r->tls_done ? describe_cert(&r->peer) : NULL;

		if (!p->done) {
			add(l, "mx-tls", subject, CHECK_FAIL,
			    "Make sure the MX answers promptly, then run the check again.",
			    "no complete answer within the %us of the check", f->deadline);
		} else if (st == CHECK_PASS) {
			add(l, "mx-tls", subject, CHECK_PASS, NULL,
			    "STARTTLS, %s %s, certificate valid for %s (%s)", r->peer.version,
			    r->peer.cipher, host, cert);
		} else if (r->verdict_known && r->verdict == RPT_RESULT_NONE) {
			add(l, "mx-tls", subject, CHECK_FAIL,
			    "Make the MX accept EHLO after STARTTLS: senders cannot deliver over TLS otherwise.",
			    "TLS and certificate fine (%s), then %s: %s", r->peer.version,
			    r->failed_step ? r->failed_step : "?", r->error);
		} else if (r->verdict_known && !r->tls_done &&
		    r->verdict != RPT_RESULT_STARTTLS_NOT_SUPPORTED) {
			/* STARTTLS was accepted but no handshake completed. */
			add(l, "mx-tls", subject, CHECK_FAIL,
			    "Make the MX complete a TLS handshake with TLS 1.2 or later and current ciphers: senders that require TLS cannot deliver otherwise.",
			    "%s: %s", rpt_result_type_name(r->verdict), r->verdict_reason);
		} else if (r->verdict_known) {
			add(l, "mx-tls", subject, CHECK_FAIL, rpt_result_type_fix(r->verdict),
			    "%s: %s%s%s%s", rpt_result_type_name(r->verdict), r->verdict_reason,
			    cert ? " (" : "", cert ? cert : "", cert ? ")" : "");
		} else if (st == CHECK_WARN) {
			add(l, "mx-tls", subject, CHECK_WARN,
			    "Run the check from a host with IPv6 connectivity to test this address.",
			    "not testable from this host: %s", r->error);
		} else {
			char *fix;

			if (!r->connected)
				fix = xasprintf("Make the MX accept connections on port %u from the Internet (and check that this host may connect out to port %u).",
				    f->port, f->port);
			else
				fix = xstrdup("Make the MX greet with 220 and accept EHLO: senders cannot deliver otherwise.");
			add(l, "mx-tls", subject, CHECK_FAIL, fix, "%s failed: %s%s%s",
			    r->failed_step ? r->failed_step : "session", r->error,
			    r->greeting[0] ? "; greeting: " : "", r->greeting);
			free(fix);
		}
		if (p->done && r->tls_done && r->peer.not_after != 0 &&
		    !(r->verdict_known && r->verdict == RPT_RESULT_CERT_EXPIRED)) {
			long days = days_left(r->peer.not_after, f->now);
			char t[32];

			format_time(r->peer.not_after, t, sizeof(t));
			if (days < CHECK_EXPIRY_WARN_DAYS)
				add(l, "mx-certificate-expiry", subject, CHECK_WARN,
				    "Renew the MX's certificate now, automate its renewal and reload the mail server after each renewal.",
				    "expires in %ld day%s (%s)", days, days == 1 ? "" : "s", t);
			else
				add(l, "mx-certificate-expiry", subject, CHECK_PASS, NULL,
				    "expires in %ld days (%s)", days, t);
		}
		free(cert);
		free(subject);
	}
}

/*
 * DANE as senders that implement it see the MX (RFC 7672, stsproxy's
 * relay among them): the TLSA records as the relay asks for them, and
 * where they are usable a handshake judged by them. Usable records that
 * do not match, or a TLSA lookup that fails, make DANE senders defer:
 * FAIL whatever MTA-STS says (RFC 8461 section 2).
 */
static void
eval_mx_dane(const struct check_facts *f, struct check_list *l)
{
	for (size_t i = 0; i < f->nhosts; i++) {
		const struct check_host *h = &f->hosts[i];
		const struct dane_tlsa *t = h->dane;
		const struct mx_probe_result *r = &h->dane_result;
		char *subject = xasprintf("_%u._tcp.%s", f->port, h->name);
		struct strbuf sb;

		if (!h->tlsa_done || t == NULL) {
			free(subject);
			continue;
		}
		strbuf_init(&sb);
		for (size_t k = 0; k < t->text.count; k++)
			strbuf_printf(&sb, "%s\"%s\"", k ? ", " : "", t->text.items[k]);
		switch (t->state) {
		case DANE_S_FAILED:
			add(l, "mx-dane", subject, CHECK_FAIL,
			    "Make the zone answer TLSA queries for the MX (NODATA when there are none), with valid DNSSEC: DANE senders treat the MX as unreachable while they fail.",
			    "%s: DANE senders (stsproxy among them) do not deliver to this MX", t->reason);
			break;
		case DANE_S_USABLE:
			if (!h->dane_probed)
				add(l, "mx-dane", subject, CHECK_INFO, NULL, "%s; no address to check them against",
				    t->reason);
			else if (r->verdict_known && r->verdict == RPT_RESULT_NONE)
				add(l, "mx-dane", subject, CHECK_PASS, NULL,
				    "%s match the certificate of %s: %s; DANE senders authenticate this MX by them, MTA-STS or not",
				    t->reason, r->address, r->verdict_reason);
			else if (r->verdict_known)
				add(l, "mx-dane", subject, CHECK_FAIL,
				    "Publish TLSA records for the certificate the MX presents (3 1 1: the SHA-256 of its public key), next to the old ones while rolling over: DANE senders defer mail while none matches.",
				    "%s, but %s presents a certificate they do not authenticate: %s (%s)", t->reason,
				    r->address, r->verdict_reason, rpt_result_type_name(r->verdict));
			else
				add(l, "mx-dane", subject, CHECK_FAIL,
				    "Offer STARTTLS on every MX with TLSA records: DANE senders never deliver to it in the clear.",
				    "%s, but no TLS session with %s: %s", t->reason, r->address,
				    r->error[0] ? r->error : "no STARTTLS");
			break;
		case DANE_S_UNUSABLE:
			add(l, "mx-dane", subject, CHECK_WARN,
			    "Publish DANE-EE(3) or DANE-TA(2) records (3 1 1 is the common choice): with none usable DANE senders require STARTTLS but authenticate nothing.",
			    "%s: %s", t->reason, sb.data ? sb.data : "");
			break;
		case DANE_S_NONE:
			add(l, "mx-dane", subject, CHECK_INFO, NULL, "no TLSA records: DANE does not apply");
			break;
		case DANE_S_INSECURE:
			add(l, "mx-dane", subject, CHECK_INFO, NULL, "%s%s%s: DANE senders ignore them",
			    t->reason, sb.data ? ": " : "", sb.data ? sb.data : "");
			break;
		default:
			add(l, "mx-dane", subject, CHECK_INFO, NULL, "DANE does not apply: %s", t->reason);
			break;
		}
		strbuf_free(&sb);
		free(subject);
	}
}

/* ---- TLS-RPT ------------------------------------------------------------- */

static void
eval_tlsrpt(const struct check_facts *f, struct check_list *l)
{
	char *name = xasprintf("_smtp._tls.%s", f->domain);
	struct strbuf recs;

	strbuf_init(&recs);
	for (size_t i = 0; i < f->rpt_records.count; i++)
		strbuf_printf(&recs, "%s\"%s\"", i ? ", " : "", f->rpt_records.items[i]);
	if (!f->rpt_done) {
		add(l, "tlsrpt-record", name, CHECK_FAIL,
		    "Make sure the domain's name servers answer, then run the check again.",
		    "no answer within the %us of the check", f->deadline);
	} else if (dns_failed(f->rpt_dns_status)) {
		add(l, "tlsrpt-record", name, CHECK_FAIL,
		    "Make the name servers answer TXT queries for _smtp._tls (NODATA when there is no record).",
		    "TXT lookup failed: %s", dns_status_name(f->rpt_dns_status));
	} else {
		switch (f->rpt.status) {
		case TLSRPT_RECORD_VALID:
			add(l, "tlsrpt-record", name, CHECK_PASS, NULL, "one valid record %s",
			    recs.data ? recs.data : "");
			if (f->rpt.skipped > 0)
				add(l, "tlsrpt-record", name, CHECK_WARN,
				    "Use only mailto: and https: destinations in rua (RFC 8460 section 3).",
				    "%u destination%s with another scheme %s ignored by senders",
				    f->rpt.skipped, f->rpt.skipped == 1 ? "" : "s",
				    f->rpt.skipped == 1 ? "is" : "are");
			break;
		case TLSRPT_RECORD_ABSENT:
			add(l, "tlsrpt-record", name, CHECK_WARN,
			    "Publish _smtp._tls.<domain> TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@<domain>\" and read the daily reports (stsproxy report read) for a few weeks before switching to enforce.",
			    "no TLS-RPT record: you will receive no reports of failed TLS sessions%s%s",
			    recs.len ? "; records found: " : "", recs.data ? recs.data : "");
			break;
		case TLSRPT_RECORD_MULTIPLE:
			add(l, "tlsrpt-record", name, CHECK_FAIL,
			    "Keep exactly one v=TLSRPTv1 record and list every destination in its rua, separated by commas.",
			    "%s: %s", f->rpt.reason, recs.data ? recs.data : "");
			break;
		case TLSRPT_RECORD_INVALID:
			add(l, "tlsrpt-record", name, CHECK_FAIL,
			    "Write the record as \"v=TLSRPTv1; rua=mailto:ADDRESS\" (or an https: URL; several separated by commas).",
			    "%s: %s", recs.data ? recs.data : "", f->rpt.reason);
			break;
		}
	}
	for (size_t i = 0; i < f->nruas; i++) {
		const struct check_rua *r = &f->ruas[i];
		char addr[320];

		if (!r->https) {
			if (tlsrpt_mailto_address(r->uri, addr, sizeof(addr)) == 0)
				add(l, "tlsrpt-rua", r->uri, CHECK_PASS, NULL,
				    "reports are mailed to %s as gzipped JSON attachments (read them with stsproxy report read)",
				    addr);
			else
				add(l, "tlsrpt-rua", r->uri, CHECK_FAIL,
				    "Write the destination as mailto:user@domain, with ',', '!' and ';' percent-encoded.",
				    "not a single usable mail address");
		} else if (r->host[0] == '\0') {
			add(l, "tlsrpt-rua", r->uri, CHECK_FAIL,
			    "Write the destination as a full https:// URL with a host name.",
			    "not a usable https URL");
		} else if (r->over_limit) {
			add(l, "tlsrpt-rua", r->uri, CHECK_INFO, NULL,
			    "not probed (at most %d https destinations per check)", CHECK_MAX_RUA_PROBES);
		} else if (!r->resolved) {
			add(l, "tlsrpt-rua", r->uri, CHECK_FAIL,
			    "Make sure the report host's name resolves promptly.",
			    "no answer within the %us of the check", f->deadline);
		} else if (r->resolve_status != MX_STATUS_OK || r->naddrs == 0) {
			char *fix = xasprintf("Publish an A (or AAAA) record for %s, or correct the rua URL.",
			    r->host);

			add(l, "tlsrpt-rua", r->uri, CHECK_FAIL, fix, "%s does not resolve: %s", r->host,
			    r->resolve_reason[0] ? r->resolve_reason : mx_status_name(r->resolve_status));
			free(fix);
		} else if (!r->probed) {
			add(l, "tlsrpt-rua", r->uri, CHECK_FAIL,
			    "Make sure the report endpoint answers HTTPS promptly.",
			    "no TLS answer within the %us of the check", f->deadline);
		} else if (r->result.verdict_known && r->result.verdict == RPT_RESULT_NONE) {
			char *cert = describe_cert(&r->result.peer);

			add(l, "tlsrpt-rua", r->uri, CHECK_PASS, NULL,
			    "%s resolves to %s; TLS %s, certificate valid (%s)", r->host,
			    r->result.address, r->result.peer.version, cert);
			free(cert);
		} else {
			char *fix = xasprintf("Give %s a publicly trusted certificate that names it and answer HTTPS on port %u: reporters may drop reports otherwise.",
			    r->host, r->port);
			char *cert = r->result.tls_done ? describe_cert(&r->result.peer) : NULL;

			char *why;

			/* tls_peer_verdict() words a name mismatch for MXs. */
			if (r->result.verdict_known && r->result.verdict == RPT_RESULT_CERT_HOST_MISMATCH)
				why = xasprintf("certificate does not name %s", r->host);
			else
				why = xstrdup(r->result.verdict_known ? r->result.verdict_reason :
				    r->result.error);
			add(l, "tlsrpt-rua", r->uri, CHECK_FAIL, fix, "%s (%s): %s%s%s%s", r->host,
			    r->result.address, why, cert ? " (" : "", cert ? cert : "", cert ? ")" : "");
			free(why);
			free(cert);
			free(fix);
		}
	}
	strbuf_free(&recs);
	free(name);
}

/* ---- readiness ----------------------------------------------------------- */

static void
eval_readiness(const struct check_facts *f, struct check_list *l)
{
	const struct check_policy_view *v = &f->published;
	const struct sts_policy *p = v->policy;
	struct strbuf why;
	size_t failing = 0, untested = 0, uncovered = 0, noaddr = 0, skipped = 0;
	bool enforce = p != NULL && p->mode == STS_MODE_ENFORCE;

	strbuf_init(&why);
	if (v->txt.status != STS_RECORD_VALID)
		strbuf_printf(&why, "%sno usable _mta-sts TXT record", why.len ? "; " : "");
	if (p == NULL)
		strbuf_printf(&why, "%sno valid policy is served", why.len ? "; " : "");
	else if (p->mode == STS_MODE_NONE)
		strbuf_printf(&why, "%sthe policy's mode is none", why.len ? "; " : "");
	if (!f->mx_done || f->mx_status != MX_STATUS_OK)
		strbuf_printf(&why, "%sthe MX set is unusable", why.len ? "; " : "");
	for (size_t i = 0; i < f->nhosts; i++) {
		if (policy_applies(p) && !mx_match_any(&p->mx, f->hosts[i].name, NULL))
			uncovered++;
		if (f->hosts[i].naddrs == 0)
			noaddr++;
		skipped += f->hosts[i].skipped;
	}
	for (size_t i = 0; i < f->nprobes; i++) {
		enum check_status st = probe_status(&f->probes[i]);

		if (st == CHECK_FAIL)
			failing++;
		else if (st == CHECK_WARN)
			untested++;
	}
	if (uncovered)
		strbuf_printf(&why, "%s%zu MX host%s not in the policy", why.len ? "; " : "", uncovered,
		    uncovered == 1 ? "" : "s");
	if (noaddr)
		strbuf_printf(&why, "%s%zu MX host%s without an address", why.len ? "; " : "", noaddr,
		    noaddr == 1 ? "" : "s");
	if (failing)
		strbuf_printf(&why, "%s%zu MX address%s failing STARTTLS or the certificate check",
		    why.len ? "; " : "", failing, failing == 1 ? "" : "es");
	if (f->mx_done && f->mx_status == MX_STATUS_OK && f->nprobes == 0 && noaddr == 0)
		strbuf_printf(&why, "%sno MX address probed", why.len ? "; " : "");
	if (f->timed_out)
		strbuf_printf(&why, "%sthe check ran out of time", why.len ? "; " : "");

	l->ready_for_enforce = why.len == 0 && untested == 0 && skipped == 0;
	if (why.len > 0) {
		if (enforce)
			add(l, "enforce-readiness", f->domain, CHECK_FAIL,
			    "Fix the failing items above now, or go back to mode: testing (and change the id) until they pass.",
			    "enforce is published but %s: senders that apply it defer mail to the failing MXs",
			    why.data);
		else
			add(l, "enforce-readiness", f->domain, CHECK_FAIL,
			    "Fix the failures above, read the TLS-RPT reports for a few weeks, and switch to enforce only when this check passes.",
			    "not ready for enforce: %s", why.data);
	} else if (untested > 0 || skipped > 0) {
		add(l, "enforce-readiness", f->domain, CHECK_WARN,
		    "Run the check from a host that can reach every MX address (IPv6 included) before relying on enforce.",
		    "every probed MX address passes under enforce rules, but %zu address%s could not be tested from here and %zu %s not probed",
		    untested, untested == 1 ? "" : "es", skipped, skipped == 1 ? "was" : "were");
	} else if (enforce) {
		add(l, "enforce-readiness", f->domain, CHECK_PASS, NULL,
		    "enforce is in effect and every MX (%zu address%s probed) passes under enforce rules",
		    f->nprobes, f->nprobes == 1 ? "" : "es");
	} else {
		add(l, "enforce-readiness", f->domain, CHECK_PASS, NULL,
		    "ready for enforce: every MX (%zu address%s probed) passes under enforce rules; next: mode: enforce, max_age of at least 604800, and a new id",
		    f->nprobes, f->nprobes == 1 ? "" : "es");
	}
	strbuf_free(&why);
}

void
check_evaluate(const struct check_facts *f, struct check_list *out)
{
	memset(out, 0, sizeof(*out));
	eval_txt(f, out);
	eval_policy_host(f, out);
	eval_policy_file(f, out);
	eval_policy_id(f, out);
	eval_max_age(f, out);
	eval_mx_records(f, out);
	eval_mx_coverage(f, out);
	eval_mx_tls(f, out);
	eval_mx_dane(f, out);
	eval_tlsrpt(f, out);
	eval_readiness(f, out);
	out->mode = f->published.policy ? sts_mode_name(f->published.policy->mode) : NULL;
}

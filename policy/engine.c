#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_POLICY

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <event2/event.h>

#include "conf/clock.h"
#include "conf/log.h"
#include "conf/metrics.h"
#include "policy/engine.h"

#define DNS_TYPE_TXT		16
#define REFRESH_CONCURRENCY	16

/*
 * TXT:   waiting for the _mta-sts TXT RRset and, at the same time, the
 *        cache entry (a shared cache answers from its thread, so a
 *        lookup that misses the memo never stalls the loop).
 * FETCH: waiting for the HTTPS policy fetch.
 * DONE:  result built; the callback runs from the deferred finish event.
 */
enum lookup_state {
	LOOKUP_S_TXT,
	LOOKUP_S_FETCH,
	LOOKUP_S_DONE,
};

/*
 * The answer of a lookup that found its TXT id matching the cached
 * policy, kept in memory until the TXT record's TTL (at most
 * MEMO_MAX_TTL) or the policy's expiry, whichever comes first. Within
 * that time another lookup would ask the same DNS question, get the same
 * answer and read the same cache entry, so it takes this instead: no
 * resolver round trip, no database read, no JSON decoding. Shared by the
 * lookups that use it (refcounted): a replaced memo lives on until its
 * last lookup is freed.
 */
#define MEMO_SLOTS	4096
#define MEMO_MAX_TTL	60

struct policy_memo {
	unsigned		 refs;
	time_t			 until;
	struct policy_cache_entry *entry;	/* owned */
	struct sts_record_result txt;
	enum dns_status		 txt_status;
	enum dns_security	 txt_security;
	struct strlist		 txt_records;
	char			*txt_canonname;
};

struct policy_lookup {
	struct policy_engine	*engine;
	struct policy_memo	*memo;		/* answered from the memo: entry is borrowed */
	struct policy_lookup	*prev, *next;
	char			*domain;	/* normalised; NULL if not a domain */
	unsigned		 flags;
	enum lookup_state	 state;
	struct resolver_query	*txt_query;
	bool			 txt_done;	/* the TXT answer is in (fields below) */
	bool			 dns_failed;	/* ... and it was a DNS failure (STS-10) */
	int			 txt_ttl;
	struct policy_cache_read *cache_read;	/* the cache entry is on its way */
	struct policy_fetch	*fetch;
	struct event		*finish_ev;
	struct policy_cache_entry *entry;	/* cache state, updated in place */
	bool			 fresh;		/* entry->policy fetched by this lookup */

	struct strlist		 txt_records;
	char			*txt_canonname;
	struct fetch_result	 fetch_result;
	struct policy_diags	 diags;
	char			*failure_reason;
	char			*note;
	struct policy_result	 result;
	policy_lookup_cb	 cb;
	void			*arg;
};

struct policy_engine {
	struct event_base	*base;
	const struct conf	*conf;
	struct resolver		*resolver;
	SSL_CTX			*ssl_ctx;
	struct policy_cache	*cache;
	struct policy_lookup	*lookups;
	struct policy_memo	*memo[MEMO_SLOTS];	/* by hash of the domain */
};

static void
memo_release(struct policy_memo *m)
{
	if (m == NULL || --m->refs > 0)
		return;
	policy_cache_entry_free(m->entry);
	strlist_clear(&m->txt_records);
	free(m->txt_canonname);
	free(m);
}

static unsigned
memo_slot(const char *domain)
{
	unsigned h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)domain; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % MEMO_SLOTS;
}

static void
memo_forget(struct policy_engine *e, const char *domain)
{
	unsigned slot = memo_slot(domain);

	if (e->memo[slot] != NULL && strcmp(e->memo[slot]->entry->domain, domain) == 0) {
		memo_release(e->memo[slot]);
		e->memo[slot] = NULL;
	}
}

static void lookup_enter_state(struct policy_lookup *l, enum lookup_state next);

const char *
policy_source_name(enum policy_source source)
{
	switch (source) {
	case POLICY_SOURCE_NONE: return "none";
	case POLICY_SOURCE_FRESH: return "fresh";
	case POLICY_SOURCE_CACHE: return "cache";
	}
	return "?";
}

static const char *
lookup_state_name(enum lookup_state s)
{
	switch (s) {
	case LOOKUP_S_TXT: return "txt";
	case LOOKUP_S_FETCH: return "fetch";
	case LOOKUP_S_DONE: return "done";
	}
	return "?";
}

enum policy_action
policy_decide(const struct policy_cache_entry *entry, const struct sts_record_result *txt,
    time_t now, unsigned flags)
{
	bool live = policy_cache_entry_live(entry, now);

	if (txt == NULL || txt->status != STS_RECORD_VALID) {
		/* No usable TXT: an unexpired cached policy stays in force
		 * (STS-10, STS-32). A proactive refresh still fetches, since
		 * an attacker may be the one hiding the record (STS-33). */
		if ((flags & POLICY_F_REFRESH) && entry != NULL && entry->policy != NULL)
			return POLICY_ACTION_FETCH;
		return POLICY_ACTION_USE_CACHE;
	}
	if (live && entry->id != NULL && strcmp(entry->id, txt->id) == 0 &&
	    !(flags & POLICY_F_REFRESH))
		return POLICY_ACTION_USE_CACHE;		/* STS-20: same id, no fetch */
	if (!(flags & POLICY_F_REFRESH) && entry != NULL && entry->fail_id != NULL &&
	    strcmp(entry->fail_id, txt->id) == 0 && now >= entry->fail_at &&
	    now - entry->fail_at < POLICY_FETCH_BACKOFF)
		return POLICY_ACTION_BACKOFF;		/* STS-18 */
	return POLICY_ACTION_FETCH;
}

bool
policy_refresh_due(const struct policy_cache_entry *e, time_t now, unsigned refresh_interval)
{
	if (!policy_cache_entry_live(e, now))
		return false;
	if (now - e->fetched_at < (time_t)refresh_interval)
		return false;
	/* Do not hammer a failing host: back off as after any failed fetch. */
	return e->fail_id == NULL || now - e->fail_at >= POLICY_FETCH_BACKOFF;
}

struct policy_engine *
policy_engine_new(struct event_base *base, const struct conf *conf, struct resolver *resolver,
    SSL_CTX *ssl_ctx, struct policy_cache *cache)
{
	struct policy_engine *e = xcalloc(1, sizeof(*e));

	e->base = base;
	e->conf = conf;
	e->resolver = resolver;
	e->ssl_ctx = ssl_ctx;
	e->cache = cache;
	return e;
}

static void
lookup_free(struct policy_lookup *l)
{
	struct policy_engine *e = l->engine;

	if (l->prev)
		l->prev->next = l->next;
	else if (e->lookups == l)
		e->lookups = l->next;
	if (l->next)
		l->next->prev = l->prev;
	resolver_cancel(l->txt_query);
	policy_cache_read_cancel(l->cache_read);
	policy_fetch_cancel(l->fetch);
	event_free(l->finish_ev);
	if (l->memo != NULL)
		memo_release(l->memo);
	else
		policy_cache_entry_free(l->entry);
	strlist_clear(&l->txt_records);
	policy_diags_clear(&l->diags);
	free(l->txt_canonname);
	free(l->failure_reason);
	free(l->note);
	free(l->domain);
	free(l);
}

void
policy_engine_set_conf(struct policy_engine *e, const struct conf *conf)
{
	/* Lookups in flight keep the configuration they started with. */
	e->conf = conf;
}

void
policy_engine_free(struct policy_engine *e)
{
	if (e == NULL)
		return;
	while (e->lookups != NULL)
		lookup_free(e->lookups);
	for (unsigned i = 0; i < MEMO_SLOTS; i++)
		memo_release(e->memo[i]);
	free(e);
}

void
policy_lookup_cancel(struct policy_lookup *l)
{
	if (l != NULL)
		lookup_free(l);
}

static void
lookup_set_note(struct policy_lookup *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
lookup_set_note(struct policy_lookup *l, const char *fmt, ...)
{
	va_list ap;

	free(l->note);
	va_start(ap, fmt);
	l->note = xvasprintf(fmt, ap);
	va_end(ap);
}

static void
lookup_set_failure(struct policy_lookup *l, enum rpt_result_type type, const char *reason)
{
	l->result.failure = type;
	free(l->failure_reason);
	l->failure_reason = xstrdup(reason);
}

/* Fill the result from the cache entry and flags; no I/O. */
static void
lookup_build_result(struct policy_lookup *l)
{
	struct policy_result *r = &l->result;
	const struct policy_cache_entry *e = l->entry;
	time_t now = clock_now();

	r->domain = l->domain ? l->domain : "";
	r->txt_records = l->memo ? &l->memo->txt_records : &l->txt_records;
	r->txt_canonname = l->memo ? l->memo->txt_canonname : l->txt_canonname;
	r->cache_enabled = policy_cache_enabled(l->engine->cache) && !(l->flags & POLICY_F_NO_CACHE);
	if (policy_cache_entry_live(e, now)) {
		r->source = l->fresh ? POLICY_SOURCE_FRESH : POLICY_SOURCE_CACHE;
		r->policy = e->policy;
		r->mode = e->policy->mode;
		r->id = e->id;
		r->fetched_at = e->fetched_at;
		r->expires_at = e->expires_at;
	} else {
		r->source = POLICY_SOURCE_NONE;
		r->mode = STS_MODE_NONE;
	}
	/* A held "none" policy means no active policy: its failures are
	 * neither alerted nor reported (STS-34, STS-35). */
	r->failure_reportable = r->failure != RPT_RESULT_NONE &&
	    !(r->source != POLICY_SOURCE_NONE && r->mode == STS_MODE_NONE);
	r->failure_reason = l->failure_reason;
	if (l->domain != NULL && r->policy != NULL) {
		const char *ov = conf_policy_override(l->engine->conf, l->domain);

		if (ov != NULL) {
			r->override_mode = ov;
			r->mode = (enum sts_mode)sts_mode_parse(ov);
		}
	}
	r->parse_diags = &l->diags;
	r->note = l->note;
}

static void
lookup_finish(evutil_socket_t fd, short what, void *arg)
{
	struct policy_lookup *l = arg;

	(void)fd;
	(void)what;
	l->cb(l->arg, &l->result);
	lookup_free(l);
}

static void
lookup_store(struct policy_lookup *l)
{
	if (!(l->flags & POLICY_F_NO_CACHE))
		policy_cache_store(l->engine->cache, l->entry);
}

/* The id the fetch runs under: the TXT id, or for a refresh without a
 * usable record the id of the cached policy. */
static const char *
lookup_fetch_id(const struct policy_lookup *l)
{
	if (l->result.txt.status == STS_RECORD_VALID)
		return l->result.txt.id;
	return l->entry->id ? l->entry->id : "";
}

static void
lookup_fetch_failed(struct policy_lookup *l, enum rpt_result_type type, const char *reason)
{
	struct policy_cache_entry *e = l->entry;
	time_t now = clock_now();
	bool held = policy_cache_entry_live(e, now);
	bool quiet = held && e->policy->mode == STS_MODE_NONE;
	const char *id = lookup_fetch_id(l);

	lookup_set_failure(l, type, reason);
	{
		char labels[64];

		snprintf(labels, sizeof(labels), "result=\"%s\"", rpt_result_type_name(type));
		metrics_add("stsproxy_policy_fetches_total", labels, 1);
	}
	e->fail_count = (e->fail_id != NULL && strcmp(e->fail_id, id) == 0) ? e->fail_count + 1 : 1;
	free(e->fail_id);
	e->fail_id = xstrdup(id);
	e->fail_at = now;
	e->fail_type = type;
	free(e->fail_reason);
	e->fail_reason = xstrdup(reason);
	lookup_store(l);
	/* STS-34: refresh failures are alerted, except under a "none" policy. */
	log_msg(quiet ? LOG_LEVEL_INFO : LOG_LEVEL_WARNING,
	    "event=policy_fetch_failed domain=%s id=%s result=%s reason=%s refresh=%s "
	    "cached_policy=%s", l->domain, log_quote(id), rpt_result_type_name(type),
	    log_quote(reason), (l->flags & POLICY_F_REFRESH) ? "yes" : "no",
	    held ? sts_mode_name(e->policy->mode) : "none");
	if (held)
		/* STS-19 */
		lookup_set_note(l, "policy fetch failed (%s); the cached policy id %s stays in force "
		    "until it expires: a failed fetch never removes a cached policy", reason, e->id);
	else
		lookup_set_note(l, "policy fetch failed (%s) and no policy is cached: delivering "
		    "as if the domain had no MTA-STS policy", reason);
}

static void
lookup_fetch_done(void *arg, const struct fetch_result *fr)
{
	struct policy_lookup *l = arg;
	struct policy_cache_entry *e = l->entry;
	struct sts_policy *pol;
	char *why = NULL;
	time_t now = clock_now();

	l->fetch = NULL;
	l->fetch_result = *fr;
	l->fetch_result.body = NULL;
	l->result.fetch = &l->fetch_result;
	if (!fr->ok) {
		lookup_fetch_failed(l, fr->type, fr->reason);
		lookup_enter_state(l, LOOKUP_S_DONE);
		return;
	}
	pol = sts_policy_parse(fr->body, fr->body_len, l->engine->conf->policy_max_body,
	    &l->diags, &why);
	if (pol == NULL) {
		char *reason = xasprintf("invalid policy: %s", why);

		lookup_fetch_failed(l, RPT_RESULT_STS_POLICY_INVALID, reason);
		free(reason);
		free(why);
		lookup_enter_state(l, LOOKUP_S_DONE);
		return;
	}
	metrics_add("stsproxy_policy_fetches_total", "result=\"ok\"", 1);
	const char *id = lookup_fetch_id(l);
	size_t tolerated = policy_diags_tolerated(&l->diags);

	/* Read as the publisher meant it; said once per fetch, for whoever
	 * wonders why a stricter tool calls the policy invalid. */
	if (tolerated > 0) {
		const struct policy_diag *d = l->diags.items;
		char *first;

		while (!d->tolerated)
			d++;
		first = xasprintf("line %d: %s", d->line, d->message);
		log_info("event=policy_tolerated domain=%s id=%s deviations=%zu first=%s",
		    l->domain, log_quote(id), tolerated, log_quote(first));
		free(first);
	}
	bool had = policy_cache_entry_live(e, now);
	bool changed = !had || strcmp(e->id, id) != 0 || e->policy->mode != pol->mode;

	/* A change of id or mode is what an operator wants to see (notice);
	 * a routine refresh is info. */
	log_msg(changed ? LOG_LEVEL_NOTICE : LOG_LEVEL_INFO,
	    "event=policy_%s domain=%s id=%s mode=%s max_age=%lu mx_count=%zu old_id=%s old_mode=%s",
	    changed ? "changed" : "refreshed", l->domain, log_quote(id), sts_mode_name(pol->mode),
	    pol->max_age, pol->mx.count, had ? log_quote(e->id) : "-",
	    had ? sts_mode_name(e->policy->mode) : "-");
	char *newid = xstrdup(id);
	free(e->id);
	e->id = newid;
	sts_policy_free(e->policy);
	e->policy = pol;
	e->fetched_at = now;
	e->expires_at = now + (time_t)pol->max_age;
	free(e->fail_id);
	free(e->fail_reason);
	e->fail_id = e->fail_reason = NULL;
	e->fail_at = 0;
	e->fail_count = 0;
	e->fail_type = RPT_RESULT_NONE;
	lookup_store(l);
	if (pol->mode == STS_MODE_NONE)
		/* STS-35 */
		lookup_set_note(l, "fetched policy id %s has mode none: no active policy, and no "
		    "earlier policy applies any more", id);
	else
		lookup_set_note(l, "fetched policy id %s (mode %s, max_age %lu)", id,
		    sts_mode_name(pol->mode), pol->max_age);
	l->fresh = true;
	lookup_enter_state(l, LOOKUP_S_DONE);
}

static void
lookup_use_cache(struct policy_lookup *l, const char *why)
{
	time_t now = clock_now();

	char when[32];

	clock_format(l->entry->expires_at, when, sizeof(when));
	if (policy_cache_entry_live(l->entry, now))
		lookup_set_note(l, "%s; the cached policy id %s applies until %s", why,
		    l->entry->id, when);
	else if (l->entry->policy != NULL)
		lookup_set_note(l, "%s; the cached policy expired at %s: no policy applies", why,
		    when);
	else
		lookup_set_note(l, "%s; no policy is cached: no policy applies", why);
}

static void
memo_store(struct policy_lookup *l, int ttl, time_t now)
{
	struct policy_memo *m = xcalloc(1, sizeof(*m));
	unsigned slot = memo_slot(l->domain);
	time_t until = now + (ttl < MEMO_MAX_TTL ? ttl : MEMO_MAX_TTL);

	m->refs = 1;		/* the table's */
	m->until = until < l->entry->expires_at ? until : l->entry->expires_at;
	m->entry = policy_cache_entry_dup(l->entry);
	m->txt = l->result.txt;
	m->txt_status = l->result.txt_status;
	m->txt_security = l->result.txt_security;
	strlist_copy(&m->txt_records, &l->txt_records);
	m->txt_canonname = l->txt_canonname ? xstrdup(l->txt_canonname) : NULL;
	memo_release(l->engine->memo[slot]);
	l->engine->memo[slot] = m;
}

/* Answer from the memo, as lookup_txt_answer() would have. */
static bool
lookup_from_memo(struct policy_lookup *l)
{
	struct policy_memo *m = l->engine->memo[memo_slot(l->domain)];
	struct policy_result *r = &l->result;
	char why[160];

	if (m == NULL || l->flags != 0 || strcmp(m->entry->domain, l->domain) != 0)
		return false;
	if (clock_now() >= m->until) {
		memo_forget(l->engine, l->domain);
		return false;
	}
	m->refs++;
	l->memo = m;
	l->entry = m->entry;
	r->txt = m->txt;
	r->txt_status = m->txt_status;
	r->txt_security = m->txt_security;
	snprintf(why, sizeof(why), "TXT id %s matches the cached policy", r->txt.id);
	lookup_use_cache(l, why);
	l->state = LOOKUP_S_DONE;
	lookup_build_result(l);
	event_active(l->finish_ev, EV_TIMEOUT, 1);
	return true;
}

static void lookup_decide(struct policy_lookup *l);

/* Both answers in (the TXT record and the cache entry): decide. */
static void
lookup_ready(struct policy_lookup *l)
{
	if (l->txt_done && l->cache_read == NULL && l->state == LOOKUP_S_TXT)
		lookup_decide(l);
}

static void
lookup_cache_answer(void *arg, struct policy_cache_entry *entry)
{
	struct policy_lookup *l = arg;

	l->cache_read = NULL;
	l->entry = entry != NULL ? entry : policy_cache_entry_new(l->domain);
	lookup_ready(l);
}

static void
lookup_txt_answer(void *arg, const struct dns_answer *ans)
{
	struct policy_lookup *l = arg;
	struct policy_result *r = &l->result;
	const char **recs = NULL;
	size_t *lens = NULL;

	l->txt_query = NULL;
	r->txt_status = ans->status;
	r->txt_security = ans->security;
	if (ans->canonname != NULL)
		l->txt_canonname = xstrdup(ans->canonname);
	if (ans->status == DNS_STATUS_OK) {
		for (size_t i = 0; i < ans->count; i++) {
			struct strbuf sb;

			strbuf_init(&sb);
			if (dns_txt_join(ans->data[i], ans->len[i], &sb) == 0) {
				/* Records with NUL bytes would be cut by C strings:
				 * replace them so they fail the grammar visibly. */
				for (size_t j = 0; j < sb.len; j++)
					if (sb.data[j] == '\0')
						sb.data[j] = '?';
				strlist_add(&l->txt_records, sb.data);
			}
			strbuf_free(&sb);
		}
		recs = xcalloc(l->txt_records.count, sizeof(*recs));
		lens = xcalloc(l->txt_records.count, sizeof(*lens));
		for (size_t i = 0; i < l->txt_records.count; i++) {
			recs[i] = l->txt_records.items[i];
			lens[i] = strlen(recs[i]);
		}
		sts_record_select(recs, lens, l->txt_records.count, &r->txt);
		free(recs);
		free(lens);
	} else if (ans->status == DNS_STATUS_NXDOMAIN || ans->status == DNS_STATUS_NODATA) {
		r->txt.status = STS_RECORD_ABSENT;
		snprintf(r->txt.reason, sizeof(r->txt.reason), "no TXT record (%s)",
		    dns_status_name(ans->status));
	} else {
		r->txt.status = STS_RECORD_ABSENT;
		snprintf(r->txt.reason, sizeof(r->txt.reason), "TXT lookup failed: %s%s%s",
		    dns_status_name(ans->status), ans->why ? ": " : "", ans->why ? ans->why : "");
		log_warnx("event=policy_txt_lookup_failed domain=%s status=%s why=%s", l->domain,
		    dns_status_name(ans->status), log_quote(ans->why ? ans->why : "-"));
	}
	l->dns_failed = ans->status != DNS_STATUS_OK && ans->status != DNS_STATUS_NXDOMAIN &&
	    ans->status != DNS_STATUS_NODATA;
	l->txt_ttl = ans->ttl;
	l->txt_done = true;
	lookup_ready(l);
}

/* The cache rules on what the TXT lookup and the cache said. */
static void
lookup_decide(struct policy_lookup *l)
{
	struct policy_result *r = &l->result;
	time_t now = clock_now();
	char why[640];	/* a note: reason, cause and rule */
	bool dns_failed = l->dns_failed;
	enum policy_action action;

	action = policy_decide(l->entry, dns_failed ? NULL : &r->txt, now, l->flags);
	if (action != POLICY_ACTION_USE_CACHE)
		memo_forget(l->engine, l->domain);
	switch (action) {
	case POLICY_ACTION_FETCH:
		lookup_enter_state(l, LOOKUP_S_FETCH);
		return;
	case POLICY_ACTION_BACKOFF: {
		char when[32];

		r->backoff = true;
		r->next_fetch_at = l->entry->fail_at + POLICY_FETCH_BACKOFF;
		lookup_set_failure(l, l->entry->fail_type, l->entry->fail_reason);
		/* STS-18 */
		snprintf(why, sizeof(why), "policy id %s failed to fetch %llds ago (%s); the same "
		    "id is fetched again 5 minutes after a failure at the earliest, so not before %s",
		    r->txt.id,
		    (long long)(now - l->entry->fail_at), l->entry->fail_reason,
		    clock_format(r->next_fetch_at, when, sizeof(when)));
		lookup_use_cache(l, why);
		break;
	}
	case POLICY_ACTION_USE_CACHE:
		if (!dns_failed && r->txt.status == STS_RECORD_VALID && l->flags == 0 && l->txt_ttl > 0 &&
		    policy_cache_entry_live(l->entry, now))
			memo_store(l, l->txt_ttl, now);
		if (dns_failed)
			/* STS-10 */
			snprintf(why, sizeof(why), "%s: a failed TXT lookup counts as no live "
			    "policy, so only a cached one can apply", r->txt.reason);
		else if (r->txt.status == STS_RECORD_VALID)
			snprintf(why, sizeof(why), "TXT id %s matches the cached policy", r->txt.id);
		else
			/* STS-7, STS-32 */
			snprintf(why, sizeof(why), "%s: without exactly one valid TXT record only a "
			    "cached policy can apply", r->txt.reason);
		lookup_use_cache(l, why);
		break;
	}
	lookup_enter_state(l, LOOKUP_S_DONE);
}

static void
lookup_enter_state(struct policy_lookup *l, enum lookup_state next)
{
	log_debug("event=policy_lookup_state domain=%s transition=%s->%s", l->domain,
	    lookup_state_name(l->state), lookup_state_name(next));
	l->state = next;
	switch (next) {
	case LOOKUP_S_TXT: {
		char *qname = xasprintf("_mta-sts.%s", l->domain);

		l->txt_query = resolver_query(l->engine->resolver, qname, DNS_TYPE_TXT,
		    lookup_txt_answer, l);
		free(qname);
		if (l->txt_query == NULL) {
			/* As a failed lookup: only a cached policy can apply (STS-10). */
			l->result.txt.status = STS_RECORD_ABSENT;
			snprintf(l->result.txt.reason, sizeof(l->result.txt.reason),
			    "TXT lookup failed: cannot start the query");
			l->dns_failed = true;
			l->txt_done = true;
			lookup_ready(l);
		}
		break;
	}
	case LOOKUP_S_FETCH:
		l->fetch = policy_fetch_start(l->engine->base, l->engine->resolver,
		    l->engine->ssl_ctx, l->engine->conf, l->domain, lookup_fetch_done, l);
		break;
	case LOOKUP_S_DONE:
		lookup_build_result(l);
		event_active(l->finish_ev, EV_TIMEOUT, 1);
		break;
	}
}

/* Address literals and IP addresses have no policy (STS-2). */
static bool
is_address_literal(const char *d)
{
	unsigned char buf[16];

	return d[0] == '[' || inet_pton(AF_INET, d, buf) == 1 || inet_pton(AF_INET6, d, buf) == 1;
}

struct policy_lookup *
policy_engine_resolve(struct policy_engine *e, const char *domain, unsigned flags,
    policy_lookup_cb cb, void *arg)
{
	struct policy_lookup *l = xcalloc(1, sizeof(*l));

	l->engine = e;
	l->flags = flags;
	l->cb = cb;
	l->arg = arg;
	l->finish_ev = event_new(e->base, -1, 0, lookup_finish, l);
	l->state = LOOKUP_S_TXT;
	l->next = e->lookups;
	if (e->lookups)
		e->lookups->prev = l;
	e->lookups = l;
	l->result.txt_status = DNS_STATUS_ERROR;
	l->result.txt.status = STS_RECORD_ABSENT;

	if (is_address_literal(domain) || (l->domain = domain_normalize(domain)) == NULL) {
		l->entry = policy_cache_entry_new(domain);
		/* STS-2 */
		lookup_set_note(l, "'%s' is not a domain name: MTA-STS policies belong to domain "
		    "names, and an address literal has none", domain);
		lookup_enter_state(l, LOOKUP_S_DONE);
		return l;
	}
	if (lookup_from_memo(l))
		return l;
	/* The cache entry and the TXT record are fetched side by side. */
	if (!(flags & POLICY_F_NO_CACHE))
		l->cache_read = policy_cache_read_start(e->cache, l->domain, lookup_cache_answer, l);
	else
		l->entry = policy_cache_entry_new(l->domain);
	lookup_enter_state(l, LOOKUP_S_TXT);
	return l;
}

/* Proactive refresh (STS-33). */
struct refresh_run {
	struct policy_engine	*engine;
	struct strlist		 due;
	size_t			 next;
	long			 running, ok, failed;
	void			(*done)(void *, long, long);
	void			*arg;
};

static void refresh_start_more(struct refresh_run *run);

static void
refresh_one_done(void *arg, const struct policy_result *r)
{
	struct refresh_run *run = arg;

	run->running--;
	if (r->source == POLICY_SOURCE_FRESH)
		run->ok++;
	else
		run->failed++;
	refresh_start_more(run);
}

static void
refresh_start_more(struct refresh_run *run)
{
	while (run->running < REFRESH_CONCURRENCY && run->next < run->due.count) {
		run->running++;
		policy_engine_resolve(run->engine, run->due.items[run->next++], POLICY_F_REFRESH,
		    refresh_one_done, run);
	}
	if (run->running == 0 && run->next >= run->due.count) {
		if (run->done)
			run->done(run->arg, run->ok, run->failed);
		strlist_clear(&run->due);
		free(run);
	}
}

struct refresh_collect {
	struct strlist	*due;
	time_t		 now;
	unsigned	 interval;
};

static void
refresh_collect(const struct policy_cache_entry *entry, void *arg)
{
	struct refresh_collect *c = arg;

	if (policy_refresh_due(entry, c->now, c->interval))
		strlist_add(c->due, entry->domain);
}

long
policy_engine_refresh_due(struct policy_engine *e, void (*done)(void *, long, long), void *arg)
{
	struct refresh_run *run = xcalloc(1, sizeof(*run));
	struct refresh_collect c = { &run->due, clock_now(), e->conf->policy_refresh_interval };
	long n;

	run->engine = e;
	run->done = done;
	run->arg = arg;
	policy_cache_foreach(e->cache, refresh_collect, &c);
	n = (long)run->due.count;
	if (n > 0)
		log_info("event=policy_refresh_start due=%ld", n);
	refresh_start_more(run);
	return n;
}

#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_REPORT

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "conf/clock.h"
#include "conf/log.h"
#include "conf/metrics.h"
#include "report/rpt_mail.h"
#include "report/rpt_post.h"
#include "report/rpt_sender.h"
#include "report/tlsrpt_record.h"

#define DNS_TYPE_TXT		16
#define MAX_INFLIGHT		4
#define RETRY_CAP		(6 * 3600)
#define RETRY_WINDOW		86400	/* RPT-19 */
#define OUTBOX_PREFIX		"~out\x1f"
#define PLAN_PREFIX		"~plan\x1f"

/* ---- _smtp._tls lookup ---------------------------------------------------- */

struct rpt_record_lookup {
	char			*domain;
	struct resolver_query	*query;
	rpt_record_cb		 cb;
	void			*arg;
};

void
rpt_record_lookup_cancel(struct rpt_record_lookup *rl)
{
	if (rl == NULL)
		return;
	resolver_cancel(rl->query);
	free(rl->domain);
	free(rl);
}

static void
record_answer(void *arg, const struct dns_answer *ans)
{
	struct rpt_record_lookup *rl = arg;
	struct strlist joined = { 0 };
	struct tlsrpt_record_result rec;
	const char *recs[16];
	size_t lens[16], n = 0;
	struct rpt_record_facts facts;

	rl->query = NULL;
	for (size_t i = 0; ans->status == DNS_STATUS_OK && i < ans->count && n < 16; i++) {
		struct strbuf sb;

		strbuf_init(&sb);
		if (dns_txt_join(ans->data[i], ans->len[i], &sb) == 0)
			strlist_add(&joined, sb.data ? sb.data : "");
		strbuf_free(&sb);
	}
	for (size_t i = 0; i < joined.count; i++) {
		recs[n] = joined.items[i];
		lens[n++] = strlen(joined.items[i]);
	}
	tlsrpt_record_select(recs, lens, n, &rec);
	facts = (struct rpt_record_facts){
		.domain = rl->domain, .dns_status = ans->status, .security = ans->security,
		.dns_why = ans->why, .records = &joined, .record = &rec,
	};
	rl->cb(rl->arg, &facts);
	tlsrpt_record_result_clear(&rec);
	strlist_clear(&joined);
	rpt_record_lookup_cancel(rl);
}

struct rpt_record_lookup *
rpt_record_lookup(struct resolver *resolver, const char *domain, rpt_record_cb cb, void *arg)
{
	struct rpt_record_lookup *rl = xcalloc(1, sizeof(*rl));
	char *name = xasprintf("_smtp._tls.%s", domain);

	rl->domain = xstrdup(domain);
	rl->cb = cb;
	rl->arg = arg;
	rl->query = resolver_query(resolver, name, DNS_TYPE_TXT, record_answer, rl);
	free(name);
	if (rl->query == NULL) {
		rpt_record_lookup_cancel(rl);
		return NULL;
	}
	return rl;
}

/* The destinations view of the lookup, for the report senders. */
struct dest_lookup {
	rpt_destinations_cb	 cb;
	void			*arg;
};

static void
dest_answer(void *arg, const struct rpt_record_facts *f)
{
	struct dest_lookup *dl = arg;

	if (f->dns_status != DNS_STATUS_OK && f->dns_status != DNS_STATUS_NODATA &&
	    f->dns_status != DNS_STATUS_NXDOMAIN) {
		char why[160];

		snprintf(why, sizeof(why), "_smtp._tls.%s: %s", f->domain,
		    dns_status_name(f->dns_status));
		dl->cb(dl->arg, f->domain, NULL, why);
	} else if (f->record->status != TLSRPT_RECORD_VALID) {
		char why[256];

		snprintf(why, sizeof(why), "_smtp._tls.%s: %s", f->domain, f->record->reason);
		dl->cb(dl->arg, f->domain, NULL, why);
	} else
		dl->cb(dl->arg, f->domain, &f->record->rua, NULL);
	free(dl);
}

int
rpt_destinations_lookup(struct resolver *resolver, const char *domain, rpt_destinations_cb cb,
    void *arg)
{
	struct dest_lookup *dl = xcalloc(1, sizeof(*dl));

	dl->cb = cb;
	dl->arg = arg;
	if (rpt_record_lookup(resolver, domain, dest_answer, dl) == NULL) {
		free(dl);
		return -1;
	}
	return 0;
}

/* ---- the sender ----------------------------------------------------------- */

struct inflight {
	struct rpt_sender	*sender;
	struct rpt_post		*post;
	void			*mail_job;
	char			*key;
	struct inflight		*next;
};

struct rpt_sender {
	struct event_base	*base;
	const struct conf	*conf;
	struct resolver		*resolver;
	SSL_CTX			*ssl_ctx;
	struct rpt_store	*store;
	struct rpt_identity	 id;
	struct event		*tick;
	struct inflight		*inflight;
	unsigned		 ninflight;
	unsigned		 lookups;	/* planning: lookups outstanding */
	const struct rpt_mailer	*mailer;
	struct rpt_dkim_keys	 keys;
	char			 planning_day[11];
};

static bool
is_inflight(const struct rpt_sender *s, const char *key)
{
	for (const struct inflight *f = s->inflight; f; f = f->next)
		if (strcmp(f->key, key) == 0)
			return true;
	return false;
}

static void
inflight_remove(struct rpt_sender *s, struct inflight *gone)
{
	for (struct inflight **pp = &s->inflight; *pp; pp = &(*pp)->next)
		if (*pp == gone) {
			*pp = gone->next;
			break;
		}
	s->ninflight--;
	free(gone->key);
	free(gone);
}

static void delivery_done(struct inflight *f, bool delivered, const char *reason);

static void
posted(void *arg, const struct rpt_post_result *r)
{
	delivery_done(arg, r->delivered, r->reason);
}

static void
mailed(void *arg, bool sent, const char *reason)
{
	delivery_done(arg, sent, reason);
}

static void
delivery_done(struct inflight *f, bool delivered, const char *reason)
{
	struct rpt_sender *s = f->sender;
	json_t *doc = rpt_store_meta_get(s->store, f->key);
	time_t now = clock_now();

	if (doc != NULL) {
		json_int_t attempts = json_integer_value(json_object_get(doc, "attempts")) + 1;
		json_int_t first = json_integer_value(json_object_get(doc, "first"));
		const char *domain = json_string_value(json_object_get(doc, "domain"));
		const char *rua = json_string_value(json_object_get(doc, "rua"));

		json_object_set_new(doc, "attempts", json_integer(attempts));
		if (delivered) {
			json_object_set_new(doc, "state", json_string("delivered"));
			metrics_add("stsproxy_reports_total", "outcome=\"delivered\"", 1);
			log_notice("event=report_delivered domain=%s rua=%s day=%s attempts=%lld",
			    domain, log_quote(rua), json_string_value(json_object_get(doc, "day")),
			    (long long)attempts);
		} else {
			long long wait = (long long)s->conf->report_retry_interval;

			for (json_int_t i = 1; i < attempts && wait < RETRY_CAP; i++)
				wait *= 2;
			if (wait > RETRY_CAP)
				wait = RETRY_CAP;
			json_object_set_new(doc, "error", json_string(reason));
			if (now + wait - first > RETRY_WINDOW) {
				json_object_set_new(doc, "state", json_string("expired"));
				metrics_add("stsproxy_reports_total", "outcome=\"expired\"", 1);
				log_warnx("event=report_expired domain=%s rua=%s attempts=%lld reason=%s",
				    domain, log_quote(rua), (long long)attempts, log_quote(reason));
			} else {
				json_object_set_new(doc, "next", json_integer(now + wait));
				metrics_add("stsproxy_reports_total", "outcome=\"retry\"", 1);
				log_warnx("event=report_retry domain=%s rua=%s attempts=%lld retry_in=%llds reason=%s",
				    domain, log_quote(rua), (long long)attempts, wait, log_quote(reason));
			}
		}
		rpt_store_meta_put(s->store, f->key, doc);
		json_decref(doc);
	}
	inflight_remove(s, f);
}

static void
deliver(struct rpt_sender *s, const char *key, json_t *doc)
{
	const char *day = json_string_value(json_object_get(doc, "day"));
	const char *domain = json_string_value(json_object_get(doc, "domain"));
	const char *rua = json_string_value(json_object_get(doc, "rua"));
	json_t *report;
	char *json;
	struct strbuf gz;
	struct inflight *f;

	if (day == NULL || domain == NULL || rua == NULL)
		return;
	if (json_integer_value(json_object_get(doc, "first")) == 0) {
		json_object_set_new(doc, "first", json_integer(clock_now()));
		rpt_store_meta_put(s->store, key, doc);
	}
	if ((report = rpt_report_build(s->store, &s->id, day, domain, NULL)) == NULL)
		return;
	if (strncasecmp(rua, "mailto:", 7) == 0) {
		char to[320], *msg;

		if (s->mailer == NULL || tlsrpt_mailto_address(rua, to, sizeof(to)) < 0) {
			json_decref(report);
			return;
		}
		/* Date and DKIM t= are real time, whatever the test clock says. */
		msg = rpt_mail_build(&s->id, &s->keys, report, day, domain, to, time(NULL));
		f = xcalloc(1, sizeof(*f));
		f->sender = s;
		f->key = xstrdup(key);
		f->mail_job = s->mailer->send(s->mailer->ctx, s->id.contact, to, msg, mailed, f);
		if (f->mail_job != NULL) {
			f->next = s->inflight;
			s->inflight = f;
			s->ninflight++;
		} else {
			free(f->key);
			free(f);
		}
		free(msg);
		json_decref(report);
		return;
	}
	json = json_dumps(report, JSON_COMPACT);
	strbuf_init(&gz);
	rpt_gzip(json, strlen(json), &gz);
	f = xcalloc(1, sizeof(*f));
	f->sender = s;
	f->key = xstrdup(key);
	f->post = rpt_post_start(s->base, s->resolver, s->ssl_ctx, rua, gz.data, gz.len,
	    s->conf->policy_fetch_timeout, posted, f);
	if (f->post != NULL) {
		f->next = s->inflight;
		s->inflight = f;
		s->ninflight++;
	} else {
		json_object_set_new(doc, "state", json_string("expired"));
		json_object_set_new(doc, "error", json_string("not a usable https URL"));
		rpt_store_meta_put(s->store, key, doc);
		free(f->key);
		free(f);
	}
	strbuf_free(&gz);
	free(json);
	json_decref(report);
}

struct due {
	struct strlist	 keys;
	time_t		 now;
};

static void
collect_due(void *arg, const char *key, json_t *doc)
{
	struct due *d = arg;
	const char *state = json_string_value(json_object_get(doc, "state"));

	if (state != NULL && strcmp(state, "pending") == 0 &&
	    json_integer_value(json_object_get(doc, "next")) <= d->now)
		strlist_add(&d->keys, key);
}

static void
run_outbox(struct rpt_sender *s)
{
	struct due d = { { 0 }, clock_now() };

	rpt_store_meta_foreach(s->store, OUTBOX_PREFIX, collect_due, &d);
	for (size_t i = 0; i < d.keys.count && s->ninflight < MAX_INFLIGHT; i++) {
		json_t *doc;

		if (is_inflight(s, d.keys.items[i]))
			continue;
		if ((doc = rpt_store_meta_get(s->store, d.keys.items[i])) != NULL) {
			deliver(s, d.keys.items[i], doc);
			json_decref(doc);
		}
	}
	strlist_clear(&d.keys);
}

/* ---- planning a day -------------------------------------------------------- */

static void
plan_done(struct rpt_sender *s)
{
	char *key = xasprintf("%s%s", PLAN_PREFIX, s->planning_day);
	json_t *doc = rpt_store_meta_get(s->store, key);

	if (doc != NULL) {
		json_object_set_new(doc, "state", json_string("planned"));
		rpt_store_meta_put(s->store, key, doc);
		json_decref(doc);
	}
	log_info("event=report_planned day=%s", s->planning_day);
	s->planning_day[0] = '\0';
	free(key);
	run_outbox(s);
}

static void
got_destinations(void *arg, const char *domain, const struct strlist *rua, const char *why)
{
	struct rpt_sender *s = arg;

	if (rua == NULL)
		log_info("event=report_skipped day=%s domain=%s reason=%s", s->planning_day, domain,
		    log_quote(why));
	for (size_t i = 0; rua != NULL && i < rua->count; i++) {
		char *key;
		json_t *doc;

		if (strncasecmp(rua->items[i], "https:", 6) != 0 &&
		    (s->mailer == NULL || strncasecmp(rua->items[i], "mailto:", 7) != 0)) {
			log_info("event=report_skipped day=%s domain=%s rua=%s "
			    "reason=\"no mail transport for mailto: destinations\"", s->planning_day, domain,
			    log_quote(rua->items[i]));
			continue;
		}
		key = xasprintf("%s%s\x1f%s\x1f%s", OUTBOX_PREFIX, s->planning_day, domain,
		    rua->items[i]);
		if ((doc = rpt_store_meta_get(s->store, key)) == NULL) {
			doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "day", s->planning_day,
			    "domain", domain, "rua", rua->items[i], "state", "pending", "first",
			    (json_int_t)0, "attempts", (json_int_t)0, "next", (json_int_t)clock_now());
			rpt_store_meta_put(s->store, key, doc);
		}
		json_decref(doc);
		free(key);
	}
	if (--s->lookups == 0)
		plan_done(s);
}

struct day_domains {
	struct strlist	 all, failed;
};

static void
domains_visit(void *arg, const char *day, const char *domain, json_t *rec)
{
	struct day_domains *dd = arg;

	(void)day;
	if (dd->all.count == 0 || strcmp(dd->all.items[dd->all.count - 1], domain) != 0)
		strlist_add(&dd->all, domain);
	if (json_object_size(json_object_get(rec, "failures")) > 0 &&
	    (dd->failed.count == 0 || strcmp(dd->failed.items[dd->failed.count - 1], domain) != 0))
		strlist_add(&dd->failed, domain);
}

static void
plan_day(struct rpt_sender *s, const char *day)
{
	struct day_domains dd = { { 0 }, { 0 } };
	const struct strlist *which;

	/* The counters of the day must all be on disk before its reports. */
	rpt_store_flush(s->store);
	rpt_store_foreach(s->store, day, NULL, domains_visit, &dd);
	which = s->conf->report_send_success_only ? &dd.all : &dd.failed;
	snprintf(s->planning_day, sizeof(s->planning_day), "%s", day);
	s->lookups = 1;	/* held while the lookups start */
	for (size_t i = 0; i < which->count; i++) {
		s->lookups++;
		if (rpt_destinations_lookup(s->resolver, which->items[i], got_destinations, s) < 0)
			s->lookups--;
	}
	log_info("event=report_planning day=%s domains=%zu with_failures=%zu", day, dd.all.count,
	    dd.failed.count);
	strlist_clear(&dd.all);
	strlist_clear(&dd.failed);
	if (--s->lookups == 0)
		plan_done(s);
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct rpt_sender *s = arg;
	time_t now = clock_now();
	char day[11], *key;
	json_t *plan;

	(void)fd;
	(void)what;
	rpt_day(now - 86400, day);
	key = xasprintf("%s%s", PLAN_PREFIX, day);
	if ((plan = rpt_store_meta_get(s->store, key)) == NULL) {
		/* RPT-10: after 00:00 UTC plus a random delay, chosen once per day. */
		time_t send_at = rpt_day_start(day) + 86400 +
		    (s->conf->report_max_delay ? arc4random_uniform(s->conf->report_max_delay + 1) : 0);

		plan = json_pack("{s:s, s:I}", "state", "waiting", "send_at", (json_int_t)send_at);
		rpt_store_meta_put(s->store, key, plan);
		char when[32];

		log_info("event=report_scheduled day=%s send_at=%s", day,
		    clock_format(send_at, when, sizeof(when)));
	}
	if (s->planning_day[0] == '\0' &&
	    strcmp(json_string_value(json_object_get(plan, "state")), "waiting") == 0 &&
	    now >= json_integer_value(json_object_get(plan, "send_at")))
		plan_day(s, day);
	json_decref(plan);
	free(key);
	run_outbox(s);
}

struct rpt_sender *
rpt_sender_new(struct event_base *base, const struct conf *conf, struct resolver *resolver,
    SSL_CTX *ssl_ctx, struct rpt_store *store, const struct rpt_identity *id,
    const struct rpt_mailer *mailer)
{
	struct rpt_sender *s = xcalloc(1, sizeof(*s));
	char *err = NULL;
	struct timeval tv = { conf->report_flush_interval, 0 };

	s->base = base;
	s->conf = conf;
	s->resolver = resolver;
	s->ssl_ctx = ssl_ctx;
	s->store = store;
	s->id = *id;
	s->mailer = mailer;
	if (mailer != NULL && rpt_dkim_keys_load(&s->keys, conf, id, &err) < 0) {
		/* RPT-17 requires a signature: without keys, no mailed reports. */
		log_err("event=report_mail_disabled reason=%s", log_quote(err));
		free(err);
		s->mailer = NULL;
	} else if (mailer != NULL && s->keys.count == 0) {
		log_notice("event=report_mail_disabled reason=\"no [report] dkim_key: mailed reports must be DKIM-signed (RFC 8460 section 3)\"");
		s->mailer = NULL;
	}
	s->tick = event_new(base, -1, EV_PERSIST, tick, s);
	event_add(s->tick, &tv);
	event_active(s->tick, EV_TIMEOUT, 0);
	return s;
}

void
rpt_sender_free(struct rpt_sender *s)
{
	if (s == NULL)
		return;
	event_free(s->tick);
	while (s->inflight != NULL) {
		struct inflight *f = s->inflight;

		if (f->post != NULL)
			rpt_post_cancel(f->post);
		if (f->mail_job != NULL)
			s->mailer->cancel(f->mail_job);
		inflight_remove(s, f);
	}
	rpt_dkim_keys_free(&s->keys);
	free(s);
}

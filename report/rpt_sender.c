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
#include "report/rpt_outbox.h"
#include "report/rpt_sender.h"

#define MAX_INFLIGHT		4
#define REPLAN_DELAY		60	/* seconds after a plan the database refused */

struct inflight {
	struct rpt_sender	*sender;
	struct rpt_delivery	*delivery;
	char			*key;		/* day, domain and rua */
	struct inflight		*next;
};

struct rpt_sender {
	const struct conf	*conf;
	struct resolver		*resolver;
	struct rpt_store	*store;
	struct rpt_identity	 id;
	struct rpt_deliver_env	 env;
	struct event		*tick;
	struct inflight		*inflight;
	unsigned		 ninflight;
	unsigned		 lookups;	/* planning: lookups outstanding */
	bool			 plan_failed;	/* planning: an entry could not be written */
	time_t			 replan_after;	/* after a failed plan, not before */
	const struct rpt_mailer	*mailer;
	struct rpt_dkim_keys	 keys;
	char			 planning_day[11];
};

static char *
inflight_key(const char *day, const char *domain, const char *rua)
{
	return xasprintf("%s\x1f%s\x1f%s", day, domain, rua);
}

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

/* A destination that has the report: whoever delivered it, nothing to do. */
static void
log_skipped_delivered(const struct rpt_outbox_entry *e)
{
	char text[128], reason[160];

	snprintf(reason, sizeof(reason), "already %s", rpt_outbox_delivered_text(e, text,
	    sizeof(text)));
	log_info("event=report_skipped day=%s domain=%s rua=%s reason=%s", e->day, e->domain,
	    log_quote(e->rua), log_quote(reason));
}

/* What became of one outbox entry, in the log and the metrics. */
static void
delivered(void *arg, const struct rpt_delivery_result *r)
{
	struct inflight *f = arg;
	const struct rpt_outbox_entry *e = &r->entry;

	switch (r->status) {
	case RPT_DELIVERY_DELIVERED:
		metrics_add("stsproxy_reports_total", "outcome=\"delivered\"", 1);
		log_notice("event=report_delivered domain=%s rua=%s day=%s attempts=%u", r->domain,
		    log_quote(r->rua), r->day, e->attempts);
		break;
	case RPT_DELIVERY_FAILED:
	case RPT_DELIVERY_NO_REPORT:
		if (e->state == RPT_OUTBOX_EXPIRED) {
			metrics_add("stsproxy_reports_total", "outcome=\"expired\"", 1);
			log_warnx("event=report_expired domain=%s rua=%s attempts=%u reason=%s",
			    r->domain, log_quote(r->rua), e->attempts, log_quote(r->reason));
		} else {
			metrics_add("stsproxy_reports_total", "outcome=\"retry\"", 1);
			log_warnx("event=report_retry domain=%s rua=%s attempts=%u retry_in=%llds "
			    "reason=%s", r->domain, log_quote(r->rua), e->attempts,
			    (long long)(e->next - clock_now()), log_quote(r->reason));
		}
		break;
	case RPT_DELIVERY_ALREADY:
		log_skipped_delivered(e);
		break;
	case RPT_DELIVERY_BUSY:
	case RPT_DELIVERY_SKIPPED:
		/* Still pending: the next tick tries again. */
		log_info("event=report_skipped day=%s domain=%s rua=%s reason=%s", r->day, r->domain,
		    log_quote(r->rua), log_quote(r->reason));
		break;
	case RPT_DELIVERY_STORE_ERROR:
		/* Logged by the store; the entry is retried on the next tick. */
		break;
	}
	inflight_remove(f->sender, f);
}

static void
start_delivery(struct rpt_sender *s, const struct rpt_outbox_entry *e)
{
	struct inflight *f = xcalloc(1, sizeof(*f));

	f->sender = s;
	f->key = inflight_key(e->day, e->domain, e->rua);
	f->next = s->inflight;
	s->inflight = f;
	s->ninflight++;
	f->delivery = rpt_deliver_start(&s->env, e->day, e->domain, e->rua, false, delivered, f);
}

struct due {
	struct rpt_sender	*sender;
	time_t			 now;
	struct rpt_outbox_entry	*entries;
	size_t			 count, room;
};

static void
collect_due(void *arg, const struct rpt_outbox_entry *e)
{
	struct due *d = arg;
	char *key;

	if (d->count >= d->room || e->state != RPT_OUTBOX_PENDING || e->next > d->now)
		return;
	key = inflight_key(e->day, e->domain, e->rua);
	if (!is_inflight(d->sender, key))
		d->entries[d->count++] = *e;
	free(key);
}

static void
run_outbox(struct rpt_sender *s)
{
	struct due d = { s, clock_now(), NULL, 0, MAX_INFLIGHT - s->ninflight };

	if (d.room == 0)
		return;
	d.entries = xcalloc(d.room, sizeof(*d.entries));
	/* Collected first: a delivery writes to the database, which the
	 * walk holds open for reading. */
	rpt_outbox_foreach(s->store, collect_due, &d);
	for (size_t i = 0; i < d.count; i++)
		start_delivery(s, &d.entries[i]);
	free(d.entries);
}

/* ---- planning a day -------------------------------------------------------- */

static void
plan_done(struct rpt_sender *s)
{
	struct rpt_plan plan = { RPT_PLAN_PLANNED, 0 };

	/* An entry that could not be written keeps the day waiting: planning
	 * again next tick loses nothing, the entries written stay as they are. */
	if (!s->plan_failed) {
		int got = rpt_plan_get(s->store, s->planning_day, &plan);

		plan.state = RPT_PLAN_PLANNED;
		if (got == 1 && rpt_plan_put(s->store, s->planning_day, &plan) == 0)
			log_info("event=report_planned day=%s", s->planning_day);
		else
			s->plan_failed = true;
	}
	if (s->plan_failed) {
		s->replan_after = clock_now() + REPLAN_DELAY;
		log_warnx("event=report_plan_failed day=%s retry_in=%ds reason=\"the outbox cannot "
		    "be written (see the log)\"", s->planning_day, REPLAN_DELAY);
	}
	s->planning_day[0] = '\0';
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
		struct rpt_outbox_entry e;

		if (strncasecmp(rua->items[i], "https:", 6) != 0 &&
		    (s->mailer == NULL || strncasecmp(rua->items[i], "mailto:", 7) != 0)) {
			log_info("event=report_skipped day=%s domain=%s rua=%s "
			    "reason=\"no mail transport for mailto: destinations\"", s->planning_day, domain,
			    log_quote(rua->items[i]));
			continue;
		}
		if (rpt_outbox_plan(s->store, s->planning_day, domain, rua->items[i], clock_now(),
		    &e) < 0) {
			s->plan_failed = true;
			continue;
		}
		if (e.state == RPT_OUTBOX_DELIVERED)
			log_skipped_delivered(&e);
	}
	if (--s->lookups == 0)
		plan_done(s);
}

static void
plan_day(struct rpt_sender *s, const char *day)
{
	struct strlist all = { 0 }, failed = { 0 };
	const struct strlist *which;

	/* The counters of the day must all be on disk before its reports. */
	rpt_store_flush(s->store);
	if (rpt_report_domains(s->store, day, NULL, &all, &failed) < 0) {
		/* Logged by the store; the day stays waiting. */
		s->replan_after = clock_now() + REPLAN_DELAY;
		strlist_clear(&all);
		strlist_clear(&failed);
		return;
	}
	which = s->conf->report_send_success_only ? &all : &failed;
	snprintf(s->planning_day, sizeof(s->planning_day), "%s", day);
	s->plan_failed = false;
	s->lookups = 1;	/* held while the lookups start */
	for (size_t i = 0; i < which->count; i++) {
		s->lookups++;
		if (rpt_destinations_lookup(s->resolver, which->items[i], got_destinations, s) < 0)
			s->lookups--;
	}
	log_info("event=report_planning day=%s domains=%zu with_failures=%zu", day, all.count,
	    failed.count);
	strlist_clear(&all);
	strlist_clear(&failed);
	if (--s->lookups == 0)
		plan_done(s);
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct rpt_sender *s = arg;
	time_t now = clock_now();
	struct rpt_plan plan;
	char day[11], when[32];
	int found;

	(void)fd;
	(void)what;
	rpt_day(now - 86400, day);
	if ((found = rpt_plan_get(s->store, day, &plan)) == 0) {
		/* RPT-10: after 00:00 UTC plus a random delay, chosen once per day. */
		plan.state = RPT_PLAN_WAITING;
		plan.send_at = rpt_day_start(day) + 86400 +
		    (s->conf->report_max_delay ? arc4random_uniform(s->conf->report_max_delay + 1) : 0);
		if (rpt_plan_put(s->store, day, &plan) == 0) {
			found = 1;
			log_info("event=report_scheduled day=%s send_at=%s", day,
			    clock_format(plan.send_at, when, sizeof(when)));
		}
	}
	/* Without a plan on disk (a database error, logged) nothing is planned. */
	if (found == 1 && s->planning_day[0] == '\0' && plan.state == RPT_PLAN_WAITING &&
	    now >= plan.send_at && now >= s->replan_after)
		plan_day(s, day);
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

	s->conf = conf;
	s->resolver = resolver;
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
	s->env = (struct rpt_deliver_env){
		.base = base, .conf = conf, .resolver = resolver, .ssl_ctx = ssl_ctx,
		.store = store, .id = &s->id, .mailer = s->mailer, .keys = &s->keys,
		.no_mail = "no mail transport for mailto: destinations", .by = RPT_BY_DAEMON,
	};
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

		rpt_delivery_cancel(f->delivery);
		inflight_remove(s, f);
	}
	rpt_dkim_keys_free(&s->keys);
	free(s);
}

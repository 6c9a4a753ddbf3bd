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

/*
 * The sender's database steps, run by the store (rpt_store_job()): on its
 * thread when the store is a fleet's database, here otherwise. A step
 * carries copies of what it reads and writes, so the sender may go away
 * while one runs (s is then NULL, and done only frees).
 */
enum step_kind {
	STEP_TICK,	/* the sender lease, the day's plan, the outbox entries due */
	STEP_DOMAINS,	/* the day's policy domains, from the counters */
	STEP_PLAN,	/* outbox entries for one domain's destinations */
	STEP_FINISH,	/* the day is planned */
};

struct step {
	enum step_kind		 kind;
	struct rpt_sender	*s;
	struct rpt_store	*store;
	struct rpt_store_job	*handle;
	struct step		*next;
	char			 day[11];
	time_t			 now;
	/* TICK */
	time_t			 send_at;	/* a new plan's, chosen on the loop */
	size_t			 room;
	struct strlist		 inflight;	/* keys of the deliveries in flight */
	int			 lease;
	int			 found;
	bool			 scheduled;
	struct rpt_plan		 plan;
	struct rpt_outbox_entry	*due;
	size_t			 ndue;
	/* DOMAINS */
	struct strlist		 all, failed;
	int			 rc;
	/* PLAN */
	char			*domain;
	struct strlist		 rua;
	struct rpt_outbox_entry	*delivered;	/* entries found delivered already */
	size_t			 ndelivered;
	bool			 plan_failed;	/* PLAN: an entry not written; FINISH: in */
	/* FINISH */
	bool			 finished;
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
	struct step		*steps;		/* in flight */
	bool			 ticking;	/* a TICK step is in flight */
	int			 leader;	/* the last lease answer; -2: none yet */
	struct rpt_store_flush	*flush;		/* planning: the counters being written first */
	unsigned		 lookups;	/* planning: lookups and PLAN steps outstanding */
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
in_list(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->items[i], s) == 0)
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

/* ---- steps ------------------------------------------------------------------------- */

static struct step *
step_new(struct rpt_sender *s, enum step_kind kind, const char *day)
{
	struct step *st = xcalloc(1, sizeof(*st));

	st->kind = kind;
	st->s = s;
	st->store = s->store;
	st->now = clock_now();
	snprintf(st->day, sizeof(st->day), "%s", day);
	return st;
}

static void
step_free(struct step *st)
{
	strlist_clear(&st->inflight);
	strlist_clear(&st->all);
	strlist_clear(&st->failed);
	strlist_clear(&st->rua);
	free(st->due);
	free(st->delivered);
	free(st->domain);
	free(st);
}

static void
collect_due(void *arg, const struct rpt_outbox_entry *e)
{
	struct step *st = arg;
	char *key;

	if (st->ndue >= st->room || e->state != RPT_OUTBOX_PENDING || e->next > st->now)
		return;
	key = inflight_key(e->day, e->domain, e->rua);
	if (!in_list(&st->inflight, key))
		st->due[st->ndue++] = *e;
	free(key);
}

static void
step_run(void *arg)
{
	struct step *st = arg;

	switch (st->kind) {
	case STEP_TICK:
		/* In a fleet only the holder of the lease plans and sends. */
		if ((st->lease = rpt_store_sender_lease(st->store)) != 1)
			break;
		if ((st->found = rpt_plan_get(st->store, st->day, &st->plan)) == 0) {
			st->plan.state = RPT_PLAN_WAITING;
			st->plan.send_at = st->send_at;
			if (rpt_plan_put(st->store, st->day, &st->plan) == 0) {
				st->found = 1;
				st->scheduled = true;
			}
		}
		if (st->room > 0) {
			st->due = xcalloc(st->room, sizeof(*st->due));
			rpt_outbox_foreach(st->store, collect_due, st);
		}
		break;
	case STEP_DOMAINS:
		st->rc = rpt_report_domains(st->store, st->day, NULL, &st->all, &st->failed);
		break;
	case STEP_PLAN:
		for (size_t i = 0; i < st->rua.count; i++) {
			struct rpt_outbox_entry e;

			if (rpt_outbox_plan(st->store, st->day, st->domain, st->rua.items[i], st->now,
			    &e) < 0) {
				st->plan_failed = true;
				continue;
			}
			if (e.state == RPT_OUTBOX_DELIVERED) {
				st->delivered = xrealloc(st->delivered, (st->ndelivered + 1) *
				    sizeof(*st->delivered));
				st->delivered[st->ndelivered++] = e;
			}
		}
		break;
	case STEP_FINISH:
		/* An entry that could not be written keeps the day waiting:
		 * planning again loses nothing, the entries written stay. */
		if (!st->plan_failed) {
			struct rpt_plan plan = { RPT_PLAN_PLANNED, 0 };

			if (rpt_plan_get(st->store, st->day, &plan) == 1) {
				plan.state = RPT_PLAN_PLANNED;
				st->finished = rpt_plan_put(st->store, st->day, &plan) == 0;
			}
		}
		break;
	}
}

static void step_done(void *arg, bool cancelled);

static void
step_submit(struct step *st)
{
	struct rpt_sender *s = st->s;
	struct rpt_store_job *h;

	st->next = s->steps;
	s->steps = st;
	/* A local store runs it now, done included: st is gone if h is NULL. */
	h = rpt_store_job(s->store, step_run, step_done, st);
	if (h != NULL)
		st->handle = h;
}

static void tick_done(struct rpt_sender *s, struct step *st);
static void domains_done(struct rpt_sender *s, struct step *st);
static void plan_step_done(struct rpt_sender *s, struct step *st);
static void finish_done(struct rpt_sender *s, struct step *st);

static void
step_done(void *arg, bool cancelled)
{
	struct step *st = arg;
	struct rpt_sender *s = st->s;

	if (s != NULL) {
		for (struct step **pp = &s->steps; *pp; pp = &(*pp)->next)
			if (*pp == st) {
				*pp = st->next;
				break;
			}
	}
	if (s != NULL && !cancelled) {
		switch (st->kind) {
		case STEP_TICK:
			tick_done(s, st);
			break;
		case STEP_DOMAINS:
			domains_done(s, st);
			break;
		case STEP_PLAN:
			plan_step_done(s, st);
			break;
		case STEP_FINISH:
			finish_done(s, st);
			break;
		}
	}
	step_free(st);
}

/* ---- planning a day -------------------------------------------------------------- */

static void
plan_done(struct rpt_sender *s)
{
	struct step *st = step_new(s, STEP_FINISH, s->planning_day);

	st->plan_failed = s->plan_failed;
	step_submit(st);
}

static void
finish_done(struct rpt_sender *s, struct step *st)
{
	if (st->finished)
		log_info("event=report_planned day=%s", st->day);
	else {
		s->replan_after = clock_now() + REPLAN_DELAY;
		log_warnx("event=report_plan_failed day=%s retry_in=%ds reason=\"the outbox cannot "
		    "be written (see the log)\"", st->day, REPLAN_DELAY);
	}
	s->planning_day[0] = '\0';
	/* What was just planned is due now. */
	event_active(s->tick, EV_TIMEOUT, 0);
}

static void
plan_step_done(struct rpt_sender *s, struct step *st)
{
	for (size_t i = 0; i < st->ndelivered; i++)
		log_skipped_delivered(&st->delivered[i]);
	if (st->plan_failed)
		s->plan_failed = true;
	if (--s->lookups == 0)
		plan_done(s);
}

static void
got_destinations(void *arg, const char *domain, const struct strlist *rua, const char *why)
{
	struct rpt_sender *s = arg;
	struct step *st;

	if (rua == NULL)
		log_info("event=report_skipped day=%s domain=%s reason=%s", s->planning_day, domain,
		    log_quote(why));
	st = step_new(s, STEP_PLAN, s->planning_day);
	st->domain = xstrdup(domain);
	for (size_t i = 0; rua != NULL && i < rua->count; i++) {
		if (strncasecmp(rua->items[i], "https:", 6) != 0 &&
		    (s->mailer == NULL || strncasecmp(rua->items[i], "mailto:", 7) != 0)) {
			log_info("event=report_skipped day=%s domain=%s rua=%s "
			    "reason=\"no mail transport for mailto: destinations\"", s->planning_day, domain,
			    log_quote(rua->items[i]));
			continue;
		}
		strlist_add(&st->rua, rua->items[i]);
	}
	if (st->rua.count == 0) {
		step_free(st);
		if (--s->lookups == 0)
			plan_done(s);
		return;
	}
	step_submit(st);	/* its done counts the lookup off */
}

static void
domains_done(struct rpt_sender *s, struct step *st)
{
	const struct strlist *which;

	if (st->rc < 0) {
		/* Logged by the store; the day stays waiting. */
		s->replan_after = clock_now() + REPLAN_DELAY;
		s->planning_day[0] = '\0';
		return;
	}
	which = s->conf->report_send_success_only ? &st->all : &st->failed;
	s->plan_failed = false;
	s->lookups = 1;	/* held while the lookups start */
	for (size_t i = 0; i < which->count; i++) {
		s->lookups++;
		if (rpt_destinations_lookup(s->resolver, which->items[i], got_destinations, s) < 0)
			s->lookups--;
	}
	log_info("event=report_planning day=%s domains=%zu with_failures=%zu", st->day,
	    st->all.count, st->failed.count);
	if (--s->lookups == 0)
		plan_done(s);
}

/* The counters of the day are all in the store (this relay's at least). */
static void
flushed(void *arg, bool complete)
{
	struct rpt_sender *s = arg;

	s->flush = NULL;
	if (!complete) {
		/* Counts of this relay still wait for the database: not yet. */
		log_warnx("event=report_plan_waiting day=%s retry_in=%ds reason=\"counts of this "
		    "relay wait for the store; the day's reports must hold them\"", s->planning_day,
		    REPLAN_DELAY);
		s->replan_after = clock_now() + REPLAN_DELAY;
		s->planning_day[0] = '\0';
		return;
	}
	step_submit(step_new(s, STEP_DOMAINS, s->planning_day));
}

static void
plan_day(struct rpt_sender *s, const char *day)
{
	snprintf(s->planning_day, sizeof(s->planning_day), "%s", day);
	/* The counters of the day must all be stored before its reports. */
	s->flush = rpt_store_flush_then(s->store, flushed, s);
}

/* ---- the tick ------------------------------------------------------------------------ */

static void
tick_done(struct rpt_sender *s, struct step *st)
{
	char when[32];

	s->ticking = false;
	if (st->lease != s->leader && st->lease >= 0) {
		if (st->lease == 1)
			log_notice("event=report_sender_role state=taken store=%s", log_quote(
			    rpt_store_where(s->store)));
		else if (s->leader == 1)
			log_notice("event=report_sender_role state=lost store=%s", log_quote(
			    rpt_store_where(s->store)));
		else
			log_info("event=report_sender_role state=standby reason=\"another relay sends "
			    "the reports\"");
		s->leader = st->lease;
	}
	if (st->lease != 1)
		return;
	if (st->scheduled)
		log_info("event=report_scheduled day=%s send_at=%s", st->day,
		    clock_format(st->plan.send_at, when, sizeof(when)));
	/* Without a plan in the store (a database error, logged) nothing is planned. */
	if (st->found == 1 && s->planning_day[0] == '\0' && s->flush == NULL &&
	    st->plan.state == RPT_PLAN_WAITING && st->now >= st->plan.send_at &&
	    st->now >= s->replan_after)
		plan_day(s, st->day);
	for (size_t i = 0; i < st->ndue && s->ninflight < MAX_INFLIGHT; i++) {
		char *key = inflight_key(st->due[i].day, st->due[i].domain, st->due[i].rua);
		bool busy = false;

		for (struct inflight *f = s->inflight; f != NULL && !busy; f = f->next)
			busy = strcmp(f->key, key) == 0;
		free(key);
		if (!busy)
			start_delivery(s, &st->due[i]);
	}
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct rpt_sender *s = arg;
	struct step *st;
	char day[11];

	(void)fd;
	(void)what;
	if (s->ticking)
		return;		/* a slow store: one tick at a time */
	rpt_day(clock_now() - 86400, day);
	st = step_new(s, STEP_TICK, day);
	/* RPT-10: after 00:00 UTC plus a random delay, chosen once per day. */
	st->send_at = rpt_day_start(day) + 86400 +
	    (s->conf->report_max_delay ? arc4random_uniform(s->conf->report_max_delay + 1) : 0);
	st->room = MAX_INFLIGHT - s->ninflight;
	for (struct inflight *f = s->inflight; f != NULL; f = f->next)
		strlist_add(&st->inflight, f->key);
	s->ticking = true;
	step_submit(st);
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
	s->leader = -2;
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
	rpt_store_flush_cancel(s->flush);
	/* Steps in flight finish in the store, for nobody. */
	for (struct step *st = s->steps; st != NULL; st = st->next) {
		st->s = NULL;
		rpt_store_job_cancel(st->handle);
	}
	while (s->inflight != NULL) {
		struct inflight *f = s->inflight;

		rpt_delivery_cancel(f->delivery);
		inflight_remove(s, f);
	}
	rpt_dkim_keys_free(&s->keys);
	free(s);
}

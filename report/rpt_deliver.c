#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_REPORT

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "conf/clock.h"
#include "conf/log.h"
#include "report/rpt_deliver.h"
#include "report/rpt_post.h"
#include "report/tlsrpt_record.h"

#define DNS_TYPE_TXT		16
#define MAX_TXT_RECORDS		16
#define RETRY_CAP		(6 * 3600)
#define RETRY_WINDOW		86400	/* RPT-19 */

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
	const char *recs[MAX_TXT_RECORDS];
	size_t lens[MAX_TXT_RECORDS], n = 0;
	struct rpt_record_facts facts;

	rl->query = NULL;
	for (size_t i = 0; ans->status == DNS_STATUS_OK && i < ans->count && n < MAX_TXT_RECORDS;
	    i++) {
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

/* ---- one delivery ------------------------------------------------------------- */

/*
 * CLAIM: the outbox entry is taken (or the delivery ends: already
 *        delivered, busy, skipped, no report, database error).
 * SEND:  the report is on its way (POST or mail).
 * DONE:  recorded; the result waits for the deferred finish event, so
 *        the caller's callback never runs inside start or a transport's
 *        callback.
 */
enum delivery_state {
	DELIVERY_S_CLAIM,
	DELIVERY_S_SEND,
	DELIVERY_S_DONE,
};

struct rpt_delivery {
	const struct rpt_deliver_env	*env;
	char				*day, *domain, *rua;
	bool				 force;
	enum delivery_state		 state;
	bool				 claimed;	/* the entry is ours until recorded */
	struct rpt_post			*post;
	void				*mail_job;
	struct event			*finish_ev;
	struct rpt_delivery_result	 result;
	rpt_deliver_cb			 cb;
	void				*arg;
};

const char *
rpt_delivery_status_name(enum rpt_delivery_status status)
{
	switch (status) {
	case RPT_DELIVERY_DELIVERED: return "delivered";
	case RPT_DELIVERY_FAILED: return "failed";
	case RPT_DELIVERY_ALREADY: return "already_delivered";
	case RPT_DELIVERY_BUSY: return "busy";
	case RPT_DELIVERY_SKIPPED: return "skipped";
	case RPT_DELIVERY_NO_REPORT: return "no_report";
	case RPT_DELIVERY_STORE_ERROR: return "store_error";
	}
	return "?";
}

static const char *
delivery_state_name(enum delivery_state s)
{
	switch (s) {
	case DELIVERY_S_CLAIM: return "claim";
	case DELIVERY_S_SEND: return "send";
	case DELIVERY_S_DONE: return "done";
	}
	return "?";
}

static void delivery_enter_state(struct rpt_delivery *d, enum delivery_state next);

static void
delivery_end(struct rpt_delivery *d, enum rpt_delivery_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
delivery_end(struct rpt_delivery *d, enum rpt_delivery_status status, const char *fmt, ...)
{
	va_list ap;

	d->result.status = status;
	va_start(ap, fmt);
	vsnprintf(d->result.reason, sizeof(d->result.reason), fmt, ap);
	va_end(ap);
	delivery_enter_state(d, DELIVERY_S_DONE);
}

/*
 * Write what the attempt came to. The daemon's failures are retried with
 * backoff within RPT-19's window, or expire; report send's failures are
 * only noted, so they leave the daemon's schedule as it was.
 */
static void
delivery_record(struct rpt_delivery *d, bool delivered, bool permanent, const char *reason)
{
	const struct rpt_deliver_env *env = d->env;
	struct rpt_outbox_entry *e = &d->result.entry;
	time_t now = clock_now();

	if (delivered) {
		e->state = RPT_OUTBOX_DELIVERED;
		e->attempts++;
		e->delivered_at = now;
		e->delivered_by = env->by;
		e->error[0] = '\0';
	} else if (env->by == RPT_BY_DAEMON) {
		long long wait = (long long)env->conf->report_retry_interval;

		e->attempts++;
		snprintf(e->error, sizeof(e->error), "%s", reason);
		for (unsigned i = 1; i < e->attempts && wait < RETRY_CAP; i++)
			wait *= 2;
		if (wait > RETRY_CAP)
			wait = RETRY_CAP;
		if (permanent || now + wait - e->first > RETRY_WINDOW)
			e->state = RPT_OUTBOX_EXPIRED;
		else {
			e->state = RPT_OUTBOX_PENDING;
			e->next = now + wait;
		}
	} else
		snprintf(e->error, sizeof(e->error), "report send: %s", reason);
	d->claimed = false;
	d->result.recorded = rpt_outbox_put(env->store, e) == 0;
	if (!d->result.recorded && delivered)
		log_err("event=report_not_recorded day=%s domain=%s rua=%s reason=\"delivered, but "
		    "the outbox cannot record it: it may be sent again\"", d->day, d->domain,
		    log_quote(d->rua));
}

static void
delivery_sent(struct rpt_delivery *d, bool delivered, int http_status, const char *reason)
{
	if (d->state != DELIVERY_S_SEND)
		return;
	d->result.http_status = http_status;
	delivery_record(d, delivered, false, reason);
	if (delivered)
		delivery_end(d, RPT_DELIVERY_DELIVERED, "%s", "");
	else
		delivery_end(d, RPT_DELIVERY_FAILED, "%s", reason);
}

static void
posted(void *arg, const struct rpt_post_result *r)
{
	struct rpt_delivery *d = arg;

	d->post = NULL;		/* it frees itself after this callback */
	delivery_sent(d, r->delivered, r->http_status, r->reason);
}

static void
mailed(void *arg, bool sent, const char *reason)
{
	struct rpt_delivery *d = arg;

	d->mail_job = NULL;	/* it frees itself after this callback */
	delivery_sent(d, sent, 0, reason);
}

/* A failure before anything left: nothing to retry for a permanent one. */
static void
delivery_not_sent(struct rpt_delivery *d, bool permanent, const char *reason)
{
	delivery_record(d, false, permanent, reason);
	delivery_end(d, RPT_DELIVERY_FAILED, "%s", reason);
}

static bool
is_mailto(const char *rua)
{
	return strncasecmp(rua, "mailto:", 7) == 0;
}

static void
delivery_send(struct rpt_delivery *d, json_t *report)
{
	const struct rpt_deliver_env *env = d->env;

	if (is_mailto(d->rua)) {
		char to[320], *msg;

		if (tlsrpt_mailto_address(d->rua, to, sizeof(to)) < 0) {
			delivery_not_sent(d, true, "no usable address in the mailto: URI");
			return;
		}
		/* Date and DKIM t= are real time, whatever the test clock says. */
		msg = rpt_mail_build(env->id, env->keys, report, d->day, d->domain, to, time(NULL));
		d->mail_job = env->mailer->send(env->mailer->ctx, env->id->contact, to, msg, mailed, d);
		free(msg);
		if (d->mail_job == NULL)
			delivery_not_sent(d, false, "cannot start the mail");
	} else {
		char *json = json_dumps(report, JSON_COMPACT);
		struct strbuf gz;

		strbuf_init(&gz);
		if (rpt_gzip(json, strlen(json), &gz) < 0)
			delivery_not_sent(d, false, "cannot compress the report");
		else if ((d->post = rpt_post_start(env->base, env->resolver, env->ssl_ctx, d->rua,
		    gz.data, gz.len, env->conf->policy_fetch_timeout, posted, d)) == NULL)
			delivery_not_sent(d, true, "not a usable https URL");
		strbuf_free(&gz);
		free(json);
	}
}

static void
delivery_claim(struct rpt_delivery *d)
{
	const struct rpt_deliver_env *env = d->env;
	struct rpt_outbox_entry *e = &d->result.entry;
	json_t *report;

	if (is_mailto(d->rua) && env->mailer == NULL) {
		delivery_end(d, RPT_DELIVERY_SKIPPED, "%s",
		    env->no_mail ? env->no_mail : "no mail transport for mailto: destinations");
		return;
	}
	switch (rpt_outbox_claim(env->store, d->day, d->domain, d->rua, d->force, e)) {
	case RPT_CLAIM_TAKEN:
		break;
	case RPT_CLAIM_DELIVERED:
		delivery_end(d, RPT_DELIVERY_ALREADY, "%s", "");
		return;
	case RPT_CLAIM_BUSY:
		delivery_end(d, RPT_DELIVERY_BUSY, "being sent by process %ld", (long)e->claim_pid);
		return;
	case RPT_CLAIM_ERROR:
		delivery_end(d, RPT_DELIVERY_STORE_ERROR, "the outbox in %s/reports.mdb cannot be "
		    "read or written (see the log)", env->conf->state_dir);
		return;
	}
	d->claimed = true;
	if (env->by == RPT_BY_DAEMON && e->first == 0)
		e->first = clock_now();
	if ((report = rpt_report_build(env->store, env->id, d->day, d->domain, NULL)) == NULL) {
		/* The counters are gone: nothing to send, now or later. */
		if (env->by == RPT_BY_DAEMON)
			delivery_record(d, false, true, "no traffic recorded");
		else if (rpt_outbox_release(env->store, d->day, d->domain, d->rua) == 0)
			d->claimed = false;
		delivery_end(d, RPT_DELIVERY_NO_REPORT, "no traffic recorded for %s on %s", d->domain,
		    d->day);
		return;
	}
	delivery_enter_state(d, DELIVERY_S_SEND);
	delivery_send(d, report);
	json_decref(report);
}

static void
delivery_enter_state(struct rpt_delivery *d, enum delivery_state next)
{
	log_debug("event=report_delivery_state day=%s domain=%s rua=%s transition=%s->%s",
	    d->day, d->domain, log_quote(d->rua), delivery_state_name(d->state),
	    delivery_state_name(next));
	d->state = next;
	switch (next) {
	case DELIVERY_S_CLAIM:		/* the first state: rpt_deliver_start() claims */
	case DELIVERY_S_SEND:
		break;
	case DELIVERY_S_DONE:
		event_active(d->finish_ev, EV_TIMEOUT, 1);
		break;
	}
}

/* From the loop: the caller's callback, then the delivery is gone. */
static void
delivery_finish(evutil_socket_t fd, short what, void *arg)
{
	struct rpt_delivery *d = arg;

	(void)fd;
	(void)what;
	d->result.day = d->day;
	d->result.domain = d->domain;
	d->result.rua = d->rua;
	d->cb(d->arg, &d->result);
	rpt_delivery_cancel(d);		/* nothing left to stop: this frees it */
}

struct rpt_delivery *
rpt_deliver_start(const struct rpt_deliver_env *env, const char *day, const char *domain,
    const char *rua, bool force, rpt_deliver_cb cb, void *arg)
{
	struct rpt_delivery *d = xcalloc(1, sizeof(*d));

	d->env = env;
	d->day = xstrdup(day);
	d->domain = xstrdup(domain);
	d->rua = xstrdup(rua);
	d->force = force;
	d->cb = cb;
	d->arg = arg;
	d->finish_ev = event_new(env->base, -1, 0, delivery_finish, d);
	d->state = DELIVERY_S_CLAIM;
	log_debug("event=report_delivery_start day=%s domain=%s rua=%s by=%s force=%s", day, domain,
	    log_quote(rua), log_quote(rpt_sender_kind_name(env->by)), force ? "yes" : "no");
	delivery_claim(d);
	return d;
}

void
rpt_delivery_cancel(struct rpt_delivery *d)
{
	if (d == NULL)
		return;
	if (d->post != NULL)
		rpt_post_cancel(d->post);
	if (d->mail_job != NULL)
		d->env->mailer->cancel(d->mail_job);
	/* In flight: the entry stays as it was, for the next attempt. */
	if (d->claimed)
		rpt_outbox_release(d->env->store, d->day, d->domain, d->rua);
	event_free(d->finish_ev);
	free(d->day);
	free(d->domain);
	free(d->rua);
	free(d);
}

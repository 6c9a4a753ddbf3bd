#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_REPORT

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "conf/log.h"
#include "proxy/report_mailer.h"
#include "proxy/smtp_server.h"
#include "proxy/upstream.h"

enum mail_state {
	MAIL_S_CONNECTING,	/* waiting for READY */
	MAIL_S_RCPT,
	MAIL_S_DATA,
	MAIL_S_EOM,
};

struct mail_job {
	struct runtime	*rt;
	struct upstream	*up;
	enum mail_state	 state;
	char		 session[17];
	char		*to, *msg;
	struct smtp_path rcpt;
	rpt_mail_done	 done;
	void		*arg;
};

static void
job_finish(struct mail_job *job, bool sent, const struct smtp_reply *r, const char *why)
{
	char *flat = r ? smtp_reply_flatten(r) : NULL;
	char *reason = xasprintf("%s%s%s", why, flat ? ": " : "", flat ? flat : "");

	log_info("session=%s event=report_mail to=%s sent=%s reason=%s", job->session,
	    log_quote_address(job->to), sent ? "yes" : "no", log_quote(reason));
	job->done(job->arg, sent, reason);
	upstream_free(job->up);	/* deferred: safe inside its callback */
	free(reason);
	free(flat);
	free(job->to);
	free(job->msg);
	free(job);
}

/* The message, dot-stuffed, then the terminator. */
static void
write_body(struct mail_job *job, struct evbuffer *out)
{
	const char *p = job->msg;

	while (*p) {
		const char *eol = strstr(p, "\r\n");
		size_t n = eol ? (size_t)(eol - p) + 2 : strlen(p);

		if (*p == '.')
			evbuffer_add(out, ".", 1);
		evbuffer_add(out, p, n);
		if (eol == NULL)
			evbuffer_add(out, "\r\n", 2);
		p += n;
	}
	evbuffer_add(out, ".\r\n", 3);
}

static void
mail_event(void *arg, enum upstream_event ev, const struct smtp_reply *r)
{
	struct mail_job *job = arg;

	switch (ev) {
	case UPSTREAM_EV_READY:
		job->state = MAIL_S_RCPT;
		upstream_rcpt(job->up, &job->rcpt);
		return;
	case UPSTREAM_EV_FAILED:
		job_finish(job, false, r, "not sent");
		return;
	case UPSTREAM_EV_LOST:
		job_finish(job, false, r, "connection lost");
		return;
	case UPSTREAM_EV_WRITABLE:
		return;
	case UPSTREAM_EV_REPLY:
		break;
	}
	switch (job->state) {
	case MAIL_S_RCPT:
		if (smtp_reply_class(r) != 2) {
			job_finish(job, false, r, "recipient refused");
			return;
		}
		job->state = MAIL_S_DATA;
		upstream_data(job->up);
		return;
	case MAIL_S_DATA:
		if (r->code != 354) {
			job_finish(job, false, r, "DATA refused");
			return;
		}
		job->state = MAIL_S_EOM;
		write_body(job, upstream_body(job->up));
		upstream_body_end(job->up);
		return;
	case MAIL_S_EOM:
		job_finish(job, smtp_reply_class(r) == 2, r,
		    smtp_reply_class(r) == 2 ? "accepted" : "message refused");
		return;
	default:
		return;
	}
}

static void *
mailer_send(void *ctx, const char *from, const char *to, const char *msg, rpt_mail_done done,
    void *arg)
{
	struct runtime *rt = ctx;
	struct mail_job *job;
	struct smtp_path mail;
	struct smtp_error err;
	char *marg = xasprintf("FROM:<%s>", from), *rarg = xasprintf("TO:<%s>", to);

	job = xcalloc(1, sizeof(*job));
	if (smtp_path_parse(marg, true, &mail, &err) < 0 ||
	    smtp_path_parse(rarg, false, &job->rcpt, &err) < 0 || job->rcpt.domain[0] == '\0') {
		log_warnx("event=report_mail_failed to=%s reason=%s", log_quote_address(to),
		    log_quote(err.text));
		free(marg);
		free(rarg);
		free(job);
		return NULL;
	}
	free(marg);
	free(rarg);
	job->rt = rt;
	job->to = xstrdup(to);
	job->msg = xstrdup(msg);
	job->done = done;
	job->arg = arg;
	smtp_session_id_new(job->session);
	/* RPT-18: no MTA-STS for report mail, and no record of it. */
	if (rt->conf->report_submission_relay[0] != '\0')
		job->up = upstream_new_relay(rt, job->session, job->rcpt.domain, &mail,
		    rt->conf->report_submission_relay, UPSTREAM_F_NO_POLICY | UPSTREAM_F_NO_RECORD,
		    mail_event, job);
	else
		job->up = upstream_new_flags(rt, job->session, job->rcpt.domain, &mail,
		    UPSTREAM_F_NO_POLICY | UPSTREAM_F_NO_RECORD, mail_event, job);
	return job;
}

static void
mailer_cancel(void *p)
{
	struct mail_job *job = p;

	upstream_free(job->up);
	free(job->to);
	free(job->msg);
	free(job);
}

void
report_mailer_init(struct rpt_mailer *mailer, struct runtime *rt)
{
	mailer->send = mailer_send;
	mailer->cancel = mailer_cancel;
	mailer->ctx = rt;
}

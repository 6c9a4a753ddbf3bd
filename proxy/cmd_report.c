/*
 * cmd_report.c - `stsproxy report`: what the TLS-RPT counters hold and
 * the exact report JSON that would be sent for a domain and day.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/clock.h"
#include "conf/log.h"
#include "proxy/commands.h"
#include "proxy/format.h"
#include "proxy/report_mailer.h"
#include "proxy/runtime.h"
#include "proxy/upstream.h"
#include "report/rpt_mail.h"
#include "report/rpt_post.h"
#include "report/rpt_report.h"
#include "report/rpt_sender.h"
#include "report/tlsrpt_record.h"
#include "report/rpt_store.h"

struct list_row {
	char		 day[11];
	char		 domain[256];
	long		 policies;
	long long	 success, failures;
	bool		 used;
};

struct list_state {
	struct list_row	 row;
};

static void
print_row(const struct list_row *r)
{
	printf("%-10s  %-40s  %8ld  %10lld  %10lld\n", r->day, r->domain, r->policies, r->success,
	    r->failures);
}

/* Records come in key order (day, domain, policy): fold policies per domain. */
static void
list_visit(void *arg, const char *day, const char *domain, json_t *rec)
{
	struct list_state *st = arg;
	const char *k;
	json_t *d;

	if (st->row.used && (strcmp(st->row.day, day) != 0 || strcmp(st->row.domain, domain) != 0)) {
		print_row(&st->row);
		memset(&st->row, 0, sizeof(st->row));
	}
	snprintf(st->row.day, sizeof(st->row.day), "%s", day);
	snprintf(st->row.domain, sizeof(st->row.domain), "%s", domain);
	st->row.used = true;
	st->row.policies++;
	st->row.success += json_integer_value(json_object_get(rec, "success"));
	json_object_foreach(json_object_get(rec, "failures"), k, d)
		st->row.failures += json_integer_value(json_object_get(d, "failed-session-count"));
}

void
cmd_report_usage(FILE *out)
{
	fprintf(out, "usage: stsproxy report list [--day YYYY-MM-DD]\n"
	    "       stsproxy report show DOMAIN [--day YYYY-MM-DD] [--json | --mail ADDRESS]\n"
	    "       stsproxy report send [--day YYYY-MM-DD] [--domain DOMAIN] [--dry-run]\n"
	    "\n"
	    "TLS-RPT (RFC 8460) from state_dir/reports.mdb: the traffic recorded per UTC day\n"
	    "and policy domain, the report for a domain exactly as it would be sent (default\n"
	    "yesterday; --mail prints the signed message), or deliver the day's reports now.\n");
}

/* ---- report send: one job per domain, one POST per https destination ---- */

struct send_ctx {
	struct runtime		*rt;
	struct rpt_store	*store;
	struct rpt_identity	 id;
	const char		*day;
	bool			 dry_run;
	unsigned		 outstanding;
	unsigned		 delivered, failed;
	struct rpt_mailer	 mailer;
	struct rpt_dkim_keys	 keys;
	const char		*no_mail;	/* why mailto: is skipped, or NULL */
};

struct send_job {
	struct send_ctx		*ctx;
	char			*domain;
	char			*rua;
	struct strbuf		 gz;
};

static void
job_done(struct send_ctx *ctx)
{
	if (--ctx->outstanding == 0)
		event_base_loopexit(ctx->rt->base, NULL);
}

static void
posted(void *arg, const struct rpt_post_result *r)
{
	struct send_job *job = arg;

	if (r->delivered) {
		printf("%s  %s  delivered (HTTP %d)\n", job->domain, job->rua, r->http_status);
		job->ctx->delivered++;
	} else {
		printf("%s  %s  failed: %s\n", job->domain, job->rua, r->reason);
		job->ctx->failed++;
	}
	job_done(job->ctx);
	free(job->domain);
	free(job->rua);
	strbuf_free(&job->gz);
	free(job);
}

static void send_mail(struct send_ctx *ctx, const char *domain, const char *uri, json_t *report);

static void
got_destinations(void *arg, const char *domain, const struct strlist *rua, const char *why)
{
	struct send_ctx *ctx = arg;
	json_t *report;
	char *json, *name;

	if (rua == NULL) {
		printf("%s  -  no report: %s\n", domain, why);
		job_done(ctx);
		return;
	}
	report = rpt_report_build(ctx->store, &ctx->id, ctx->day, domain, NULL);
	json = json_dumps(report, JSON_COMPACT);
	name = rpt_report_filename(&ctx->id, ctx->day, domain);
	for (size_t i = 0; i < rua->count; i++) {
		const char *uri = rua->items[i];
		struct send_job *job;

		if (ctx->dry_run) {
			printf("%s  %s  would send %s\n", domain, uri, name);
			continue;
		}
		if (strncasecmp(uri, "https:", 6) != 0) {
			send_mail(ctx, domain, uri, report);
			continue;
		}
		job = xcalloc(1, sizeof(*job));
		job->ctx = ctx;
		job->domain = xstrdup(domain);
		job->rua = xstrdup(uri);
		strbuf_init(&job->gz);
		rpt_gzip(json, strlen(json), &job->gz);
		if (rpt_post_start(ctx->rt->base, ctx->rt->resolver, ctx->rt->ssl_ctx, uri,
		    job->gz.data, job->gz.len, ctx->rt->conf->policy_fetch_timeout, posted, job) == NULL) {
			printf("%s  %s  failed: not a usable https URL\n", domain, uri);
			ctx->failed++;
			strbuf_free(&job->gz);
			free(job->domain);
			free(job->rua);
			free(job);
			continue;
		}
		ctx->outstanding++;
	}
	free(name);
	free(json);
	json_decref(report);
	job_done(ctx);
}

static void
mailed(void *arg, bool sent, const char *reason)
{
	struct send_job *job = arg;

	printf("%s  %s  %s\n", job->domain, job->rua, sent ? "delivered (mail accepted)" : reason);
	if (sent)
		job->ctx->delivered++;
	else
		job->ctx->failed++;
	job_done(job->ctx);
	free(job->domain);
	free(job->rua);
	strbuf_free(&job->gz);
	free(job);
}

static void
send_mail(struct send_ctx *ctx, const char *domain, const char *uri, json_t *report)
{
	struct send_job *job;
	char to[320], *msg;

	if (ctx->no_mail != NULL) {
		printf("%s  %s  skipped: %s\n", domain, uri, ctx->no_mail);
		return;
	}
	if (tlsrpt_mailto_address(uri, to, sizeof(to)) < 0) {
		printf("%s  %s  failed: no usable address\n", domain, uri);
		ctx->failed++;
		return;
	}
	/* Date and DKIM t= are real time, whatever the test clock says. */
	msg = rpt_mail_build(&ctx->id, &ctx->keys, report, ctx->day, domain, to, time(NULL));
	job = xcalloc(1, sizeof(*job));
	job->ctx = ctx;
	job->domain = xstrdup(domain);
	job->rua = xstrdup(uri);
	strbuf_init(&job->gz);
	if (ctx->mailer.send(ctx->mailer.ctx, ctx->id.contact, to, msg, mailed, job) == NULL) {
		printf("%s  %s  failed: cannot start the mail\n", domain, uri);
		ctx->failed++;
		free(job->domain);
		free(job->rua);
		free(job);
	} else
		ctx->outstanding++;
	free(msg);
}

struct domain_sums {
	struct strlist		 domains;
	struct strlist		 failed;	/* domains with failures */
};

static void
sum_visit(void *arg, const char *day, const char *domain, json_t *rec)
{
	struct domain_sums *ds = arg;
	const char *k;
	json_t *d;
	bool fail = false;

	(void)day;
	json_object_foreach(json_object_get(rec, "failures"), k, d)
		fail = true;
	if (ds->domains.count == 0 || strcmp(ds->domains.items[ds->domains.count - 1], domain) != 0)
		strlist_add(&ds->domains, domain);
	if (fail && (ds->failed.count == 0 ||
	    strcmp(ds->failed.items[ds->failed.count - 1], domain) != 0))
		strlist_add(&ds->failed, domain);
}

static bool
in_list(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->items[i], s) == 0)
			return true;
	return false;
}

static int
report_send(const struct conf *conf, struct rpt_store *store, const char *day,
    const char *only, bool dry_run, const char *hostname)
{
	struct send_ctx ctx = { .store = store, .day = day, .dry_run = dry_run };
	struct domain_sums ds = { { 0 }, { 0 } };

	if ((ctx.rt = runtime_new(conf)) == NULL)
		return EXIT_ERROR;
	rpt_identity_init(&ctx.id, conf, conf->hostname[0] ? conf->hostname : hostname);
	report_mailer_init(&ctx.mailer, ctx.rt);
	{
		char *err = NULL;

		if (rpt_dkim_keys_load(&ctx.keys, conf, &ctx.id, &err) < 0) {
			fprintf(stderr, "stsproxy: %s\n", err);
			free(err);
			ctx.no_mail = "DKIM keys cannot be loaded";
		} else if (ctx.keys.count == 0)
			ctx.no_mail = "no [report] dkim_key: mailed reports must be DKIM-signed";
	}
	rpt_store_foreach(store, day, only, sum_visit, &ds);
	ctx.outstanding = 1;	/* held until every lookup has started */
	for (size_t i = 0; i < ds.domains.count; i++) {
		const char *d = ds.domains.items[i];

		if (!conf->report_send_success_only && !in_list(&ds.failed, d)) {
			printf("%s  -  no report: no failures on %s (send_success_only_reports = no)\n", d, day);
			continue;
		}
		ctx.outstanding++;
		if (rpt_destinations_lookup(ctx.rt->resolver, d, got_destinations, &ctx) < 0) {
			printf("%s  -  no report: cannot look up _smtp._tls.%s\n", d, d);
			ctx.outstanding--;
		}
	}
	if (ds.domains.count == 0)
		printf("no traffic recorded on %s\n", day);
	if (--ctx.outstanding > 0)
		event_base_dispatch(ctx.rt->base);
	strlist_clear(&ds.domains);
	strlist_clear(&ds.failed);
	rpt_dkim_keys_free(&ctx.keys);
	/* Let finished upstream sessions say QUIT and free themselves. */
	for (int i = 0; i < 100 && upstream_count() > 0; i++)
		event_base_loop(ctx.rt->base, EVLOOP_ONCE);
	runtime_free(ctx.rt);
	return ctx.failed > 0 ? EXIT_NO_POLICY : EXIT_POLICY;
}

int
cmd_report(const struct conf *conf, const char *path, int argc, char **argv)
{
	const char *day = NULL, *domain = NULL, *verb = argc > 1 ? argv[1] : NULL, *mail_to = NULL;
	char yesterday[11], hostname[256];
	bool json = false, dry_run = false;
	struct rpt_store *store;
	int rc = EXIT_POLICY;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--day") == 0 && i + 1 < argc)
			day = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--mail") == 0 && i + 1 < argc)
			mail_to = argv[++i];
		else if (strcmp(argv[i], "--dry-run") == 0)
			dry_run = true;
		else if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc)
			domain = argv[++i];
		else if (argv[i][0] != '-' && domain == NULL)
			domain = argv[i];
		else {
			cmd_report_usage(stderr);
			return EXIT_ERROR;
		}
	}
	if (verb == NULL || (strcmp(verb, "list") != 0 && strcmp(verb, "show") != 0 &&
	    strcmp(verb, "send") != 0) ||
	    (strcmp(verb, "show") == 0 && domain == NULL)) {
		cmd_report_usage(stderr);
		return EXIT_ERROR;
	}
	if (day != NULL && rpt_day_start(day) < 0) {
		fprintf(stderr, "stsproxy: --day %s is not YYYY-MM-DD\n", day);
		return EXIT_ERROR;
	}
	if ((store = rpt_store_open(conf, NULL)) == NULL)
		return EXIT_ERROR;
	/* The JSON report and the mail message are printed alone, to be piped. */
	if (!json && mail_to == NULL)
		format_config_header(stdout, conf, path);
	if (strcmp(verb, "send") == 0) {
		if (day == NULL) {
			rpt_day(clock_now() - 86400, yesterday);
			day = yesterday;
		}
		if (gethostname(hostname, sizeof(hostname)) != 0)
			snprintf(hostname, sizeof(hostname), "localhost");
		rc = report_send(conf, store, day, domain, dry_run, hostname);
	} else if (strcmp(verb, "list") == 0) {
		struct list_state st = { 0 };

		printf("%-10s  %-40s  %8s  %10s  %10s\n", "day", "policy domain", "policies",
		    "successful", "failed");
		rpt_store_foreach(store, day, NULL, list_visit, &st);
		if (st.row.used)
			print_row(&st.row);
	} else {
		struct rpt_identity id;
		long long failures = 0;
		json_t *report;
		char *name;

		/* RPT-10: a report covers a finished UTC day; yesterday by default. */
		if (day == NULL) {
			rpt_day(clock_now() - 86400, yesterday);
			day = yesterday;
		}
		if (conf->hostname[0])
			snprintf(hostname, sizeof(hostname), "%s", conf->hostname);
		else if (gethostname(hostname, sizeof(hostname)) != 0)
			snprintf(hostname, sizeof(hostname), "localhost");
		rpt_identity_init(&id, conf, hostname);
		report = rpt_report_build(store, &id, day, domain, &failures);
		if (report == NULL) {
			fprintf(stderr, "stsproxy: no traffic recorded for %s on %s\n", domain, day);
			rc = EXIT_NO_POLICY;
		} else if (mail_to != NULL) {
			struct rpt_dkim_keys keys;
			char *err = NULL, *msg;

			if (rpt_dkim_keys_load(&keys, conf, &id, &err) < 0) {
				fprintf(stderr, "stsproxy: %s\n", err);
				free(err);
				rc = EXIT_ERROR;
			} else {
				msg = rpt_mail_build(&id, &keys, report, day, domain, mail_to, time(NULL));
				fputs(msg, stdout);
				free(msg);
				rpt_dkim_keys_free(&keys);
			}
		} else if (json) {
			json_dumpf(report, stdout, JSON_INDENT(2));
			printf("\n");
		} else {
			name = rpt_report_filename(&id, day, domain);
			printf("report for %s on %s: %lld failed session%s\nfile name: %s\n", domain, day,
			    failures, failures == 1 ? "" : "s", name);
			json_dumpf(report, stdout, JSON_INDENT(2));
			printf("\n");
			free(name);
		}
		json_decref(report);
	}
	rpt_store_close(store);
	return rc;
}

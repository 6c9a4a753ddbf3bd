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
#include "report/rpt_deliver.h"
#include "report/rpt_mail.h"
#include "report/rpt_outbox.h"
#include "report/rpt_report.h"
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
	    "       stsproxy report send [--day YYYY-MM-DD] [--domain DOMAIN] [--dry-run] [--force]\n"
	    "\n"
	    "TLS-RPT (RFC 8460) from state_dir/reports.mdb: the traffic recorded per UTC day\n"
	    "and policy domain, the report for a domain exactly as it would be sent (default\n"
	    "yesterday; --mail prints the signed message), or deliver the day's reports now\n"
	    "to every destination that does not have them yet (--force: to those that do too).\n");
}

/* ---- report send: every destination through report/rpt_deliver.c ---- */

struct send_ctx {
	struct runtime		*rt;
	struct rpt_store	*store;
	struct rpt_identity	 id;
	const char		*day;
	bool			 dry_run, force;
	unsigned		 outstanding;
	unsigned		 delivered, failed, store_errors;
	struct rpt_mailer	 mailer;
	struct rpt_dkim_keys	 keys;
	struct rpt_deliver_env	 env;
};

static void
job_done(struct send_ctx *ctx)
{
	if (--ctx->outstanding == 0)
		event_base_loopexit(ctx->rt->base, NULL);
}

/* One line per destination: what happened, in words an admin can act on. */
static void
sent(void *arg, const struct rpt_delivery_result *r)
{
	struct send_ctx *ctx = arg;
	char text[128];

	printf("%s  %s  ", r->domain, r->rua);
	switch (r->status) {
	case RPT_DELIVERY_DELIVERED:
		if (r->http_status != 0)
			printf("delivered (HTTP %d)\n", r->http_status);
		else
			printf("delivered (mail accepted)\n");
		if (!r->recorded) {
			printf("%s  %s  ... but the outbox could not record it: the daemon may send it "
			    "again\n", r->domain, r->rua);
			ctx->store_errors++;
		}
		ctx->delivered++;
		break;
	case RPT_DELIVERY_FAILED:
		printf("failed: %s\n", r->reason);
		ctx->failed++;
		break;
	case RPT_DELIVERY_ALREADY:
		printf("already %s; not sent again (--force sends it again)\n",
		    rpt_outbox_delivered_text(&r->entry, text, sizeof(text)));
		break;
	case RPT_DELIVERY_BUSY:
		printf("not sent: %s\n", r->reason);
		ctx->failed++;
		break;
	case RPT_DELIVERY_SKIPPED:
		printf("skipped: %s\n", r->reason);
		break;
	case RPT_DELIVERY_NO_REPORT:
		printf("no report: %s\n", r->reason);
		break;
	case RPT_DELIVERY_STORE_ERROR:
		printf("not sent: %s\n", r->reason);
		ctx->store_errors++;
		break;
	}
	job_done(ctx);
}

/* --dry-run: what a real run would do, from the outbox, without writing. */
static void
dry_run_line(struct send_ctx *ctx, const char *domain, const char *uri, const char *name)
{
	struct rpt_outbox_entry e;
	int found = rpt_outbox_get(ctx->store, ctx->day, domain, uri, &e);
	char text[128];

	printf("%s  %s  ", domain, uri);
	if (found < 0) {
		printf("cannot read the outbox (see the log)\n");
		ctx->store_errors++;
	} else if (found == 1 && e.state == RPT_OUTBOX_DELIVERED && !ctx->force)
		printf("already %s; would not send it again (--force would)\n",
		    rpt_outbox_delivered_text(&e, text, sizeof(text)));
	else if (found == 1 && rpt_outbox_claimed(&e, time(NULL)))
		printf("being sent by process %ld; would not send it\n", (long)e.claim_pid);
	else if (strncasecmp(uri, "mailto:", 7) == 0 && ctx->env.mailer == NULL)
		printf("would skip it: %s\n", ctx->env.no_mail);
	else
		printf("would send %s\n", name);
}

static void
got_destinations(void *arg, const char *domain, const struct strlist *rua, const char *why)
{
	struct send_ctx *ctx = arg;
	char *name;

	if (rua == NULL) {
		printf("%s  -  no report: %s\n", domain, why);
		job_done(ctx);
		return;
	}
	name = rpt_report_filename(&ctx->id, ctx->day, domain);
	for (size_t i = 0; i < rua->count; i++) {
		if (ctx->dry_run) {
			dry_run_line(ctx, domain, rua->items[i], name);
			continue;
		}
		ctx->outstanding++;
		rpt_deliver_start(&ctx->env, ctx->day, domain, rua->items[i], ctx->force, sent, ctx);
	}
	free(name);
	job_done(ctx);
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
    const char *only, bool dry_run, bool force, const char *hostname)
{
	struct send_ctx ctx = { .store = store, .day = day, .dry_run = dry_run, .force = force };
	struct strlist domains = { 0 }, failed = { 0 };
	const char *no_mail = NULL;
	char today[11];

	if ((ctx.rt = runtime_new(conf)) == NULL)
		return EXIT_ERROR;
	rpt_identity_init(&ctx.id, conf, conf->hostname[0] ? conf->hostname : hostname);
	report_mailer_init(&ctx.mailer, ctx.rt);
	{
		char *err = NULL;

		if (rpt_dkim_keys_load(&ctx.keys, conf, &ctx.id, &err) < 0) {
			fprintf(stderr, "stsproxy: %s\n", err);
			free(err);
			no_mail = "DKIM keys cannot be loaded";
		} else if (ctx.keys.count == 0)
			no_mail = "no [report] dkim_key: mailed reports must be DKIM-signed";
	}
	ctx.env = (struct rpt_deliver_env){
		.base = ctx.rt->base, .conf = conf, .resolver = ctx.rt->resolver,
		.ssl_ctx = ctx.rt->ssl_ctx, .store = store, .id = &ctx.id,
		.mailer = no_mail ? NULL : &ctx.mailer, .keys = &ctx.keys, .no_mail = no_mail,
		.by = RPT_BY_COMMAND,
	};
	/* A destination that gets the report now does not get it again from
	 * the daemon after the day has ended: say so while the day runs. */
	rpt_day(clock_now(), today);
	if (!dry_run && strcmp(day, today) >= 0)
		fprintf(stderr, "stsproxy: note: %s (UTC) is not over: the report holds the traffic "
		    "so far, and the daemon will not send this day again to a destination that "
		    "takes it now\n", day);
	if (rpt_report_domains(store, day, only, &domains, &failed) < 0) {
		fprintf(stderr, "stsproxy: cannot read %s/reports.mdb\n", conf->state_dir);
		ctx.store_errors++;
	}
	ctx.outstanding = 1;	/* held until every lookup has started */
	for (size_t i = 0; i < domains.count; i++) {
		const char *d = domains.items[i];

		if (!conf->report_send_success_only && !in_list(&failed, d)) {
			printf("%s  -  no report: no failures on %s (send_success_only_reports = no)\n", d, day);
			continue;
		}
		ctx.outstanding++;
		if (rpt_destinations_lookup(ctx.rt->resolver, d, got_destinations, &ctx) < 0) {
			printf("%s  -  no report: cannot look up _smtp._tls.%s\n", d, d);
			ctx.outstanding--;
		}
	}
	if (domains.count == 0 && ctx.store_errors == 0)
		printf("no traffic recorded on %s\n", day);
	if (--ctx.outstanding > 0)
		event_base_dispatch(ctx.rt->base);
	strlist_clear(&domains);
	strlist_clear(&failed);
	rpt_dkim_keys_free(&ctx.keys);
	/* Let finished upstream sessions say QUIT and free themselves. */
	for (int i = 0; i < 100 && upstream_count() > 0; i++)
		event_base_loop(ctx.rt->base, EVLOOP_ONCE);
	runtime_free(ctx.rt);
	if (ctx.store_errors > 0)
		return EXIT_ERROR;
	return ctx.failed > 0 ? EXIT_NO_POLICY : EXIT_POLICY;
}

int
cmd_report(const struct conf *conf, const char *path, int argc, char **argv)
{
	const char *day = NULL, *domain = NULL, *verb = argc > 1 ? argv[1] : NULL, *mail_to = NULL;
	char yesterday[11], hostname[256];
	bool json = false, dry_run = false, force = false;
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
		else if (strcmp(argv[i], "--force") == 0)
			force = true;
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
		rc = report_send(conf, store, day, domain, dry_run, force, hostname);
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

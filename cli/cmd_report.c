/*
 * cmd_report.c - `stsproxy report`: what the TLS-RPT counters hold and
 * the exact report JSON that would be sent for a domain and day.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/clock.h"
#include "conf/log.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "proxy/report_mailer.h"
#include "proxy/runtime.h"
#include "proxy/upstream.h"
#include "report/rpt_deliver.h"
#include "report/rpt_mail.h"
#include "report/rpt_outbox.h"
#include "report/rpt_read.h"
#include "report/rpt_report.h"
#include "report/rpt_summary.h"
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
	    "       stsproxy report read FILE|DIR|- ... [--json]\n"
	    "\n"
	    "TLS-RPT (RFC 8460) from state_dir/reports.mdb: the traffic recorded per UTC day\n"
	    "and policy domain, the report for a domain exactly as it would be sent (default\n"
	    "yesterday; --mail prints the signed message), or deliver the day's reports now\n"
	    "to every destination that does not have them yet (--force: to those that do too).\n"
	    "\n"
	    "report read: the reports a domain receives, as they arrive: .json, .json.gz or\n"
	    "whole mail messages (.eml, multipart/report with the report attached); a\n"
	    "directory is read for *.json, *.gz and *.eml files, - is standard input. Each\n"
	    "report is validated against RFC 8460; then sessions are summarised per policy\n"
	    "domain and day: failures by result type (what each means and usually fixes),\n"
	    "by sending organisation, by MX and by receiving IP; --json for scripts.\n"
	    "Malformed reports are listed, not fatal. Exit status: 0 every input held\n"
	    "valid reports, 1 some input was malformed or unreadable (the rest is still\n"
	    "summarised), 2 usage error.\n");
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

/* ---- report read: reports as a domain owner receives them ---------------- */

#define READ_MAX_FILES	10000	/* files taken from one directory */

/* Read all of fd, at most RPT_READ_MAX_INPUT bytes. 0, or -1 with why. */
static int
read_bounded(int fd, struct strbuf *out, char *why, size_t why_len)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(why, why_len, "%s", strerror(errno));
			return -1;
		}
		if (out->len + (size_t)n > RPT_READ_MAX_INPUT) {
			snprintf(why, why_len, "larger than %u bytes", RPT_READ_MAX_INPUT);
			return -1;
		}
		strbuf_append(out, buf, (size_t)n);
	}
	return 0;
}

static void
read_one(struct rpt_summary *sum, const char *source, int fd)
{
	struct strbuf sb;
	struct rpt_docs docs = { 0 };
	char why[160];

	strbuf_init(&sb);
	if (read_bounded(fd, &sb, why, sizeof(why)) < 0) {
		rpt_summary_add_unreadable(sum, source, why);
	} else {
		(void)rpt_read_input(sb.data ? sb.data : "", sb.len, &docs);
		rpt_summary_add(sum, source, &docs);
		rpt_docs_clear(&docs);
	}
	strbuf_free(&sb);
}

static bool
report_file_name(const char *name)
{
	size_t n = strlen(name);

	if (name[0] == '.')
		return false;
	return (n > 5 && strcasecmp(name + n - 5, ".json") == 0) ||
	    (n > 3 && strcasecmp(name + n - 3, ".gz") == 0) ||
	    (n > 4 && strcasecmp(name + n - 4, ".eml") == 0);
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
read_path(struct rpt_summary *sum, const char *path)
{
	struct stat st;
	int fd;

	if (strcmp(path, "-") == 0) {
		read_one(sum, "-", STDIN_FILENO);
		return;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		rpt_summary_add_unreadable(sum, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		DIR *dir = fdopendir(fd);
		struct dirent *de;
		struct strlist names = { 0 };
		size_t over = 0;

		if (dir == NULL) {
			rpt_summary_add_unreadable(sum, path, strerror(errno));
			close(fd);
			return;
		}
		while ((de = readdir(dir)) != NULL) {
			if (!report_file_name(de->d_name))
				continue;
			if (names.count >= READ_MAX_FILES) {
				over++;
				continue;
			}
			strlist_add(&names, de->d_name);
		}
		closedir(dir);
		qsort(names.items, names.count, sizeof(*names.items), cmp_names);
		for (size_t i = 0; i < names.count; i++) {
			size_t pl = strlen(path);
			char *file = xasprintf("%s%s%s", path, pl > 0 && path[pl - 1] == '/' ? "" : "/",
			    names.items[i]);
			struct stat fst;

			/* Regular files only: a FIFO named x.json must not hang us. */
			if (lstat(file, &fst) == 0 && S_ISREG(fst.st_mode))
				read_path(sum, file);
			free(file);
		}
		if (over > 0) {
			char why[96];

			snprintf(why, sizeof(why), "%zu more files not read (at most %d per directory)",
			    over, READ_MAX_FILES);
			rpt_summary_add_unreadable(sum, path, why);
		}
		strlist_clear(&names);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		rpt_summary_add_unreadable(sum, path, "not a regular file or directory");
		close(fd);
		return;
	}
	read_one(sum, path, fd);
	close(fd);
}

static const char *
jstr(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v ? v : "";
}

static long long
jint(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static double
jpct(const json_t *o, const char *key)
{
	return json_real_value(json_object_get(o, key)) * 100.0;
}

/* One line per domain and day, then what failed there and why. */
static void
read_print_text(const json_t *doc)
{
	const json_t *reports = json_object_get(doc, "reports"), *bad = json_object_get(doc, "malformed");
	const json_t *domains = json_object_get(doc, "domains"), *d, *x;
	size_t i, k, dup = 0;
	bool header = false;

	json_array_foreach(reports, i, x)
		dup += json_is_true(json_object_get(x, "duplicate"));
	printf("TLS-RPT reports: %zu read", json_array_size(reports));
	if (dup > 0)
		printf(" (%zu duplicate%s, counted once)", dup, dup == 1 ? "" : "s");
	printf(", %zu malformed\n", json_array_size(bad));
	if (json_array_size(domains) > 0)
		printf("\n%-32s %-10s %7s %11s %8s %7s\n", "policy domain", "day", "reports",
		    "successful", "failed", "rate");
	json_array_foreach(domains, i, d)
		printf("%-32s %-10s %7lld %11lld %8lld %6.2f%%\n", jstr(d, "policy-domain"),
		    jstr(d, "day"), jint(d, "reports"), jint(d, "successful-sessions"),
		    jint(d, "failed-sessions"), jpct(d, "failure-rate"));
	json_array_foreach(domains, i, d) {
		if (jint(d, "failed-sessions") == 0)
			continue;
		printf("\n%s %s: %lld failed session%s (%.2f%%)\n", jstr(d, "policy-domain"),
		    jstr(d, "day"), jint(d, "failed-sessions"),
		    jint(d, "failed-sessions") == 1 ? "" : "s", jpct(d, "failure-rate"));
		json_array_foreach(json_object_get(d, "result-types"), k, x) {
			const char *code = json_string_value(json_object_get(x, "failure-reason-code"));

			printf("  %-26s %8lld %6.2f%%%s%s%s\n", jstr(x, "result-type"),
			    jint(x, "sessions"), jpct(x, "rate"), code ? "  (" : "", code ? code : "",
			    code ? ")" : "");
			printf("      means: %s\n", jstr(x, "meaning"));
			if (json_is_string(json_object_get(x, "fix")))
				printf("      fix:   %s\n", jstr(x, "fix"));
		}
		json_array_foreach(json_object_get(d, "organizations"), k, x)
			if (jint(x, "failed-sessions") > 0)
				printf("  %-10s %-38s %8lld failed of %lld (%.2f%%)\n",
				    k == 0 ? "by sender" : "", jstr(x, "organization-name"),
				    jint(x, "failed-sessions"),
				    jint(x, "failed-sessions") + jint(x, "successful-sessions"),
				    jpct(x, "failure-rate"));
		json_array_foreach(json_object_get(d, "mx-hosts"), k, x)
			printf("  %-10s %-38s %8lld failed\n", k == 0 ? "by MX" : "",
			    jstr(x, "receiving-mx-hostname"), jint(x, "failed-sessions"));
		json_array_foreach(json_object_get(d, "receiving-ips"), k, x) {
			const char *mx = json_string_value(json_object_get(x, "receiving-mx-hostname"));
			char label[320];

			snprintf(label, sizeof(label), "%s%s%s%s", jstr(x, "receiving-ip"), mx ? " (" : "",
			    mx ? mx : "", mx ? ")" : "");
			printf("  %-10s %-38s %8lld failed\n", k == 0 ? "by IP" : "", label,
			    jint(x, "failed-sessions"));
		}
	}
	if (json_array_size(bad) > 0) {
		printf("\nmalformed:\n");
		json_array_foreach(bad, i, x)
			printf("  %s (%s): %s\n", jstr(x, "source"), jstr(x, "where"), jstr(x, "reason"));
	}
	json_array_foreach(reports, i, x) {
		const json_t *w;

		json_array_foreach(json_object_get(x, "warnings"), k, w) {
			printf("%s  %s (%s): %s\n", header ? "" : "\nwarnings:\n", jstr(x, "source"),
			    jstr(x, "where"), json_string_value(w));
			header = true;
		}
	}
}

static int
report_read(int argc, char **argv)
{
	struct rpt_summary *sum;
	bool json = false;
	int npaths = 0, rc;
	json_t *doc;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "stsproxy: report read: unknown option %s\n", argv[i]);
			cmd_report_usage(stderr);
			return EXIT_ERROR;
		} else
			npaths++;
	}
	if (npaths == 0) {
		fprintf(stderr, "stsproxy: report read: name a FILE, a DIR or - (standard input)\n");
		cmd_report_usage(stderr);
		return EXIT_ERROR;
	}
	sum = rpt_summary_new();
	for (int i = 2; i < argc; i++)
		if (strcmp(argv[i], "--json") != 0)
			read_path(sum, argv[i]);
	doc = rpt_summary_json(sum);
	if (json) {
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
	} else
		read_print_text(doc);
	rc = rpt_summary_malformed(sum) > 0 ? EXIT_NO_POLICY : EXIT_POLICY;
	json_decref(doc);
	rpt_summary_free(sum);
	return rc;
}

int
cmd_report(const struct conf *conf, const char *path, int argc, char **argv)
{
	const char *day = NULL, *domain = NULL, *verb = argc > 1 ? argv[1] : NULL, *mail_to = NULL;
	char yesterday[11], hostname[256];
	bool json = false, dry_run = false, force = false;
	struct rpt_store *store;
	int rc = EXIT_POLICY;

	/* read takes files, directories and "-", and needs no database, DNS
	 * or state_dir: no configuration header either. */
	if (verb != NULL && strcmp(verb, "read") == 0)
		return report_read(argc, argv);
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

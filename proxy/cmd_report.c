/*
 * cmd_report.c - `stsproxy report`: what the TLS-RPT counters hold and
 * the exact report JSON that would be sent for a domain and day.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/clock.h"
#include "conf/log.h"
#include "proxy/commands.h"
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

static void
usage(void)
{
	fprintf(stderr, "usage: stsproxy report list [--day YYYY-MM-DD]\n"
	    "       stsproxy report show DOMAIN [--day YYYY-MM-DD] [--json]\n");
}

int
cmd_report(const struct conf *conf, int argc, char **argv)
{
	const char *day = NULL, *domain = NULL, *verb = argc > 1 ? argv[1] : NULL;
	char yesterday[11], hostname[256];
	bool json = false;
	struct rpt_store *store;
	int rc = EXIT_POLICY;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--day") == 0 && i + 1 < argc)
			day = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (argv[i][0] != '-' && domain == NULL)
			domain = argv[i];
		else {
			usage();
			return EXIT_ERROR;
		}
	}
	if (verb == NULL || (strcmp(verb, "list") != 0 && strcmp(verb, "show") != 0) ||
	    (strcmp(verb, "show") == 0 && domain == NULL)) {
		usage();
		return EXIT_ERROR;
	}
	if (day != NULL && rpt_day_start(day) < 0) {
		fprintf(stderr, "stsproxy: --day %s is not YYYY-MM-DD\n", day);
		return EXIT_ERROR;
	}
	if ((store = rpt_store_open(conf, NULL)) == NULL)
		return EXIT_ERROR;
	if (strcmp(verb, "list") == 0) {
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

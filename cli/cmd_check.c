/*
 * cmd_check.c - `stsproxy check DOMAIN [--json] [--port N] [--timeout S]`:
 * the tool a domain owner runs before and after each step of an MTA-STS
 * and TLS-RPT deployment. The facts come from the sender's own code
 * (check_run), the verdicts from check_eval; this file parses the
 * arguments and prints.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf/log.h"
#include "cli/check.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "proxy/runtime.h"

void
cmd_check_usage(FILE *out)
{
	fprintf(out,
	    "usage: stsproxy check DOMAIN [--json] [--port N] [--timeout SECONDS]\n"
	    "\n"
	    "Check DOMAIN's MTA-STS and TLS-RPT deployment as senders see it: the\n"
	    "_mta-sts TXT record, the policy host and file, the id and max_age, every\n"
	    "MX against the policy, each MX's STARTTLS and certificate (no mail is\n"
	    "sent), TLSA records as found, the _smtp._tls record and its destinations,\n"
	    "and whether the domain is ready for enforce. DOMAIN may also be an email\n"
	    "address or the policy URL, as for policy.\n"
	    "\n"
	    "  --json             the same checks as one JSON document\n"
	    "  --port N           SMTP port of the MXs (default [upstream] port, 25)\n"
	    "  --timeout SECONDS  deadline for the whole check (default %d)\n"
	    "\n"
	    "exit status: 0 every check passes, 1 warnings only, 2 any failure\n"
	    "(or a usage error)\n", CHECK_DEADLINE);
}

static bool
parse_count(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v < min || v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

static const char *const status_labels[] = { "PASS", "INFO", "WARN", "FAIL" };

static void
print_text(const struct conf *conf, const char *path, const struct check_facts *f,
    const struct check_list *l)
{
	size_t n[4] = { 0 };

	/* The DNS and the policy cache the check used come from this file. */
	format_config_header(stdout, conf, path);
	printf("stsproxy check %s (MX port %u)\n\n", f->domain, f->port);
	for (size_t i = 0; i < l->count; i++) {
		const struct check_item *it = &l->items[i];

		n[it->status]++;
		printf("%s  %-22s %s: %s\n", status_labels[it->status], it->name, it->subject,
		    it->evidence);
		if (it->fix != NULL)
			printf("      fix: %s\n", it->fix);
	}
	printf("\n%zu pass, %zu warn, %zu fail, %zu info%s: %s\n", n[CHECK_PASS], n[CHECK_WARN],
	    n[CHECK_FAIL], n[CHECK_INFO], f->timed_out ? " (the check ran out of time)" : "",
	    l->ready_for_enforce ? (l->mode && strcmp(l->mode, "enforce") == 0 ?
	    "enforce in effect, every MX passes" : "ready for enforce") :
	    "not ready for enforce");
}

static void
print_json(const struct check_facts *f, const struct check_list *l, int rc)
{
	json_t *o = json_object(), *checks = json_array();
	json_int_t n[4] = { 0 };

	for (size_t i = 0; i < l->count; i++) {
		const struct check_item *it = &l->items[i];

		n[it->status]++;
		json_array_append_new(checks, json_pack("{s:s, s:s, s:s, s:s, s:o}",
		    "check", it->name, "subject", it->subject, "status", check_status_name(it->status),
		    "evidence", it->evidence, "fix", it->fix ? json_string(it->fix) : json_null()));
	}
	json_object_set_new(o, "domain", json_string(f->domain));
	json_object_set_new(o, "port", json_integer(f->port));
	json_object_set_new(o, "mode", l->mode ? json_string(l->mode) : json_null());
	json_object_set_new(o, "ready_for_enforce", json_boolean(l->ready_for_enforce));
	json_object_set_new(o, "timed_out", json_boolean(f->timed_out));
	json_object_set_new(o, "exit_status", json_integer(rc));
	json_object_set_new(o, "counts", json_pack("{s:I, s:I, s:I, s:I}", "pass", n[CHECK_PASS],
	    "warn", n[CHECK_WARN], "fail", n[CHECK_FAIL], "info", n[CHECK_INFO]));
	json_object_set_new(o, "checks", checks);
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(o);
}

int
cmd_check(const struct conf *conf, const char *path, int argc, char **argv)
{
	const char *target = NULL, *why, *how;
	char *domain;
	unsigned port = conf->upstream_port, deadline = CHECK_DEADLINE;
	bool json = false;
	struct runtime *rt;
	struct check_facts *f;
	struct check_list list;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--port") == 0) {
			if (!parse_count(i + 1 < argc ? argv[++i] : NULL, 1, 65535, &port)) {
				fprintf(stderr, "stsproxy: check: --port needs a port number (1-65535)\n");
				return EXIT_ERROR;
			}
		} else if (strcmp(argv[i], "--timeout") == 0) {
			if (!parse_count(i + 1 < argc ? argv[++i] : NULL, 2, 3600, &deadline)) {
				fprintf(stderr, "stsproxy: check: --timeout needs seconds (2-3600)\n");
				return EXIT_ERROR;
			}
		} else if (argv[i][0] != '-' && target == NULL) {
			target = argv[i];
		} else {
			cmd_check_usage(stderr);
			return EXIT_ERROR;
		}
	}
	if (target == NULL) {
		cmd_check_usage(stderr);
		return EXIT_ERROR;
	}
	/* The same arguments as policy: a domain, an address or the policy URL. */
	if ((why = cli_policy_domain(target, &domain, &how)) != NULL) {
		fprintf(stderr, "stsproxy: %s: %s\n", target, why);
		return EXIT_ERROR;
	}
	if (how != NULL)
		fprintf(stderr, "stsproxy: checking %s, %s %s\n", domain, how, target);
	if ((rt = runtime_new(conf)) == NULL) {
		free(domain);
		return EXIT_ERROR;
	}
	if ((f = check_run(rt, domain, port, deadline)) == NULL) {
		fprintf(stderr, "stsproxy: check: '%s' is not a domain name\n", domain);
		runtime_free(rt);
		free(domain);
		return EXIT_ERROR;
	}
	free(domain);
	check_evaluate(f, &list);
	rc = check_exit_status(&list);
	if (json)
		print_json(f, &list, rc);
	else
		print_text(conf, path, f, &list);
	check_list_clear(&list);
	check_facts_free(f);
	runtime_free(rt);
	return rc;
}

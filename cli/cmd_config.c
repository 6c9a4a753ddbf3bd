/*
 * cmd_config.c - `stsproxy check-config`: would serve start with this?
 *
 * The file was loaded by main() (syntax, values, the rules between keys);
 * here come the checks serve makes of the host before it binds, through
 * the same preflight_check(), so a configuration that passes starts. An
 * address held by the running stsproxy is a warning: check-config is run
 * next to the daemon before a reload, like nginx -t.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "proxy/limits.h"
#include "cli/preflight.h"

void
cmd_check_config_usage(FILE *out)
{
	fprintf(out, "usage: stsproxy [-c FILE] check-config [-n]\n"
	    "\n"
	    "Load the configuration and make every check serve makes before it binds: the user\n"
	    "to switch to, state_dir, pid_file and log_file, the DNSSEC trust anchor, the CA\n"
	    "store, the STARTTLS certificate and key, the DKIM keys, and that every listen\n"
	    "address and metrics_listen is distinct and free (an address held by the running\n"
	    "stsproxy is a warning). Then print the effective configuration.\n"
	    "\n"
	    "  -n   print only the keys that differ from the defaults, with where each was set\n"
	    "\n"
	    "Exit status: 0 serve would start (warnings may be printed), 2 it would not.\n");
}

int
cmd_check_config(const struct conf *conf, const char *path, int argc, char **argv)
{
	struct strlist errors = { 0 }, warnings = { 0 };
	struct limits_plan plan;
	bool changed_only = false;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 || strcmp(argv[i], "--non-default") == 0)
			changed_only = true;
		else {
			cmd_check_config_usage(stderr);
			return EXIT_ERROR;
		}
	}
	/* Syntax errors were printed by main(), which does not get this far. */
	rc = preflight_check(conf, PREFLIGHT_F_RUNNING_OK, &errors, &warnings);
	/* serve raises its soft descriptor limit to the hard one and lowers
	 * max_connections when that is still too few: say so before it does. */
	(void)limits_init();
	limits_plan(conf, &plan);
	if (plan.lowered)
		strlist_addf(&warnings, "the descriptor limit (%lu) is too low for max_connections = %u "
		    "and reuse_pool_size = %u (%u descriptors needed): serve would take %u clients "
		    "and park %u connections; raise the limit (LimitNOFILE=, ulimit -n) to %u",
		    plan.hard, conf->server_max_connections, conf->upstream_reuse_pool_size,
		    plan.needed, plan.max_connections, plan.pool_size, plan.needed);
	for (size_t i = 0; i < warnings.count; i++)
		fprintf(stderr, "stsproxy: warning: %s\n", warnings.items[i]);
	for (size_t i = 0; i < errors.count; i++)
		fprintf(stderr, "stsproxy: %s\n", errors.items[i]);
	if (rc < 0) {
		fprintf(stderr, "stsproxy: %s: %zu problem%s on this host; serve would not start\n",
		    path ? path : "embedded defaults", errors.count, errors.count == 1 ? "" : "s");
	} else {
		printf("# config=%s: OK, serve would start\n", path ? path : "\"embedded defaults\"");
		printf("# descriptors: limit %lu, %u needed for max_connections = %u and "
		    "reuse_pool_size = %u", plan.hard, plan.needed, conf->server_max_connections,
		    conf->upstream_reuse ? conf->upstream_reuse_pool_size : 0);
		if (plan.lowered)
			printf(" (serve would lower them to %u and %u)", plan.max_connections,
			    plan.pool_size);
		printf("\n");
		if (changed_only) {
			if (conf_print_changed(conf, stdout) == 0)
				printf("# every key has its default value\n");
		} else
			conf_print(conf, stdout);
	}
	strlist_clear(&errors);
	strlist_clear(&warnings);
	return rc < 0 ? EXIT_ERROR : 0;
}

#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/clock.h"
#include "conf/conf.h"
#include "conf/log.h"
#include "proxy/commands.h"

#define DEFAULT_CONF_PATH SYSCONFDIR "/stsproxy/stsproxy.conf"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: stsproxy [-c FILE] [-d] COMMAND [ARGS]\n"
	    "\n"
	    "commands:\n"
	    "  serve [--foreground]                   run the relay (always in the foreground)\n"
	    "  policy DOMAIN [--json] [--no-cache]   the MTA-STS policy a sender applies now\n"
	    "  policy --file FILE [--mx HOST...]     lint a policy file before publishing it\n"
	    "  check DOMAIN [--json] [--port N]      a domain's MTA-STS and TLS-RPT as senders see them\n"
	    "  cache list | show DOMAIN | purge DOMAIN | purge --all | refresh\n"
	    "  report list [--day D]                  TLS-RPT traffic recorded per day and domain\n"
	    "  report show DOMAIN [--day D] [--json]  the RFC 8460 report for DOMAIN (default: yesterday)\n"
	    "  report send [--day D] [--domain X] [--dry-run]  deliver the day's reports now\n"
	    "  report read FILE|DIR|- [--json]        summarise TLS-RPT reports received (.json, .json.gz, .eml)\n"
	    "  check-config                           print the effective configuration\n"
	    "  version\n"
	    "\n"
	    "options:\n"
	    "  -c FILE   configuration file (default %s if it exists,\n"
	    "            otherwise the embedded defaults)\n"
	    "  -d        log at debug level\n", DEFAULT_CONF_PATH);
}

int
main(int argc, char **argv)
{
	const char *conf_path = NULL;
	bool explicit_conf = false, debug = false;
	struct strlist errors = { 0 };
	struct conf *conf;
	int ch, rc;

	log_init("stsproxy", false, LOG_LEVEL_WARNING);
	while ((ch = getopt(argc, argv, "+c:dhV")) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			explicit_conf = true;
			break;
		case 'd':
			debug = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_ERROR;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return EXIT_ERROR;
	}
	if (strcmp(argv[0], "version") == 0) {
		printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
		return 0;
	}
	if (strcmp(argv[0], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[0], "config-man-keys") == 0) {
		/* Generates the KEYS section of stsproxy.conf(5) from the table. */
		conf_print_man_keys(stdout);
		return 0;
	}
	if (clock_init_from_env() < 0) {
		fprintf(stderr, "stsproxy: STSPROXY_TEST_TIME_OFFSET is not an integer\n");
		return EXIT_ERROR;
	}
	if (!explicit_conf && access(DEFAULT_CONF_PATH, F_OK) == 0)
		conf_path = DEFAULT_CONF_PATH;
	conf = conf_load(conf_path, &errors);
	if (conf == NULL) {
		for (size_t i = 0; i < errors.count; i++)
			fprintf(stderr, "stsproxy: %s\n", errors.items[i]);
		fprintf(stderr, "stsproxy: %zu error%s in the configuration; not starting\n",
		    errors.count, errors.count == 1 ? "" : "s");
		strlist_clear(&errors);
		return EXIT_ERROR;
	}
	/* The tools print their findings on stdout; stderr carries what an
	 * operator must notice (policy changes, failures), or all with -d. */
	log_set_level(debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_NOTICE);

	if (strcmp(argv[0], "serve") == 0)
		rc = cmd_serve(conf, conf_path, argc, argv);
	else if (strcmp(argv[0], "report") == 0)
		rc = cmd_report(conf, argc, argv);
	else if (strcmp(argv[0], "policy") == 0)
		rc = cmd_policy(conf, argc, argv);
	else if (strcmp(argv[0], "check") == 0)
		rc = cmd_check(conf, argc, argv);
	else if (strcmp(argv[0], "cache") == 0)
		rc = cmd_cache(conf, argc, argv);
	else if (strcmp(argv[0], "check-config") == 0)
		rc = cmd_check_config(conf, conf_path, argc, argv);
	else {
		fprintf(stderr, "stsproxy: unknown command '%s'\n", argv[0]);
		usage(stderr);
		rc = EXIT_ERROR;
	}
	conf_free(conf);
	return rc;
}

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
#include "cli/cli_args.h"
#include "cli/commands.h"

struct command {
	const char	*name;
	int		(*run)(const struct conf *conf, const char *path, int argc, char **argv);
	void		(*usage)(FILE *out);
};

static const struct command commands[] = {
	{ "serve", cmd_serve, cmd_serve_usage },
	{ "policy", cmd_policy, cmd_policy_usage },
	{ "check", cmd_check, cmd_check_usage },
	{ "cache", cmd_cache, cmd_cache_usage },
	{ "report", cmd_report, cmd_report_usage },
	{ "check-config", cmd_check_config, cmd_check_config_usage },
	{ "store", cmd_store, cmd_store_usage },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: stsproxy [-c FILE] [-d] COMMAND [ARGS]\n"
	    "\n"
	    "commands:\n"
	    "  serve [--foreground]                   run the relay (always in the foreground)\n"
	    "  policy DOMAIN [--json] [--no-cache]   the MTA-STS policy a sender applies now\n"
	    "                                         (DOMAIN may be a URL or an email address)\n"
	    "  policy --file FILE [--mx HOST]... [--json]  lint a policy file before publishing it\n"
	    "  check DOMAIN [--json] [--port N]      a domain's MTA-STS and TLS-RPT as senders see them\n"
	    "  cache list | show DOMAIN | purge DOMAIN | purge --all | refresh [DOMAIN]\n"
	    "  report list [--day D]                  TLS-RPT traffic recorded per day and domain\n"
	    "  report show DOMAIN [--day D] [--json]  the RFC 8460 report for DOMAIN (default: yesterday)\n"
	    "  report send [--day D] [--domain X] [--dry-run]  deliver the day's reports now\n"
	    "  report read FILE|DIR|- [--json]        summarise TLS-RPT reports received (.json, .json.gz, .eml)\n"
	    "  check-config [-n]                      check everything serve needs; print the configuration\n"
	    "  store init [--to N] | status          the shared store of a fleet (PostgreSQL)\n"
	    "  help [COMMAND]                         this text, or a command's\n"
	    "  version\n"
	    "\n"
	    "options (before or after the command):\n"
	    "  -c, --config FILE  configuration file (default %s if it exists,\n"
	    "                     otherwise the embedded defaults)\n"
	    "  -d, --debug        log at debug level\n"
	    "  -h, --help         help, for the program or the command\n"
	    "  -V, --version      the version\n", DEFAULT_CONF_FILE);
}

static const struct command *
command_find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void
print_version(void)
{
	printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_globals g = { 0 };
	const struct command *cmd;
	struct strlist errors = { 0 };
	struct conf *conf;
	const char *why;
	char cwd[4096], abs_path[8192];
	int ch, rc;

	log_init("stsproxy", false, LOG_LEVEL_WARNING);
	/* Options before the command; '+' stops at the command name. */
	while ((ch = getopt_long(argc, argv, "+c:dhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			g.conf_path = optarg;
			break;
		case 'd':
			g.debug = true;
			break;
		case 'h':
			g.help = true;
			break;
		case 'V':
			g.version = true;
			break;
		default:
			usage(stderr);
			return EXIT_ERROR;
		}
	}
	argc -= optind;
	argv += optind;
	/* ...and after it: `stsproxy serve -c FILE` is what most admins type. */
	if (argc > 0 && (why = cli_take_globals(&argc, argv, &g)) != NULL) {
		fprintf(stderr, "stsproxy: %s\n", why);
		return EXIT_ERROR;
	}
	if (g.version || (argc > 0 && strcmp(argv[0], "version") == 0)) {
		print_version();
		return 0;
	}
	if (argc > 0 && strcmp(argv[0], "help") == 0) {
		if (argc > 1 && (cmd = command_find(argv[1])) != NULL)
			cmd->usage(stdout);
		else
			usage(stdout);
		return 0;
	}
	if (argc < 1) {
		usage(g.help ? stdout : stderr);
		return g.help ? 0 : EXIT_ERROR;
	}
	if (strcmp(argv[0], "config-man-keys") == 0) {
		/* Generates the KEYS section of stsproxy.conf(5) from the table. */
		conf_print_man_keys(stdout);
		return 0;
	}
	if ((cmd = command_find(argv[0])) == NULL) {
		fprintf(stderr, "stsproxy: unknown command '%s'\n", argv[0]);
		usage(stderr);
		return EXIT_ERROR;
	}
	if (g.help) {
		cmd->usage(stdout);
		return 0;
	}
	if (clock_init_from_env() < 0) {
		fprintf(stderr, "stsproxy: STSPROXY_TEST_TIME_OFFSET is not an integer\n");
		return EXIT_ERROR;
	}
	if (g.conf_path == NULL && access(DEFAULT_CONF_FILE, F_OK) == 0)
		g.conf_path = DEFAULT_CONF_FILE;
	/* Logs and headers say config=PATH: make it one an admin can find again. */
	if (g.conf_path != NULL && g.conf_path[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL) {
		snprintf(abs_path, sizeof(abs_path), "%s/%s", cwd, g.conf_path);
		g.conf_path = abs_path;
	}
	conf = conf_load(g.conf_path, &errors);
	if (conf == NULL) {
		for (size_t i = 0; i < errors.count; i++)
			fprintf(stderr, "stsproxy: %s\n", errors.items[i]);
		fprintf(stderr, "stsproxy: %zu error%s in the configuration; not starting\n",
		    errors.count, errors.count == 1 ? "" : "s");
		strlist_clear(&errors);
		return EXIT_ERROR;
	}
	/* serve logs them where its log goes, with its start-up checks. */
	if (cmd->run != cmd_serve)
		for (size_t i = 0; i < conf->warnings.count; i++)
			fprintf(stderr, "stsproxy: warning: %s\n", conf->warnings.items[i]);
	/* The tools print their findings on stdout; stderr carries what an
	 * operator must notice (policy changes, failures), or all with -d. */
	log_set_level(g.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_NOTICE);
	rc = cmd->run(conf, g.conf_path, argc, argv);
	conf_free(conf);
	return rc;
}

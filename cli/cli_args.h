/*
 * cli_args.h - command-line conventions shared by every subcommand.
 *
 * Global options may follow the command (`stsproxy serve -c FILE`), and
 * `stsproxy policy` takes whatever an admin has at hand: a domain, an
 * email address or the policy URL.
 */
#ifndef STSPROXY_CLI_ARGS_H
#define STSPROXY_CLI_ARGS_H

#include <stdbool.h>

/** The options every command accepts, before or after its name. */
struct cli_globals {
	const char	*conf_path;	/* -c, --config; borrowed from argv */
	bool		 debug;		/* -d, --debug */
	bool		 help;		/* -h, --help */
	bool		 version;	/* -V, --version */
};

/**
 * Take the global options out of a command's arguments (argv[0] is the
 * command), compacting argv and *argc; what is left is the command's own.
 * Values of the commands' own options (--file F, --day D, ...) are never
 * read as options, and "--" ends option processing. NULL, or a static
 * reason ("-c needs a FILE").
 */
const char *cli_take_globals(int *argc, char **argv, struct cli_globals *g);

/**
 * The policy domain named by arg: a domain ("example.com"), an email
 * address ("user@example.com", "<user@example.com>", "mailto:..."), the
 * policy URL ("https://mta-sts.example.com/.well-known/mta-sts.txt") or
 * the TXT name ("_mta-sts.example.com"). *domain is set (caller frees) and
 * *how says what was taken from what, or is NULL when arg was used as
 * given. NULL, or a static reason when no domain can be found.
 */
const char *cli_policy_domain(const char *arg, char **domain, const char **how);

#endif

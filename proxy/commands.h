/*
 * commands.h - the subcommands of the stsproxy binary.
 *
 * Each takes the loaded configuration (borrowed) and its own arguments
 * (argv[0] is the subcommand name) and returns the process exit status.
 */
#ifndef STSPROXY_COMMANDS_H
#define STSPROXY_COMMANDS_H

#include "conf/conf.h"

/* Exit statuses shared by the commands. */
#define EXIT_POLICY	0	/* a policy applies / the file is valid */
#define EXIT_NO_POLICY	1	/* no policy applies / the file is invalid */
#define EXIT_ERROR	2	/* usage, configuration or internal error */

int cmd_policy(const struct conf *conf, int argc, char **argv);
int cmd_cache(const struct conf *conf, int argc, char **argv);
int cmd_report(const struct conf *conf, int argc, char **argv);
int cmd_check(const struct conf *conf, int argc, char **argv);
int cmd_serve(const struct conf *conf, const char *path, int argc, char **argv);
int cmd_check_config(const struct conf *conf, const char *path, int argc, char **argv);

#endif

/*
 * commands.h - the subcommands of the stsproxy binary.
 *
 * Each takes the loaded configuration (borrowed), the file it came from
 * (NULL: the embedded defaults) and its own arguments (argv[0] is the
 * subcommand name, global options already taken out) and returns the
 * process exit status. Each has a usage function for --help (stdout) and
 * for usage errors (stderr).
 */
#ifndef STSPROXY_COMMANDS_H
#define STSPROXY_COMMANDS_H

#include <stdio.h>

#include "conf/conf.h"

/* Exit statuses shared by the commands. */
#define EXIT_POLICY	0	/* a policy applies / the file is valid */
#define EXIT_NO_POLICY	1	/* no policy applies / the file is invalid */
#define EXIT_ERROR	2	/* usage, configuration, lookup or internal error */

int cmd_policy(const struct conf *conf, const char *path, int argc, char **argv);
int cmd_cache(const struct conf *conf, const char *path, int argc, char **argv);
int cmd_report(const struct conf *conf, const char *path, int argc, char **argv);
int cmd_check(const struct conf *conf, const char *path, int argc, char **argv);
int cmd_serve(const struct conf *conf, const char *path, int argc, char **argv);
int cmd_check_config(const struct conf *conf, const char *path, int argc, char **argv);
int cmd_store(const struct conf *conf, const char *path, int argc, char **argv);

void cmd_policy_usage(FILE *out);
void cmd_cache_usage(FILE *out);
void cmd_report_usage(FILE *out);
void cmd_serve_usage(FILE *out);
void cmd_check_config_usage(FILE *out);
void cmd_check_usage(FILE *out);
void cmd_store_usage(FILE *out);

#endif

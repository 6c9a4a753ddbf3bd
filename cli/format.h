/*
 * format.h - small presentation helpers shared by the commands.
 */
#ifndef STSPROXY_FORMAT_H
#define STSPROXY_FORMAT_H

#include <stdio.h>
#include <time.h>

#include "conf/conf.h"

/** "2026-11-23T10:46:00Z", or "-" for 0. Returns buf. */
const char *format_time(time_t t, char *buf, size_t len);

/**
 * The first line of a command's text output: which configuration file
 * (path, NULL for the embedded defaults) and so which state_dir and DNS
 * the command used, e.g. "# config=/etc/stsproxy/stsproxy.conf
 * state_dir=/var/lib/stsproxy dns=recursion dnssec=yes".
 */
void format_config_header(FILE *out, const struct conf *conf, const char *path);

#endif

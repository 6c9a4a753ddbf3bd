/*
 * format.h - small presentation helpers shared by the commands.
 */
#ifndef STSPROXY_FORMAT_H
#define STSPROXY_FORMAT_H

#include <time.h>

/** "2026-11-23T10:46:00Z", or "-" for 0. Returns buf. */
const char *format_time(time_t t, char *buf, size_t len);

#endif

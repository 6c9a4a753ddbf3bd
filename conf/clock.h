/*
 * clock.h - the wall clock every policy and report decision reads.
 *
 * Cache lifetimes (max_age, back-off, refresh) and report days are
 * decided from clock_now(), never from time() directly, so tests can move
 * time forward without sleeping. The offset comes from the environment
 * variable STSPROXY_TEST_TIME_OFFSET (seconds, may be negative) or from
 * clock_set_offset(); TLS certificate checks keep using the real time.
 */
#ifndef STSPROXY_CLOCK_H
#define STSPROXY_CLOCK_H

#include <time.h>

/** Current time in seconds since the epoch, including the test offset. */
time_t clock_now(void);
/** Set the offset added to the real time (tests only). */
void clock_set_offset(long long seconds);
/** Read STSPROXY_TEST_TIME_OFFSET; -1 if it is set but not an integer. */
int clock_init_from_env(void);

/**
 * t as ISO 8601 UTC, "2026-11-23T10:46:00Z", or "-" for 0: the one form
 * of a time in log lines, notes and command output. Returns buf.
 */
const char *clock_format(time_t t, char *buf, size_t len);

#endif

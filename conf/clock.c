#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf/clock.h"

static long long clock_offset;

time_t
clock_now(void)
{
	return time(NULL) + (time_t)clock_offset;
}

void
clock_set_offset(long long seconds)
{
	clock_offset = seconds;
}

int
clock_init_from_env(void)
{
	const char *v = getenv("STSPROXY_TEST_TIME_OFFSET");
	char *end;
	long long off;

	if (v == NULL || *v == '\0')
		return 0;
	errno = 0;
	off = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	clock_offset = off;
	return 0;
}

const char *
clock_format(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

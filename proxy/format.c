#include "config.h"

#include <stdio.h>
#include <time.h>

#include "conf/clock.h"
#include "proxy/format.h"

const char *
format_time(time_t t, char *buf, size_t len)
{
	return clock_format(t, buf, len);	/* one form of a time everywhere */
}

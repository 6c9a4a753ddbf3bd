#include "config.h"

#include <stdio.h>
#include <time.h>

#include "conf/clock.h"
#include "cli/format.h"

const char *
format_time(time_t t, char *buf, size_t len)
{
	return clock_format(t, buf, len);	/* one form of a time everywhere */
}

void
format_config_header(FILE *out, const struct conf *conf, const char *path)
{
	fprintf(out, "# config=%s state_dir=%s dns=", path ? path : "\"embedded defaults\"",
	    conf->state_dir);
	if (conf->dns_forwarders.count == 0)
		fprintf(out, "recursion");
	for (size_t i = 0; i < conf->dns_forwarders.count; i++)
		fprintf(out, "%s%s", i ? "," : "", conf->dns_forwarders.items[i]);
	fprintf(out, " dnssec=%s\n", conf->dns_dnssec ? "yes" : "no");
}

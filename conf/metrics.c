#include "config.h"

#include <stdio.h>
#include <string.h>

#include "conf/metrics.h"

enum metric_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

static const struct {
	const char		*name;
	enum metric_kind	 kind;
	const char		*help;
} families[] = {
	{ "stsproxy_connections_total", KIND_COUNTER, "Client connections accepted." },
	{ "stsproxy_connections_refused_total", KIND_COUNTER, "Client connections refused at connect, by reason." },
	{ "stsproxy_sessions", KIND_GAUGE, "Client sessions open now." },
	{ "stsproxy_messages_total", KIND_COUNTER, "Messages by the class of the reply the client got at end of data." },
	{ "stsproxy_upstream_attempts_total", KIND_COUNTER, "Upstream MX attempts by policy mode, action and RFC 8460 result type." },
	{ "stsproxy_upstream_tls_total", KIND_COUNTER, "Upstream TLS sessions by protocol version." },
	{ "stsproxy_policy_deferrals_total", KIND_COUNTER, "Transactions deferred because no MX met an enforce policy." },
	{ "stsproxy_policy_lookups_total", KIND_COUNTER, "Policy lookups by where the answer came from." },
	{ "stsproxy_policy_failures_total", KIND_COUNTER, "Policy discovery failures by RFC 8460 result type." },
	{ "stsproxy_dns_failures_total", KIND_COUNTER, "MX lookups that failed, by status." },
	{ "stsproxy_reports_total", KIND_COUNTER, "TLS-RPT report deliveries by outcome." },
	{ "stsproxy_dns_answers_total", KIND_COUNTER, "DNS answers by result (NOERROR, NODATA, NXDOMAIN, SERVFAIL, timeout, error) and DNSSEC state." },
	{ "stsproxy_policy_fetches_total", KIND_COUNTER, "HTTPS policy fetches by result: ok or the RFC 8460 result type of the failure." },
	{ "stsproxy_upstream_reply_seconds", KIND_HISTOGRAM, "Upstream reply latency by command (greeting counts from connect, eom is the reply to the end of data)." },
	{ "stsproxy_upstream_ready_seconds", KIND_HISTOGRAM, "Time from the first RCPT to an upstream ready for it (DNS, policy, connect, TLS)." },
};

static const double buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct series {
	char	name[64];
	char	labels[192];
	double	value;
	double	bucket[NBUCKETS];
	double	sum;
};

static struct series series[METRICS_MAX_SERIES];
static size_t nseries;

static struct series *
find(const char *name, const char *labels)
{
	for (size_t i = 0; i < nseries; i++)
		if (strcmp(series[i].name, name) == 0 && strcmp(series[i].labels, labels) == 0)
			return &series[i];
	if (nseries == METRICS_MAX_SERIES || strlen(name) >= sizeof(series[0].name) ||
	    strlen(labels) >= sizeof(series[0].labels))
		return NULL;	/* bounded: new label sets past the cap are dropped */
	snprintf(series[nseries].name, sizeof(series[0].name), "%s", name);
	snprintf(series[nseries].labels, sizeof(series[0].labels), "%s", labels);
	return &series[nseries++];
}

void
metrics_add(const char *name, const char *labels, double v)
{
	struct series *s = find(name, labels ? labels : "");

	if (s != NULL)
		s->value += v;
}

void
metrics_set(const char *name, const char *labels, double v)
{
	struct series *s = find(name, labels ? labels : "");

	if (s != NULL)
		s->value = v;
}

void
metrics_observe(const char *name, const char *labels, double seconds)
{
	struct series *s = find(name, labels ? labels : "");

	if (s == NULL)
		return;
	for (size_t i = 0; i < NBUCKETS; i++)
		if (seconds <= buckets[i])
			s->bucket[i]++;
	s->value++;	/* count */
	s->sum += seconds;
}

void
metrics_render(struct strbuf *out)
{
	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
		const char *type = families[f].kind == KIND_COUNTER ? "counter" :
		    families[f].kind == KIND_GAUGE ? "gauge" : "histogram";
		bool any = false;

		strbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help,
		    families[f].name, type);
		for (size_t i = 0; i < nseries; i++) {
			const struct series *s = &series[i];

			if (strcmp(s->name, families[f].name) != 0)
				continue;
			any = true;
			if (families[f].kind != KIND_HISTOGRAM) {
				strbuf_printf(out, "%s%s%s%s %.17g\n", s->name, s->labels[0] ? "{" : "",
				    s->labels, s->labels[0] ? "}" : "", s->value);
				continue;
			}
			{
				const char *sep = s->labels[0] ? "," : "";
				const char *lb = s->labels[0] ? "{" : "", *rb = s->labels[0] ? "}" : "";

				for (size_t b = 0; b < NBUCKETS; b++)
					strbuf_printf(out, "%s_bucket{%s%sle=\"%g\"} %.17g\n", s->name,
					    s->labels, sep, buckets[b], s->bucket[b]);
				strbuf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %.17g\n", s->name, s->labels,
				    sep, s->value);
				strbuf_printf(out, "%s_sum%s%s%s %.17g\n%s_count%s%s%s %.17g\n", s->name, lb,
				    s->labels, rb, s->sum, s->name, lb, s->labels, rb, s->value);
			}
		}
		/* A family with no sample yet still shows, at zero, where it can. */
		if (!any && families[f].kind != KIND_HISTOGRAM)
			strbuf_printf(out, "%s 0\n", families[f].name);
	}
}

void
metrics_reset(void)
{
	nseries = 0;
}

#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

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
	{ "stsproxy_messages_total", KIND_COUNTER, "Messages by the class of the reply the client got at end of data (LMTP: one per recipient domain)." },
	{ "stsproxy_lmtp_transactions_total", KIND_COUNTER, "LMTP transactions that reached the end of data, by how many recipient domains they had." },
	{ "stsproxy_lmtp_domains_total", KIND_COUNTER, "Recipient domains of those LMTP transactions, each with an upstream of its own." },
	{ "stsproxy_upstream_attempts_total", KIND_COUNTER, "Upstream MX attempts by policy mode, action and RFC 8460 result type." },
	{ "stsproxy_upstream_tls_total", KIND_COUNTER, "Upstream TLS sessions by protocol version." },
	{ "stsproxy_policy_deferrals_total", KIND_COUNTER, "Transactions deferred because no MX met an enforce policy." },
	{ "stsproxy_policy_lookups_total", KIND_COUNTER, "Policy lookups by where the answer came from." },
	{ "stsproxy_policy_failures_total", KIND_COUNTER, "Policy discovery failures by RFC 8460 result type." },
	{ "stsproxy_dns_failures_total", KIND_COUNTER, "MX lookups that failed, by status." },
	{ "stsproxy_reports_total", KIND_COUNTER, "TLS-RPT report deliveries by outcome." },
	{ "stsproxy_store_degraded", KIND_GAUGE, "1 while the shared store ([store] backend = postgresql) cannot be used, by part (reports, policies)." },
	{ "stsproxy_store_buffered_records", KIND_GAUGE, "TLS-RPT counter records waiting for the shared store, in memory." },
	{ "stsproxy_store_spilled_batches", KIND_GAUGE, "TLS-RPT counter batches spilled to the local reports.mdb, waiting for the shared store." },
	{ "stsproxy_store_flushes_total", KIND_COUNTER, "Counter flushes to the store by result (ok, failed, replayed)." },
	{ "stsproxy_dns_answers_total", KIND_COUNTER, "DNS answers by result (NOERROR, NODATA, NXDOMAIN, SERVFAIL, timeout, error) and DNSSEC state." },
	{ "stsproxy_policy_fetches_total", KIND_COUNTER, "HTTPS policy fetches by result: ok or the RFC 8460 result type of the failure." },
	{ "stsproxy_upstream_reply_seconds", KIND_HISTOGRAM, "Upstream reply latency by command (greeting counts from connect, eom is the reply to the end of data)." },
	{ "stsproxy_upstream_tls_resumed_total", KIND_COUNTER, "Upstream TLS handshakes that resumed a session." },
	{ "stsproxy_upstream_reuses_total", KIND_COUNTER, "Transactions that took an idle upstream connection instead of opening one." },
	{ "stsproxy_upstream_pool_connections", KIND_GAUGE, "Idle upstream connections kept for reuse." },
	{ "stsproxy_upstream_ready_seconds", KIND_HISTOGRAM, "Time from the first RCPT to an upstream ready for it (DNS, policy, connect, TLS)." },
	{ "stsproxy_tlsa_lookups_total", KIND_COUNTER, "TLSA lookups of MX hosts by what they found (usable, unusable, no-tlsa, tlsa-insecure, lookup-failed)." },
	{ "stsproxy_dane_attempts_total", KIND_COUNTER, "Upstream attempts on MX hosts governed by DANE, by action and RFC 8460 result type (none: authenticated)." },
	{ "stsproxy_dane_deferrals_total", KIND_COUNTER, "Transactions deferred with a DANE failure among the reasons (no MX left)." },
	{ "stsproxy_dane_simulated_deferrals_total", KIND_COUNTER, "simulate = enforce: transactions that DOMAIN:dane-only would have deferred." },
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

/*
 * One registry per worker process. With several workers the registries
 * live in one shared mapping made before fork: each worker writes only its
 * own (no lock on the message path) and the renderer sums them. A new
 * series is filled before the count that publishes it is stored.
 */
struct registry {
	size_t		nseries;
	struct series	series[METRICS_MAX_SERIES];
};

static struct registry local_registry;
static struct registry *registries = &local_registry;	/* [nregistries] */
static unsigned nregistries = 1;
static struct registry *mine = &local_registry;

int
metrics_share(unsigned nworkers)
{
	void *p = mmap(NULL, nworkers * sizeof(struct registry), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	registries = p;
	nregistries = nworkers;
	mine = &registries[0];
	return 0;
}

void
metrics_use_slot(unsigned worker)
{
	if (worker < nregistries)
		mine = &registries[worker];
}

static struct series *
find(const char *name, const char *labels)
{
	size_t n = mine->nseries;
	struct series *series = mine->series;

	for (size_t i = 0; i < n; i++)
		if (strcmp(series[i].name, name) == 0 && strcmp(series[i].labels, labels) == 0)
			return &series[i];
	if (n == METRICS_MAX_SERIES || strlen(name) >= sizeof(series[0].name) ||
	    strlen(labels) >= sizeof(series[0].labels))
		return NULL;	/* bounded: new label sets past the cap are dropped */
	snprintf(series[n].name, sizeof(series[0].name), "%s", name);
	snprintf(series[n].labels, sizeof(series[0].labels), "%s", labels);
	__atomic_store_n(&mine->nseries, n + 1, __ATOMIC_RELEASE);
	return &series[n];
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

/* Whether (name, labels) already appeared before registry r, index i. */
static bool
seen_before(unsigned r, size_t i, const struct series *x)
{
	for (unsigned q = 0; q <= r; q++) {
		size_t n = q == r ? i : __atomic_load_n(&registries[q].nseries, __ATOMIC_ACQUIRE);

		for (size_t j = 0; j < n; j++)
			if (strcmp(registries[q].series[j].name, x->name) == 0 &&
			    strcmp(registries[q].series[j].labels, x->labels) == 0)
				return true;
	}
	return false;
}

/* The sum of (name, labels) over every worker's registry. */
static void
total(const struct series *x, struct series *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned q = 0; q < nregistries; q++) {
		size_t n = __atomic_load_n(&registries[q].nseries, __ATOMIC_ACQUIRE);

		for (size_t j = 0; j < n; j++) {
			const struct series *y = &registries[q].series[j];

			if (strcmp(y->name, x->name) != 0 || strcmp(y->labels, x->labels) != 0)
				continue;
			sum->value += y->value;
			sum->sum += y->sum;
			for (size_t b = 0; b < NBUCKETS; b++)
				sum->bucket[b] += y->bucket[b];
		}
	}
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
		for (unsigned r = 0; r < nregistries; r++) {
			size_t n = __atomic_load_n(&registries[r].nseries, __ATOMIC_ACQUIRE);

			for (size_t i = 0; i < n; i++) {
				const struct series *x = &registries[r].series[i];
				struct series t;

				if (strcmp(x->name, families[f].name) != 0 || seen_before(r, i, x))
					continue;
				any = true;
				total(x, &t);
				if (families[f].kind != KIND_HISTOGRAM) {
					strbuf_printf(out, "%s%s%s%s %.17g\n", x->name, x->labels[0] ? "{" : "",
					    x->labels, x->labels[0] ? "}" : "", t.value);
					continue;
				}
				{
					const char *sep = x->labels[0] ? "," : "";
					const char *lb = x->labels[0] ? "{" : "", *rb = x->labels[0] ? "}" : "";

					for (size_t b = 0; b < NBUCKETS; b++)
						strbuf_printf(out, "%s_bucket{%s%sle=\"%g\"} %.17g\n", x->name,
						    x->labels, sep, buckets[b], t.bucket[b]);
					strbuf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %.17g\n", x->name,
					    x->labels, sep, t.value);
					strbuf_printf(out, "%s_sum%s%s%s %.17g\n%s_count%s%s%s %.17g\n", x->name,
					    lb, x->labels, rb, t.sum, x->name, lb, x->labels, rb, t.value);
				}
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
	/* the values too: find() reuses the slots */
	memset(mine->series, 0, mine->nseries * sizeof(mine->series[0]));
	mine->nseries = 0;
}

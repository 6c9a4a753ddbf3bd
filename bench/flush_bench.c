/*
 * flush_bench.c - benchmark 8: the TLS-RPT counter flush, through the
 * same store the relay uses (report/rpt_store.c): outcomes counted in
 * memory, then written in one flush transaction, to reports.mdb or (with
 * [store] backend = postgresql in CONFIG) to the shared database.
 *
 * usage: flush_bench CONFIG OUTCOMES DOMAINS [ROUNDS]
 * OUTCOMES outcomes are spread evenly over DOMAINS policy domains; of each
 * domain's outcomes one in ten is a failure, with one of up to 20 failure
 * details (receiving IPs) per domain: a batch writes a success row per
 * domain and up to 20 failure rows. Each round counts them and flushes
 * once. Prints, per round, the time of the flush and the outcomes per
 * second it carried, and the median over the rounds.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "conf/log.h"
#include "report/rpt_store.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct strlist errors = { 0 }, patterns = { 0 }, lines = { 0 };
	struct conf *conf;
	struct rpt_store *store;
	long outcomes, domains, rounds;
	double *flush_s, add_s = 0;
	char **names;

	if (argc < 4) {
		fprintf(stderr, "usage: flush_bench CONFIG OUTCOMES DOMAINS [ROUNDS]\n");
		return 2;
	}
	outcomes = strtol(argv[2], NULL, 10);
	domains = strtol(argv[3], NULL, 10);
	rounds = argc > 4 ? strtol(argv[4], NULL, 10) : 5;
	if (outcomes < 1 || domains < 1 || rounds < 1)
		return 2;
	log_init("flush_bench", false, LOG_LEVEL_WARNING);
	if ((conf = conf_load(argv[1], &errors)) == NULL) {
		fprintf(stderr, "flush_bench: %s\n", errors.count ? errors.items[0] : "bad configuration");
		return 2;
	}
	if ((store = rpt_store_open(conf, NULL)) == NULL)
		return 1;
	strlist_add(&patterns, "*.bench.example");
	strlist_add(&lines, "version: STSv1");
	strlist_add(&lines, "mode: enforce");
	strlist_add(&lines, "mx: *.bench.example");
	strlist_add(&lines, "max_age: 86400");
	names = calloc((size_t)domains, sizeof(*names));
	for (long d = 0; d < domains; d++)
		names[d] = xasprintf("d%ld.bench.example", d);
	flush_s = calloc((size_t)rounds, sizeof(*flush_s));
	for (long r = 0; r < rounds; r++) {
		double t0 = now(), t1;

		for (long i = 0; i < outcomes; i++) {
			char ip[32];
			long k = i / domains;	/* the k-th outcome of its domain */
			bool failed = k % 10 == 0;
			struct delivery_outcome o = {
				.session = "bench", .when = time(NULL), .policy_domain = names[i % domains],
				.policy_type = "sts", .mode = "enforce", .policy_id = "1",
				.mx_patterns = &patterns, .policy_lines = &lines,
				.mx_host = "mx1.bench.example", .sending_ip = "192.0.2.1",
				.result = failed ? RPT_RESULT_CERT_EXPIRED : RPT_RESULT_NONE,
				.reason = "certificate expired",
				.action = failed ? OUTCOME_ACTION_FAILED : OUTCOME_ACTION_DELIVERED,
			};

			snprintf(ip, sizeof(ip), "198.51.100.%ld", (k / 10) % 20);
			o.ip = ip;
			rpt_store_add(store, &o);
		}
		t1 = now();
		add_s += t1 - t0;
		if (rpt_store_flush(store) < 0) {
			fprintf(stderr, "flush_bench: the flush failed (see the log)\n");
			return 1;
		}
		flush_s[r] = now() - t1;
		printf("round %ld: %ld outcomes counted in %.1f ms, flushed in %.1f ms: %.0f outcomes/s\n",
		    r + 1, outcomes, (t1 - t0) * 1000, flush_s[r] * 1000, outcomes / flush_s[r]);
	}
	qsort(flush_s, (size_t)rounds, sizeof(*flush_s), cmp_double);
	printf("%s: %ld outcomes over %ld domains per flush: median flush %.1f ms, %.0f outcomes/s "
	    "through one flush transaction; counting %.2f us per outcome\n", rpt_store_where(store),
	    outcomes, domains, flush_s[rounds / 2] * 1000, outcomes / flush_s[rounds / 2],
	    add_s / rounds / outcomes * 1e6);
	rpt_store_close(store);
	for (long d = 0; d < domains; d++)
		free(names[d]);
	free(names);
	free(flush_s);
	strlist_clear(&patterns);
	strlist_clear(&lines);
	conf_free(conf);
	return 0;
}

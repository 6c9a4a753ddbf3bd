/*
 * policy_bench.c - benchmark 5: cached policy resolutions per second per
 * core, in process, through the same engine the relay uses
 * (policy_engine_resolve: TXT discovery, cache rules, cached policy).
 *
 * usage: policy_bench CONFIG DOMAIN [COUNT [IN_FLIGHT]]
 * Prints one line: resolutions, wall seconds, CPU seconds (all threads,
 * libunbound's included), resolutions per wall second and per CPU second.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "conf/log.h"
#include "proxy/runtime.h"

struct bench {
	struct runtime	*rt;
	const char	*domain;
	long		 remaining, done, cached, inflight;
};

static void on_result(void *arg, const struct policy_result *res);

static void
start_one(struct bench *b)
{
	b->remaining--;
	b->inflight++;
	if (policy_engine_resolve(b->rt->engine, b->domain, 0, on_result, b) == NULL) {
		fprintf(stderr, "policy_bench: cannot start a lookup\n");
		exit(1);
	}
}

static void
on_result(void *arg, const struct policy_result *res)
{
	struct bench *b = arg;

	b->done++;
	b->inflight--;
	if (res->source == POLICY_SOURCE_CACHE)
		b->cached++;
	if (b->remaining > 0)
		start_one(b);
	else if (b->inflight == 0)
		event_base_loopexit(b->rt->base, NULL);	/* the resolver's event would keep it running */
}

static double
seconds(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct strlist errors = { 0 };
	struct conf *conf;
	struct bench b = { 0 };
	long count, inflight;
	double w0, c0, wall, cpu;

	if (argc < 3) {
		fprintf(stderr, "usage: policy_bench CONFIG DOMAIN [COUNT [IN_FLIGHT]]\n");
		return 2;
	}
	count = argc > 3 ? atol(argv[3]) : 200000;
	inflight = argc > 4 ? atol(argv[4]) : 64;
	log_init("policy_bench", false, LOG_LEVEL_WARNING);
	if ((conf = conf_load(argv[1], &errors)) == NULL) {
		for (size_t i = 0; i < errors.count; i++)
			fprintf(stderr, "%s\n", errors.items[i]);
		return 2;
	}
	if ((b.rt = runtime_new(conf)) == NULL)
		return 2;
	b.domain = argv[2];
	/* warm-up: the first lookup may fetch; the benchmark is the cached path */
	b.remaining = 1;
	start_one(&b);
	event_base_dispatch(b.rt->base);
	b.done = b.cached = 0;
	b.remaining = count;
	w0 = seconds(CLOCK_MONOTONIC);
	c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
	for (long i = 0; i < inflight && b.remaining > 0; i++)
		start_one(&b);
	event_base_dispatch(b.rt->base);
	wall = seconds(CLOCK_MONOTONIC) - w0;
	cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
	printf("resolutions=%ld cached=%ld wall_s=%.3f cpu_s=%.3f per_wall_s=%.0f per_cpu_s=%.0f\n",
	    b.done, b.cached, wall, cpu, b.done / wall, b.done / cpu);
	runtime_free(b.rt);
	conf_free(conf);
	return b.cached == b.done ? 0 : 1;
}

/*
 * metrics.h - counters and histograms for the Prometheus endpoint.
 *
 * A process-wide registry, like the log: any layer counts with one call
 * and no handle, and the HTTP endpoint (proxy/metrics_http.c) renders it
 * in the Prometheus text format. Single-threaded per process: call from
 * the event loop only. Bounded: at most METRICS_MAX_SERIES label sets.
 */
#ifndef STSPROXY_METRICS_H
#define STSPROXY_METRICS_H

#include "conf/util.h"

#define METRICS_MAX_SERIES	1024

/**
 * Add v to counter name with labels ("" or `key="value",...`, values
 * already safe). name must be one of the names metrics_render() documents.
 */
void metrics_add(const char *name, const char *labels, double v);

/** Set gauge name (with labels) to v. */
void metrics_set(const char *name, const char *labels, double v);

/** Record one observation (seconds) in histogram name with labels ("" for none). */
void metrics_observe(const char *name, const char *labels, double seconds);

/**
 * Before forking nworkers workers: move the registry into shared memory,
 * one slot per worker, so that any worker renders the sum. 0 or -1.
 */
int metrics_share(unsigned nworkers);
/** In a worker after fork: count into slot worker. */
void metrics_use_slot(unsigned worker);

/** The registry in the Prometheus text exposition format (0.0.4), summed over workers. */
void metrics_render(struct strbuf *out);

/** Forget everything (tests). */
void metrics_reset(void);

#endif

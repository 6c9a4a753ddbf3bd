/*
 * metrics_http.h - the Prometheus endpoint (/metrics) and the health
 * check (/healthz) on [metrics_listen], served by evhttp on the loop.
 */
#ifndef STSPROXY_METRICS_HTTP_H
#define STSPROXY_METRICS_HTTP_H

#include <stdbool.h>

struct event_base;
struct metrics_http;

/**
 * What /healthz reports: NULL when healthy, else why not. With *degraded
 * set the relay still serves (mail flows; the shared store is away, say):
 * 200 with "degraded: why", so a load balancer keeps sending while
 * monitoring sees the reason; otherwise 503 with why.
 */
typedef const char *(*metrics_health_cb)(void *arg, bool *degraded);

/**
 * Listen on addr ("ADDRESS:PORT"). NULL with *err set (caller frees) when
 * it cannot bind. health and arg are borrowed.
 */
struct metrics_http *metrics_http_new(struct event_base *base, const char *addr,
    metrics_health_cb health, void *arg, char **err);
void metrics_http_free(struct metrics_http *m);

#endif

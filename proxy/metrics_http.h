/*
 * metrics_http.h - the Prometheus endpoint (/metrics) and the health
 * check (/healthz) on [metrics_listen], served by evhttp on the loop.
 */
#ifndef STSPROXY_METRICS_HTTP_H
#define STSPROXY_METRICS_HTTP_H

#include <stdbool.h>

struct event_base;
struct metrics_http;

/** What /healthz reports; the callback returns NULL when healthy, else why not. */
typedef const char *(*metrics_health_cb)(void *arg);

/**
 * Listen on addr ("ADDRESS:PORT"). NULL with *err set (caller frees) when
 * it cannot bind. health and arg are borrowed.
 */
struct metrics_http *metrics_http_new(struct event_base *base, const char *addr,
    metrics_health_cb health, void *arg, char **err);
void metrics_http_free(struct metrics_http *m);

#endif

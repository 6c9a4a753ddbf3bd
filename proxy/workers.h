/*
 * workers.h - several relay processes on one set of listen addresses.
 *
 * With [workers] above 1, serve becomes a small supervisor: it forks the
 * workers, each of which builds its own event loop, resolver and database
 * handles (none of them survive fork) and binds the listen addresses with
 * SO_REUSEPORT, so the kernel spreads connections over them; the LMDB
 * databases are shared by design. The supervisor stays root only to
 * start workers again that die; it forwards SIGHUP, SIGUSR1, SIGTERM and
 * SIGINT, writes the pid file and exits once every worker has drained.
 * Work that must happen once per host (the metrics endpoint, sending
 * TLS-RPT reports, unix: sockets) belongs to worker 0.
 */
#ifndef STSPROXY_WORKERS_H
#define STSPROXY_WORKERS_H

#include <stdbool.h>

#include "conf/conf.h"

/** Workers conf asks for: the count, or the online cores for auto. */
unsigned workers_count(const struct conf *conf);

/** This process's worker number: 0 when there is only one process. */
unsigned worker_index(void);

/** true in a worker forked by the supervisor (listeners need SO_REUSEPORT). */
bool workers_forked(void);

/**
 * Run n workers, each calling run(conf, arg) in its own process and
 * exiting with its result; return the supervisor's exit status once all
 * have stopped. conf and path are the ones serve started with (borrowed);
 * on SIGHUP the supervisor reloads path too, and workers it starts later
 * get the new configuration. A worker that fails within seconds of its
 * start (it cannot bind, say) stops the whole relay with its error.
 */
int workers_supervise(const struct conf *conf, const char *path, unsigned n,
    int (*run)(const struct conf *conf, void *arg), void *arg);

#endif

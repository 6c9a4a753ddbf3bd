/*
 * rpt_store_internal.h - what only the tests of report/rpt_store.c need:
 * a store over a backend of their own (a scripted database), to drive
 * the exactly-once path of a batch through every failure.
 */
#ifndef STSPROXY_RPT_STORE_INTERNAL_H
#define STSPROXY_RPT_STORE_INTERNAL_H

#include "report/rpt_store_backend.h"

/**
 * A store over ops and be (taken over: ops->close(be) at close). With a
 * blocking backend, this host's reports.mdb under conf->state_dir is the
 * spill. owner names this process in batch ids and claims (NULL: made
 * up from the host, the pid and a random part).
 */
struct rpt_store *rpt_store_open_backend(const struct conf *conf, struct event_base *base,
    const struct rpt_store_backend *ops, void *be, const char *owner);

#endif

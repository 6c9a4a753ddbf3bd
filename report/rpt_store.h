/*
 * rpt_store.h - TLS-RPT counters: every session outcome, aggregated per
 * UTC day, policy domain and policy, in <state_dir>/reports.mdb.
 *
 * Recording is cheap and never touches the disk on the caller's path:
 * rpt_store_add() counts in memory, and a writer thread commits the
 * batch in one LMDB transaction at most [report] flush_interval apart
 * (and on close). A crash loses at most that window; LMDB keeps the
 * file consistent, and several processes may record into it at once.
 *
 * One record per (day, domain, policy), a JSON document:
 *   {"policy": {RFC 8460 policy object}, "success": N,
 *    "failures": {"<id>": {failure-details object with failed-session-count}}}
 */
#ifndef STSPROXY_RPT_STORE_H
#define STSPROXY_RPT_STORE_H

#include <stdbool.h>
#include <time.h>

#include <jansson.h>

#include "conf/conf.h"
#include "report/outcome.h"

struct event_base;
struct rpt_store;

/** Most failure-detail rows kept per policy and day; the rest are counted in the last. */
#define RPT_STORE_MAX_DETAILS	1000

/**
 * Open the database under conf->state_dir. With base, a timer hands a
 * batch to the writer thread every flush_interval; without (command-line
 * tools), rpt_store_flush() writes synchronously. NULL on error, with the
 * reason logged. Caller frees with rpt_store_close().
 */
struct rpt_store *rpt_store_open(const struct conf *conf, struct event_base *base);

/** Write what is pending, stop the writer, close. NULL is fine. */
void rpt_store_close(struct rpt_store *store);

/** Count one outcome (in memory). Outcomes that RFC 8460 does not report are ignored. */
void rpt_store_add(struct rpt_store *store, const struct delivery_outcome *o);

/** Commit what is pending now, in this thread. 0 or -1. */
int rpt_store_flush(struct rpt_store *store);

/** The outcome hook for outcome_set_hook(): arg is the store. */
void rpt_store_hook(void *arg, const struct delivery_outcome *o);

/** "YYYY-MM-DD" of t in UTC. */
void rpt_day(time_t t, char out[11]);

typedef void (*rpt_store_visit)(void *arg, const char *day, const char *domain, json_t *record);

/**
 * Call visit for every record of day (or all days when NULL) and domain
 * (or all when NULL), in key order. record is borrowed for the call.
 * Returns the number visited, or -1 on a database error.
 */
long rpt_store_foreach(struct rpt_store *store, const char *day, const char *domain,
    rpt_store_visit visit, void *arg);



/*
 * Small bookkeeping documents next to the counters (report/rpt_outbox.c:
 * the delivery outbox and the daily plan), under keys starting with "~"
 * so they never mix with the day-keyed records. Written synchronously: a
 * few per report. Every failure is logged with the file and the key.
 */
/**
 * The document under key: 1 with *doc set (caller owns it), 0 when there
 * is none, -1 on a database error or a document that does not parse.
 */
int rpt_store_meta_get(struct rpt_store *store, const char *key, json_t **doc);
/** Store doc under key (replacing). 0 or -1. */
int rpt_store_meta_put(struct rpt_store *store, const char *key, json_t *doc);
/**
 * Read, change and write the document under key in one write transaction:
 * processes sharing the file see the change whole or not at all, and no
 * other writer comes between the read and the write. update gets the
 * current document (NULL when there is none; borrowed) and returns the
 * one to store (a new reference, taken over), or NULL to leave the key as
 * it is. 0, or -1 on a database error or a current document that does not
 * parse (update is not called then).
 */
int rpt_store_meta_update(struct rpt_store *store, const char *key,
    json_t *(*update)(void *arg, json_t *current), void *arg);
/**
 * Visit every meta document whose key starts with prefix, in key order.
 * The number visited, or -1 on a database error.
 */
long rpt_store_meta_foreach(struct rpt_store *store, const char *prefix,
    void (*visit)(void *arg, const char *key, json_t *doc), void *arg);

#endif

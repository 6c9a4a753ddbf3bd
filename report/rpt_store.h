/*
 * rpt_store.h - TLS-RPT counters: every session outcome, aggregated per
 * UTC day, policy domain and policy, with the outbox's documents next to
 * them; in <state_dir>/reports.mdb (LMDB, the default), or with [store]
 * backend = postgresql in a database a fleet of relays shares, so that
 * they report as one (report/rpt_store_backend.h).
 *
 * Recording is cheap and never touches a disk or a network on the
 * caller's path: rpt_store_add() counts in memory, and the store's thread
 * writes the batch in one transaction at most [report] flush_interval
 * apart (and on close). A crash loses at most that window.
 *
 * The shared database may be down or slow: mail flows on. A batch the
 * database did not take stays in memory, up to [store] buffer records or
 * a minute, then is spilled to this host's reports.mdb; all of it is
 * replayed when the database is back, exactly once: every batch carries
 * an id the database records in the same transaction as the counts, so a
 * batch whose COMMIT went unanswered, sent again, adds nothing. The log
 * says what is buffered (event=report_store_degraded, _spilled,
 * _recovered), /healthz and the stsproxy_store_* metrics say so too.
 *
 * Calls that read or write the store (foreach, meta_*, and the outbox
 * and report builder on top of them) may wait for the database: in the
 * relay they run as jobs (rpt_store_job()) on the store's thread; tools
 * without a loop call them directly.
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
 * Open the store conf asks for ([store] backend). With base, a timer
 * hands a batch to the store's thread every flush_interval, and the
 * shared database may be down (the store starts degraded); without
 * (command-line tools), rpt_store_flush() writes synchronously, and a
 * database that cannot be reached is an error. NULL on error, with the
 * reason logged. Caller frees with rpt_store_close().
 */
struct rpt_store *rpt_store_open(const struct conf *conf, struct event_base *base);

/**
 * Write what is pending (spilling to reports.mdb what the database does
 * not take), finish the jobs queued, stop the thread, close. NULL is fine.
 */
void rpt_store_close(struct rpt_store *store);

/** Where the counters live, for messages: the file or the database. */
const char *rpt_store_where(struct rpt_store *store);

/**
 * From the loop: NULL when the store works as configured, else why not
 * and what is buffered (for /healthz).
 */
const char *rpt_store_health(struct rpt_store *store);

/**
 * This process in outbox claims: host, pid and a random part, unique in
 * a fleet. Owned by store.
 */
const char *rpt_store_owner(const struct rpt_store *store);

/**
 * Whether the process that claimed something as owner (pid on its host,
 * for claims of earlier versions without owner) is still there: on one
 * host the pid, in a shared database the owner's lock in the server.
 */
bool rpt_store_owner_alive(struct rpt_store *store, const char *owner, long pid);

/**
 * Whether this process is the one that plans and sends reports: always
 * on one host (worker 0 asks); in a fleet, the holder of the database's
 * sender lock, which passes to another relay when its holder dies.
 * 1 yes, 0 another relay is, -1 cannot tell now.
 */
int rpt_store_sender_lease(struct rpt_store *store);

/** Database work for the loop: run() on the store's thread, then done() on the loop. */
typedef void (*rpt_store_run)(void *arg);
typedef void (*rpt_store_done)(void *arg, bool cancelled);
struct rpt_store_job;

/**
 * Run run(arg) where the store's calls belong, then done(arg, cancelled)
 * on the loop. A store whose calls are quick and local (LMDB), or that
 * has no thread, runs both at once, here, and returns NULL; otherwise the
 * job is queued behind the store's earlier work, in order, and the handle
 * is for rpt_store_job_cancel() until done() runs.
 */
struct rpt_store_job *rpt_store_job(struct rpt_store *store, rpt_store_run run,
    rpt_store_done done, void *arg);
/** done() will get cancelled = true. NULL is fine. */
void rpt_store_job_cancel(struct rpt_store_job *job);

struct rpt_store_flush;

/**
 * From the loop: write what is pending now, then done(arg, complete) on
 * the loop; complete is false while counts of this process wait for the
 * database (in memory or spilled). The handle is for
 * rpt_store_flush_cancel() until done runs; without a thread, done runs
 * before this returns, which returns NULL.
 */
struct rpt_store_flush *rpt_store_flush_then(struct rpt_store *store,
    void (*done)(void *arg, bool complete), void *arg);
/** done will not run (the flush itself goes on). NULL is fine. */
void rpt_store_flush_cancel(struct rpt_store_flush *flush);

/** Count one outcome (in memory). Outcomes that RFC 8460 does not report are ignored. */
void rpt_store_add(struct rpt_store *store, const struct delivery_outcome *o);

/**
 * Commit what is pending now, in this thread (tools and tests; the relay
 * uses rpt_store_flush_then()). 0, or -1 when counts still wait for the
 * database.
 */
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
 * few per report. Every failure is logged with the store and the key.
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

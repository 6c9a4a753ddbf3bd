/*
 * dbthread.h - a thread that runs blocking database work for an event
 * loop, one job at a time, in the order given.
 *
 * The relay's loop must never wait for a database that may be slow or
 * gone (the shared store: policy/pg.h). Work that blocks is a job: run()
 * executes on the thread, then done() on the loop, woken through a pipe
 * watched by a libevent read event (no libevent threading needed: the
 * thread never touches the loop). Each user owns its own thread and
 * connection, so a long counter flush never delays a policy lookup.
 *
 * A job the caller no longer wants is cancelled: run() may still happen
 * (or have happened), but done() then gets cancelled = true and must only
 * free what the job owns. done() is the last moment the job handle is
 * valid; it is freed after done() returns.
 */
#ifndef STSPROXY_DBTHREAD_H
#define STSPROXY_DBTHREAD_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct dbthread;
struct dbjob;

/** The blocking part, on the thread. */
typedef void (*dbjob_run)(void *arg);
/** The result, on the loop; frees what arg owns. */
typedef void (*dbjob_done)(void *arg, bool cancelled);

/**
 * Start a thread for base's loop (borrowed; outlives the thread). name is
 * for logs. Never NULL (failing to start a thread is fatal).
 */
struct dbthread *dbthread_new(struct event_base *base, const char *name);

/**
 * Finish: jobs queued still run, in order, then every pending done() is
 * called (here, on the caller's stack), then the thread is joined. NULL
 * is fine.
 */
void dbthread_free(struct dbthread *t);

/** Queue a job. The handle is for dbjob_cancel(), valid until done() has run. */
struct dbjob *dbthread_submit(struct dbthread *t, dbjob_run run, dbjob_done done, void *arg);

/** done() will get cancelled = true. NULL is fine. */
void dbjob_cancel(struct dbjob *job);

/**
 * Run fn(arg) on the thread, after what is queued, and wait for it: for
 * command-line code, which may block. Not from the loop of a relay.
 */
void dbthread_call(struct dbthread *t, dbjob_run fn, void *arg);

/** Jobs queued or running now (from the loop). */
size_t dbthread_backlog(struct dbthread *t);

#endif

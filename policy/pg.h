/*
 * pg.h - one PostgreSQL connection of the shared store ([store] backend =
 * postgresql), used by one thread at a time, with a hard deadline on every
 * step.
 *
 * The relay never waits for the database on its event loop: the report
 * store and the shared policy cache each run their connection on a
 * thread of their own (policy/dbthread.h), and the command-line tools
 * simply wait. So the calls here block, but never longer than the
 * timeout given to pg_new() ([store] timeout): libpq is driven through
 * its non-blocking interface (PQconnectStartParams, PQsendQueryParams,
 * PQconsumeInput) under poll(), and a step that overruns drops the
 * connection rather than hang on a server that stopped answering
 * (statement_timeout alone cannot: it is enforced by that very server).
 *
 * A connection that failed is tried again after a back-off (1 s doubling
 * to 10 s), so a database that is down costs one failed attempt per
 * back-off, not one per call. Every failure leaves a one-line reason in
 * pg_error(), libpq's own message where there is one; the connection
 * string is never part of it (it holds no password, see [store]
 * postgresql, but it is not the log's business either).
 */
#ifndef STSPROXY_PG_H
#define STSPROXY_PG_H

#include <stdbool.h>

#include <libpq-fe.h>

struct pg;

/**
 * Called after each new connection, before it is used (schema check,
 * session locks). 0 to use the connection; -1 with a reason set through
 * pg_set_error() to drop it and count as a failed attempt.
 */
typedef int (*pg_on_connect)(struct pg *pg, void *arg);

/**
 * A connection to conninfo (copied; libpq syntax, checked by the
 * configuration), not opened yet. role and host (the relay's [hostname];
 * NULL or "": the system's) name it in application_name
 * ("stsproxy/<role>/<host>/<pid>"), which is what `stsproxy store status`
 * and pg_stat_activity show. timeout_ms bounds every step. Never NULL.
 */
struct pg *pg_new(const char *conninfo, const char *role, const char *host, unsigned timeout_ms);
void pg_free(struct pg *pg);

/** Run hook after every new connection (NULL: none). */
void pg_set_on_connect(struct pg *pg, pg_on_connect hook, void *arg);

/**
 * Make sure the connection is up: 0 if it is (or was just opened), -1 if
 * not (within the back-off after a failure, or the attempt failed now;
 * pg_error() says why).
 */
int pg_connect(struct pg *pg);

/** true while connected. */
bool pg_connected(const struct pg *pg);

/** Drop the connection (its session locks go with it); the next call reconnects at once. */
void pg_disconnect(struct pg *pg);

/**
 * Counts the connections made so far: a caller that keeps session state
 * (a lock taken on the connection) sees it is gone when this changes.
 */
unsigned pg_generation(const struct pg *pg);

/**
 * Run sql with text parameters (NULL values are SQL NULL), connecting
 * first if needed. The result (PGRES_COMMAND_OK or PGRES_TUPLES_OK;
 * caller PQclear()s it), or NULL with pg_error() set: an error of the
 * server (the connection stays), or of the connection (then dropped).
 */
PGresult *pg_query(struct pg *pg, const char *sql, int nparams, const char *const *values);

/** pg_query() for statements whose result is not needed: 0 or -1. */
int pg_exec(struct pg *pg, const char *sql, int nparams, const char *const *values);

/** BEGIN: 0 or -1. */
int pg_begin(struct pg *pg);
/** ROLLBACK, best effort (nothing to do when the connection is gone). */
void pg_rollback(struct pg *pg);

enum pg_commit {
	PG_COMMITTED,		/* the server confirmed the commit */
	PG_NOT_COMMITTED,	/* the server refused it, or it was never sent: nothing applied */
	PG_COMMIT_UNKNOWN,	/* sent, and the connection was lost before the answer */
};

/** COMMIT, telling apart what a retry must know (see pg_commit). */
enum pg_commit pg_commit(struct pg *pg);

/** The last failure, one line; "" if none. Owned by pg. */
const char *pg_error(const struct pg *pg);

/** Set the failure reason (for on_connect hooks). */
void pg_set_error(struct pg *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** The SQLSTATE of the last server error, or "" (e.g. "23505" unique violation). */
const char *pg_sqlstate(const struct pg *pg);

/**
 * Where the connection goes, for logs and status lines: "host:port/dbname
 * as user" from libpq's view of conninfo, never a password. Owned by pg.
 */
const char *pg_target(const struct pg *pg);

/** The 32-bit FNV-1a hash of s as a signed int, for advisory lock keys. */
int pg_lock_key(const char *s);

#endif

/*
 * pg_schema.h - the tables of the shared store in PostgreSQL, and their
 * versioned migrations.
 *
 * One schema for the whole store, versioned as one (the counters and the
 * outbox of report/, the shared policy cache of policy/): `stsproxy store
 * init` applies what is missing, in order, each migration and its row in
 * stsproxy_schema in one transaction under an advisory lock, so it is
 * idempotent and several instances may run it at once. The relay checks
 * the version on every new connection and refuses a database it cannot
 * use, with the fix in the reason.
 *
 * Each version records the oldest code version that can still use it
 * (compat): migrations that only add tables or columns keep compat, so a
 * fleet can be upgraded one relay at a time after `store init` ran with
 * the new binary.
 */
#ifndef STSPROXY_PG_SCHEMA_H
#define STSPROXY_PG_SCHEMA_H

#include "policy/pg.h"

/** The newest schema this build knows and needs (every table it uses). */
#define PG_SCHEMA_VERSION	2

/*
 * Advisory lock spaces (the two-int form): the first int says whose.
 * 8461 is the MTA-STS RFC, so a DBA reading pg_locks can guess.
 */
#define PG_LOCK_STSPROXY	8461	/* with PG_LOCK_MIGRATE or PG_LOCK_SENDER */
#define PG_LOCK_META		8462	/* with pg_lock_key(key): one outbox record */
#define PG_LOCK_INSTANCE	8463	/* with pg_lock_key(instance): that process is alive */
#define PG_LOCK_POLICY		8464	/* with pg_lock_key(domain): one policy cache entry */
#define PG_LOCK_MIGRATE		1
#define PG_LOCK_SENDER		2

/**
 * The version the database is at: 1 with *version and *compat set, 0 when
 * there is no schema yet (*version 0), -1 on error (pg_error()).
 */
int pg_schema_version(struct pg *pg, int *version, int *compat);

/**
 * Whether this build can use the database: 0, or -1 with a reason and
 * its fix in pg_error() (run store init; upgrade stsproxy). Suits
 * pg_set_on_connect().
 */
int pg_schema_check(struct pg *pg, void *unused);

/**
 * Apply the migrations after the database's version, up to target (0:
 * PG_SCHEMA_VERSION). *from and *to get the versions before and after.
 * 0, or -1 with pg_error() set (nothing applied then).
 */
int pg_schema_migrate(struct pg *pg, int target, int *from, int *to);

/** One line on migration version (1 ... PG_SCHEMA_VERSION), or NULL. */
const char *pg_schema_describe(int version);

#endif

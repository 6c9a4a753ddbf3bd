#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/util.h"
#include "policy/pg_schema.h"

struct migration {
	int		 version;
	int		 compat;	/* the oldest code version that can use this one */
	const char	*description;
	const char	*sql;
};

/*
 * Append only: a released migration is never edited, the next change is
 * a new entry. Table names carry the stsproxy_ prefix and go to the first
 * schema of the connection's search_path (set it with options=... in the
 * connection string to use another one).
 */
static const struct migration migrations[] = {
	{ 1, 1, "TLS-RPT counters, applied batches and the outbox",
	  /* One row per UTC day, policy domain, policy and failure detail;
	   * detail_id '' holds the policy's successful sessions. Counts only
	   * ever grow, by upserts: INSERT ... ON CONFLICT DO UPDATE SET
	   * count = count + EXCLUDED.count. */
	  "CREATE TABLE stsproxy_rpt_counter ("
	  "  day date NOT NULL,"
	  "  domain text NOT NULL,"
	  "  policy_id text NOT NULL,"
	  "  detail_id text NOT NULL,"
	  "  policy jsonb NOT NULL,"
	  "  detail jsonb,"
	  "  count bigint NOT NULL CHECK (count >= 0),"
	  "  PRIMARY KEY (day, domain, policy_id, detail_id));"
	  /* The batches whose counts are in: a batch retried after a lost
	   * COMMIT, or replayed from a relay's spill, is applied once. */
	  "CREATE TABLE stsproxy_rpt_batch ("
	  "  id text PRIMARY KEY,"
	  "  applied_at timestamptz NOT NULL DEFAULT now());"
	  /* The outbox and the daily plans (report/rpt_outbox.c), as the
	   * documents reports.mdb holds. */
	  "CREATE TABLE stsproxy_rpt_meta ("
	  "  key text PRIMARY KEY,"
	  "  doc jsonb NOT NULL,"
	  "  updated_at timestamptz NOT NULL DEFAULT now());" },
	{ 2, 1, "shared MTA-STS policy cache; applied batches indexed for their expiry",
	  "CREATE TABLE stsproxy_policy_cache ("
	  "  domain text PRIMARY KEY,"
	  "  entry jsonb NOT NULL,"
	  "  fetched_at bigint NOT NULL,"
	  "  updated_at timestamptz NOT NULL DEFAULT now());"
	  "CREATE INDEX stsproxy_rpt_batch_applied ON stsproxy_rpt_batch (applied_at);" },
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

const char *
pg_schema_describe(int version)
{
	for (size_t i = 0; i < NMIGRATIONS; i++)
		if (migrations[i].version == version)
			return migrations[i].description;
	return NULL;
}

int
pg_schema_version(struct pg *pg, int *version, int *compat)
{
	PGresult *res;

	*version = *compat = 0;
	res = pg_query(pg, "SELECT version, compat FROM stsproxy_schema ORDER BY version DESC LIMIT 1",
	    0, NULL);
	if (res == NULL) {
		/* 42P01 undefined_table: nothing was ever installed here. */
		if (strcmp(pg_sqlstate(pg), "42P01") == 0) {
			pg_set_error(pg, "no stsproxy schema in %s", pg_target(pg));
			return 0;
		}
		return -1;
	}
	if (PQntuples(res) == 1) {
		*version = atoi(PQgetvalue(res, 0, 0));
		*compat = atoi(PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return *version > 0 ? 1 : 0;
}

int
pg_schema_check(struct pg *pg, void *unused)
{
	int version, compat, rc;

	(void)unused;
	if ((rc = pg_schema_version(pg, &version, &compat)) < 0)
		return -1;
	if (rc == 0 || version < PG_SCHEMA_VERSION) {
		pg_set_error(pg, "the database %s has stsproxy schema version %d, this stsproxy needs %d: "
		    "run stsproxy store init", pg_target(pg), version, PG_SCHEMA_VERSION);
		return -1;
	}
	if (compat > PG_SCHEMA_VERSION) {
		pg_set_error(pg, "the database %s has stsproxy schema version %d, which needs stsproxy "
		    "code of schema %d or later; this one knows %d: upgrade stsproxy", pg_target(pg),
		    version, compat, PG_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

int
pg_schema_migrate(struct pg *pg, int target, int *from, int *to)
{
	char lock[96];
	int version, compat;

	if (target <= 0 || target > PG_SCHEMA_VERSION)
		target = PG_SCHEMA_VERSION;
	*from = *to = 0;
	if (pg_begin(pg) < 0)
		return -1;
	/* Concurrent runs wait here for each other; the second finds the work done. */
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d, %d)", PG_LOCK_STSPROXY,
	    PG_LOCK_MIGRATE);
	if (pg_exec(pg, lock, 0, NULL) < 0 ||
	    pg_exec(pg, "CREATE TABLE IF NOT EXISTS stsproxy_schema ("
	    "  version int PRIMARY KEY,"
	    "  compat int NOT NULL,"
	    "  description text NOT NULL,"
	    "  applied_at timestamptz NOT NULL DEFAULT now(),"
	    "  applied_by text NOT NULL DEFAULT current_user)", 0, NULL) < 0 ||
	    pg_schema_version(pg, &version, &compat) < 0)
		goto fail;
	*from = *to = version;
	for (size_t i = 0; i < NMIGRATIONS; i++) {
		const struct migration *m = &migrations[i];
		char v[16], c[16];
		const char *params[3] = { v, c, m->description };

		if (m->version <= version || m->version > target)
			continue;
		snprintf(v, sizeof(v), "%d", m->version);
		snprintf(c, sizeof(c), "%d", m->compat);
		if (pg_exec(pg, m->sql, 0, NULL) < 0) {
			char why[512];

			snprintf(why, sizeof(why), "%s", pg_error(pg));
			pg_set_error(pg, "migration to version %d (%s): %s", m->version, m->description, why);
			goto fail;
		}
		if (pg_exec(pg, "INSERT INTO stsproxy_schema (version, compat, description) "
		    "VALUES ($1::int, $2::int, $3)", 3, params) < 0)
			goto fail;
		*to = m->version;
	}
	switch (pg_commit(pg)) {
	case PG_COMMITTED:
		return 0;
	case PG_NOT_COMMITTED:
		break;
	case PG_COMMIT_UNKNOWN:
		/* Run it again: it finds what was applied. */
		pg_set_error(pg, "the connection was lost at COMMIT: run store init again to see "
		    "where the schema stands");
		break;
	}
	*to = *from;
	return -1;
fail:
	pg_rollback(pg);
	*to = *from;
	return -1;
}

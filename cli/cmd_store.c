/*
 * cmd_store.c - `stsproxy store`: the shared store of a fleet ([store]
 * backend = postgresql). init creates or migrates its schema
 * (policy/pg_schema.c: versioned, idempotent, safe from several relays at
 * once); status says what is there and which relays are connected.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/format.h"
#include "policy/pg.h"
#include "policy/pg_schema.h"

/* Migrations may rewrite tables: more time than one step of the relay. */
#define INIT_TIMEOUT_MS	(10 * 60 * 1000)

void
cmd_store_usage(FILE *out)
{
	fprintf(out, "usage: stsproxy store init [--to VERSION]\n"
	    "       stsproxy store status\n"
	    "\n"
	    "The shared store of a fleet of relays, [store] backend = postgresql.\n"
	    "\n"
	    "init: create the tables in the database [store] postgresql names, or bring\n"
	    "them to the version this stsproxy needs (%d). Each migration and its row in\n"
	    "stsproxy_schema is one transaction, under an advisory lock: running it again,\n"
	    "or from several relays at once, is safe. --to VERSION stops there (a staged\n"
	    "upgrade). The database and its user must exist; the user needs CREATE on the\n"
	    "schema the tables go to.\n"
	    "\n"
	    "status: the schema version, what the tables hold, and the relays connected\n"
	    "now, with the one that sends the fleet's reports.\n"
	    "\n"
	    "Exit status: 0 done, 2 the database cannot be used (the reason is printed).\n",
	    PG_SCHEMA_VERSION);
}

static int
store_init(struct pg *pg, int target)
{
	int from, to;

	if (pg_schema_migrate(pg, target, &from, &to) < 0) {
		fprintf(stderr, "stsproxy: store init: %s\n", pg_error(pg));
		return EXIT_ERROR;
	}
	if (from == to) {
		printf("schema: version %d, nothing to do\n", to);
		return 0;
	}
	for (int v = from + 1; v <= to; v++)
		printf("applied version %d: %s\n", v, pg_schema_describe(v));
	printf("schema: version %d -> %d\n", from, to);
	return 0;
}

/* One number of a query with no parameters, or -1. */
static long long
count(struct pg *pg, const char *sql)
{
	PGresult *res = pg_query(pg, sql, 0, NULL);
	long long n = -1;

	if (res != NULL && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return n;
}

static int
store_status(struct pg *pg)
{
	int version, compat, rc;
	PGresult *res;
	char sql[512];

	if ((rc = pg_schema_version(pg, &version, &compat)) < 0) {
		fprintf(stderr, "stsproxy: store status: %s\n", pg_error(pg));
		return EXIT_ERROR;
	}
	if (rc == 0) {
		printf("schema: none (run stsproxy store init)\n");
		return EXIT_ERROR;
	}
	printf("schema: version %d (usable by code of version %d and later; this stsproxy: %d)%s\n",
	    version, compat, PG_SCHEMA_VERSION, version < PG_SCHEMA_VERSION ?
	    " - run stsproxy store init" : "");
	printf("counters: %lld rows over %lld days\n",
	    count(pg, "SELECT count(*) FROM stsproxy_rpt_counter"),
	    count(pg, "SELECT count(DISTINCT day) FROM stsproxy_rpt_counter"));
	printf("outbox: %lld entries, %lld pending\n",
	    count(pg, "SELECT count(*) FROM stsproxy_rpt_meta WHERE starts_with(key, '~out')"),
	    count(pg, "SELECT count(*) FROM stsproxy_rpt_meta WHERE starts_with(key, '~out') AND "
	    "doc->>'state' = 'pending'"));
	if (version >= 2)
		printf("shared policies: %lld\n", count(pg, "SELECT count(*) FROM stsproxy_policy_cache"));
	/* application_name is stsproxy/<role>/<host>/<pid> (policy/pg.c). */
	snprintf(sql, sizeof(sql), "SELECT a.application_name, coalesce(host(a.client_addr), "
	    "'local'), to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND "
	    "l.classid = %d AND l.objid = %d AND l.granted) FROM pg_stat_activity a "
	    "WHERE a.application_name LIKE 'stsproxy/%%' AND a.pid <> pg_backend_pid() "
	    "ORDER BY 1", PG_LOCK_STSPROXY, PG_LOCK_SENDER);
	if ((res = pg_query(pg, sql, 0, NULL)) == NULL) {
		fprintf(stderr, "stsproxy: store status: %s\n", pg_error(pg));
		return EXIT_ERROR;
	}
	printf("connections: %d\n", PQntuples(res));
	for (int i = 0; i < PQntuples(res); i++)
		printf("  %-48s from %-15s since %s%s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		    PQgetvalue(res, i, 2), strcmp(PQgetvalue(res, i, 3), "t") == 0 ?
		    "  (sends the reports)" : "");
	PQclear(res);
	return 0;
}

int
cmd_store(const struct conf *conf, const char *path, int argc, char **argv)
{
	const char *verb = argc > 1 ? argv[1] : NULL;
	int target = 0, rc;
	struct pg *pg;

	for (int i = 2; i < argc; i++) {
		char *end;

		if (strcmp(argv[i], "--to") == 0 && i + 1 < argc && verb != NULL &&
		    strcmp(verb, "init") == 0) {
			target = (int)strtol(argv[++i], &end, 10);
			if (*end != '\0' || target < 1 || target > PG_SCHEMA_VERSION) {
				fprintf(stderr, "stsproxy: store init --to: a version from 1 to %d\n",
				    PG_SCHEMA_VERSION);
				return EXIT_ERROR;
			}
		} else {
			cmd_store_usage(stderr);
			return EXIT_ERROR;
		}
	}
	if (verb == NULL || (strcmp(verb, "init") != 0 && strcmp(verb, "status") != 0)) {
		cmd_store_usage(stderr);
		return EXIT_ERROR;
	}
	if (strcmp(conf->store_backend, "postgresql") != 0) {
		fprintf(stderr, "stsproxy: store %s: [store] backend is %s: the counters and the policy "
		    "cache live in %s and need no set-up; set backend = postgresql and [store] "
		    "postgresql for a fleet's shared store\n", verb, conf->store_backend,
		    conf->state_dir);
		return EXIT_ERROR;
	}
	format_config_header(stdout, conf, path);
	pg = pg_new(conf->store_postgresql, "store", conf->hostname, strcmp(verb, "init") == 0 ? INIT_TIMEOUT_MS :
	    conf->store_timeout * 1000);
	printf("# store: %s\n", pg_target(pg));
	if (pg_connect(pg) < 0) {
		fprintf(stderr, "stsproxy: store %s: %s\n", verb, pg_error(pg));
		pg_free(pg);
		return EXIT_ERROR;
	}
	rc = strcmp(verb, "init") == 0 ? store_init(pg, target) : store_status(pg);
	pg_free(pg);
	return rc;
}

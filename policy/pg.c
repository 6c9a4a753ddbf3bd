#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/util.h"
#include "policy/pg.h"

#define BACKOFF_FIRST_MS	1000
#define BACKOFF_MAX_MS		10000

struct pg {
	char		*conninfo;
	char		*role;
	char		*host;		/* "": the system's */
	char		*target;
	unsigned	 timeout_ms;
	PGconn		*conn;
	unsigned	 generation;
	bool		 in_txn;		/* BEGIN sent on this connection */
	long long	 retry_at;		/* monotonic ms: no new attempt before */
	long long	 backoff_ms;
	pg_on_connect	 on_connect;
	void		*on_connect_arg;
	char		 error[512];
	char		 sqlstate[6];
};

/* libpq's messages end in a newline and may run over several lines. */
static void
set_error_text(struct pg *pg, const char *prefix, const char *msg)
{
	size_t o = 0;

	o = (size_t)snprintf(pg->error, sizeof(pg->error), "%s", prefix);
	for (const char *p = msg ? msg : ""; *p != '\0' && o + 1 < sizeof(pg->error); p++) {
		char c = *p;

		if (c == '\n' || c == '\t' || c == '\r') {
			if (p[1] == '\0')
				break;
			if (o > 0 && pg->error[o - 1] == ' ')
				continue;
			c = ' ';
		}
		pg->error[o++] = c;
	}
	while (o > 0 && pg->error[o - 1] == ' ')
		o--;
	pg->error[o] = '\0';
}

void
pg_set_error(struct pg *pg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pg->error, sizeof(pg->error), fmt, ap);
	va_end(ap);
}

const char *
pg_error(const struct pg *pg)
{
	return pg->error;
}

const char *
pg_sqlstate(const struct pg *pg)
{
	return pg->sqlstate;
}

const char *
pg_target(const struct pg *pg)
{
	return pg->target;
}

unsigned
pg_generation(const struct pg *pg)
{
	return pg->generation;
}

bool
pg_connected(const struct pg *pg)
{
	return pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK;
}

int
pg_lock_key(const char *s)
{
	unsigned h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * 16777619u;
	return (int)(h & 0x7fffffff);
}

/* "host:port/dbname as user", from the connection string only. */
static char *
describe(const char *conninfo)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	const char *host = NULL, *addr = NULL, *port = NULL, *db = NULL, *user = NULL;
	char *s;

	for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			addr = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			db = o->val;
		else if (strcmp(o->keyword, "user") == 0)
			user = o->val;
	}
	s = xasprintf("%s:%s/%s as %s", host ? host : addr ? addr : "(default host)",
	    port ? port : "5432", db ? db : "(default database)", user ? user : "(default user)");
	PQconninfoFree(opts);
	return s;
}

struct pg *
pg_new(const char *conninfo, const char *role, const char *host, unsigned timeout_ms)
{
	struct pg *pg = xcalloc(1, sizeof(*pg));

	pg->conninfo = xstrdup(conninfo);
	pg->role = xstrdup(role);
	pg->host = xstrdup(host != NULL ? host : "");
	pg->target = describe(conninfo);
	pg->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
	pg->backoff_ms = BACKOFF_FIRST_MS;
	return pg;
}

void
pg_free(struct pg *pg)
{
	if (pg == NULL)
		return;
	if (pg->conn != NULL)
		PQfinish(pg->conn);
	free(pg->conninfo);
	free(pg->role);
	free(pg->host);
	free(pg->target);
	free(pg);
}

void
pg_set_on_connect(struct pg *pg, pg_on_connect hook, void *arg)
{
	pg->on_connect = hook;
	pg->on_connect_arg = arg;
}

void
pg_disconnect(struct pg *pg)
{
	if (pg->conn != NULL)
		PQfinish(pg->conn);
	pg->conn = NULL;
	pg->in_txn = false;
}

/* A failed attempt or a lost connection: drop it, wait before the next. */
static void
pg_fail(struct pg *pg)
{
	pg_disconnect(pg);
	pg->retry_at = mono_ms() + pg->backoff_ms;
	pg->backoff_ms = pg->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pg->backoff_ms * 2;
}

/* The server's notices (CREATE TABLE IF NOT EXISTS ... skipping) are not for stderr. */
static void
notice_ignore(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Wait until fd is ready for events or the deadline; 1 ready, 0 timed out, -1 error. */
static int
wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		long long left = deadline - mono_ms();
		int n;

		if (left <= 0)
			return 0;
		n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

int
pg_connect(struct pg *pg)
{
	const char *keywords[] = { "dbname", "application_name", NULL };
	const char *values[3];
	char app[192], host[128];
	long long deadline;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	if (pg_connected(pg))
		return 0;
	if (pg->conn != NULL)
		pg_fail(pg);	/* broke since the last call */
	if (mono_ms() < pg->retry_at)
		return -1;	/* pg->error still says why */
	if (pg->host[0] != '\0')
		snprintf(host, sizeof(host), "%s", pg->host);
	else if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(app, sizeof(app), "stsproxy/%s/%s/%ld", pg->role, host, (long)getpid());
	values[0] = pg->conninfo;
	values[1] = app;
	values[2] = NULL;
	deadline = mono_ms() + pg->timeout_ms;
	/* The conninfo is expanded from dbname; application_name after it wins. */
	pg->conn = PQconnectStartParams(keywords, values, 1);
	if (pg->conn == NULL) {
		pg_set_error(pg, "cannot allocate a connection");
		pg_fail(pg);
		return -1;
	}
	while (PQstatus(pg->conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	    st != PGRES_POLLING_FAILED) {
		int ready = wait_fd(PQsocket(pg->conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
		    deadline);

		if (ready <= 0) {
			pg_set_error(pg, "connecting to %s: no answer within %u ms", pg->target,
			    pg->timeout_ms);
			pg_fail(pg);
			return -1;
		}
		st = PQconnectPoll(pg->conn);
	}
	if (PQstatus(pg->conn) != CONNECTION_OK) {
		set_error_text(pg, "", PQerrorMessage(pg->conn));
		pg_fail(pg);
		return -1;
	}
	PQsetnonblocking(pg->conn, 1);
	PQsetNoticeProcessor(pg->conn, notice_ignore, NULL);
	pg->generation++;
	pg->in_txn = false;
	{
		/* The server gives up too, not only this side. */
		char ms[32];
		const char *v[1] = { ms };

		snprintf(ms, sizeof(ms), "%u", pg->timeout_ms);
		if (pg_exec(pg, "SELECT set_config('statement_timeout', $1, false)", 1, v) < 0) {
			if (pg->conn != NULL)	/* else dropped already */
				pg_fail(pg);
			return -1;
		}
	}
	if (pg->on_connect != NULL && pg->on_connect(pg, pg->on_connect_arg) < 0) {
		if (pg->conn != NULL)
			pg_fail(pg);
		return -1;
	}
	pg->backoff_ms = BACKOFF_FIRST_MS;
	pg->retry_at = 0;
	return 0;
}

/* The connection failed under a statement: one reason, then drop it. */
static PGresult *
conn_lost(struct pg *pg, const char *what)
{
	char prefix[96];

	snprintf(prefix, sizeof(prefix), "%s: ", what);
	set_error_text(pg, prefix, pg->conn ? PQerrorMessage(pg->conn) : "not connected");
	pg_fail(pg);
	return NULL;
}

PGresult *
pg_query(struct pg *pg, const char *sql, int nparams, const char *const *values)
{
	PGresult *res, *last = NULL;
	long long deadline;
	int sent, r;

	pg->sqlstate[0] = '\0';
	/* Inside a transaction a new connection would run the rest outside it. */
	if (pg->in_txn && !pg_connected(pg)) {
		pg_set_error(pg, "the connection was lost in the middle of a transaction");
		pg_fail(pg);
		return NULL;
	}
	if (pg_connect(pg) < 0)
		return NULL;
	deadline = mono_ms() + pg->timeout_ms;
	sent = nparams > 0 ? PQsendQueryParams(pg->conn, sql, nparams, NULL, values, NULL, NULL, 0) :
	    PQsendQuery(pg->conn, sql);
	if (!sent)
		return conn_lost(pg, "sending a statement");
	while ((r = PQflush(pg->conn)) == 1) {
		if (wait_fd(PQsocket(pg->conn), POLLOUT | POLLIN, deadline) <= 0) {
			pg_set_error(pg, "the database did not take a statement within %u ms",
			    pg->timeout_ms);
			pg_fail(pg);
			return NULL;
		}
		if (!PQconsumeInput(pg->conn))
			return conn_lost(pg, "sending a statement");
	}
	if (r < 0)
		return conn_lost(pg, "sending a statement");
	for (;;) {
		while (PQisBusy(pg->conn)) {
			if (wait_fd(PQsocket(pg->conn), POLLIN, deadline) <= 0) {
				PQclear(last);
				pg_set_error(pg, "the database did not answer within %u ms",
				    pg->timeout_ms);
				pg_fail(pg);
				return NULL;
			}
			if (!PQconsumeInput(pg->conn)) {
				PQclear(last);
				return conn_lost(pg, "reading an answer");
			}
		}
		if ((res = PQgetResult(pg->conn)) == NULL)
			break;
		/* Of several statements, the first error or else the last result counts. */
		if (last != NULL && (PQresultStatus(last) == PGRES_COMMAND_OK ||
		    PQresultStatus(last) == PGRES_TUPLES_OK)) {
			PQclear(last);
			last = res;
		} else if (last == NULL)
			last = res;
		else
			PQclear(res);
	}
	if (last == NULL)
		return conn_lost(pg, "reading an answer");
	if (PQresultStatus(last) != PGRES_COMMAND_OK && PQresultStatus(last) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(last, PG_DIAG_SQLSTATE);

		set_error_text(pg, "", PQresultErrorMessage(last));
		if (pg->error[0] == '\0')
			set_error_text(pg, "", PQerrorMessage(pg->conn));
		snprintf(pg->sqlstate, sizeof(pg->sqlstate), "%s", state ? state : "");
		PQclear(last);
		if (PQstatus(pg->conn) != CONNECTION_OK)
			pg_fail(pg);
		return NULL;
	}
	return last;
}

int
pg_exec(struct pg *pg, const char *sql, int nparams, const char *const *values)
{
	PGresult *res = pg_query(pg, sql, nparams, values);

	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
pg_begin(struct pg *pg)
{
	pg->in_txn = false;
	if (pg_exec(pg, "BEGIN", 0, NULL) < 0)
		return -1;
	pg->in_txn = true;
	return 0;
}

void
pg_rollback(struct pg *pg)
{
	if (pg->in_txn && pg_connected(pg)) {
		char saved[sizeof(pg->error)];

		/* Keep the reason of the failure that led here. */
		memcpy(saved, pg->error, sizeof(saved));
		(void)pg_exec(pg, "ROLLBACK", 0, NULL);
		memcpy(pg->error, saved, sizeof(saved));
	}
	pg->in_txn = false;
}

enum pg_commit
pg_commit(struct pg *pg)
{
	PGresult *res;
	bool was = pg->in_txn;

	if (!was || !pg_connected(pg)) {
		/* The server ends a transaction whose connection is gone: rolled back. */
		if (pg->error[0] == '\0')
			pg_set_error(pg, "the connection was lost before COMMIT");
		pg->in_txn = false;
		return PG_NOT_COMMITTED;
	}
	res = pg_query(pg, "COMMIT", 0, NULL);
	pg->in_txn = false;
	if (res == NULL)
		/* A server error leaves the connection: the transaction is gone
		 * with nothing applied. A lost connection leaves no answer. */
		return pg->conn != NULL ? PG_NOT_COMMITTED : PG_COMMIT_UNKNOWN;
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		/* An earlier statement failed: the server answers COMMIT with ROLLBACK. */
		pg_set_error(pg, "the transaction was rolled back");
		PQclear(res);
		return PG_NOT_COMMITTED;
	}
	PQclear(res);
	return PG_COMMITTED;
}

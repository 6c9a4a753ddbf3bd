/*
 * rpt_store_backend.h - what a report store backend provides to the
 * facade, report/rpt_store.c. Only report/rpt_store*.c include this.
 *
 * lmdb (report/rpt_store_lmdb.c): <state_dir>/reports.mdb, quick and
 * local; also each host's spill area when the primary is the database.
 * pg (report/rpt_store_pg.c): the tables of [store] postgresql, shared
 * by a fleet; every call may wait for the network, so the facade makes
 * them from its thread (blocking = true).
 */
#ifndef STSPROXY_RPT_STORE_BACKEND_H
#define STSPROXY_RPT_STORE_BACKEND_H

#include "report/rpt_store.h"

/** What became of one batch of counts. */
enum rpt_apply {
	RPT_APPLY_OK,		/* applied now */
	RPT_APPLY_ALREADY,	/* its id was applied before: nothing done */
	RPT_APPLY_FAILED,	/* certainly not applied */
	RPT_APPLY_UNKNOWN,	/* sent, unanswered: may be applied; retry with the same id */
};

struct rpt_store_backend {
	const char	*name;
	bool		 blocking;	/* calls may wait for the network */
	/*
	 * Add the counts of batch (records keyed "day\x1fdomain\x1fpolicy id",
	 * the shape rpt_store_add() builds) at once, and at most once per id
	 * (NULL: no id, for the local store, whose write is atomic).
	 */
	enum rpt_apply	(*apply)(void *be, const char *id, json_t *batch);
	long		(*foreach)(void *be, const char *day, const char *domain,
	    rpt_store_visit visit, void *arg);
	int		(*meta_get)(void *be, const char *key, json_t **doc);
	int		(*meta_put)(void *be, const char *key, json_t *doc);
	int		(*meta_update)(void *be, const char *key,
	    json_t *(*update)(void *arg, json_t *current), void *arg);
	long		(*meta_foreach)(void *be, const char *prefix,
	    void (*visit)(void *arg, const char *key, json_t *doc), void *arg);
	int		(*meta_delete)(void *be, const char *key);
	/* Whether the process that wrote owner (pid on its host) is still there. */
	bool		(*owner_alive)(void *be, const char *owner, long pid);
	/* 1: this process is the fleet's sender of reports; 0: another is; -1: cannot tell. */
	int		(*sender_lease)(void *be);
	/* Connect now (command-line tools fail early): 0, or -1 with why (owned by be). */
	int		(*check)(void *be, const char **why);
	const char	*(*where)(void *be);
	void		(*close)(void *be);
};

/** <state_dir>/reports.mdb; NULL (logged) when it cannot be opened. */
void *rpt_store_lmdb_open(const struct conf *conf);
extern const struct rpt_store_backend rpt_store_lmdb;

/** The database of [store] postgresql, this process named owner in claims. Never NULL. */
void *rpt_store_pg_open(const struct conf *conf, const char *owner);
extern const struct rpt_store_backend rpt_store_pg;

/**
 * Merge the counts of delta (a record: policy, success, failures) into
 * into, at most RPT_STORE_MAX_DETAILS failure rows per record: past the
 * cap details fold into a bare result-type row. What both backends build
 * records with.
 */
void rpt_record_merge(json_t *into, json_t *delta);

/** The key of a record: "day\x1fdomain\x1fpolicy id" (caller frees). */
char *rpt_record_key(const char *day, const char *domain, const char *policy_id);

#endif

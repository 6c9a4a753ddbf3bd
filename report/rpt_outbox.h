/*
 * rpt_outbox.h - the TLS-RPT outbox: one entry per UTC day, policy domain
 * and destination (rua), and the daemon's plan of each day, kept in the
 * report database next to the counters (report/rpt_store.c).
 *
 * The outbox is what makes a report reach a destination once, whoever
 * sends it: the daemon's schedule (report/rpt_sender.c) and `stsproxy
 * report send` both go through report/rpt_deliver.c, which claims the
 * entry before it sends and records the result after. A claim is taken
 * in one LMDB write transaction, so two processes never both send; it
 * names the process and lapses when that process is gone or after
 * RPT_OUTBOX_CLAIM_LEASE seconds, so a crash delays a report but never
 * loses it (a report delivered just before a crash, unrecorded, may go
 * out once more).
 *
 * Every reader and writer of these records goes through here. On disk
 * they are small JSON documents (readable with mdb_dump, and what earlier
 * versions wrote), decoded strictly: a record with a missing or mistyped
 * field is reported and left alone, never half read.
 */
#ifndef STSPROXY_RPT_OUTBOX_H
#define STSPROXY_RPT_OUTBOX_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "report/rpt_store.h"
#include "report/tlsrpt_record.h"

/** How long a claim holds when its process is still there (seconds). */
#define RPT_OUTBOX_CLAIM_LEASE	3600

enum rpt_outbox_state {
	RPT_OUTBOX_NEW,		/* known from report send only; not planned by the daemon */
	RPT_OUTBOX_PENDING,	/* planned: the daemon sends it when next has come */
	RPT_OUTBOX_DELIVERED,	/* accepted by the destination: not sent again */
	RPT_OUTBOX_EXPIRED,	/* the daemon gave up (RPT-19) */
};

/** Who delivers; the outbox remembers who did. */
enum rpt_sender_kind {
	RPT_BY_DAEMON,		/* the schedule of `stsproxy serve` */
	RPT_BY_COMMAND,		/* `stsproxy report send` */
};

struct rpt_outbox_entry {
	char			 day[11];	/* YYYY-MM-DD */
	char			 domain[256];	/* the policy domain */
	char			 rua[TLSRPT_RECORD_MAX_LEN + 1];
	enum rpt_outbox_state	 state;
	unsigned		 attempts;
	time_t			 first;		/* the daemon's first attempt; 0: none yet */
	time_t			 next;		/* PENDING: not before this */
	time_t			 delivered_at;	/* DELIVERED */
	enum rpt_sender_kind	 delivered_by;	/* DELIVERED */
	char			 error[256];	/* the last failure, "" if none */
	pid_t			 claim_pid;	/* 0: not claimed */
	time_t			 claim_until;	/* wall clock */
};

/** The daemon's plan of one day (RPT-10). */
enum rpt_plan_state {
	RPT_PLAN_WAITING,	/* the day's reports are due at send_at */
	RPT_PLAN_PLANNED,	/* outbox entries made */
};

struct rpt_plan {
	enum rpt_plan_state	 state;
	time_t			 send_at;
};

/** What rpt_outbox_claim() found. */
enum rpt_claim {
	RPT_CLAIM_TAKEN,	/* ours now: send, then rpt_outbox_put() or _release() */
	RPT_CLAIM_DELIVERED,	/* delivered before, and not forced */
	RPT_CLAIM_BUSY,		/* another live process is sending it */
	RPT_CLAIM_ERROR,	/* the database failed or the entry is corrupt (logged) */
};

/**
 * A fresh entry for day, domain and rua (state NEW). -1 when one of
 * them does not fit the entry, which never happens for a rua from
 * tlsrpt_record_select() and a domain of the counters.
 */
int rpt_outbox_entry_init(struct rpt_outbox_entry *e, const char *day, const char *domain,
    const char *rua);

/** The entry of day, domain and rua: 1 with *out filled, 0 if none, -1 on error (logged). */
int rpt_outbox_get(struct rpt_store *store, const char *day, const char *domain,
    const char *rua, struct rpt_outbox_entry *out);

/**
 * The daemon plans day, domain and rua: a missing entry becomes PENDING
 * with next = now, a NEW one PENDING too; others stay as they are. *out
 * (may be NULL) gets the entry as it is now. 0, or -1 on error (logged).
 */
int rpt_outbox_plan(struct rpt_store *store, const char *day, const char *domain,
    const char *rua, time_t now, struct rpt_outbox_entry *out);

/**
 * Claim the entry for sending, creating it (NEW) when missing. A
 * DELIVERED entry is claimed only with force. *out gets the entry as it
 * is now (claimed or not). Atomic across processes.
 */
enum rpt_claim rpt_outbox_claim(struct rpt_store *store, const char *day, const char *domain,
    const char *rua, bool force, struct rpt_outbox_entry *out);

/** Give up our claim without a result; the entry is otherwise unchanged. 0 or -1. */
int rpt_outbox_release(struct rpt_store *store, const char *day, const char *domain,
    const char *rua);

/** Write e (a result) and drop any claim on it. 0, or -1 on error (logged). */
int rpt_outbox_put(struct rpt_store *store, const struct rpt_outbox_entry *e);

/**
 * Visit every entry, in key order (day, domain, rua). Corrupt entries are
 * logged and skipped. The number visited, or -1 on a database error.
 */
long rpt_outbox_foreach(struct rpt_store *store,
    void (*visit)(void *arg, const struct rpt_outbox_entry *e), void *arg);

/** true if e is claimed by a process that is alive and within the lease at now (wall clock). */
bool rpt_outbox_claimed(const struct rpt_outbox_entry *e, time_t now);

/** The plan of day: 1 with *out filled, 0 if none, -1 on error (logged). */
int rpt_plan_get(struct rpt_store *store, const char *day, struct rpt_plan *out);
/** 0, or -1 on error (logged). */
int rpt_plan_put(struct rpt_store *store, const char *day, const struct rpt_plan *plan);

/** "delivered on 2026-11-24T00:00:05Z by report send", for logs and output. Returns buf. */
const char *rpt_outbox_delivered_text(const struct rpt_outbox_entry *e, char *buf, size_t len);

const char *rpt_outbox_state_name(enum rpt_outbox_state state);
/** "the daemon", "report send" */
const char *rpt_sender_kind_name(enum rpt_sender_kind by);

#endif

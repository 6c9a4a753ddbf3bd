/*
 * limits.h - how many descriptors the relay may hold, and how many
 * clients that allows.
 *
 * At start serve raises its soft RLIMIT_NOFILE as far as the hard limit
 * allows, then sizes max_connections and the upstream pool against it:
 * every client session may hold its own socket and one upstream
 * connection (the policy fetch and the MX connection of a session are
 * never open at once), each parked upstream connection holds one, and a
 * fixed allowance covers what the process opened at start plus DNS
 * queries, policy fetches, report delivery and metrics clients in
 * flight. A configuration that does not fit is lowered with a warning
 * naming what to set, not refused: a relay that does not start loses
 * all mail, one that takes fewer clients makes the others retry.
 */
#ifndef STSPROXY_LIMITS_H
#define STSPROXY_LIMITS_H

#include <stdbool.h>

#include "conf/conf.h"

/** Descriptors one client session may hold: its socket and one upstream. */
#define LIMITS_FDS_PER_SESSION		2
/** Kept aside for DNS, policy fetches, reports, metrics and the reserve descriptor. */
#define LIMITS_FD_ALLOWANCE		64

/** What the descriptor limit allows under one configuration. */
struct limits_plan {
	unsigned long	soft, hard;		/* RLIMIT_NOFILE now */
	unsigned	in_use;			/* descriptors open at limits_init() */
	unsigned	needed;			/* what conf's own figures need */
	unsigned	max_connections;	/* conf's, or fewer when it does not fit */
	unsigned	pool_size;		/* [upstream] reuse_pool_size, or fewer */
	bool		lowered;		/* max_connections or pool_size was lowered */
};

/**
 * Raise the soft descriptor limit to the hard one (to the kernel's
 * nr_open when the hard limit is unlimited) and count the descriptors
 * already open. Call once per process before the listeners exist.
 * 0, or -1 when the limit cannot be read (the plan then trusts conf).
 */
int limits_init(void);

/** The plan for conf (borrowed) under the limit found by limits_init(). */
void limits_plan(const struct conf *conf, struct limits_plan *plan);

/** max_connections this process honours for conf (limits_plan's). */
unsigned limits_max_connections(const struct conf *conf);

/** Idle upstream connections this process parks for conf (limits_plan's). */
unsigned limits_pool_size(const struct conf *conf);

/**
 * Log the plan as event=fd_limit (notice), or as a warning saying what
 * to set when conf had to be lowered.
 */
void limits_log(const struct conf *conf);

#endif

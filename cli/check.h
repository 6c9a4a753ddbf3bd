/*
 * check.h - `stsproxy check DOMAIN`: a domain's MTA-STS and TLS-RPT
 * deployment as senders see it, one verdict per item a deployment guide
 * asks for, each with its evidence and the fix in one sentence.
 *
 * Two halves with one question each:
 *   check_run  gathers the facts with the sender's own parts: the policy
 *              engine (TXT, HTTPS fetch, parser), the MX resolver, the
 *              TLS module through mx_probe, the _smtp._tls lookup. It is
 *              asynchronous and bounded (total deadline, per-step
 *              timeouts, at most CHECK_MAX_PROBES MX addresses).
 *   check_eval turns the facts into checks. Pure: no I/O, no clock but
 *              the `now` it is given.
 */
#ifndef STSPROXY_CHECK_H
#define STSPROXY_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "conf/conf.h"
#include "policy/dane.h"
#include "policy/engine.h"
#include "policy/mx_resolve.h"
#include "proxy/mx_probe.h"
#include "proxy/runtime.h"
#include "report/tlsrpt_record.h"

#define CHECK_MAX_PROBES	8	/* MX addresses probed, at most */
#define CHECK_MAX_RUA_PROBES	4	/* https: report endpoints probed, at most */
#define CHECK_DEADLINE		60	/* seconds for the whole check (default) */
#define CHECK_STEP_TIMEOUT	15	/* seconds per SMTP step, at most */
#define CHECK_EXPIRY_WARN_DAYS	14	/* certificates expiring sooner: WARN */
#define CHECK_ENFORCE_MAX_AGE	604800	/* the guides' minimum for enforce: a week */

/* ---- facts ------------------------------------------------------------ */

struct check_ctx;	/* the run in progress (check_run.c) */

/** One MX address and what its probe found. */
struct check_probe {
	struct check_ctx	*run;		/* while running */
	size_t			 host;		/* index into check_facts.hosts */
	struct sockaddr_storage	 addr;
	struct mx_probe		*probe;		/* while running */
	bool			 done;
	struct mx_probe_result	 result;	/* when done (result.host NULL) */
};

/** One MX host of the domain. */
struct check_host {
	struct check_ctx	*run;		/* while the TLSA lookup runs */
	char			 name[256];
	unsigned		 preference;
	bool			 implicit;
	size_t			 naddrs;
	enum dns_status		 a_status, aaaa_status;
	size_t			 probed, skipped;	/* addresses probed / over the limit */
	/* DANE: the TLSA records as the relay asks for them (policy/dane.h),
	 * and with usable ones a DANE handshake with the first address */
	bool			 tlsa_done;
	struct dane_tlsa	*dane;		/* owned; NULL until the answer */
	struct strlist		 dane_names;	/* DANE-TA reference identifiers (DANE-12) */
	struct mx_probe		*dane_probe;	/* while running */
	bool			 dane_probed;
	struct mx_probe_result	 dane_result;	/* when dane_probed (result.host NULL) */
};

/** One destination of the _smtp._tls record. */
struct check_rua {
	struct check_ctx	*run;		/* while resolving or probing */
	char			*uri;
	bool			 https;
	bool			 over_limit;	/* not probed: CHECK_MAX_RUA_PROBES reached */
	char			 host[256];	/* https: */
	unsigned		 port;
	struct mx_lookup	*lookup;	/* while resolving */
	bool			 resolved;
	enum mx_status		 resolve_status;
	char			 resolve_reason[160];
	size_t			 naddrs;
	struct mx_probe		*probe;		/* while probing */
	bool			 probed;
	struct mx_probe_result	 result;
};

/** A policy lookup's result, kept past its callback. */
struct check_policy_view {
	bool			 done;
	enum policy_source	 source;
	enum dns_status		 txt_status;
	enum dns_security	 txt_security;
	char			*txt_canonname;
	struct strlist		 txt_records;
	struct sts_record_result txt;
	char			*id;
	struct sts_policy	*policy;	/* NULL: none */
	time_t			 fetched_at, expires_at;
	bool			 fetched;	/* a fetch ran */
	struct fetch_result	 fetch;		/* body NULL */
	struct policy_diags	 diags;		/* of the parse, if a body was parsed */
	bool			 cache_enabled;
};

struct check_facts {
	char			*domain;	/* normalised */
	unsigned		 port;
	time_t			 now;
	bool			 timed_out;
	unsigned		 deadline;

	/* As published now: the engine without the cache. When the TXT
	 * record is unusable no sender fetches, but the policy host is
	 * still checked with the same fetcher (diagnostic_fetch). */
	struct check_policy_view published;
	bool			 diagnostic_fetch;
	/* What this host's cache held before the check (for the id rule),
	 * and what a sender using that cache applies now. */
	struct policy_cache_entry *previous;	/* NULL: none */
	struct check_policy_view sender;

	/* MX set */
	bool			 mx_done;
	enum mx_status		 mx_status;
	char			*mx_reason;
	bool			 mx_secure;
	char			*mx_canonname;	/* where CNAMEs led the MX lookup, or NULL */
	struct check_host	*hosts;
	size_t			 nhosts;
	struct check_probe	*probes;
	size_t			 nprobes;

	/* TLS-RPT */
	bool			 rpt_done;
	enum dns_status		 rpt_dns_status;
	enum dns_security	 rpt_security;
	struct strlist		 rpt_records;
	struct tlsrpt_record_result rpt;
	struct check_rua	*ruas;
	size_t			 nruas;
};

/**
 * Gather the facts about domain on rt (borrowed): runs rt's loop until
 * everything has answered or deadline seconds have passed. port is the
 * SMTP port probed. Returns the facts (caller frees with
 * check_facts_free()), or NULL when domain is not a domain name.
 */
struct check_facts *check_run(struct runtime *rt, const char *domain, unsigned port,
    unsigned deadline);
void check_facts_free(struct check_facts *facts);

/* ---- verdicts --------------------------------------------------------- */

enum check_status {
	CHECK_PASS,
	CHECK_INFO,	/* reported as found, no verdict (e.g. TLSA records) */
	CHECK_WARN,
	CHECK_FAIL,
};

struct check_item {
	char			*name;		/* stable id: "txt-record", "mx-tls", ... */
	char			*subject;	/* what it is about: a name, a host and address */
	enum check_status	 status;
	char			*evidence;
	char			*fix;		/* one sentence; NULL for PASS and INFO */
};

struct check_list {
	struct check_item	*items;
	size_t			 count;
	bool			 ready_for_enforce;
	const char		*mode;		/* published mode, or NULL without a policy */
};

/** Every check, in the order a deployment guide takes them. */
void check_evaluate(const struct check_facts *facts, struct check_list *out);
void check_list_clear(struct check_list *list);

/** 0 all pass (INFO included), 1 warnings only, 2 any failure. */
int check_exit_status(const struct check_list *list);

const char *check_status_name(enum check_status status);

#endif

/*
 * upstream_record.h - the TLS-RPT boundary of the upstream leg: what an
 * upstream transaction hands to the outcome recorder (report/outcome.h),
 * and the facts about the transaction those records are made of.
 *
 * This is the only place the upstream leg calls outcome_record(), so
 * what gets reported is read here:
 * - a policy fetch that failed while mail still flows (STS-45);
 * - an MX the walk skips because the policy does not list it (STS-54);
 * - an MX DANE makes unreachable: its TLSA lookup failed (DANE-3,
 *   dnssec-invalid) or DANE is required and it has no usable TLSA
 *   records (DANE-17, dane-required);
 * - an attempt that failed (connection, STARTTLS, certificate, DANE,
 *   dialogue);
 * - the connection that carried the transaction or tried to, with the
 *   verdict its regime gives it whatever the phase (STS-36, STS-44).
 * An MX governed by DANE (usable TLSA records, or secure ones none of
 * which is usable) is recorded under policy-type "tlsa" with the TLSA
 * base domain as policy-domain and the records as policy-string
 * (DANE-20); every other MX under the transaction's MTA-STS policy.
 * A transaction flagged UPSTREAM_F_NO_RECORD (a TLS report on its way)
 * is logged but stays out of the reports (RPT-18).
 */
#ifndef STSPROXY_UPSTREAM_RECORD_H
#define STSPROXY_UPSTREAM_RECORD_H

#include <stdbool.h>

#include "conf/util.h"
#include "policy/dane.h"
#include "policy/result_type.h"
#include "policy/sts_policy.h"
#include "proxy/upstream_conn.h"

/** The MTA-STS policy a transaction applies, as its records name it. */
struct upstream_policy {
	bool		 have;		/* a policy of any mode was found */
	enum sts_mode	 mode;		/* STS_MODE_NONE without one */
	char		*id;		/* owned; NULL without a policy */
	struct strlist	 patterns;	/* its mx: patterns */
	struct strlist	 lines;		/* the policy text, one line each, for the reports */
	bool		 would_defer;	/* testing: no MX met the policy (enforce would defer) */
};

/** One upstream transaction as its log lines and records name it. */
struct upstream_txn {
	char			*session;	/* the client session id, owned */
	char			*domain;	/* the recipient (policy) domain, owned */
	unsigned		 flags;		/* UPSTREAM_F_* */
	struct strbuf		 to;		/* "<a>,<b>": its recipients, capped for a log line */
	struct upstream_policy	 policy;	/* filled in when the policy lookup answers */
};

/** Start txn for session and domain (both copied) with UPSTREAM_F_* flags; no policy yet. */
void upstream_txn_init(struct upstream_txn *txn, const char *session, const char *domain,
    unsigned flags);

/** Free what txn owns. */
void upstream_txn_clear(struct upstream_txn *txn);

/** Add a recipient to the to= list (capped: every recipient has its own log line too). */
void upstream_txn_note_recipient(struct upstream_txn *txn, const char *address);

/** The recipients as a to= value, quoted for a log line ("-" for none). */
const char *upstream_txn_recipients(const struct upstream_txn *txn);

/** The policy mode for a log line: "enforce", "testing", "none" or "no-policy". */
const char *upstream_txn_mode(const struct upstream_txn *txn);

/**
 * The policy could not be fetched (failure, reason) although mail still
 * flows (STS-45): a policy-level record, no MX.
 */
void upstream_record_policy_failure(const struct upstream_txn *txn, enum rpt_result_type failure,
    const char *reason);

/** mx_host was not tried: the policy does not list it (STS-36a, STS-54). */
void upstream_record_skipped(const struct upstream_txn *txn, const char *mx_host);

/**
 * mx_host was not tried: its regime (REGIME_UNREACHABLE) says why, with
 * its RFC 8460 result type (DANE-3, DANE-17).
 */
void upstream_record_unreachable(const struct upstream_txn *txn, const char *mx_host,
    const struct route_regime *regime);

/**
 * The attempt on mx_host under regime (NULL: no DANE) over conn failed
 * (result, reason); reply is the MX's last reply, flattened, or NULL.
 * *recorded keeps it to one record per attempt. An attempt of testing's
 * fallback walk (after would_defer) is not recorded: the strict walk
 * recorded that MX already.
 */
void upstream_record_failed(const struct upstream_txn *txn, const char *mx_host,
    const struct route_regime *regime, const struct upstream_conn *conn, const char *reply,
    enum rpt_result_type result, const char *reason, bool *recorded);

/**
 * conn to mx_host under regime (NULL: no DANE) carried the transaction,
 * or tried to (refused, lost): its record with the verdict the regime
 * gives this connection, once per attempt (*recorded).
 */
void upstream_record_delivery(const struct upstream_txn *txn, const char *mx_host,
    const struct route_regime *regime, const struct upstream_conn *conn, const char *reply,
    bool *recorded);

#endif

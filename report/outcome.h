/*
 * outcome.h - one structured record per upstream attempt.
 *
 * The relay's upstream leg (proxy/upstream_record.c) fills a struct
 * delivery_outcome for every MX it considers: skipped for the policy,
 * failed, or used. The record is
 * logged as one key=value line and handed to the single recording hook,
 * which the TLS-RPT layer installs to aggregate daily reports (RFC 8460
 * §4). Policy-level failures (a fetch that failed) are records with no
 * MX host.
 */
#ifndef STSPROXY_OUTCOME_H
#define STSPROXY_OUTCOME_H

#include <stdbool.h>
#include <time.h>

#include "conf/util.h"
#include "policy/result_type.h"

/** What stsproxy did with this MX. */
#define OUTCOME_ACTIONS(X)						\
	X(OUTCOME_ACTION_DELIVERED,	"delivered")	/* transaction ran here */ \
	X(OUTCOME_ACTION_SKIPPED,	"skipped")	/* not tried: fails the policy's mx patterns */ \
	X(OUTCOME_ACTION_FAILED,	"failed")	/* tried, moved on to the next MX */ \
	X(OUTCOME_ACTION_POLICY,	"policy")	/* a policy-level record, no MX */

#define OUTCOME_ACTION_ENUM(sym, name) sym,
enum outcome_action { OUTCOME_ACTIONS(OUTCOME_ACTION_ENUM) };
#undef OUTCOME_ACTION_ENUM

const char *outcome_action_name(enum outcome_action action);

/** Every pointer is borrowed for the duration of outcome_record(). */
struct delivery_outcome {
	const char		*session;	/* session id of the client connection */
	time_t			 when;
	const char		*policy_domain;
	const char		*policy_type;	/* "sts", "tlsa" or "no-policy-found" (RFC 8460 §4.4) */
	const char		*mode;		/* "enforce", "testing", "none" or "" */
	const char		*policy_id;	/* "" without a policy */
	const struct strlist	*mx_patterns;	/* NULL without a policy */
	const struct strlist	*policy_lines;	/* the policy text, one line each (tlsa: the records); NULL without */
	const char		*mx_host;	/* NULL for a policy-level record */
	const char		*ip;		/* NULL when not connected */
	const char		*sending_ip;	/* our end of the connection, or NULL */
	const char		*mx_helo;	/* name in the MX's greeting, or NULL */
	const char		*tls_version;	/* NULL without TLS */
	const char		*cipher;
	bool			 starttls_offered;
	bool			 sts_pass;	/* this MX meets the policy (STS-36; tlsa: DANE-10) */
	const char		*dane;		/* what DANE made of the MX: pass, fail, no-tlsa, ...; NULL: off */
	const char		*dane_record;	/* the TLSA record that matched, "u s m HEX", or NULL */
	enum rpt_result_type	 result;	/* RFC 8460 failure type, NONE if none */
	const char		*reason;	/* human-readable, with result */
	enum outcome_action	 action;
	const char		*upstream_reply; /* last reply that mattered, flattened */
	const char		*recipients;	/* "<a>,<b>" the transaction carries, or NULL */
	bool			 would_defer;	/* testing or simulate: enforce would not deliver */
	bool			 unreported;	/* logged, not handed to the hook (RPT-18) */
};

typedef void (*outcome_hook)(void *arg, const struct delivery_outcome *outcome);

/** Install the one recording hook (NULL to remove). arg is borrowed. */
void outcome_set_hook(outcome_hook hook, void *arg);

/** Log the outcome as one key=value line and hand it to the hook. */
void outcome_record(const struct delivery_outcome *outcome);

#endif

#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_UPSTREAM

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/clock.h"
#include "conf/log.h"
#include "conf/metrics.h"
#include "policy/mx_match.h"
#include "proxy/upstream.h"
#include "proxy/upstream_record.h"
#include "report/outcome.h"

/* The recipient list on a log line; every recipient has its own line too. */
#define TO_LOG_MAX	400

void
upstream_txn_init(struct upstream_txn *txn, const char *session, const char *domain,
    unsigned flags)
{
	memset(txn, 0, sizeof(*txn));
	txn->session = xstrdup(session);
	txn->domain = xstrdup(domain);
	txn->flags = flags;
	strbuf_init(&txn->to);
	txn->policy.mode = STS_MODE_NONE;
}

void
upstream_txn_clear(struct upstream_txn *txn)
{
	free(txn->session);
	free(txn->domain);
	strbuf_free(&txn->to);
	free(txn->policy.id);
	strlist_clear(&txn->policy.patterns);
	strlist_clear(&txn->policy.lines);
}

void
upstream_txn_note_recipient(struct upstream_txn *txn, const char *address)
{
	if (txn->to.len > TO_LOG_MAX)
		return;
	strbuf_printf(&txn->to, "%s<%s>", txn->to.len ? "," : "", address);
	if (txn->to.len > TO_LOG_MAX)
		strbuf_printf(&txn->to, ",...");
}

const char *
upstream_txn_recipients(const struct upstream_txn *txn)
{
	return log_quote(txn->to.len ? txn->to.data : "-");
}

const char *
upstream_txn_mode(const struct upstream_txn *txn)
{
	return txn->policy.have ? sts_mode_name(txn->policy.mode) : "no-policy";
}

/* The fields every record of txn shares: who, and under which policy. */
static struct delivery_outcome
outcome_of(const struct upstream_txn *txn, enum outcome_action action)
{
	const struct upstream_policy *p = &txn->policy;

	return (struct delivery_outcome){
		.session = txn->session,
		.when = clock_now(),
		.policy_domain = txn->domain,
		.policy_type = p->have && p->mode != STS_MODE_NONE ? "sts" : "no-policy-found",
		.mode = p->have ? sts_mode_name(p->mode) : "",
		.policy_id = p->id ? p->id : "",
		.mx_patterns = p->have ? &p->patterns : NULL,
		.policy_lines = p->have ? &p->lines : NULL,
		.action = action,
		.recipients = txn->to.data,
		/* RPT-18: a session that carries a TLS report stays out of the reports. */
		.unreported = (txn->flags & UPSTREAM_F_NO_RECORD) != 0,
	};
}

/* An MX under DANE's rules: its records go under a "tlsa" policy (DANE-20). */
static bool
dane_governed(const struct route_regime *rg)
{
	if (rg == NULL || rg->tlsa == NULL)
		return false;
	return rg->kind == REGIME_DANE || rg->kind == REGIME_DANE_TLS ||
	    (rg->kind == REGIME_UNREACHABLE && rg->failure != RPT_RESULT_NONE);
}

/*
 * The dane= word of the outcome line: what DANE made of this MX. Never
 * "pass" for anything DNSSEC did not secure (DANE-19).
 */
static const char *
dane_word(const struct route_regime *rg, const struct upstream_conn *conn)
{
	if (rg == NULL || rg->tlsa == NULL)
		return "off";
	switch (rg->kind) {
	case REGIME_DANE:
		return conn != NULL && conn->tls_active && conn->auth == TLS_AUTH_DANE ? "pass" : "fail";
	case REGIME_DANE_TLS:
		return "unusable";
	case REGIME_UNREACHABLE:
		return rg->failure == RPT_RESULT_DANE_REQUIRED ? "required" : "lookup-failed";
	default:
		return dane_state_name(rg->tlsa->state);
	}
}

/* One record for an MX: tried over conn, or not tried (conn NULL). */
static void
record_mx(const struct upstream_txn *txn, const char *mx_host, const struct route_regime *rg,
    const struct upstream_conn *conn, const char *reply, enum outcome_action action, bool pass,
    enum rpt_result_type result, const char *reason)
{
	struct delivery_outcome o = outcome_of(txn, action);
	char labels[160];

	if (dane_governed(rg)) {
		const struct dane_tlsa *t = rg->tlsa;

		o.policy_type = "tlsa";
		o.policy_domain = t->base[0] ? t->base : t->host;
		o.mode = "";
		o.policy_id = t->id;
		o.mx_patterns = NULL;
		o.policy_lines = &t->text;
		o.would_defer = false;
		snprintf(labels, sizeof(labels), "action=\"%s\",result=\"%s\"",
		    outcome_action_name(action), rpt_result_type_name(result));
		metrics_add("stsproxy_dane_attempts_total", labels, 1);
	} else
		o.would_defer = txn->policy.would_defer;
	o.dane = dane_word(rg, conn);
	o.dane_record = conn != NULL && conn->dane_match[0] ? conn->dane_match : NULL;

	o.mx_host = mx_host;
	o.ip = conn ? conn->ip : NULL;
	o.sending_ip = conn && conn->local_ip[0] ? conn->local_ip : NULL;
	o.mx_helo = conn && conn->mx_helo[0] ? conn->mx_helo : NULL;
	o.tls_version = conn && conn->tls_active ? conn->peer.version : NULL;
	o.cipher = conn && conn->tls_active ? conn->peer.cipher : NULL;
	o.starttls_offered = conn && conn->starttls_offered;
	o.sts_pass = pass;
	o.result = result;
	o.reason = reason;
	o.upstream_reply = reply;
	snprintf(labels, sizeof(labels), "mode=\"%s\",action=\"%s\",result=\"%s\"",
	    upstream_txn_mode(txn), outcome_action_name(action), rpt_result_type_name(result));
	metrics_add("stsproxy_upstream_attempts_total", labels, 1);
	outcome_record(&o);
}

void
upstream_record_policy_failure(const struct upstream_txn *txn, enum rpt_result_type failure,
    const char *reason)
{
	struct delivery_outcome o = outcome_of(txn, OUTCOME_ACTION_POLICY);

	/* Spec notes §8 (choice): fetch, parse and PKIX failures are "sts". */
	o.policy_type = "sts";
	o.result = failure;
	o.reason = reason;
	outcome_record(&o);
}

void
upstream_record_skipped(const struct upstream_txn *txn, const char *mx_host)
{
	record_mx(txn, mx_host, NULL, NULL, NULL, OUTCOME_ACTION_SKIPPED, false,
	    RPT_RESULT_VALIDATION_FAILURE, "MX not in policy");
}

void
upstream_record_unreachable(const struct upstream_txn *txn, const char *mx_host,
    const struct route_regime *regime)
{
	/* Testing's fallback walk meets it again: once is enough. */
	if (txn->policy.would_defer)
		return;
	record_mx(txn, mx_host, regime, NULL, NULL, OUTCOME_ACTION_FAILED, false, regime->failure,
	    regime->reason);
}

void
upstream_record_failed(const struct upstream_txn *txn, const char *mx_host,
    const struct route_regime *regime, const struct upstream_conn *conn, const char *reply,
    enum rpt_result_type result, const char *reason, bool *recorded)
{
	/* Testing's fallback walk meets the MXs the strict walk already
	 * recorded; counting them twice would inflate the TLS-RPT failures. */
	if (*recorded || txn->policy.would_defer)
		return;
	*recorded = true;
	record_mx(txn, mx_host, regime, conn, reply, OUTCOME_ACTION_FAILED, false, result, reason);
}

/*
 * Would this connection pass its regime (STS-36, DANE-10)? For the record
 * of a connection that carried the transaction, whatever the phase.
 */
static bool
attempt_verdict(const struct upstream_txn *txn, const char *mx_host,
    const struct route_regime *rg, const struct upstream_conn *conn, enum rpt_result_type *result,
    const char **reason)
{
	const struct upstream_policy *p = &txn->policy;

	if (dane_governed(rg)) {
		if (!conn->tls_active) {
			*result = RPT_RESULT_STARTTLS_NOT_SUPPORTED;
			*reason = "no TLS";
			return false;
		}
		if (rg->kind == REGIME_DANE_TLS) {
			/* DANE-8: TLS, but nothing could authenticate it. */
			*result = RPT_RESULT_TLSA_INVALID;
			*reason = rg->reason;
			return false;
		}
		*result = conn->auth == TLS_AUTH_DANE ? RPT_RESULT_NONE :
		    conn->tls_result != RPT_RESULT_NONE ? conn->tls_result : RPT_RESULT_TLSA_INVALID;
		*reason = conn->tls_reason;
		return *result == RPT_RESULT_NONE;
	}
	if (!p->have || p->mode == STS_MODE_NONE) {
		*result = conn->tls_active ? RPT_RESULT_NONE : RPT_RESULT_STARTTLS_NOT_SUPPORTED;
		*reason = conn->tls_active ? "opportunistic TLS" : "no TLS";
		return false;
	}
	if (!mx_match_any(&p->patterns, mx_host, NULL)) {
		*result = RPT_RESULT_VALIDATION_FAILURE;
		*reason = "MX not in policy";
		return false;
	}
	if (!conn->tls_active) {
		*result = RPT_RESULT_STARTTLS_NOT_SUPPORTED;
		*reason = conn->starttls_offered ? "STARTTLS failed" : "does not offer STARTTLS";
		return false;
	}
	/* A connection DANE authenticated proves nothing about PKIX. */
	if (conn->auth == TLS_AUTH_DANE) {
		*result = RPT_RESULT_VALIDATION_FAILURE;
		*reason = "authenticated by DANE, not checked against the MTA-STS policy";
		return false;
	}
	*result = conn->tls_result;
	*reason = conn->tls_reason;
	return conn->tls_result == RPT_RESULT_NONE;
}

void
upstream_record_delivery(const struct upstream_txn *txn, const char *mx_host,
    const struct route_regime *regime, const struct upstream_conn *conn, const char *reply,
    bool *recorded)
{
	enum rpt_result_type result;
	const char *reason;
	bool pass;

	if (*recorded)
		return;
	*recorded = true;
	pass = attempt_verdict(txn, mx_host, regime, conn, &result, &reason);
	record_mx(txn, mx_host, regime, conn, reply, OUTCOME_ACTION_DELIVERED, pass, result, reason);
}

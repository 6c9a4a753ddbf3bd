/*
 * rpt_summary.h - what a pile of received TLS-RPT reports says, per
 * policy domain and UTC day: sessions that succeeded and failed, the
 * failures by result type (with what each means and usually fixes), by
 * sending organisation, by MX and by receiving IP. For
 * `stsproxy report read`.
 *
 * Reports are added after rpt_read_input() validated them; the same
 * report received twice (same organization-name and report-id, e.g. by
 * mail and over HTTPS) counts once (RPT-16). Malformed inputs are listed
 * with their reason, never fatal.
 */
#ifndef STSPROXY_RPT_SUMMARY_H
#define STSPROXY_RPT_SUMMARY_H

#include <stdbool.h>

#include <jansson.h>

#include "report/rpt_read.h"

struct rpt_summary;

struct rpt_summary *rpt_summary_new(void);
void rpt_summary_free(struct rpt_summary *summary);

/**
 * Add every document read from source (a file name, or "-"): valid
 * reports are counted, malformed ones listed. docs stays the caller's.
 */
void rpt_summary_add(struct rpt_summary *summary, const char *source,
    const struct rpt_docs *docs);

/** Note an input that could not be read at all (I/O error, too large). */
void rpt_summary_add_unreadable(struct rpt_summary *summary, const char *source,
    const char *reason);

/** Counts for the exit status. */
size_t rpt_summary_reports(const struct rpt_summary *summary);
size_t rpt_summary_malformed(const struct rpt_summary *summary);

/**
 * The summary as one JSON document (caller owns it):
 *   {"reports": [...], "malformed": [...], "domains": [{"policy-domain",
 *    "day", "reports", "policy-types", "successful-sessions",
 *    "failed-sessions", "failure-rate", "result-types": [{"result-type",
 *    "failure-reason-code", "sessions", "rate", "meaning", "fix"}],
 *    "organizations": [...], "mx-hosts": [...], "receiving-ips": [...]}]}
 * Domains and days in order; lists by failed sessions, most first.
 */
json_t *rpt_summary_json(const struct rpt_summary *summary);

/**
 * What a failure means and what usually fixes it, for a result type name
 * and reason code (either may be unknown or NULL). Static strings.
 */
void rpt_failure_advice(const char *result_type, const char *reason_code,
    const char **meaning, const char **fix);

#endif

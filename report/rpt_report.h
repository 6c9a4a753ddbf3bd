/*
 * rpt_report.h - RFC 8460 aggregate reports built from the counters.
 *
 * One report per policy domain and UTC day (RPT-10), as one I-JSON
 * document (RPT-7) with the field names and types of spec notes §8.
 * The report id is derived from day, domain and submitter, so a report
 * rebuilt for a retry keeps its id and receivers can drop duplicates
 * (RPT-16).
 */
#ifndef STSPROXY_RPT_REPORT_H
#define STSPROXY_RPT_REPORT_H

#include <stdbool.h>
#include <time.h>

#include <jansson.h>

#include "conf/conf.h"
#include "report/rpt_store.h"

/** Who reports: from [report], with the host name for what is empty. */
struct rpt_identity {
	char	organization[256];
	char	contact[320];
	char	submitter[256];
};

void rpt_identity_init(struct rpt_identity *id, const struct conf *conf, const char *hostname);

/**
 * The report for domain on day ("YYYY-MM-DD"), or NULL when there was no
 * traffic. *failures receives the total failure count (may be NULL).
 * Caller owns the result (json_decref).
 */
json_t *rpt_report_build(struct rpt_store *store, const struct rpt_identity *id,
    const char *day, const char *domain, long long *failures);

/**
 * The policy domains with traffic on day (only domain, when not NULL), in
 * order, appended to all; those of them with at least one failure also to
 * with_failures. Which get a report is the caller's rule ([report]
 * send_success_only_reports). 0, or -1 on a database error.
 */
int rpt_report_domains(struct rpt_store *store, const char *day, const char *domain,
    struct strlist *all, struct strlist *with_failures);

/** Start of day (00:00:00 UTC) as a Unix time; -1 if day is malformed. */
time_t rpt_day_start(const char *day);

/** RPT-11 file name: submitter!domain!begin!end!id.json.gz (caller frees). */
char *rpt_report_filename(const struct rpt_identity *id, const char *day, const char *domain);

#endif

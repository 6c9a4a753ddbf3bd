/*
 * rpt_read.h - TLS-RPT reports as domain owners receive them (RFC 8460
 * section 5): a .json file, a .json.gz file, or a whole mail message
 * (multipart/report with the report attached, RPT-14), decoded and
 * validated against section 4 (spec notes section 8).
 *
 * Every input is untrusted and bounded: at most RPT_READ_MAX_INPUT bytes
 * in, RPT_READ_MAX_JSON bytes out of gunzip (a zip bomb stops there),
 * MIME nesting and part counts capped. A malformed input yields a reason,
 * never a crash; what does not break the report is a warning.
 */
#ifndef STSPROXY_RPT_READ_H
#define STSPROXY_RPT_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "conf/util.h"

#define RPT_READ_MAX_INPUT	(32u << 20)	/* bytes of one file or message */
#define RPT_READ_MAX_JSON	(16u << 20)	/* bytes of one report after gunzip */
#define RPT_READ_MAX_PARTS	64		/* MIME parts looked at per message */
#define RPT_READ_MAX_DEPTH	4		/* multipart and message/rfc822 nesting */
#define RPT_READ_MAX_REPORTS	16		/* reports taken from one message */

/** One report found in an input, valid or not. */
struct rpt_doc {
	char		*where;		/* "json", "gzip", "attachment NAME", ... */
	json_t		*report;	/* the validated report; NULL when malformed */
	char		*error;		/* why it is malformed; NULL when valid */
	struct strlist	 warnings;	/* conformance notes that do not invalidate it */
};

/** The reports of one or more inputs. Clear with rpt_docs_clear(). */
struct rpt_docs {
	struct rpt_doc	*items;
	size_t		 count;
};

/**
 * Decode one input of len bytes (the form is told by the content: the
 * gzip magic, a JSON object, otherwise a MIME message) and validate
 * every report it holds. Appends one rpt_doc per report found, or one
 * with the reason when the input holds none. Returns the number of valid
 * reports appended.
 */
int rpt_read_input(const void *data, size_t len, struct rpt_docs *out);
void rpt_docs_clear(struct rpt_docs *docs);

/**
 * Check a parsed report against RFC 8460 section 4: required fields and
 * their types, policy and result types, the date range. true, or false
 * with the first violation in why (with its JSON path). Notes that do
 * not invalidate the report (unknown result type, bare-string mx-host,
 * a range longer than a day, an odd IP address) go to warnings.
 */
bool rpt_report_validate(const json_t *report, struct strlist *warnings, char *why,
    size_t why_len);

/**
 * gunzip (RFC 1952) in into out, at most max bytes of output. 0, or -1
 * with why (corrupt, truncated, over max, data after the stream).
 */
int rpt_gunzip(const void *in, size_t len, size_t max, struct strbuf *out, char *why,
    size_t why_len);

/**
 * Parse an RFC 3339 date-time ("2016-04-01T00:00:00Z", fractions and
 * numeric offsets allowed) into a Unix time. false if malformed.
 */
bool rpt_parse_datetime(const char *s, time_t *out);

#endif

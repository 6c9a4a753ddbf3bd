/*
 * tlsrpt_record.h - the _smtp._tls TXT record (RFC 8460 section 3).
 *
 * Pure functions over untrusted bytes. Records arrive joined (the
 * strings of one record concatenated with nothing in between, RPT-4).
 * The result lists the report destinations stsproxy can use: https: and
 * mailto: URIs (RPT-3); others are counted and skipped.
 */
#ifndef STSPROXY_TLSRPT_RECORD_H
#define STSPROXY_TLSRPT_RECORD_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/util.h"

#define TLSRPT_RECORD_MAX_LEN	4096
#define TLSRPT_MAX_RUA		16	/* destinations kept; more are ignored */

enum tlsrpt_record_status {
	TLSRPT_RECORD_VALID,	/* one record, with at least one usable destination */
	TLSRPT_RECORD_ABSENT,	/* no record begins with v=TLSRPTv1 */
	TLSRPT_RECORD_MULTIPLE,	/* more than one: no TLSRPT (RPT-4) */
	TLSRPT_RECORD_INVALID,	/* breaks the grammar, or no usable destination */
};

/** Call tlsrpt_record_result_clear() when done. */
struct tlsrpt_record_result {
	enum tlsrpt_record_status status;
	struct strlist	rua;		/* usable URIs, as published, in order */
	unsigned	skipped;	/* URIs with schemes other than https: and mailto: */
	char		reason[160];	/* when not VALID */
};

/**
 * Parse one record against the RPT-2 grammar. Usable URIs are appended
 * to rua (owned by the caller). Returns true, or false with a reason.
 */
bool tlsrpt_record_parse(const char *rec, size_t len, struct strlist *rua, unsigned *skipped,
    char *reason, size_t reason_len);

/** Apply RPT-4 to the TXT RRset: exactly one record must begin with the version. */
void tlsrpt_record_select(const char *const *records, const size_t *lens, size_t count,
    struct tlsrpt_record_result *out);

void tlsrpt_record_result_clear(struct tlsrpt_record_result *r);

/**
 * The address of a mailto: URI, percent-decoded, without "?headers".
 * Returns 0, or -1 when it is not a single plausible address.
 */
int tlsrpt_mailto_address(const char *uri, char *out, size_t out_len);

const char *tlsrpt_record_status_name(enum tlsrpt_record_status status);

#endif

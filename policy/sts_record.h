/*
 * sts_record.h - the _mta-sts TXT record (RFC 8461 section 3.1).
 *
 * Pure functions over untrusted bytes: no allocation, no I/O. Records
 * arrive already joined (multi-string records concatenated with nothing
 * in between, STS-6) and may contain any byte, including NUL.
 */
#ifndef STSPROXY_STS_RECORD_H
#define STSPROXY_STS_RECORD_H

#include <stdbool.h>
#include <stddef.h>

/** Longest record considered; DNS allows 64 KiB, no real record nears 1. */
#define STS_RECORD_MAX_LEN	4096
#define STS_ID_MAX_LEN		32

enum sts_record_status {
	STS_RECORD_VALID,	/* exactly one candidate, and it parses */
	STS_RECORD_ABSENT,	/* no record starts with v=STSv1 */
	STS_RECORD_MULTIPLE,	/* more than one candidate: no policy (STS-7) */
	STS_RECORD_INVALID,	/* one candidate that breaks the grammar */
};

struct sts_record_result {
	enum sts_record_status	status;
	char			id[STS_ID_MAX_LEN + 1];	/* when VALID */
	char			reason[160];		/* when not VALID */
};

/**
 * Parse one record against the STS-3 grammar. On success copies the
 * first id into id and returns true; otherwise writes a reason.
 */
bool sts_record_parse(const char *rec, size_t len, char id[STS_ID_MAX_LEN + 1],
    char *reason, size_t reason_len);

/**
 * Apply STS-7 to the TXT RRset: keep the records that begin with the
 * version field, require exactly one, and parse it.
 */
void sts_record_select(const char *const *records, const size_t *lens, size_t count,
    struct sts_record_result *out);

const char *sts_record_status_name(enum sts_record_status status);

#endif

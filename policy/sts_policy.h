/*
 * sts_policy.h - the MTA-STS policy file (RFC 8461 section 3.2) and the
 * parsed policy that the relay applies.
 *
 * One parser serves both readers. As a sender it is lenient: cosmetic
 * mistakes that real publishers make and other senders accept (blank
 * lines, a UTF-8 byte order mark, '#' comment lines, a trailing dot on an
 * mx pattern) never turn MTA-STS off for a domain. As a linter (`stsproxy
 * policy --file`) it reports each of them as an error, marked tolerated,
 * so publishers fix them for stricter senders. docs/policy-engine.md has
 * the case-by-case decisions with the RFC text behind each.
 *
 * A struct sts_policy is a plain value: whoever holds the pointer owns it
 * and frees it with sts_policy_free(); sts_policy_dup() makes a copy.
 */
#ifndef STSPROXY_STS_POLICY_H
#define STSPROXY_STS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/util.h"

/** max_age ceiling (STS-27); larger values are capped, not rejected. */
#define STS_MAX_AGE_LIMIT	31557600UL
/**
 * Lines longer than this get a lint warning. The grammar sets no limit
 * and neither does the parser: the body limit ([policy] max_body) bounds
 * every line.
 */
#define STS_POLICY_LONG_LINE	1024

enum sts_mode {
	STS_MODE_NONE,
	STS_MODE_TESTING,
	STS_MODE_ENFORCE,
};

struct sts_policy {
	enum sts_mode	 mode;
	unsigned long	 max_age;	/* seconds, already capped */
	struct strlist	 mx;		/* patterns, in file order */
	struct strlist	 lines;		/* the policy text, one line each, no CR/LF */
};

enum policy_diag_severity {
	POLICY_DIAG_ERROR,
	POLICY_DIAG_WARNING,
};

struct policy_diag {
	int				 line;	/* 1-based; 0 for the whole file */
	enum policy_diag_severity	 severity;
	bool				 tolerated;	/* an error the sender reads past */
	char				*message;
};

/**
 * Diagnostics collected by a parse: errors make the policy invalid,
 * except tolerated ones (outside the grammar, but the sender reads the
 * policy as the publisher meant it).
 */
struct policy_diags {
	struct policy_diag	*items;
	size_t			 count;
};

/**
 * Parse a policy body of len bytes. Returns the policy, or NULL when it is
 * invalid (STS-30); *reason (if not NULL) then gets the first error that
 * is not tolerated as "line N: ...", owned by the caller. When diags is
 * not NULL every error (tolerated or not) and lint warning is appended to
 * it; warnings and tolerated errors never invalidate. Bodies longer than
 * max_len are rejected without being read.
 */
struct sts_policy *sts_policy_parse(const char *buf, size_t len, size_t max_len,
    struct policy_diags *diags, char **reason);

void sts_policy_free(struct sts_policy *policy);
struct sts_policy *sts_policy_dup(const struct sts_policy *policy);

const char *sts_mode_name(enum sts_mode mode);
/** Parse "enforce", "testing" or "none" (case-sensitive); -1 otherwise. */
int sts_mode_parse(const char *name);

void policy_diags_clear(struct policy_diags *diags);
/** Diagnostics of that severity, tolerated errors included. */
size_t policy_diags_count(const struct policy_diags *diags, enum policy_diag_severity severity);
/** Errors the sender reads past. */
size_t policy_diags_tolerated(const struct policy_diags *diags);

#endif

/*
 * mx_match.h - MTA-STS "mx" patterns (RFC 8461 sections 3.2 and 4.1).
 *
 * Pure functions. A pattern is a host name, optionally "*." followed by
 * a host name; "*" covers exactly one left-most label (STS-37, STS-39).
 */
#ifndef STSPROXY_MX_MATCH_H
#define STSPROXY_MX_MATCH_H

#include <stdbool.h>

#include "conf/util.h"

/**
 * true if pattern is a syntactically valid mx pattern. Otherwise *why (if
 * not NULL) points to a static reason. A trailing dot is accepted.
 */
bool mx_pattern_valid(const char *pattern, const char **why);

/** true if host (an MX target, trailing dot allowed) matches pattern. */
bool mx_pattern_matches(const char *pattern, const char *host);

/**
 * true if any pattern in patterns matches host; *matched (if not NULL)
 * then points at that pattern, owned by patterns.
 */
bool mx_match_any(const struct strlist *patterns, const char *host, const char **matched);

#endif

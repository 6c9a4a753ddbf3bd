#include "config.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "policy/mx_match.h"

static bool
is_ldh(unsigned char c)
{
	return isalnum(c) || c == '-';
}

bool
mx_pattern_valid(const char *pattern, const char **why)
{
	const char *p = pattern, *dummy;
	size_t len = strlen(pattern), labels = 0, numeric_labels = 0;

	if (why == NULL)
		why = &dummy;
	if (len > 0 && pattern[len - 1] == '.')
		len--;
	if (len == 0) {
		*why = "empty pattern";
		return false;
	}
	if (len > 253) {
		*why = "longer than 253 characters";
		return false;
	}
	if (p[0] == '*') {
		if (len < 3 || p[1] != '.') {
			*why = "'*' must be the whole left-most label, followed by '.'";
			return false;
		}
		p += 2;
		len -= 2;
	}
	while (len > 0) {
		size_t l = 0;
		bool digits_only = true;

		while (l < len && p[l] != '.') {
			unsigned char c = (unsigned char)p[l];

			if (c == '*') {
				*why = "'*' is allowed only as the whole left-most label";
				return false;
			}
			if (!is_ldh(c)) {
				*why = "labels may hold only letters, digits and '-'";
				return false;
			}
			if (!isdigit(c))
				digits_only = false;
			l++;
		}
		if (l == 0) {
			*why = "empty label";
			return false;
		}
		if (l > 63) {
			*why = "label longer than 63 characters";
			return false;
		}
		if (p[0] == '-' || p[l - 1] == '-') {
			*why = "a label may not start or end with '-'";
			return false;
		}
		labels++;
		if (digits_only)
			numeric_labels++;
		p += l;
		len -= l;
		if (len > 0) {
			p++;
			len--;
			if (len == 0) {
				*why = "empty label";
				return false;
			}
		}
		if (len == 0 && digits_only) {
			*why = numeric_labels == labels ? "an IP address is not a host name pattern"
			    : "the last label may not be all digits";
			return false;
		}
	}
	return true;
}

/* Compare a and b (lengths given) as DNS names, ignoring ASCII case. */
static bool
name_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

bool
mx_pattern_matches(const char *pattern, const char *host)
{
	size_t plen = strlen(pattern), hlen = strlen(host);

	if (plen > 0 && pattern[plen - 1] == '.')
		plen--;
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	if (plen == 0 || hlen == 0)
		return false;
	if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = memchr(host, '.', hlen);

		/* "*" stands for exactly one non-empty left-most label. */
		if (dot == NULL || dot == host)
			return false;
		return name_equal(dot + 1, hlen - (size_t)(dot + 1 - host), pattern + 2, plen - 2);
	}
	return name_equal(pattern, plen, host, hlen);
}

bool
mx_match_any(const struct strlist *patterns, const char *host, const char **matched)
{
	for (size_t i = 0; i < patterns->count; i++)
		if (mx_pattern_matches(patterns->items[i], host)) {
			if (matched != NULL)
				*matched = patterns->items[i];
			return true;
		}
	return false;
}

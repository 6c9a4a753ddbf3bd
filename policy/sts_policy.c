#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/mx_match.h"
#include "policy/sts_policy.h"

enum known_field {
	FIELD_VERSION,
	FIELD_MODE,
	FIELD_MAX_AGE,
	FIELD_MX,
	FIELD_COUNT,
	FIELD_UNKNOWN = FIELD_COUNT,
};

static const char *const field_names[FIELD_COUNT] = {
	"version", "mode", "max_age", "mx",
};

struct parse_state {
	struct policy_diags	*diags;
	char			*first_error;
	int			 seen_line[FIELD_COUNT];
	int			 first_field_line;	/* after any BOM, comments, blank lines */
};

static void
diag_add(struct parse_state *st, int line, enum policy_diag_severity sev, bool tolerated,
    const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void
diag_add(struct parse_state *st, int line, enum policy_diag_severity sev, bool tolerated,
    const char *fmt, va_list ap)
{
	char *msg = xvasprintf(fmt, ap);

	if (sev == POLICY_DIAG_ERROR && !tolerated && st->first_error == NULL)
		st->first_error = line > 0 ? xasprintf("line %d: %s", line, msg) : xstrdup(msg);
	if (st->diags != NULL) {
		struct policy_diags *d = st->diags;

		d->items = xrealloc(d->items, (d->count + 1) * sizeof(*d->items));
		d->items[d->count].line = line;
		d->items[d->count].severity = sev;
		d->items[d->count].tolerated = tolerated;
		d->items[d->count].message = msg;
		d->count++;
	} else {
		free(msg);
	}
}

static void
diag(struct parse_state *st, int line, enum policy_diag_severity sev, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
diag(struct parse_state *st, int line, enum policy_diag_severity sev, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_add(st, line, sev, false, fmt, ap);
	va_end(ap);
}

/* Outside the grammar, but read as the publisher meant it (sender leniency). */
static void
diag_tolerated(struct parse_state *st, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
diag_tolerated(struct parse_state *st, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_add(st, line, POLICY_DIAG_ERROR, true, fmt, ap);
	va_end(ap);
}

/* A value for a message: at most 60 bytes of it (lines have no length
 * limit any more, and messages end up in logs and the cache). */
static const char *
shown(const char *v, char *buf, size_t buflen)
{
	size_t n = strlen(v);

	if (n + 1 <= buflen && n <= 60)
		return v;
	snprintf(buf, buflen, "%.60s...", v);
	return buf;
}

static bool
is_blank_line(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t')
			return false;
	return true;
}

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* sts-policy-ext-name: ALPHA/DIGIT then up to 31 of ALPHA/DIGIT/"_"/"-"/"." */
static bool
valid_ext_name(const char *s, size_t n)
{
	if (n == 0 || n > 32 || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

/* An extension value may hold UTF-8 and inner blanks, never control bytes. */
static bool
valid_ext_value(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static void
parse_line(struct parse_state *st, struct sts_policy *pol, int lineno,
    const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);
	const char *value, *vend;
	enum known_field f = FIELD_UNKNOWN;
	size_t nlen, vlen;
	char *v, sbuf[80];

	if (colon == NULL) {
		diag(st, lineno, POLICY_DIAG_ERROR, "expected 'name: value'");
		return;
	}
	nlen = (size_t)(colon - line);
	for (int i = 0; i < FIELD_COUNT; i++)
		if (strlen(field_names[i]) == nlen && memcmp(line, field_names[i], nlen) == 0)
			f = (enum known_field)i;
	if (f == FIELD_UNKNOWN && !valid_ext_name(line, nlen)) {
		diag(st, lineno, POLICY_DIAG_ERROR,
		    "'%.*s' is not a field name (no blanks before ':', letters, digits, '_', '-', '.')",
		    (int)(nlen > 40 ? 40 : nlen), line);
		return;
	}
	value = colon + 1;
	vend = line + len;
	while (value < vend && is_wsp(*value))
		value++;
	if (vend > value && is_wsp(vend[-1])) {
		while (vend > value && is_wsp(vend[-1]))
			vend--;
		diag(st, lineno, POLICY_DIAG_WARNING, "trailing blanks after the value");
	}
	vlen = (size_t)(vend - value);

	if (f == FIELD_UNKNOWN) {
		if (!valid_ext_value(value, vlen))
			diag(st, lineno, POLICY_DIAG_ERROR, "control character in the value of '%.*s'",
			    (int)nlen, line);
		else
			diag(st, lineno, POLICY_DIAG_WARNING, "unknown field '%.*s' is ignored",
			    (int)(nlen > 40 ? 40 : nlen), line);
		return;
	}
	v = xstrndup(value, vlen);
	if (f != FIELD_MX && st->seen_line[f] != 0) {
		/* STS-29: for repeated fields other than mx, the first one wins. */
		diag(st, lineno, POLICY_DIAG_WARNING,
		    "'%s' repeated (first at line %d); this one is ignored", field_names[f],
		    st->seen_line[f]);
		free(v);
		return;
	}
	st->seen_line[f] = lineno;
	switch (f) {
	case FIELD_VERSION:
		if (strcmp(v, "STSv1") != 0)
			diag(st, lineno, POLICY_DIAG_ERROR, "version: '%s' is not STSv1",
			    shown(v, sbuf, sizeof(sbuf)));
		break;
	case FIELD_MODE: {
		int m = sts_mode_parse(v);

		if (m < 0)
			diag(st, lineno, POLICY_DIAG_ERROR,
			    "mode: '%s' is not enforce, testing or none (case matters)",
			    shown(v, sbuf, sizeof(sbuf)));
		else
			pol->mode = (enum sts_mode)m;
		break;
	}
	case FIELD_MAX_AGE: {
		size_t i;
		unsigned long long age;

		for (i = 0; v[i] && isdigit((unsigned char)v[i]); i++)
			;
		if (i == 0 || v[i] != '\0' || i > 10) {
			diag(st, lineno, POLICY_DIAG_ERROR, "max_age: '%s' is not 1 to 10 digits",
			    shown(v, sbuf, sizeof(sbuf)));
			break;
		}
		age = strtoull(v, NULL, 10);
		if (age > STS_MAX_AGE_LIMIT) {
			diag(st, lineno, POLICY_DIAG_WARNING,
			    "max_age %llu is above the maximum %lu; senders cap it", age,
			    STS_MAX_AGE_LIMIT);
			age = STS_MAX_AGE_LIMIT;
		}
		pol->max_age = (unsigned long)age;
		break;
	}
	case FIELD_MX: {
		const char *why;

		if (!mx_pattern_valid(v, &why)) {
			diag(st, lineno, POLICY_DIAG_ERROR, "mx: '%s' is not a valid pattern: %s",
			    shown(v, sbuf, sizeof(sbuf)), why);
			break;
		}
		/* The name meant is unambiguous, and refusing the policy would
		 * turn MTA-STS off for the domain: match it without the dot. */
		if (v[strlen(v) - 1] == '.')
			diag_tolerated(st, lineno, "mx: '%s' has a trailing dot, which the grammar (an "
			    "RFC 5321 domain) does not allow; stsproxy matches it without the dot, "
			    "stricter senders reject the policy", v);
		if (v[0] == '*' && strchr(v + 2, '.') == NULL)
			diag(st, lineno, POLICY_DIAG_WARNING,
			    "mx: '%s' covers every host under a top-level domain", v);
		strlist_add(&pol->mx, v);
		break;
	}
	default:
		break;
	}
	free(v);
}

struct sts_policy *
sts_policy_parse(const char *buf, size_t len, size_t max_len, struct policy_diags *diags,
    char **reason)
{
	struct parse_state st = { .diags = diags };
	struct sts_policy *pol = xcalloc(1, sizeof(*pol));
	size_t content_end;
	int lineno = 0;

	pol->mode = STS_MODE_NONE;
	if (reason != NULL)
		*reason = NULL;
	if (len > max_len) {
		diag(&st, 0, POLICY_DIAG_ERROR, "policy is %zu bytes, more than the limit of %zu",
		    len, max_len);
		goto out;
	}
	/* Editors on Windows save "UTF-8 with BOM". */
	if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
		diag_tolerated(&st, 1, "UTF-8 byte order mark before the first field, which the "
		    "grammar does not allow; stsproxy skips it, stricter senders reject the policy");
		buf += 3;
		len -= 3;
	}
	if (len == 0) {
		diag(&st, 0, POLICY_DIAG_ERROR, "policy is empty");
		goto out;
	}
	/* Where the last line with something on it ends: blank lines after it
	 * are the common case (an editor's extra newline) and get their own words. */
	for (content_end = len; content_end > 0; content_end--) {
		char c = buf[content_end - 1];

		if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			break;
	}
	for (size_t pos = 0; pos < len;) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - line) : len - pos;
		size_t next = pos + ll + 1;

		lineno++;
		/* LF or CRLF, mixed freely (STS-22); a CR is a line break only
		 * right before LF (sts-policy-term = LF / CRLF). */
		if (nl != NULL && ll > 0 && line[ll - 1] == '\r')
			ll--;
		if (memchr(line, '\r', ll) != NULL || memchr(line, '\0', ll) != NULL) {
			diag(&st, lineno, POLICY_DIAG_ERROR, "stray CR or NUL byte (a line ends with LF "
			    "or CRLF; a CR alone is not a line break)");
		} else if (is_blank_line(line, ll)) {
			diag_tolerated(&st, lineno, "blank line%s, which the format does not have; "
			    "stsproxy skips it, stricter senders reject the policy",
			    pos >= content_end ? " at the end" : "");
		} else if (line[0] == '#') {
			diag_tolerated(&st, lineno, "'#' comment line, which the format does not have; "
			    "stsproxy skips it, stricter senders reject the policy");
		} else {
			char *copy = xstrndup(line, ll);

			if (ll > STS_POLICY_LONG_LINE)
				diag(&st, lineno, POLICY_DIAG_WARNING, "line of %zu bytes: the grammar sets "
				    "no limit, but parsers with a line limit (1024 bytes is common) reject "
				    "the policy", ll);
			strlist_add(&pol->lines, copy);
			free(copy);
			if (st.first_field_line == 0)
				st.first_field_line = lineno;
			parse_line(&st, pol, lineno, line, ll);
		}
		if (nl == NULL)
			diag(&st, lineno, POLICY_DIAG_WARNING, "no line break after the last line");
		pos = next;
	}
	if (st.seen_line[FIELD_VERSION] == 0)
		diag(&st, 0, POLICY_DIAG_ERROR, "required field 'version' is missing");
	else if (st.seen_line[FIELD_VERSION] != st.first_field_line)
		diag(&st, st.seen_line[FIELD_VERSION], POLICY_DIAG_WARNING,
		    "'version' is not the first line; the RFC allows it, some parsers do not");
	if (st.seen_line[FIELD_MODE] == 0)
		diag(&st, 0, POLICY_DIAG_ERROR, "required field 'mode' is missing");
	if (st.seen_line[FIELD_MAX_AGE] == 0)
		diag(&st, 0, POLICY_DIAG_ERROR, "required field 'max_age' is missing");
	if (st.seen_line[FIELD_MODE] != 0 && pol->mode != STS_MODE_NONE && pol->mx.count == 0)
		diag(&st, 0, POLICY_DIAG_ERROR, "mode %s needs at least one 'mx' line",
		    sts_mode_name(pol->mode));
	if (pol->mode == STS_MODE_TESTING && st.seen_line[FIELD_MAX_AGE] != 0 &&
	    pol->max_age < 86400)
		diag(&st, st.seen_line[FIELD_MAX_AGE], POLICY_DIAG_WARNING,
		    "max_age %lu is under a day; senders will fetch the policy very often",
		    pol->max_age);
out:
	if (st.first_error != NULL) {
		if (reason != NULL)
			*reason = st.first_error;
		else
			free(st.first_error);
		sts_policy_free(pol);
		return NULL;
	}
	return pol;
}

void
sts_policy_free(struct sts_policy *policy)
{
	if (policy == NULL)
		return;
	strlist_clear(&policy->mx);
	strlist_clear(&policy->lines);
	free(policy);
}

struct sts_policy *
sts_policy_dup(const struct sts_policy *policy)
{
	struct sts_policy *copy = xcalloc(1, sizeof(*copy));

	copy->mode = policy->mode;
	copy->max_age = policy->max_age;
	strlist_copy(&copy->mx, &policy->mx);
	strlist_copy(&copy->lines, &policy->lines);
	return copy;
}

const char *
sts_mode_name(enum sts_mode mode)
{
	switch (mode) {
	case STS_MODE_NONE: return "none";
	case STS_MODE_TESTING: return "testing";
	case STS_MODE_ENFORCE: return "enforce";
	}
	return "?";
}

int
sts_mode_parse(const char *name)
{
	if (strcmp(name, "enforce") == 0)
		return STS_MODE_ENFORCE;
	if (strcmp(name, "testing") == 0)
		return STS_MODE_TESTING;
	if (strcmp(name, "none") == 0)
		return STS_MODE_NONE;
	return -1;
}

void
policy_diags_clear(struct policy_diags *diags)
{
	for (size_t i = 0; i < diags->count; i++)
		free(diags->items[i].message);
	free(diags->items);
	diags->items = NULL;
	diags->count = 0;
}

size_t
policy_diags_count(const struct policy_diags *diags, enum policy_diag_severity severity)
{
	size_t n = 0;

	for (size_t i = 0; i < diags->count; i++)
		if (diags->items[i].severity == severity)
			n++;
	return n;
}

size_t
policy_diags_tolerated(const struct policy_diags *diags)
{
	size_t n = 0;

	for (size_t i = 0; i < diags->count; i++)
		if (diags->items[i].severity == POLICY_DIAG_ERROR && diags->items[i].tolerated)
			n++;
	return n;
}

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
};

static void
diag(struct parse_state *st, int line, enum policy_diag_severity sev, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
diag(struct parse_state *st, int line, enum policy_diag_severity sev, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (sev == POLICY_DIAG_ERROR && st->first_error == NULL)
		st->first_error = line > 0 ? xasprintf("line %d: %s", line, msg) : xstrdup(msg);
	if (st->diags != NULL) {
		struct policy_diags *d = st->diags;

		d->items = xrealloc(d->items, (d->count + 1) * sizeof(*d->items));
		d->items[d->count].line = line;
		d->items[d->count].severity = sev;
		d->items[d->count].message = msg;
		d->count++;
	} else {
		free(msg);
	}
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
	char *v;

	if (len == 0) {
		diag(st, lineno, POLICY_DIAG_ERROR, "empty line");
		return;
	}
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
			diag(st, lineno, POLICY_DIAG_ERROR, "version: '%s' is not STSv1", v);
		break;
	case FIELD_MODE: {
		int m = sts_mode_parse(v);

		if (m < 0)
			diag(st, lineno, POLICY_DIAG_ERROR,
			    "mode: '%s' is not enforce, testing or none (case matters)", v);
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
			diag(st, lineno, POLICY_DIAG_ERROR, "max_age: '%s' is not 1 to 10 digits", v);
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
			diag(st, lineno, POLICY_DIAG_ERROR, "mx: '%s' is not a valid pattern: %s", v, why);
			break;
		}
		if (v[strlen(v) - 1] == '.')
			diag(st, lineno, POLICY_DIAG_WARNING, "mx: '%s' has a trailing dot", v);
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
	int lineno = 0;

	pol->mode = STS_MODE_NONE;
	if (reason != NULL)
		*reason = NULL;
	if (len > max_len) {
		diag(&st, 0, POLICY_DIAG_ERROR, "policy is %zu bytes, more than the limit of %zu",
		    len, max_len);
		goto out;
	}
	if (len == 0) {
		diag(&st, 0, POLICY_DIAG_ERROR, "policy is empty");
		goto out;
	}
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		size_t next = pos + ll + 1;

		lineno++;
		/* LF or CRLF, mixed freely (STS-22). */
		if (ll > 0 && buf[pos + ll - 1] == '\r')
			ll--;
		if (memchr(buf + pos, '\r', ll) != NULL || memchr(buf + pos, '\0', ll) != NULL) {
			diag(&st, lineno, POLICY_DIAG_ERROR, "stray CR or NUL byte");
		} else if (ll > STS_POLICY_MAX_LINE) {
			diag(&st, lineno, POLICY_DIAG_ERROR, "line longer than %d bytes",
			    STS_POLICY_MAX_LINE);
		} else {
			char *copy = xstrndup(buf + pos, ll);

			strlist_add(&pol->lines, copy);
			free(copy);
			parse_line(&st, pol, lineno, buf + pos, ll);
		}
		if (nl == NULL)
			diag(&st, lineno, POLICY_DIAG_WARNING, "no line break after the last line");
		pos = next;
	}
	if (st.seen_line[FIELD_VERSION] == 0)
		diag(&st, 0, POLICY_DIAG_ERROR, "required field 'version' is missing");
	else if (st.seen_line[FIELD_VERSION] != 1)
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

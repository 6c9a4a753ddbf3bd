#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy/tag_value.h"

static bool
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

bool
tag_value_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool
is_name_char(unsigned char c)
{
	return tag_value_is_alnum(c) || c == '_' || c == '-' || c == '.';
}

/* ext-value: %x21-3A / %x3C / %x3E-7E (no space, ';' or '='). */
static bool
is_ext_value_char(unsigned char c)
{
	return (c >= 0x21 && c <= 0x3a) || c == 0x3c || (c >= 0x3e && c <= 0x7e);
}

static void
vformat(char *reason, size_t reason_len, const char *fmt, va_list ap)
{
	if (reason != NULL && reason_len > 0)
		vsnprintf(reason, reason_len, fmt, ap);
}

static void
format(char *reason, size_t reason_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
format(char *reason, size_t reason_len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vformat(reason, reason_len, fmt, ap);
	va_end(ap);
}

bool
tag_value_fail(struct tag_value *tv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vformat(tv->reason, tv->reason_len, fmt, ap);
	va_end(ap);
	return false;
}

size_t
tag_value_offset(const struct tag_value *tv, const void *at)
{
	return (size_t)((const unsigned char *)at - tv->start);
}

bool
tag_value_begin(struct tag_value *tv, const char *rec, size_t len, size_t max_len,
    const char *version, char *reason, size_t reason_len)
{
	size_t vlen = strlen(version);

	tv->start = tv->p = (const unsigned char *)rec;
	tv->end = tv->start + len;
	tv->reason = reason;
	tv->reason_len = reason_len;
	if (len > max_len)
		return tag_value_fail(tv, "record longer than %zu bytes", max_len);
	if (len < vlen || memcmp(rec, version, vlen) != 0)
		return tag_value_fail(tv, "record does not start with %s", version);
	tv->p += vlen;
	return true;
}

void
tag_value_skip_wsp(struct tag_value *tv)
{
	while (tv->p < tv->end && is_wsp(*tv->p))
		tv->p++;
}

const char *
tag_value_take(struct tag_value *tv, bool (*accept)(unsigned char c), size_t *len)
{
	const unsigned char *from = tv->p;

	while (tv->p < tv->end && accept(*tv->p))
		tv->p++;
	*len = (size_t)(tv->p - from);
	return (const char *)from;
}

bool
tag_value_at_value_end(const struct tag_value *tv)
{
	return tv->p == tv->end || is_wsp(*tv->p) || *tv->p == ';';
}

enum tag_value_step
tag_value_next(struct tag_value *tv, const char **name, size_t *name_len)
{
	const char *n;
	size_t nlen;

	/* delimiter = *WSP ";" *WSP */
	tag_value_skip_wsp(tv);
	if (tv->p == tv->end)
		return TAG_VALUE_END;	/* trailing blanks are tolerated: see docs/policy-engine.md */
	if (*tv->p != ';') {
		tag_value_fail(tv, "expected ';' at offset %zu", tag_value_offset(tv, tv->p));
		return TAG_VALUE_ERROR;
	}
	tv->p++;
	tag_value_skip_wsp(tv);
	if (tv->p == tv->end)
		return TAG_VALUE_END;	/* optional final delimiter */
	if (!tag_value_is_alnum(*tv->p)) {
		tag_value_fail(tv, "bad field name at offset %zu", tag_value_offset(tv, tv->p));
		return TAG_VALUE_ERROR;
	}
	n = tag_value_take(tv, is_name_char, &nlen);
	if (nlen > TAG_VALUE_MAX_NAME) {
		tag_value_fail(tv, "field name longer than %d at offset %zu", TAG_VALUE_MAX_NAME,
		    tag_value_offset(tv, n));
		return TAG_VALUE_ERROR;
	}
	if (tv->p == tv->end || *tv->p != '=') {
		tag_value_fail(tv, "expected '=' at offset %zu", tag_value_offset(tv, tv->p));
		return TAG_VALUE_ERROR;
	}
	tv->p++;
	*name = n;
	*name_len = nlen;
	return TAG_VALUE_FIELD;
}

bool
tag_value_skip_extension(struct tag_value *tv)
{
	size_t len;
	const char *value = tag_value_take(tv, is_ext_value_char, &len);

	if (len == 0)
		return tag_value_fail(tv, "empty extension value at offset %zu",
		    tag_value_offset(tv, value));
	return true;
}

bool
tag_value_parse(const char *rec, size_t len, size_t max_len, const char *version,
    const char *required,
    enum tag_value_field (*field)(void *arg, struct tag_value *tv, const char *name,
    size_t name_len), void *arg, char *reason, size_t reason_len)
{
	struct tag_value tv;
	enum tag_value_step step;
	const char *name;
	size_t nlen;
	bool seen = false;

	if (!tag_value_begin(&tv, rec, len, max_len, version, reason, reason_len))
		return false;
	while ((step = tag_value_next(&tv, &name, &nlen)) == TAG_VALUE_FIELD) {
		switch (field(arg, &tv, name, nlen)) {
		case TAG_VALUE_KNOWN:
			if (nlen == strlen(required) && memcmp(name, required, nlen) == 0)
				seen = true;
			break;
		case TAG_VALUE_EXTENSION:
			if (!tag_value_skip_extension(&tv))
				return false;
			break;
		case TAG_VALUE_BAD:
			return false;
		}
	}
	if (step == TAG_VALUE_ERROR)
		return false;
	if (!seen)
		return tag_value_fail(&tv, "required field %s is missing", required);
	return true;
}

/* A record "begins with the version field" when the version is followed
 * by a delimiter or the end; this keeps "v=STSv10" and "v=STSv1x" out
 * (STS-11). */
static bool
is_candidate(const char *rec, size_t len, const char *version)
{
	size_t vlen = strlen(version);

	if (len < vlen || memcmp(rec, version, vlen) != 0)
		return false;
	return len == vlen || rec[vlen] == ';' || is_wsp((unsigned char)rec[vlen]);
}

size_t
tag_value_select(const char *const *records, const size_t *lens, size_t count,
    const char *version, size_t *which, char *reason, size_t reason_len)
{
	size_t candidates = 0;

	*which = 0;
	for (size_t i = 0; i < count; i++)
		if (is_candidate(records[i], lens[i], version)) {
			candidates++;
			*which = i;
		}
	if (candidates == 0)
		format(reason, reason_len, "no TXT record starts with %s", version);
	else if (candidates > 1)
		format(reason, reason_len, "%zu TXT records start with %s; exactly one is required",
		    candidates, version);
	return candidates;
}

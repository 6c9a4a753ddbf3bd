#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy/sts_record.h"

#define STS_VERSION_FIELD "v=STSv1"

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* sts-ext-value: %x21-3A / %x3C / %x3E-7E (no space, ';' or '='). */
static bool
is_ext_value_char(unsigned char c)
{
	return (c >= 0x21 && c <= 0x3a) || c == 0x3c || (c >= 0x3e && c <= 0x7e);
}

static bool
fail(char *reason, size_t reason_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool
fail(char *reason, size_t reason_len, const char *fmt, ...)
{
	va_list ap;

	if (reason_len > 0) {
		va_start(ap, fmt);
		vsnprintf(reason, reason_len, fmt, ap);
		va_end(ap);
	}
	return false;
}

bool
sts_record_parse(const char *rec, size_t len, char id[STS_ID_MAX_LEN + 1],
    char *reason, size_t reason_len)
{
	const unsigned char *p = (const unsigned char *)rec, *end = p + len;
	size_t vlen = strlen(STS_VERSION_FIELD), nfields = 0;
	bool have_id = false;

	if (len > STS_RECORD_MAX_LEN)
		return fail(reason, reason_len, "record longer than %d bytes", STS_RECORD_MAX_LEN);
	if (len < vlen || memcmp(p, STS_VERSION_FIELD, vlen) != 0)
		return fail(reason, reason_len, "record does not start with v=STSv1");
	p += vlen;
	for (;;) {
		const unsigned char *name, *value;
		size_t nlen, vl;

		/* sts-field-delim = *WSP ";" *WSP */
		while (p < end && is_wsp(*p))
			p++;
		if (p == end)
			break;	/* trailing blanks are tolerated: see docs/policy-engine.md */
		if (*p != ';')
			return fail(reason, reason_len, "expected ';' at offset %zu",
			    (size_t)(p - (const unsigned char *)rec));
		p++;
		while (p < end && is_wsp(*p))
			p++;
		if (p == end)
			break;	/* optional final delimiter */

		/* field name: ALPHA/DIGIT then up to 31 of ALPHA/DIGIT/"_"/"-"/"." */
		name = p;
		if (!is_alnum(*p))
			return fail(reason, reason_len, "bad field name at offset %zu",
			    (size_t)(p - (const unsigned char *)rec));
		while (p < end && (is_alnum(*p) || *p == '_' || *p == '-' || *p == '.'))
			p++;
		nlen = (size_t)(p - name);
		if (nlen > 32)
			return fail(reason, reason_len, "field name longer than 32 at offset %zu",
			    (size_t)(name - (const unsigned char *)rec));
		if (p == end || *p != '=')
			return fail(reason, reason_len, "expected '=' at offset %zu",
			    (size_t)(p - (const unsigned char *)rec));
		p++;
		value = p;
		if (nlen == 2 && memcmp(name, "id", 2) == 0) {
			while (p < end && is_alnum(*p))
				p++;
			vl = (size_t)(p - value);
			if (vl == 0 || vl > STS_ID_MAX_LEN)
				return fail(reason, reason_len,
				    "id must be 1 to 32 letters or digits (offset %zu)",
				    (size_t)(value - (const unsigned char *)rec));
			if (p < end && !is_wsp(*p) && *p != ';')
				return fail(reason, reason_len,
				    "id must be 1 to 32 letters or digits (offset %zu)",
				    (size_t)(value - (const unsigned char *)rec));
			/* A repeated id is ignored: the first one wins (STS-5). */
			if (!have_id) {
				memcpy(id, value, vl);
				id[vl] = '\0';
				have_id = true;
			}
		} else {
			while (p < end && is_ext_value_char(*p))
				p++;
			if (p == value)
				return fail(reason, reason_len, "empty extension value at offset %zu",
				    (size_t)(value - (const unsigned char *)rec));
		}
		nfields++;
	}
	if (nfields == 0 || !have_id)
		return fail(reason, reason_len, "required field id is missing");
	return true;
}

/* A record "begins with the version field" when v=STSv1 is followed by a
 * delimiter or the end; this keeps "v=STSv10" and "v=STSv1x" out (STS-11). */
static bool
is_candidate(const char *rec, size_t len)
{
	size_t vlen = strlen(STS_VERSION_FIELD);

	if (len < vlen || memcmp(rec, STS_VERSION_FIELD, vlen) != 0)
		return false;
	return len == vlen || rec[vlen] == ';' || is_wsp((unsigned char)rec[vlen]);
}

void
sts_record_select(const char *const *records, const size_t *lens, size_t count,
    struct sts_record_result *out)
{
	size_t candidates = 0, which = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < count; i++)
		if (is_candidate(records[i], lens[i])) {
			candidates++;
			which = i;
		}
	if (candidates == 0) {
		out->status = STS_RECORD_ABSENT;
		snprintf(out->reason, sizeof(out->reason), "no TXT record starts with v=STSv1");
		return;
	}
	if (candidates > 1) {
		out->status = STS_RECORD_MULTIPLE;
		snprintf(out->reason, sizeof(out->reason),
		    "%zu TXT records start with v=STSv1; exactly one is required", candidates);
		return;
	}
	if (!sts_record_parse(records[which], lens[which], out->id, out->reason,
	    sizeof(out->reason))) {
		out->status = STS_RECORD_INVALID;
		return;
	}
	out->status = STS_RECORD_VALID;
}

const char *
sts_record_status_name(enum sts_record_status status)
{
	switch (status) {
	case STS_RECORD_VALID: return "valid";
	case STS_RECORD_ABSENT: return "absent";
	case STS_RECORD_MULTIPLE: return "multiple";
	case STS_RECORD_INVALID: return "invalid";
	}
	return "?";
}

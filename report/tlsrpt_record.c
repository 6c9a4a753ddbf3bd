#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "report/tlsrpt_record.h"

#define TLSRPT_VERSION_FIELD "v=TLSRPTv1"

static bool
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* tlsrpt-ext-value: %x21-3A / %x3C / %x3E-7E */
static bool
is_ext_value_char(unsigned char c)
{
	return (c >= 0x21 && c <= 0x3a) || c == 0x3c || (c >= 0x3e && c <= 0x7e);
}

/* A URI character here: visible ASCII except the separators that RPT-2
 * requires to be percent-encoded inside a URI. */
static bool
is_uri_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != ',' && c != ';' && c != '!';
}

static bool
fail(char *reason, size_t reason_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

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

/* Check one URI (len bytes at u); keep it when its scheme is usable. */
static bool
take_uri(const unsigned char *u, size_t len, struct strlist *rua, unsigned *skipped,
    char *reason, size_t reason_len)
{
	char buf[TLSRPT_RECORD_MAX_LEN + 1];
	const char *colon;

	for (size_t i = 0; i < len; i++) {
		if (u[i] == '%' && (i + 2 >= len || !isxdigit(u[i + 1]) || !isxdigit(u[i + 2])))
			return fail(reason, reason_len, "bad percent-encoding in rua URI");
	}
	memcpy(buf, u, len);
	buf[len] = '\0';
	colon = strchr(buf, ':');
	if (colon == NULL || colon == buf)
		return fail(reason, reason_len, "rua value '%.40s' is not a URI", buf);
	for (const char *p = buf; p < colon; p++)
		if (!(isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.'))
			return fail(reason, reason_len, "rua value '%.40s' is not a URI", buf);
	if (strncasecmp(buf, "https://", 8) == 0 && len > 8) {
		if (rua->count < TLSRPT_MAX_RUA)
			strlist_add(rua, buf);
	} else if (strncasecmp(buf, "mailto:", 7) == 0) {
		char addr[320];

		/* An unusable address loses that destination, not the others. */
		if (tlsrpt_mailto_address(buf, addr, sizeof(addr)) < 0)
			(*skipped)++;
		else if (rua->count < TLSRPT_MAX_RUA)
			strlist_add(rua, buf);
	} else {
		/* RPT-3: only mailto and https; skip, but keep the record. */
		(*skipped)++;
	}
	return true;
}

bool
tlsrpt_record_parse(const char *rec, size_t len, struct strlist *rua, unsigned *skipped,
    char *reason, size_t reason_len)
{
	const unsigned char *p = (const unsigned char *)rec, *end = p + len;
	size_t vlen = strlen(TLSRPT_VERSION_FIELD);
	bool have_rua = false;
	size_t nfields = 0;

	*skipped = 0;
	if (len > TLSRPT_RECORD_MAX_LEN)
		return fail(reason, reason_len, "record longer than %d bytes", TLSRPT_RECORD_MAX_LEN);
	if (len < vlen || memcmp(p, TLSRPT_VERSION_FIELD, vlen) != 0)
		return fail(reason, reason_len, "record does not start with v=TLSRPTv1");
	p += vlen;
	for (;;) {
		const unsigned char *name, *value;
		size_t nlen;

		while (p < end && is_wsp(*p))
			p++;
		if (p == end)
			break;
		if (*p != ';')
			return fail(reason, reason_len, "expected ';' at offset %zu",
			    (size_t)(p - (const unsigned char *)rec));
		p++;
		while (p < end && is_wsp(*p))
			p++;
		if (p == end)
			break;	/* optional final delimiter */
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
		if (nlen == 3 && memcmp(name, "rua", 3) == 0) {
			if (have_rua)
				return fail(reason, reason_len, "rua appears twice");
			have_rua = true;
			/* tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri) */
			for (;;) {
				const unsigned char *u = p;

				while (p < end && is_uri_char(*p))
					p++;
				if (p == u)
					return fail(reason, reason_len, "empty rua URI at offset %zu",
					    (size_t)(u - (const unsigned char *)rec));
				if (!take_uri(u, (size_t)(p - u), rua, skipped, reason, reason_len))
					return false;
				{
					const unsigned char *q = p;

					while (q < end && is_wsp(*q))
						q++;
					if (q < end && *q == ',') {
						q++;
						while (q < end && is_wsp(*q))
							q++;
						p = q;
						continue;
					}
				}
				break;
			}
			if (p < end && *p == '!')
				return fail(reason, reason_len, "'!' must be percent-encoded in a rua URI");
		} else {
			while (p < end && is_ext_value_char(*p))
				p++;
			if (p == value)
				return fail(reason, reason_len, "empty extension value at offset %zu",
				    (size_t)(value - (const unsigned char *)rec));
		}
		nfields++;
	}
	if (nfields == 0 || !have_rua)
		return fail(reason, reason_len, "required field rua is missing");
	return true;
}

static bool
is_candidate(const char *rec, size_t len)
{
	size_t vlen = strlen(TLSRPT_VERSION_FIELD);

	if (len < vlen || memcmp(rec, TLSRPT_VERSION_FIELD, vlen) != 0)
		return false;
	return len == vlen || rec[vlen] == ';' || is_wsp((unsigned char)rec[vlen]);
}

void
tlsrpt_record_select(const char *const *records, const size_t *lens, size_t count,
    struct tlsrpt_record_result *out)
{
	size_t candidates = 0, which = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < count; i++)
		if (is_candidate(records[i], lens[i])) {
			candidates++;
			which = i;
		}
	if (candidates == 0) {
		out->status = TLSRPT_RECORD_ABSENT;
		snprintf(out->reason, sizeof(out->reason), "no TXT record starts with v=TLSRPTv1");
		return;
	}
	if (candidates > 1) {
		out->status = TLSRPT_RECORD_MULTIPLE;
		snprintf(out->reason, sizeof(out->reason),
		    "%zu TXT records start with v=TLSRPTv1; exactly one is required", candidates);
		return;
	}
	if (!tlsrpt_record_parse(records[which], lens[which], &out->rua, &out->skipped,
	    out->reason, sizeof(out->reason))) {
		strlist_clear(&out->rua);
		out->status = TLSRPT_RECORD_INVALID;
		return;
	}
	if (out->rua.count == 0) {
		out->status = TLSRPT_RECORD_INVALID;
		snprintf(out->reason, sizeof(out->reason),
		    "no rua destination uses https: or mailto: (%u skipped)", out->skipped);
		return;
	}
	out->status = TLSRPT_RECORD_VALID;
}

void
tlsrpt_record_result_clear(struct tlsrpt_record_result *r)
{
	strlist_clear(&r->rua);
}

static int
hexval(int c)
{
	return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

int
tlsrpt_mailto_address(const char *uri, char *out, size_t out_len)
{
	const char *p = uri + strlen("mailto:");
	size_t o = 0, at = 0;
	unsigned ats = 0;

	if (strncasecmp(uri, "mailto:", 7) != 0)
		return -1;
	for (; *p && *p != '?'; p++) {
		int c = (unsigned char)*p;

		if (c == '%') {
			if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
				return -1;
			c = hexval((unsigned char)p[1]) * 16 + hexval((unsigned char)p[2]);
			p += 2;
		}
		/* One address only: a decoded ',' would make it a list. */
		if (c <= 0x20 || c >= 0x7f || c == ',' || c == '<' || c == '>' || c == '"')
			return -1;
		if (c == '@') {
			ats++;
			at = o;
		}
		if (o + 1 >= out_len)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	if (ats != 1 || at == 0 || at + 1 >= o)
		return -1;
	return 0;
}

const char *
tlsrpt_record_status_name(enum tlsrpt_record_status status)
{
	switch (status) {
	case TLSRPT_RECORD_VALID: return "valid";
	case TLSRPT_RECORD_ABSENT: return "absent";
	case TLSRPT_RECORD_MULTIPLE: return "multiple";
	case TLSRPT_RECORD_INVALID: return "invalid";
	}
	return "?";
}

#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/tag_value.h"
#include "report/tlsrpt_record.h"

#define TLSRPT_VERSION_FIELD "v=TLSRPTv1"

/* A URI character here: visible ASCII except the separators that RPT-2
 * requires to be percent-encoded inside a URI. */
static bool
is_uri_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != ',' && c != ';' && c != '!';
}

/* Check one URI (len bytes at u); keep it when its scheme is usable. */
static bool
take_uri(struct tag_value *tv, const char *u, size_t len, struct strlist *rua, unsigned *skipped)
{
	char buf[TLSRPT_RECORD_MAX_LEN + 1];
	const char *colon;

	for (size_t i = 0; i < len; i++) {
		if (u[i] == '%' && (i + 2 >= len || !isxdigit((unsigned char)u[i + 1]) ||
		    !isxdigit((unsigned char)u[i + 2])))
			return tag_value_fail(tv, "bad percent-encoding in rua URI");
	}
	memcpy(buf, u, len);
	buf[len] = '\0';
	colon = strchr(buf, ':');
	if (colon == NULL || colon == buf)
		return tag_value_fail(tv, "rua value '%.40s' is not a URI", buf);
	for (const char *p = buf; p < colon; p++)
		if (!(isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.'))
			return tag_value_fail(tv, "rua value '%.40s' is not a URI", buf);
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

/* tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri) */
static bool
read_rua(struct tag_value *tv, struct strlist *rua, unsigned *skipped)
{
	for (;;) {
		const unsigned char *after_uri;
		size_t len;
		const char *u = tag_value_take(tv, is_uri_char, &len);

		if (len == 0)
			return tag_value_fail(tv, "empty rua URI at offset %zu", tag_value_offset(tv, u));
		if (!take_uri(tv, u, len, rua, skipped))
			return false;
		after_uri = tv->p;
		tag_value_skip_wsp(tv);
		if (tv->p < tv->end && *tv->p == ',') {
			tv->p++;
			tag_value_skip_wsp(tv);
			continue;
		}
		/* No comma: the blanks belong to the delimiter that follows. */
		tv->p = after_uri;
		break;
	}
	if (tv->p < tv->end && *tv->p == '!')
		return tag_value_fail(tv, "'!' must be percent-encoded in a rua URI");
	return true;
}

struct tlsrpt_fields {
	struct strlist	*rua;
	unsigned	*skipped;
	bool		 have_rua;
};

static enum tag_value_field
tlsrpt_field(void *arg, struct tag_value *tv, const char *name, size_t name_len)
{
	struct tlsrpt_fields *f = arg;

	if (name_len != 3 || memcmp(name, "rua", 3) != 0)
		return TAG_VALUE_EXTENSION;
	if (f->have_rua) {
		tag_value_fail(tv, "rua appears twice");
		return TAG_VALUE_BAD;
	}
	f->have_rua = true;
	return read_rua(tv, f->rua, f->skipped) ? TAG_VALUE_KNOWN : TAG_VALUE_BAD;
}

bool
tlsrpt_record_parse(const char *rec, size_t len, struct strlist *rua, unsigned *skipped,
    char *reason, size_t reason_len)
{
	struct tlsrpt_fields f = { rua, skipped, false };

	*skipped = 0;
	return tag_value_parse(rec, len, TLSRPT_RECORD_MAX_LEN, TLSRPT_VERSION_FIELD, "rua",
	    tlsrpt_field, &f, reason, reason_len);
}

void
tlsrpt_record_select(const char *const *records, const size_t *lens, size_t count,
    struct tlsrpt_record_result *out)
{
	size_t which, candidates;

	memset(out, 0, sizeof(*out));
	candidates = tag_value_select(records, lens, count, TLSRPT_VERSION_FIELD, &which,
	    out->reason, sizeof(out->reason));
	if (candidates != 1) {
		out->status = candidates == 0 ? TLSRPT_RECORD_ABSENT : TLSRPT_RECORD_MULTIPLE;
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

/*
 * rpt_read.c - decode and validate TLS-RPT reports as received.
 *
 * Three layers over untrusted bytes, each bounded:
 *   the input:  gzip magic -> gunzip; '{' -> JSON; otherwise a message;
 *   a message:  headers, then (multipart) the parts between boundary
 *               lines, nested at most RPT_READ_MAX_DEPTH deep; a report
 *               part is application/tlsrpt+gzip or +json (or a gzip/JSON
 *               attachment named *.json[.gz]) in base64, quoted-printable
 *               or plain;
 *   a report:   strict I-JSON (no duplicate names, no NUL), then the
 *               RFC 8460 section 4 rules.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "policy/result_type.h"
#include "report/rpt_read.h"

#define HEADER_BLOCK_MAX	(256 * 1024)	/* bytes of one header block */
#define HEADER_VALUE_MAX	4096		/* bytes of one unfolded header */
#define BOUNDARY_MAX		200		/* RFC 2046 says 70 */

/* ---- documents ---------------------------------------------------------- */

static struct rpt_doc *
doc_add(struct rpt_docs *out, const char *where)
{
	struct rpt_doc *d;

	out->items = xrealloc(out->items, (out->count + 1) * sizeof(*out->items));
	d = &out->items[out->count++];
	memset(d, 0, sizeof(*d));
	d->where = xstrdup(where);
	return d;
}

static void
doc_error(struct rpt_doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
doc_error(struct rpt_doc *d, const char *fmt, ...)
{
	va_list ap;

	free(d->error);
	va_start(ap, fmt);
	d->error = xvasprintf(fmt, ap);
	va_end(ap);
}

void
rpt_docs_clear(struct rpt_docs *docs)
{
	for (size_t i = 0; i < docs->count; i++) {
		free(docs->items[i].where);
		free(docs->items[i].error);
		json_decref(docs->items[i].report);
		strlist_clear(&docs->items[i].warnings);
	}
	free(docs->items);
	docs->items = NULL;
	docs->count = 0;
}

static void
warn(struct strlist *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
warn(struct strlist *w, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (w == NULL)
		return;
	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	strlist_add(w, s);
	free(s);
}

/* ---- gzip ------------------------------------------------------------------ */

int
rpt_gunzip(const void *in, size_t len, size_t max, struct strbuf *out, char *why, size_t why_len)
{
	z_stream z;
	unsigned char buf[16384];
	int rc;

	memset(&z, 0, sizeof(z));
	/* 15 + 16: the gzip wrapper only (RFC 1952), as RPT-12 says. */
	if (inflateInit2(&z, 15 + 16) != Z_OK) {
		snprintf(why, why_len, "cannot start gunzip");
		return -1;
	}
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)(len > UINT32_MAX ? UINT32_MAX : len);
	do {
		z.next_out = buf;
		z.avail_out = sizeof(buf);
		rc = inflate(&z, Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END) {
			snprintf(why, why_len, "gzip data %s", rc == Z_BUF_ERROR ? "truncated" :
			    z.msg ? z.msg : "corrupt");
			inflateEnd(&z);
			return -1;
		}
		if (out->len + (sizeof(buf) - z.avail_out) > max) {
			/* A zip bomb, or just too big: stop before holding it. */
			snprintf(why, why_len, "decompresses to more than %zu bytes", max);
			inflateEnd(&z);
			return -1;
		}
		strbuf_append(out, (const char *)buf, sizeof(buf) - z.avail_out);
	} while (rc != Z_STREAM_END);
	if (z.avail_in != 0 || len > UINT32_MAX) {
		snprintf(why, why_len, "data after the end of the gzip stream");
		inflateEnd(&z);
		return -1;
	}
	inflateEnd(&z);
	return 0;
}

/* ---- RFC 3339 ---------------------------------------------------------------- */

static bool
digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

bool
rpt_parse_datetime(const char *s, time_t *out)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, oh, om, sign;
	const char *p;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	/* date-time = full-date "T" full-time (RFC 3339 section 5.6) */
	if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
	    s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
	    !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !digits(s + 17, 2, &sec))
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return false;
	p = s + 19;
	if (*p == '.') {
		if (!isdigit((unsigned char)p[1]))
			return false;
		for (p++; isdigit((unsigned char)*p); p++)
			;
	}
	if (*p == 'Z' || *p == 'z') {
		sign = 0;
		oh = om = 0;
		p++;
	} else if ((*p == '+' || *p == '-') && digits(p + 1, 2, &oh) && p[3] == ':' &&
	    digits(p + 4, 2, &om) && oh <= 23 && om <= 59) {
		sign = *p == '+' ? 1 : -1;
		p += 6;
	} else
		return false;
	if (*p != '\0')
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec == 60 ? 59 : sec;	/* a leap second counts as :59 */
	*out = timegm(&tm) - (time_t)sign * (oh * 3600 + om * 60);
	return true;
}

/* ---- RFC 8460 section 4 -------------------------------------------------------- */

struct vctx {
	struct strlist	*warnings;
	char		*why;
	size_t		 why_len;
};

static bool
vfail(struct vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool
vfail(struct vctx *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->why, v->why_len, fmt, ap);
	va_end(ap);
	return false;
}

/* A required non-empty string member. */
static bool
need_string(struct vctx *v, const json_t *o, const char *key, const char *path)
{
	const json_t *m = json_object_get(o, key);

	if (m == NULL)
		return vfail(v, "%s%s is missing", path, key);
	if (!json_is_string(m) || json_string_length(m) == 0)
		return vfail(v, "%s%s is not a non-empty string", path, key);
	return true;
}

/* An optional string member: absent is fine, another type is not. */
static bool
may_string(struct vctx *v, const json_t *o, const char *key, const char *path)
{
	const json_t *m = json_object_get(o, key);

	if (m != NULL && !json_is_string(m))
		return vfail(v, "%s%s is not a string", path, key);
	return true;
}

static bool
need_count(struct vctx *v, const json_t *o, const char *key, const char *path)
{
	const json_t *m = json_object_get(o, key);

	if (m == NULL)
		return vfail(v, "%s%s is missing", path, key);
	if (!json_is_integer(m) || json_integer_value(m) < 0)
		return vfail(v, "%s%s is not a non-negative integer", path, key);
	return true;
}

static bool
is_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static bool
is_a_label_domain(const char *s)
{
	if (*s == '\0')
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
			return false;
	return true;
}

static bool
validate_detail(struct vctx *v, const json_t *d, const char *path)
{
	const char *type;
	const char *ip_keys[] = { "sending-mta-ip", "receiving-ip" };

	if (!json_is_object(d))
		return vfail(v, "%s is not an object", path);
	if (!need_string(v, d, "result-type", path) ||
	    !need_count(v, d, "failed-session-count", path))
		return false;
	for (size_t i = 0; i < 2; i++) {
		const json_t *ip = json_object_get(d, ip_keys[i]);

		if (!may_string(v, d, ip_keys[i], path))
			return false;
		if (ip != NULL && !is_ip(json_string_value(ip)))
			warn(v->warnings, "%s%s \"%.64s\" is not an IPv4 or IPv6 address", path,
			    ip_keys[i], json_string_value(ip));
	}
	if (!may_string(v, d, "receiving-mx-hostname", path) ||
	    !may_string(v, d, "receiving-mx-helo", path) ||
	    !may_string(v, d, "additional-information", path) ||
	    !may_string(v, d, "failure-reason-code", path))
		return false;
	type = json_string_value(json_object_get(d, "result-type"));
	if (rpt_result_type_parse(type) <= RPT_RESULT_NONE)
		warn(v->warnings, "%sresult-type \"%.64s\" is not in the RFC 8460 registry", path,
		    type);
	return true;
}

static bool
validate_policy(struct vctx *v, const json_t *p, size_t idx)
{
	char path[96];
	const json_t *pol, *sum, *details, *mx, *ps;
	const char *type;

	snprintf(path, sizeof(path), "policies[%zu]", idx);
	if (!json_is_object(p))
		return vfail(v, "%s is not an object", path);
	pol = json_object_get(p, "policy");
	if (pol == NULL)
		return vfail(v, "%s.policy is missing", path);
	if (!json_is_object(pol))
		return vfail(v, "%s.policy is not an object", path);
	snprintf(path, sizeof(path), "policies[%zu].policy.", idx);
	if (!need_string(v, pol, "policy-type", path) || !need_string(v, pol, "policy-domain", path))
		return false;
	type = json_string_value(json_object_get(pol, "policy-type"));
	if (strcmp(type, "sts") != 0 && strcmp(type, "tlsa") != 0 &&
	    strcmp(type, "no-policy-found") != 0)
		warn(v->warnings, "%spolicy-type \"%.32s\" is not sts, tlsa or no-policy-found", path,
		    type);
	if (!is_a_label_domain(json_string_value(json_object_get(pol, "policy-domain"))))
		warn(v->warnings, "%spolicy-domain is not an A-label domain name", path);
	ps = json_object_get(pol, "policy-string");
	if (ps != NULL) {
		size_t i;
		const json_t *s;

		if (!json_is_array(ps))
			return vfail(v, "%spolicy-string is not an array", path);
		json_array_foreach(ps, i, s)
			if (!json_is_string(s))
				return vfail(v, "%spolicy-string[%zu] is not a string", path, i);
	}
	mx = json_object_get(pol, "mx-host");
	if (mx != NULL) {
		size_t i;
		const json_t *s;

		if (json_is_string(mx)) {
			/* The RFC's own example before erratum 6241. */
			warn(v->warnings, "%smx-host is a string, not an array (RFC 8460 erratum 6241)",
			    path);
		} else if (!json_is_array(mx)) {
			return vfail(v, "%smx-host is not an array", path);
		} else {
			json_array_foreach(mx, i, s)
				if (!json_is_string(s))
					return vfail(v, "%smx-host[%zu] is not a string", path, i);
		}
	}
	snprintf(path, sizeof(path), "policies[%zu]", idx);
	sum = json_object_get(p, "summary");
	if (sum == NULL)
		return vfail(v, "%s.summary is missing", path);
	if (!json_is_object(sum))
		return vfail(v, "%s.summary is not an object", path);
	snprintf(path, sizeof(path), "policies[%zu].summary.", idx);
	if (!need_count(v, sum, "total-successful-session-count", path) ||
	    !need_count(v, sum, "total-failure-session-count", path))
		return false;
	details = json_object_get(p, "failure-details");
	if (details != NULL) {
		size_t i;
		const json_t *d;

		if (!json_is_array(details))
			return vfail(v, "policies[%zu].failure-details is not an array", idx);
		json_array_foreach(details, i, d) {
			snprintf(path, sizeof(path), "policies[%zu].failure-details[%zu]", idx, i);
			if (!json_is_object(d))
				return vfail(v, "%s is not an object", path);
			strncat(path, ".", sizeof(path) - strlen(path) - 1);
			if (!validate_detail(v, d, path))
				return false;
		}
	}
	return true;
}

bool
rpt_report_validate(const json_t *r, struct strlist *warnings, char *why, size_t why_len)
{
	struct vctx v = { warnings, why, why_len };
	const json_t *range, *policies, *p;
	const char *contact;
	time_t start, end;
	size_t i;

	if (!json_is_object(r))
		return vfail(&v, "the report is not a JSON object");
	if (!need_string(&v, r, "organization-name", "") || !need_string(&v, r, "contact-info", "") ||
	    !need_string(&v, r, "report-id", ""))
		return false;
	range = json_object_get(r, "date-range");
	if (range == NULL)
		return vfail(&v, "date-range is missing");
	if (!json_is_object(range))
		return vfail(&v, "date-range is not an object");
	if (!need_string(&v, range, "start-datetime", "date-range.") ||
	    !need_string(&v, range, "end-datetime", "date-range."))
		return false;
	if (!rpt_parse_datetime(json_string_value(json_object_get(range, "start-datetime")), &start))
		return vfail(&v, "date-range.start-datetime is not an RFC 3339 date-time");
	if (!rpt_parse_datetime(json_string_value(json_object_get(range, "end-datetime")), &end))
		return vfail(&v, "date-range.end-datetime is not an RFC 3339 date-time");
	if (end <= start)
		return vfail(&v, "date-range ends before it starts");
	/* RPT-10: one UTC day, 00:00 to 24:00 (end 23:59:59 is common). */
	if (end - start > 86400 + 3600)
		warn(warnings, "date-range covers %.1f days; reports should cover one (RPT-10)",
		    (double)(end - start) / 86400);
	contact = json_string_value(json_object_get(r, "contact-info"));
	if (strchr(contact, '@') == NULL && strncasecmp(contact, "http", 4) != 0)
		warn(warnings, "contact-info \"%.64s\" is neither a mail address nor a URL", contact);
	policies = json_object_get(r, "policies");
	if (policies == NULL)
		return vfail(&v, "policies is missing");
	if (!json_is_array(policies))
		return vfail(&v, "policies is not an array (RFC 8460 section 4.4, RPT-8)");
	if (json_array_size(policies) == 0)
		return vfail(&v, "policies is empty");
	json_array_foreach(policies, i, p)
		if (!validate_policy(&v, p, i))
			return false;
	return true;
}

/* ---- one JSON document ------------------------------------------------------------ */

static bool
read_json(const char *buf, size_t len, struct rpt_doc *d)
{
	json_error_t err;
	char why[256];
	json_t *r;

	/* I-JSON (RFC 7493, RPT-7): no duplicate member names. */
	r = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
	if (r == NULL) {
		doc_error(d, "not valid JSON: %s (line %d, column %d)", err.text, err.line, err.column);
		return false;
	}
	if (!rpt_report_validate(r, &d->warnings, why, sizeof(why))) {
		doc_error(d, "not an RFC 8460 report: %s", why);
		json_decref(r);
		return false;
	}
	d->report = r;
	return true;
}

static bool
is_gzip(const unsigned char *p, size_t len)
{
	return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

/* Bytes that are a report: gzip or JSON, told by the content. */
static bool
read_payload(const unsigned char *p, size_t len, struct rpt_doc *d)
{
	struct strbuf sb;
	char why[160];
	bool ok;

	if (!is_gzip(p, len))
		return read_json((const char *)p, len, d);
	strbuf_init(&sb);
	if (rpt_gunzip(p, len, RPT_READ_MAX_JSON, &sb, why, sizeof(why)) < 0) {
		doc_error(d, "%s", why);
		strbuf_free(&sb);
		return false;
	}
	ok = read_json(sb.data ? sb.data : "", sb.len, d);
	strbuf_free(&sb);
	return ok;
}

/* ---- MIME, just enough ----------------------------------------------------------- */

struct entity {
	const char	*head;
	size_t		 head_len;
	const char	*body;
	size_t		 body_len;
};

/* Split at the first empty line; a message that starts with one has no headers. */
static bool
split_entity(const char *p, size_t len, struct entity *e)
{
	size_t i = 0;

	e->head = p;
	if (len > 0 && (p[0] == '\n' || (len > 1 && p[0] == '\r' && p[1] == '\n'))) {
		e->head_len = 0;
		e->body = p + (p[0] == '\n' ? 1 : 2);
		e->body_len = len - (size_t)(e->body - p);
		return true;
	}
	for (i = 0; i + 1 < len && i < HEADER_BLOCK_MAX; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n' || (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n')) {
			e->head_len = i + 1;
			e->body = p + i + (p[i + 1] == '\n' ? 2 : 3);
			e->body_len = len - (size_t)(e->body - p);
			return true;
		}
	}
	if (len <= HEADER_BLOCK_MAX) {	/* headers only */
		e->head_len = len;
		e->body = p + len;
		e->body_len = 0;
		return true;
	}
	return false;
}

/*
 * The unfolded value of the first header called name (case-insensitive),
 * blanks trimmed, into out (at most HEADER_VALUE_MAX bytes). false if absent.
 */
static bool
header_get(const struct entity *e, const char *name, struct strbuf *out)
{
	size_t nlen = strlen(name), pos = 0;

	while (pos < e->head_len) {
		const char *line = e->head + pos;
		const char *nl = memchr(line, '\n', e->head_len - pos);
		size_t ll = nl ? (size_t)(nl - line) + 1 : e->head_len - pos;

		if (ll > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			size_t p = pos + nlen + 1;

			/* The value and its continuation lines (starting with a blank). */
			for (;;) {
				const char *l2 = e->head + p;
				const char *nl2 = memchr(l2, '\n', e->head_len - p);
				size_t n = nl2 ? (size_t)(nl2 - l2) : e->head_len - p;

				if (out->len + n + 1 > HEADER_VALUE_MAX)
					n = HEADER_VALUE_MAX > out->len + 1 ? HEADER_VALUE_MAX - out->len - 1 : 0;
				strbuf_append(out, l2, n);
				strbuf_append(out, " ", 1);
				if (nl2 == NULL)
					break;
				p = (size_t)(nl2 - e->head) + 1;
				if (p >= e->head_len || (e->head[p] != ' ' && e->head[p] != '\t'))
					break;
			}
			/* trim blanks and CRs at both ends */
			while (out->len > 0 && isspace((unsigned char)out->data[out->len - 1]))
				out->data[--out->len] = '\0';
			{
				size_t lead = 0;

				while (lead < out->len && isspace((unsigned char)out->data[lead]))
					lead++;
				memmove(out->data, out->data + lead, out->len - lead + 1);
				out->len -= lead;
			}
			for (size_t k = 0; k < out->len; k++)
				if (out->data[k] == '\r' || out->data[k] == '\n' || out->data[k] == '\t')
					out->data[k] = ' ';
			return true;
		}
		pos += ll;
	}
	return false;
}

/* "type/subtype" of a Content-Type value, lower-cased, into out. */
static void
media_type(const char *value, char *out, size_t len)
{
	size_t n = strcspn(value, "; \t");

	if (n >= len)
		n = len - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)value[i]);
	out[n] = '\0';
}

/* The parameter name of a structured header value (name=token or name="quoted"). */
static bool
header_param(const char *value, const char *name, char *out, size_t len)
{
	size_t nlen = strlen(name);
	const char *p = strchr(value, ';');

	while (p != NULL) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, name, nlen) == 0 && (p[nlen] == '=' ||
		    ((p[nlen] == ' ' || p[nlen] == '\t') && strchr(p + nlen, '=') != NULL))) {
			size_t n = 0;

			p += nlen;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p != '=')
				return false;
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '"') {
				for (p++; *p && *p != '"' && n + 1 < len; p++) {
					if (*p == '\\' && p[1] != '\0')
						p++;
					out[n++] = *p;
				}
			} else {
				for (; *p && *p != ';' && *p != ' ' && *p != '\t' && n + 1 < len; p++)
					out[n++] = *p;
			}
			out[n] = '\0';
			return n > 0;
		}
		/* skip a quoted value that may hold ';' */
		while (*p && *p != ';') {
			if (*p == '"') {
				for (p++; *p && *p != '"'; p++)
					if (*p == '\\' && p[1] != '\0')
						p++;
				if (*p == '\0')
					break;
			}
			p++;
		}
		p = *p == ';' ? p : NULL;
	}
	return false;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Content-Transfer-Encoding: base64, quoted-printable, or identity. */
static bool
decode_transfer(const char *cte, const char *in, size_t len, struct strbuf *out, char *why,
    size_t why_len)
{
	if (cte[0] == '\0' || strcasecmp(cte, "7bit") == 0 || strcasecmp(cte, "8bit") == 0 ||
	    strcasecmp(cte, "binary") == 0) {
		strbuf_append(out, in, len);
		return true;
	}
	if (strcasecmp(cte, "base64") == 0) {
		EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
		unsigned char *buf = xmalloc(len / 4 * 3 + 80);
		int n = 0, fin = 0, rc;

		if (ctx == NULL)
			fatalx("EVP_ENCODE_CTX_new failed");
		EVP_DecodeInit(ctx);
		/* EVP_DecodeUpdate skips line breaks and blanks; it takes an int. */
		rc = len > (size_t)INT32_MAX ? -1 :
		    EVP_DecodeUpdate(ctx, buf, &n, (const unsigned char *)in, (int)len);
		if (rc < 0 || EVP_DecodeFinal(ctx, buf + n, &fin) < 0) {
			snprintf(why, why_len, "invalid base64");
			EVP_ENCODE_CTX_free(ctx);
			free(buf);
			return false;
		}
		strbuf_append(out, (const char *)buf, (size_t)(n + fin));
		EVP_ENCODE_CTX_free(ctx);
		free(buf);
		return true;
	}
	if (strcasecmp(cte, "quoted-printable") == 0) {
		for (size_t i = 0; i < len; i++) {
			char c = in[i];

			if (c == '=' && i + 1 < len && (in[i + 1] == '\n' ||
			    (in[i + 1] == '\r' && i + 2 < len && in[i + 2] == '\n'))) {
				i += in[i + 1] == '\n' ? 1 : 2;		/* soft line break */
			} else if (c == '=' && i + 2 < len && hexval(in[i + 1]) >= 0 &&
			    hexval(in[i + 2]) >= 0) {
				char b = (char)(hexval(in[i + 1]) << 4 | hexval(in[i + 2]));

				strbuf_append(out, &b, 1);
				i += 2;
			} else
				strbuf_append(out, &c, 1);
		}
		return true;
	}
	snprintf(why, why_len, "Content-Transfer-Encoding %.40s is not supported", cte);
	return false;
}

struct walk {
	struct rpt_docs	*out;
	unsigned	 parts;
	unsigned	 reports;
	char		 error[200];	/* the first structural problem seen */
};

static void walk_entity(struct walk *w, const char *p, size_t len, int depth);

/* Find "--boundary" at the start of a line, from off. */
static const char *
find_delimiter(const char *body, size_t len, size_t off, const char *delim, size_t dlen)
{
	while (off + dlen <= len) {
		const char *hit = memmem(body + off, len - off, delim, dlen);

		if (hit == NULL)
			return NULL;
		if (hit == body || hit[-1] == '\n')
			return hit;
		off = (size_t)(hit - body) + 1;
	}
	return NULL;
}

static void
walk_multipart(struct walk *w, const struct entity *e, const char *boundary, int depth)
{
	char delim[BOUNDARY_MAX + 3];
	size_t dlen = (size_t)snprintf(delim, sizeof(delim), "--%s", boundary);
	const char *body = e->body, *pos;
	size_t len = e->body_len;

	pos = find_delimiter(body, len, 0, delim, dlen);
	if (pos == NULL) {
		snprintf(w->error, sizeof(w->error), "multipart body without its boundary line");
		return;
	}
	while (pos != NULL) {
		const char *after = pos + dlen, *start, *next, *end;
		const char *limit = body + len;

		if (after + 2 <= limit && after[0] == '-' && after[1] == '-')
			return;		/* the close delimiter */
		start = memchr(after, '\n', (size_t)(limit - after));
		if (start == NULL)
			return;
		start++;
		next = find_delimiter(body, len, (size_t)(start - body), delim, dlen);
		end = next ? next : limit;
		/* the line break before a delimiter belongs to the delimiter */
		if (next != NULL && end > start && end[-1] == '\n')
			end--;
		if (next != NULL && end > start && end[-1] == '\r')
			end--;
		if (++w->parts > RPT_READ_MAX_PARTS) {
			snprintf(w->error, sizeof(w->error), "more than %d MIME parts",
			    RPT_READ_MAX_PARTS);
			return;
		}
		walk_entity(w, start, (size_t)(end - start), depth + 1);
		pos = next;
	}
}

static void
walk_entity(struct walk *w, const char *p, size_t len, int depth)
{
	struct entity e;
	struct strbuf ct, cte, disp;
	char type[128], name[256] = "", boundary[BOUNDARY_MAX + 1];
	bool report_type, named_report;

	if (depth > RPT_READ_MAX_DEPTH) {
		snprintf(w->error, sizeof(w->error), "MIME parts nested more than %d deep",
		    RPT_READ_MAX_DEPTH);
		return;
	}
	if (!split_entity(p, len, &e)) {
		snprintf(w->error, sizeof(w->error), "header block larger than %d bytes",
		    HEADER_BLOCK_MAX);
		return;
	}
	strbuf_init(&ct);
	strbuf_init(&cte);
	strbuf_init(&disp);
	if (!header_get(&e, "Content-Type", &ct))
		strbuf_append(&ct, "text/plain", 10);	/* RFC 2045 section 5.2 */
	(void)header_get(&e, "Content-Transfer-Encoding", &cte);
	(void)header_get(&e, "Content-Disposition", &disp);
	media_type(ct.data, type, sizeof(type));
	if (!header_param(ct.data, "name", name, sizeof(name)) && disp.data != NULL)
		(void)header_param(disp.data, "filename", name, sizeof(name));

	if (strncmp(type, "multipart/", 10) == 0) {
		if (!header_param(ct.data, "boundary", boundary, sizeof(boundary)))
			snprintf(w->error, sizeof(w->error), "%s without a boundary", type);
		else
			walk_multipart(w, &e, boundary, depth);
		goto out;
	}
	if (strcmp(type, "message/rfc822") == 0) {
		walk_entity(w, e.body, e.body_len, depth + 1);
		goto out;
	}
	report_type = strcmp(type, "application/tlsrpt+gzip") == 0 ||
	    strcmp(type, "application/tlsrpt+json") == 0;
	named_report = (strcmp(type, "application/gzip") == 0 ||
	    strcmp(type, "application/x-gzip") == 0 || strcmp(type, "application/json") == 0 ||
	    strcmp(type, "application/octet-stream") == 0) &&
	    (ends_with(name, ".json") || ends_with(name, ".json.gz") || ends_with(name, ".gz"));
	if (report_type || named_report) {
		struct strbuf raw;
		char where[300], why[160];
		struct rpt_doc *d;

		if (w->reports >= RPT_READ_MAX_REPORTS) {
			snprintf(w->error, sizeof(w->error), "more than %d reports in one message",
			    RPT_READ_MAX_REPORTS);
			goto out;
		}
		w->reports++;
		snprintf(where, sizeof(where), "attachment %s", name[0] ? name : type);
		d = doc_add(w->out, where);
		if (named_report)
			warn(&d->warnings, "Content-Type %s: RFC 8460 section 5.3 says application/tlsrpt+gzip or application/tlsrpt+json",
			    type);
		strbuf_init(&raw);
		if (!decode_transfer(cte.data ? cte.data : "", e.body, e.body_len, &raw, why,
		    sizeof(why)))
			doc_error(d, "%s", why);
		else
			(void)read_payload((const unsigned char *)(raw.data ? raw.data : ""), raw.len, d);
		strbuf_free(&raw);
	}
out:
	strbuf_free(&ct);
	strbuf_free(&cte);
	strbuf_free(&disp);
}

static int
read_message(const char *p, size_t len, struct rpt_docs *out)
{
	struct walk w = { .out = out };
	size_t first = out->count;
	struct entity top;
	struct strbuf domain, submitter;
	int valid = 0;

	walk_entity(&w, p, len, 0);
	if (out->count == first) {
		struct rpt_doc *d = doc_add(out, "message");

		doc_error(d, "%s", w.error[0] ? w.error :
		    "no TLS-RPT report in the message (no application/tlsrpt+gzip or +json part)");
		return 0;
	}
	/* RPT-15/RPT-20: the headers name the domain and submitter; the body wins. */
	strbuf_init(&domain);
	strbuf_init(&submitter);
	if (split_entity(p, len, &top)) {
		(void)header_get(&top, "TLS-Report-Domain", &domain);
		(void)header_get(&top, "TLS-Report-Submitter", &submitter);
	}
	for (size_t i = first; i < out->count; i++) {
		struct rpt_doc *d = &out->items[i];
		const json_t *pol;
		size_t k;
		bool named = false;
		const char *contact;

		if (d->report == NULL)
			continue;
		valid++;
		if (domain.len == 0 || submitter.len == 0)
			warn(&d->warnings, "the message lacks the TLS-Report-Domain or TLS-Report-Submitter header (RPT-15)");
		if (domain.len > 0) {
			json_array_foreach(json_object_get(d->report, "policies"), k, pol)
				if (strcasecmp(json_string_value(json_object_get(json_object_get(pol,
				    "policy"), "policy-domain")), domain.data) == 0)
					named = true;
			if (!named)
				warn(&d->warnings, "TLS-Report-Domain %.100s names no policy domain of the report; the report wins (RPT-20)",
				    domain.data);
		}
		contact = json_string_value(json_object_get(d->report, "contact-info"));
		if (submitter.len > 0 && strchr(contact, '@') != NULL &&
		    strcasecmp(strrchr(contact, '@') + 1, submitter.data) != 0)
			warn(&d->warnings, "TLS-Report-Submitter %.100s is not the domain of contact-info (RPT-15)",
			    submitter.data);
	}
	if (w.error[0] != '\0') {
		/* Reports were found, but something else in the message was off. */
		for (size_t i = first; i < out->count; i++)
			warn(&out->items[i].warnings, "message: %s", w.error);
	}
	strbuf_free(&domain);
	strbuf_free(&submitter);
	return valid;
}

int
rpt_read_input(const void *data, size_t len, struct rpt_docs *out)
{
	const unsigned char *p = data;
	size_t i = 0;
	struct rpt_doc *d;

	if (len > RPT_READ_MAX_INPUT) {
		d = doc_add(out, "input");
		doc_error(d, "larger than %u bytes", RPT_READ_MAX_INPUT);
		return 0;
	}
	if (len == 0) {
		d = doc_add(out, "input");
		doc_error(d, "empty");
		return 0;
	}
	if (is_gzip(p, len)) {
		d = doc_add(out, "gzip");
		return read_payload(p, len, d) ? 1 : 0;
	}
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	if (i < len && (p[i] == '{' || p[i] == '[')) {
		d = doc_add(out, "json");
		return read_json((const char *)p, len, d) ? 1 : 0;
	}
	return read_message((const char *)p, len, out);
}

#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "conf/util.h"
#include "proxy/smtp_reply.h"

void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

void
smtp_reply_clear(struct smtp_reply *r)
{
	for (size_t i = 0; i < r->nlines; i++)
		free(r->lines[i]);
	smtp_reply_init(r);
}

/* "d.ddd.ddd" with the class matching the reply code (RFC 3463 §2). */
static size_t
enhanced_len(const char *s, size_t len, int code)
{
	size_t i = 0, part = 0, digits = 0;

	if (len < 5 || s[0] - '0' != code / 100)
		return 0;
	for (; i < len; i++) {
		if (isdigit((unsigned char)s[i])) {
			if (++digits > 3 || (part == 0 && digits > 1))
				return 0;
		} else if (s[i] == '.' && digits > 0 && part < 2) {
			part++;
			digits = 0;
		} else
			break;
	}
	if (part != 2 || digits == 0 || i >= sizeof(((struct smtp_reply *)0)->enhanced))
		return 0;
	if (i < len && s[i] != ' ')
		return 0;
	return i;
}

enum smtp_reply_status
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len, const char **reason)
{
	int code;
	char *text;

	if (r->complete)
		smtp_reply_clear(r);
	if (len > SMTP_REPLY_LINE_MAX) {
		*reason = "reply line too long";
		return SMTP_REPLY_ERROR;
	}
	if (len < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]) || line[0] < '2' || line[0] > '5') {
		*reason = "reply does not start with a valid code";
		return SMTP_REPLY_ERROR;
	}
	if (len > 3 && line[3] != ' ' && line[3] != '-') {
		*reason = "no space or '-' after the reply code";
		return SMTP_REPLY_ERROR;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code) {
		*reason = "reply code changes inside a multi-line reply";
		return SMTP_REPLY_ERROR;
	}
	if (r->nlines == SMTP_REPLY_LINES_MAX) {
		*reason = "too many reply lines";
		return SMTP_REPLY_ERROR;
	}
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n') {
			*reason = "control character in reply";
			return SMTP_REPLY_ERROR;
		}
	}
	r->code = code;
	text = xstrndup(len > 4 ? line + 4 : "", len > 4 ? len - 4 : 0);
	if (r->nlines == 0) {
		size_t el = enhanced_len(text, strlen(text), code);

		if (el > 0) {
			memcpy(r->enhanced, text, el);
			r->enhanced[el] = '\0';
		}
	}
	r->lines[r->nlines++] = text;
	if (len > 3 && line[3] == '-')
		return SMTP_REPLY_MORE;
	r->complete = true;
	return SMTP_REPLY_DONE;
}

void
smtp_reply_set(struct smtp_reply *r, int code, const char *enhanced, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	smtp_reply_clear(r);
	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	r->code = code;
	if (enhanced != NULL) {
		snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
		r->lines[0] = xasprintf("%s %s", enhanced, msg);
		free(msg);
	} else
		r->lines[0] = msg;
	r->nlines = 1;
	r->complete = true;
}

void
smtp_reply_own(struct smtp_reply *r, const char *session, int code, const char *enhanced,
    const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	if (code / 100 == 4)
		smtp_reply_set(r, code, enhanced, "%s [stsproxy session %s]", text, session);
	else
		smtp_reply_set(r, code, enhanced, "%s", text);
	free(text);
}

void
smtp_reply_copy(struct smtp_reply *dst, const struct smtp_reply *src)
{
	smtp_reply_clear(dst);
	dst->code = src->code;
	memcpy(dst->enhanced, src->enhanced, sizeof(dst->enhanced));
	for (size_t i = 0; i < src->nlines; i++)
		dst->lines[i] = xstrdup(src->lines[i]);
	dst->nlines = src->nlines;
	dst->complete = src->complete;
}

void
smtp_reply_write(const struct smtp_reply *r, struct evbuffer *out)
{
	if (r->nlines == 0) {
		evbuffer_add_printf(out, "%03d \r\n", r->code);
		return;
	}
	for (size_t i = 0; i < r->nlines; i++)
		evbuffer_add_printf(out, "%03d%c%s\r\n", r->code, i + 1 < r->nlines ? '-' : ' ',
		    r->lines[i]);
}

char *
smtp_reply_flatten(const struct smtp_reply *r)
{
	struct strbuf sb;

	strbuf_init(&sb);
	strbuf_printf(&sb, "%03d", r->code);
	for (size_t i = 0; i < r->nlines; i++)
		strbuf_printf(&sb, "%s%s", i ? " / " : " ", r->lines[i]);
	return strbuf_steal(&sb);
}

int
smtp_reply_class(const struct smtp_reply *r)
{
	return r->code / 100;
}

bool
smtp_reply_has_keyword(const struct smtp_reply *r, const char *keyword, const char **args)
{
	size_t kl = strlen(keyword);

	for (size_t i = 1; i < r->nlines; i++) {
		const char *l = r->lines[i];

		if (strncasecmp(l, keyword, kl) == 0 && (l[kl] == '\0' || l[kl] == ' ')) {
			if (args != NULL)
				*args = l[kl] == ' ' ? l + kl + 1 : l + kl;
			return true;
		}
	}
	return false;
}

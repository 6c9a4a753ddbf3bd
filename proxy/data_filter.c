#include "config.h"

#include <event2/buffer.h>

#include "proxy/data_filter.h"

void
data_filter_init(struct data_filter *f)
{
	f->state = DATA_FILTER_S_BOL;
	f->bytes_in = f->bytes_out = 0;
	f->bare_lf = f->bare_cr = f->nul = 0;
}

/*
 * Output is gathered in a small local buffer and flushed in blocks:
 * one evbuffer_add per byte would dominate the relay's CPU time.
 */
struct out_block {
	char			 buf[4096];
	size_t			 len;
	struct evbuffer		*out;
	unsigned long long	*count;
};

static void
emit(struct out_block *o, const char *s, size_t n)
{
	if (o->len + n > sizeof(o->buf)) {
		evbuffer_add(o->out, o->buf, o->len);
		o->len = 0;
	}
	for (size_t i = 0; i < n; i++)
		o->buf[o->len++] = s[i];
	*o->count += n;
}

size_t
data_filter_feed(struct data_filter *f, const char *in, size_t len, struct evbuffer *out,
    bool *done)
{
	struct out_block o = { .len = 0, .out = out, .count = &f->bytes_out };
	size_t i = 0;

	*done = f->state == DATA_FILTER_S_DONE;
	while (i < len && !*done) {
		char c = in[i++];
		size_t run;

		switch (f->state) {
		case DATA_FILTER_S_TEXT:
			/* The hot path: copy a run of ordinary bytes at once. */
			run = 0;
			while (i - 1 + run < len && in[i - 1 + run] != '\r' && in[i - 1 + run] != '\n' &&
			    in[i - 1 + run] != '\0')
				run++;
			if (run > 0) {
				if (o.len + run > sizeof(o.buf)) {
					evbuffer_add(out, o.buf, o.len);
					o.len = 0;
					evbuffer_add(out, in + i - 1, run);
					f->bytes_out += run;
				} else
					emit(&o, in + i - 1, run);
				i += run - 1;
				break;
			}
			if (c == '\0')
				f->nul++;
			else if (c == '\r')
				f->state = DATA_FILTER_S_CR;
			else {
				f->bare_lf++;
				emit(&o, "\r\n", 2);
				f->state = DATA_FILTER_S_BOL_NORM;
			}
			break;
		case DATA_FILTER_S_BOL:
			if (c == '\0') {
				/* The line has begun, but a "." next would start our output line. */
				f->nul++;
				f->state = DATA_FILTER_S_BOL_NORM;
			} else if (c == '.')
				f->state = DATA_FILTER_S_DOT;
			else if (c == '\r')
				f->state = DATA_FILTER_S_CR;
			else if (c == '\n') {
				f->bare_lf++;
				emit(&o, "\r\n", 2);
				f->state = DATA_FILTER_S_BOL_NORM;
			} else {
				emit(&o, &c, 1);
				f->state = DATA_FILTER_S_TEXT;
			}
			break;
		case DATA_FILTER_S_BOL_NORM:
			if (c == '\0')
				f->nul++;
			else if (c == '.') {
				/* Never let a normalised break start a "." line. */
				emit(&o, "..", 2);
				f->state = DATA_FILTER_S_TEXT;
			} else if (c == '\r')
				f->state = DATA_FILTER_S_CR;
			else if (c == '\n') {
				f->bare_lf++;
				emit(&o, "\r\n", 2);
			} else {
				emit(&o, &c, 1);
				f->state = DATA_FILTER_S_TEXT;
			}
			break;
		case DATA_FILTER_S_CR:
			if (c == '\n') {
				emit(&o, "\r\n", 2);
				f->state = DATA_FILTER_S_BOL;
			} else {
				f->bare_cr++;
				emit(&o, "\r\n", 2);
				f->state = DATA_FILTER_S_BOL_NORM;
				i--;	/* look at c again at the start of a line */
			}
			break;
		case DATA_FILTER_S_DOT:
			if (c == '\0') {
				/* ".\0\r\n" is a stuffed line holding a NUL, not an end:
				 * hold the "." until we know what the line holds. */
				f->nul++;
				f->state = DATA_FILTER_S_DOT_NUL;
			} else if (c == '\r')
				f->state = DATA_FILTER_S_DOT_CR;
			else if (c == '\n') {
				/* ".\n" is not an end: keep it as a stuffed "." line. */
				f->bare_lf++;
				emit(&o, "..\r\n", 4);
				f->state = DATA_FILTER_S_BOL_NORM;
			} else {
				emit(&o, ".", 1);
				emit(&o, &c, 1);
				f->state = DATA_FILTER_S_TEXT;
			}
			break;
		case DATA_FILTER_S_DOT_CR:
			if (c == '\n') {
				emit(&o, ".\r\n", 3);
				f->state = DATA_FILTER_S_DONE;
				*done = true;
			} else {
				f->bare_cr++;
				emit(&o, "..\r\n", 4);
				f->state = DATA_FILTER_S_BOL_NORM;
				i--;
			}
			break;
		case DATA_FILTER_S_DOT_NUL:
			if (c == '\0')
				f->nul++;
			else if (c == '\r')
				/* The line held only NULs: it goes out empty. */
				f->state = DATA_FILTER_S_CR;
			else if (c == '\n') {
				f->bare_lf++;
				emit(&o, "\r\n", 2);
				f->state = DATA_FILTER_S_BOL_NORM;
			} else {
				/* The client's stuffing "." goes out with the rest. */
				emit(&o, ".", 1);
				emit(&o, &c, 1);
				f->state = DATA_FILTER_S_TEXT;
			}
			break;
		case DATA_FILTER_S_DONE:
			break;
		}
	}
	if (o.len > 0)
		evbuffer_add(out, o.buf, o.len);
	f->bytes_in += i;
	return i;
}

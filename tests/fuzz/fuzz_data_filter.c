/*
 * libFuzzer target: the DATA filter (SMTP smuggling defence). Feeds the
 * input in chunks whose sizes come from the first byte, and checks the
 * properties the upstream relies on: only CR LF line ends, no NUL byte
 * (a NUL-stripping receiver must see what we see), and the only "." line
 * is the terminator, which appears once and last. And the end of data is
 * exactly where the client put it: at the first CR LF "." CR LF (or a
 * leading ". CR LF"), never earlier and never later.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/data_filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where the client's end of data ends (just past it) in body, or 0. */
static size_t
client_end(const uint8_t *body, size_t len)
{
	if (len >= 3 && memcmp(body, ".\r\n", 3) == 0)
		return 3;
	for (size_t i = 0; i + 5 <= len; i++)
		if (memcmp(body + i, "\r\n.\r\n", 5) == 0)
			return i + 5;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct data_filter f;
	struct evbuffer *out = evbuffer_new();
	size_t chunk = size ? (data[0] % 17) + 1 : 1, off = size ? 1 : 0, len, end, nuls = 0;
	bool done = false;
	unsigned char *o;

	data_filter_init(&f);
	while (off < size && !done) {
		size_t n = size - off < chunk ? size - off : chunk;
		size_t used = data_filter_feed(&f, (const char *)data + off, n, out, &done);

		if (used > n || (used < n && !done))
			__builtin_trap();
		off += used;
	}
	end = size ? client_end(data + 1, size - 1) : 0;
	if (done != (end != 0) || (done && off - 1 != end))
		__builtin_trap();
	for (size_t i = size ? 1 : 0; i < off; i++)
		nuls += data[i] == '\0';
	if (f.nul != nuls)
		__builtin_trap();
	len = evbuffer_get_length(out);
	o = evbuffer_pullup(out, -1);
	for (size_t i = 0; i < len; i++) {
		if (o[i] == '\0')
			__builtin_trap();
		if (o[i] == '\r' && (i + 1 >= len || o[i + 1] != '\n'))
			__builtin_trap();
		if (o[i] == '\n' && (i == 0 || o[i - 1] != '\r'))
			__builtin_trap();
		/* A "." line anywhere but at the very end would end the message early. */
		if ((i == 0 || o[i - 1] == '\n') && i + 2 < len && o[i] == '.' && o[i + 1] == '\r' &&
		    !(done && i + 3 == len))
			__builtin_trap();
	}
	if (done && (len < 3 || memcmp(o + len - 3, ".\r\n", 3) != 0))
		__builtin_trap();
	if (f.bytes_out != len)
		__builtin_trap();
	evbuffer_free(out);
	return 0;
}

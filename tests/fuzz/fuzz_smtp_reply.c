/* libFuzzer target: the parser of replies from untrusted upstream servers. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	size_t start = 0;

	smtp_reply_init(&r);
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != '\n')
			continue;
		const char *why;
		enum smtp_reply_status st = smtp_reply_feed(&r, (const char *)data + start, i - start, &why);

		start = i + 1;
		if (st == SMTP_REPLY_ERROR) {
			smtp_reply_clear(&r);
			continue;
		}
		if (st == SMTP_REPLY_DONE) {
			struct evbuffer *out = evbuffer_new();
			char *flat = smtp_reply_flatten(&r);

			if (r.code < 200 || r.code > 599 || r.nlines == 0)
				__builtin_trap();
			/* What we relay to the client must stay well-formed SMTP. */
			smtp_reply_write(&r, out);
			if (evbuffer_search(out, "\r\r", 2, NULL).pos != -1)
				__builtin_trap();
			evbuffer_free(out);
			free(flat);
		}
	}
	smtp_reply_clear(&r);
	return 0;
}

/* libFuzzer target: the _smtp._tls TXT record parser and selection. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "report/tlsrpt_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *recs[4];
	size_t lens[4], n = 0, start = 0;
	struct tlsrpt_record_result r;

	/* Split on 0xff into up to four records of one RRset. */
	for (size_t i = 0; i <= size && n < 4; i++)
		if (i == size || data[i] == 0xff) {
			recs[n] = (const char *)data + start;
			lens[n++] = i - start;
			start = i + 1;
		}
	tlsrpt_record_select(recs, lens, n, &r);
	if (r.status == TLSRPT_RECORD_VALID && (r.rua.count == 0 || r.rua.count > TLSRPT_MAX_RUA))
		__builtin_trap();
	for (size_t i = 0; i < r.rua.count; i++) {
		char addr[320];

		/* Destinations never carry the separators of the record. */
		if (strpbrk(r.rua.items[i], " ,;!") != NULL)
			__builtin_trap();
		if (strncmp(r.rua.items[i], "mailto:", 7) == 0 &&
		    tlsrpt_mailto_address(r.rua.items[i], addr, sizeof(addr)) < 0)
			__builtin_trap();
	}
	tlsrpt_record_result_clear(&r);
	return 0;
}

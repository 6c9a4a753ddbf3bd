/* libFuzzer target: the _mta-sts TXT record parser and selection. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/sts_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *recs[4];
	size_t lens[4], n = 0, start = 0;
	struct sts_record_result res;
	char id[STS_ID_MAX_LEN + 1], reason[160];

	sts_record_parse((const char *)data, size, id, reason, sizeof(reason));
	/* Split on 0xff into up to four records of one RRset. */
	for (size_t i = 0; i <= size && n < 4; i++)
		if (i == size || data[i] == 0xff) {
			recs[n] = (const char *)data + start;
			lens[n++] = i - start;
			start = i + 1;
		}
	sts_record_select(recs, lens, n, &res);
	if (res.status == STS_RECORD_VALID && (strlen(res.id) == 0 || strlen(res.id) > STS_ID_MAX_LEN))
		__builtin_trap();
	return 0;
}

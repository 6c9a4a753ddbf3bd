/* libFuzzer target: decoding a policy cache entry read back from LMDB. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/log.h"
#include "policy/cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_cache_entry *e = policy_cache_entry_decode((const char *)data, size);

	if (e != NULL) {
		/* What decodes must encode and decode to the same document. */
		char *a = policy_cache_entry_encode(e);
		struct policy_cache_entry *e2 = policy_cache_entry_decode(a, strlen(a));
		char *b = e2 ? policy_cache_entry_encode(e2) : NULL;

		if (b == NULL || strcmp(a, b) != 0)
			__builtin_trap();
		free(a);
		free(b);
		policy_cache_entry_free(e2);
	}
	policy_cache_entry_free(e);
	return 0;
}

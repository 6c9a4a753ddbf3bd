/* libFuzzer target: wire-format host names from DNS answers (MX targets). */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "policy/resolver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[256];
	int used = dns_name_from_wire(data, (int)(size > 4096 ? 4096 : size), name, sizeof(name));

	if (used > 0) {
		size_t len = strlen(name);

		if ((size_t)used > size || len > 253 || len == 0)
			__builtin_trap();
		/* Only what a host name may hold reaches the connection code. */
		if (strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != len)
			__builtin_trap();
	}
	return 0;
}

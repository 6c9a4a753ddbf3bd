/*
 * libFuzzer target: DNS wire data the relay reads itself: host names from
 * answers (MX targets) and the header of a forwarder's reply to the
 * start-up probe.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "policy/dns_probe.h"
#include "policy/resolver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[256];
	int used = dns_name_from_wire(data, (int)(size > 4096 ? 4096 : size), name, sizeof(name));
	int rcode = -1;

	if (used > 0) {
		size_t len = strlen(name);

		if ((size_t)used > size || len > 253 || len == 0)
			__builtin_trap();
		/* Only what a host name may hold reaches the connection code. */
		if (strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != len)
			__builtin_trap();
	}
	/* The probe accepts only a response to its own id, and reads no
	 * further than the 12-byte header. */
	if (size >= 2 && dns_probe_reply_ok(data, size, (uint16_t)(data[0] << 8 | data[1]), &rcode)) {
		if (size < 12 || rcode < 0 || rcode > 15 || (data[2] & 0x80) == 0)
			__builtin_trap();
	}
	return 0;
}

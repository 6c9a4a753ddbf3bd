/*
 * libFuzzer target: U-label to A-label conversion (conf/idna.c), which
 * sees every RCPT domain an SMTPUTF8 client sends. Checks that a name
 * either is refused with a reason or comes out as a normalised ASCII
 * name of at most 253 octets that converts to itself.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/idna.h"
#include "conf/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = xstrndup((const char *)data, size), *out, *again, *norm;
	const char *why = NULL;

	out = idna_to_alabel(in, &why);
	if (out == NULL) {
		if (why == NULL || why[0] == '\0')
			__builtin_trap();
		free(in);
		return 0;
	}
	if (idna_is_utf8(out) || strlen(out) > 253)
		__builtin_trap();
	if ((norm = domain_normalize(out)) == NULL || strcmp(norm, out) != 0)
		__builtin_trap();
	if ((again = idna_to_alabel(out, &why)) == NULL || strcmp(again, out) != 0)
		__builtin_trap();
	free(norm);
	free(again);
	free(out);
	free(in);
	return 0;
}

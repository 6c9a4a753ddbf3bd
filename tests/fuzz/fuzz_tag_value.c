/*
 * libFuzzer target: the tag=value reader of the _mta-sts and _smtp._tls
 * records (policy/tag_value.c), walked the way both parsers walk it.
 * fuzz_sts_record and fuzz_tlsrpt_record reach it through their parsers;
 * this one checks the cursor itself: never outside the record, always
 * moving forward, names within the grammar, a reason for every error.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "policy/tag_value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* A parser's own field: "n" takes digits, as id= takes letters and digits. */
static enum tag_value_field
digits_field(void *arg, struct tag_value *tv, const char *name, size_t name_len)
{
	size_t len;

	(void)arg;
	if (name_len != 1 || name[0] != 'n')
		return TAG_VALUE_EXTENSION;
	tag_value_take(tv, is_digit, &len);
	if (len == 0 || !tag_value_at_value_end(tv)) {
		tag_value_fail(tv, "n takes digits");
		return TAG_VALUE_BAD;
	}
	return TAG_VALUE_KNOWN;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tag_value tv;
	enum tag_value_step step;
	const char *name;
	size_t nlen, which;
	char reason[160];
	const char *recs[2] = { (const char *)data, (const char *)data };
	size_t lens[2] = { size, size / 2 };

	if (tag_value_select(recs, lens, 2, "v=T1", &which, reason, sizeof(reason)) != 1 &&
	    reason[0] == '\0')
		__builtin_trap();
	reason[0] = '\0';
	if (!tag_value_parse((const char *)data, size, 4096, "v=T1", "n", digits_field, NULL, reason,
	    sizeof(reason)) && reason[0] == '\0')
		__builtin_trap();
	reason[0] = '\0';
	if (!tag_value_begin(&tv, (const char *)data, size, 4096, "v=T1", reason, sizeof(reason))) {
		if (reason[0] == '\0')
			__builtin_trap();
		return 0;
	}
	while ((step = tag_value_next(&tv, &name, &nlen)) == TAG_VALUE_FIELD) {
		const unsigned char *before = tv.p;

		if (nlen == 0 || nlen > TAG_VALUE_MAX_NAME || (const unsigned char *)name < tv.start ||
		    (const unsigned char *)name + nlen >= tv.end)
			__builtin_trap();
		/* Known fields read their own value: digits here, like id= reads alnum. */
		if (nlen == 1 && name[0] == 'n') {
			size_t vl;

			tag_value_take(&tv, is_digit, &vl);
			if (vl == 0 || !tag_value_at_value_end(&tv))
				return 0;
		} else if (!tag_value_skip_extension(&tv)) {
			if (reason[0] == '\0')
				__builtin_trap();
			return 0;
		}
		if (tv.p <= before || tv.p > tv.end)
			__builtin_trap();
	}
	if (tv.p > tv.end || (step == TAG_VALUE_ERROR && reason[0] == '\0'))
		__builtin_trap();
	return 0;
}

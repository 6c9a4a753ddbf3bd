/*
 * libFuzzer target: TLSA records as DNS hands them over (RFC 6698
 * section 2.1 RDATA) and in presentation form, through policy/dane.c:
 * parsing, the usability checks (including the DER parse of Full(0)
 * data) and the RRset identity.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/dane.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dane_tlsa *t = dane_tlsa_new("mx.fuzz.example");
	const char *why = NULL;
	size_t pos = 0, added = 0;
	char *text;

	/* An RRset: each RDATA preceded by its length, two bytes as in DNS. */
	while (pos + 2 <= size) {
		size_t len = (size_t)data[pos] << 8 | data[pos + 1];

		pos += 2;
		if (len > size - pos)
			len = size - pos;
		if (dane_tlsa_add_rdata(t, data + pos, len, &why) == 0)
			added++;
		else if (why == NULL)
			__builtin_trap();
		pos += len;
	}
	if (t->count != added || t->count > DANE_RECORDS_MAX)
		__builtin_trap();
	dane_tlsa_finish(t, "mx.fuzz.example");
	if (t->text.count != t->count || strlen(t->id) != 16 || t->usable > t->count)
		__builtin_trap();
	/* Only DANE-TA(2)/DANE-EE(3) with known selectors and matching types are usable (DANE-14). */
	for (size_t i = 0; i < t->count; i++) {
		const struct dane_record *r = &t->records[i];

		if (r->unusable == NULL && (r->usage < 2 || r->usage > 3 || r->selector > 1 ||
		    r->mtype > 2 || (r->mtype == 1 && r->len != 32) || (r->mtype == 2 && r->len != 64)))
			__builtin_trap();
	}
	dane_tlsa_free(t);

	/* The same bytes as one presentation-form record. */
	t = dane_tlsa_new("mx.fuzz.example");
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	if (dane_tlsa_add_text(t, text, &why) == 0 && (t->count != 1 || t->records[0].len == 0))
		__builtin_trap();
	free(text);
	dane_tlsa_free(t);
	return 0;
}

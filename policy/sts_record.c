#include "config.h"

#include <string.h>

#include "policy/sts_record.h"
#include "policy/tag_value.h"

#define STS_VERSION_FIELD "v=STSv1"

struct sts_fields {
	char	*id;
	bool	 have_id;
};

/* id = 1*32(ALPHA / DIGIT); a repeated id is ignored: the first one wins (STS-5). */
static enum tag_value_field
sts_field(void *arg, struct tag_value *tv, const char *name, size_t name_len)
{
	struct sts_fields *f = arg;
	const char *value;
	size_t vl;

	if (name_len != 2 || memcmp(name, "id", 2) != 0)
		return TAG_VALUE_EXTENSION;
	value = tag_value_take(tv, tag_value_is_alnum, &vl);
	if (vl == 0 || vl > STS_ID_MAX_LEN || !tag_value_at_value_end(tv)) {
		tag_value_fail(tv, "id must be 1 to 32 letters or digits (offset %zu)",
		    tag_value_offset(tv, value));
		return TAG_VALUE_BAD;
	}
	if (!f->have_id) {
		memcpy(f->id, value, vl);
		f->id[vl] = '\0';
		f->have_id = true;
	}
	return TAG_VALUE_KNOWN;
}

bool
sts_record_parse(const char *rec, size_t len, char id[STS_ID_MAX_LEN + 1],
    char *reason, size_t reason_len)
{
	struct sts_fields f = { id, false };

	return tag_value_parse(rec, len, STS_RECORD_MAX_LEN, STS_VERSION_FIELD, "id", sts_field, &f,
	    reason, reason_len);
}

void
sts_record_select(const char *const *records, const size_t *lens, size_t count,
    struct sts_record_result *out)
{
	size_t which, candidates;

	memset(out, 0, sizeof(*out));
	candidates = tag_value_select(records, lens, count, STS_VERSION_FIELD, &which, out->reason,
	    sizeof(out->reason));
	if (candidates != 1) {
		out->status = candidates == 0 ? STS_RECORD_ABSENT : STS_RECORD_MULTIPLE;
		return;
	}
	if (!sts_record_parse(records[which], lens[which], out->id, out->reason,
	    sizeof(out->reason))) {
		out->status = STS_RECORD_INVALID;
		return;
	}
	out->status = STS_RECORD_VALID;
}

const char *
sts_record_status_name(enum sts_record_status status)
{
	switch (status) {
	case STS_RECORD_VALID: return "valid";
	case STS_RECORD_ABSENT: return "absent";
	case STS_RECORD_MULTIPLE: return "multiple";
	case STS_RECORD_INVALID: return "invalid";
	}
	return "?";
}

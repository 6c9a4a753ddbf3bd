#include "config.h"

#include <string.h>

#include "policy/sts_record.h"
#include "policy/tag_value.h"

#define STS_VERSION_FIELD "v=STSv1"

bool
sts_record_parse(const char *rec, size_t len, char id[STS_ID_MAX_LEN + 1],
    char *reason, size_t reason_len)
{
	struct tag_value tv;
	enum tag_value_step step;
	const char *name;
	size_t nlen, nfields = 0;
	bool have_id = false;

	if (!tag_value_begin(&tv, rec, len, STS_RECORD_MAX_LEN, STS_VERSION_FIELD, reason,
	    reason_len))
		return false;
	while ((step = tag_value_next(&tv, &name, &nlen)) == TAG_VALUE_FIELD) {
		if (nlen == 2 && memcmp(name, "id", 2) == 0) {
			size_t vl;
			const char *value = tag_value_take(&tv, tag_value_is_alnum, &vl);

			if (vl == 0 || vl > STS_ID_MAX_LEN || !tag_value_at_value_end(&tv))
				return tag_value_fail(&tv,
				    "id must be 1 to 32 letters or digits (offset %zu)",
				    tag_value_offset(&tv, value));
			/* A repeated id is ignored: the first one wins (STS-5). */
			if (!have_id) {
				memcpy(id, value, vl);
				id[vl] = '\0';
				have_id = true;
			}
		} else if (!tag_value_skip_extension(&tv))
			return false;
		nfields++;
	}
	if (step == TAG_VALUE_ERROR)
		return false;
	if (nfields == 0 || !have_id)
		return tag_value_fail(&tv, "required field id is missing");
	return true;
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

#include "config.h"

#include <string.h>

#include "policy/result_type.h"

struct result_text {
	const char	*name;
	const char	*meaning;
	const char	*fix;
};

#define RPT_RESULT_TEXT(sym, name, meaning, fix) { name, meaning, fix },
static const struct result_text result_texts[] = {
	RPT_RESULT_TYPES(RPT_RESULT_TEXT)
};
#undef RPT_RESULT_TEXT

const char *
rpt_result_type_name(enum rpt_result_type type)
{
	if ((unsigned)type >= RPT_RESULT_COUNT)
		return "validation-failure";
	return result_texts[type].name;
}

int
rpt_result_type_parse(const char *name)
{
	for (int i = 0; i < RPT_RESULT_COUNT; i++)
		if (strcmp(name, result_texts[i].name) == 0)
			return i;
	return -1;
}

const char *
rpt_result_type_meaning(enum rpt_result_type type)
{
	if ((unsigned)type >= RPT_RESULT_COUNT)
		type = RPT_RESULT_VALIDATION_FAILURE;
	return result_texts[type].meaning;
}

const char *
rpt_result_type_fix(enum rpt_result_type type)
{
	if ((unsigned)type >= RPT_RESULT_COUNT)
		type = RPT_RESULT_VALIDATION_FAILURE;
	return result_texts[type].fix;
}

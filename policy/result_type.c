#include "config.h"

#include <string.h>

#include "policy/result_type.h"

#define RPT_RESULT_NAME(sym, name) name,
static const char *const result_names[] = {
	RPT_RESULT_TYPES(RPT_RESULT_NAME)
};
#undef RPT_RESULT_NAME

const char *
rpt_result_type_name(enum rpt_result_type type)
{
	if ((unsigned)type >= RPT_RESULT_COUNT)
		return "validation-failure";
	return result_names[type];
}

int
rpt_result_type_parse(const char *name)
{
	for (int i = 0; i < RPT_RESULT_COUNT; i++)
		if (strcmp(name, result_names[i]) == 0)
			return i;
	return -1;
}

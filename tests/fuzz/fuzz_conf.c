/* libFuzzer target: the configuration file parser. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "conf/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strlist errors = { 0 };
	struct conf *conf = conf_parse_buffer("fuzz", (const char *)data, size, &errors);

	if (conf == NULL && errors.count == 0)
		__builtin_trap();
	conf_free(conf);
	strlist_clear(&errors);
	return 0;
}

#include "config.h"

#include <stdio.h>

#include "proxy/commands.h"

int
cmd_check_config(const struct conf *conf, const char *path, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: stsproxy [-c FILE] check-config\n");
		return EXIT_ERROR;
	}
	/* Errors were printed by main(), which does not get this far. */
	printf("# %s: configuration OK\n", path ? path : "embedded defaults");
	conf_print(conf, stdout);
	return 0;
}

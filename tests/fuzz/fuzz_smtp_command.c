/* libFuzzer target: the SMTP command line and MAIL/RCPT path parsers. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/smtp_command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	struct smtp_command cmd;
	struct smtp_error err;
	struct smtp_path path;

	memcpy(line, data, size);
	line[size] = '\0';
	if (smtp_command_parse(line, size, &cmd, &err) == 0) {
		if (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT) {
			if (smtp_path_parse(cmd.arg, cmd.verb == SMTP_VERB_MAIL, &path, &err) == 0) {
				/* Invariants the relay relies on when it builds upstream commands. */
				if (strlen(path.address) > SMTP_PATH_MAX || path.nparams > SMTP_PARAMS_MAX ||
				    (strpbrk(path.address, "\r\n<> ") != NULL && path.address[0] != '"'))
					__builtin_trap();
				for (size_t i = 0; i < path.nparams; i++)
					if (strpbrk(path.params[i].value, "\r\n =") != NULL)
						__builtin_trap();
			}
		}
	} else if (err.code < 500 || err.code > 599 || err.text == NULL)
		__builtin_trap();
	free(line);
	return 0;
}

#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/util.h"
#include "cli/cli_args.h"

/* The commands' options that take a value: their value is never an option. */
static const char *const value_options[] = {
	"--file", "--mx", "--day", "--domain", "--mail", "--port", "--timeout",
};

static bool
takes_value(const char *arg)
{
	for (size_t i = 0; i < sizeof(value_options) / sizeof(value_options[0]); i++)
		if (strcmp(arg, value_options[i]) == 0)
			return true;
	return false;
}

const char *
cli_take_globals(int *argc, char **argv, struct cli_globals *g)
{
	int n = *argc, out = 1;

	for (int i = 1; i < n; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			while (++i < n)
				argv[out++] = argv[i];
			break;
		}
		if (takes_value(a) && i + 1 < n) {
			argv[out++] = argv[i++];
			argv[out++] = argv[i];
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 >= n)
				return "-c needs a FILE";
			g->conf_path = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			g->conf_path = a + 9;
		} else if (strncmp(a, "-c", 2) == 0 && a[2] != '\0') {
			g->conf_path = a + 2;
		} else if (strcmp(a, "-d") == 0 || strcmp(a, "--debug") == 0) {
			g->debug = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			g->help = true;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			g->version = true;
		} else {
			argv[out++] = argv[i];
		}
	}
	argv[out] = NULL;
	*argc = out;
	return NULL;
}

const char *
cli_policy_domain(const char *arg, char **domain, const char **how)
{
	const char *p = arg, *scheme = strstr(arg, "://");
	size_t len;

	*domain = NULL;
	*how = NULL;
	if (scheme != NULL) {
		/* A URL: its host, and the policy domain behind mta-sts.<domain> (STS-12). */
		p = scheme + 3;
		if ((len = strcspn(p, "/:?#")) == 0)
			return "the URL has no host";
		if (memchr(p, '@', len) != NULL)
			return "a URL with user information is not a policy URL";
		if (len > 8 && strncasecmp(p, "mta-sts.", 8) == 0) {
			*domain = xstrndup(p + 8, len - 8);
			*how = "the policy domain of the policy URL";
		} else {
			*domain = xstrndup(p, len);
			*how = "the host of the URL";
		}
		return NULL;
	}
	if (strncasecmp(p, "mailto:", 7) == 0)
		p += 7;
	if (strchr(p, '@') != NULL && p[0] != '[') {
		/* An address: its domain, the recipient domain a sender looks up. */
		const char *at = strrchr(p, '@') + 1;

		len = strcspn(at, ">");
		if (len == 0)
			return "the address has no domain";
		*domain = xstrndup(at, len);
		*how = "the domain of the address";
		return NULL;
	}
	if (strncasecmp(p, "_mta-sts.", 9) == 0 && p[9] != '\0') {
		*domain = xstrdup(p + 9);
		*how = "the policy domain of the TXT record name";
		return NULL;
	}
	if (p[0] == '\0')
		return "empty domain";
	*domain = xstrdup(p);
	if (p != arg)
		*how = "the domain of the address";
	return NULL;
}

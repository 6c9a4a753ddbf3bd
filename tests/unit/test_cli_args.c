/* Unit tests of the command-line conventions (issue 11 §5). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cli_args.h"

/* Split a command line on spaces into argv (static storage), run cli_take_globals. */
static const char *
take(const char *line, int *argc, char **argv, struct cli_globals *g)
{
	static char buf[512];
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", line);
	*argc = 0;
	for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
		argv[(*argc)++] = t;
	argv[*argc] = NULL;
	memset(g, 0, sizeof(*g));
	return cli_take_globals(argc, argv, g);
}

static void
test_globals_after_the_command(void **state)
{
	struct cli_globals g;
	char *argv[32];
	int argc;

	(void)state;
	/* `stsproxy serve -c FILE` is what most admins type. */
	assert_null(take("serve -c /etc/x.conf --foreground -d", &argc, argv, &g));
	assert_string_equal(g.conf_path, "/etc/x.conf");
	assert_true(g.debug);
	assert_int_equal(argc, 2);
	assert_string_equal(argv[1], "--foreground");
	assert_null(argv[2]);
	assert_null(take("check-config --config=/a.conf -n", &argc, argv, &g));
	assert_string_equal(g.conf_path, "/a.conf");
	assert_int_equal(argc, 2);
	assert_null(take("check-config -c/b.conf", &argc, argv, &g));
	assert_string_equal(g.conf_path, "/b.conf");
	assert_null(take("policy --help", &argc, argv, &g));
	assert_true(g.help);
	assert_int_equal(argc, 1);
	assert_null(take("cache --version", &argc, argv, &g));
	assert_true(g.version);
	assert_string_equal(take("serve -c", &argc, argv, &g), "-c needs a FILE");
	/* The commands' own values are never taken for options... */
	assert_null(take("policy --file -d --mx -c", &argc, argv, &g));
	assert_false(g.debug);
	assert_null(g.conf_path);
	assert_int_equal(argc, 5);
	assert_string_equal(argv[2], "-d");
	assert_string_equal(argv[4], "-c");
	/* ...nor anything after "--". */
	assert_null(take("policy -- -d", &argc, argv, &g));
	assert_false(g.debug);
	assert_int_equal(argc, 2);
	assert_string_equal(argv[1], "-d");
}

static void
expect_domain(const char *arg, const char *domain, const char *how)
{
	char *d = NULL;
	const char *h = NULL, *why = cli_policy_domain(arg, &d, &h);

	if (why != NULL)
		fail_msg("%s: %s", arg, why);
	assert_string_equal(d, domain);
	if (how == NULL)
		assert_null(h);
	else
		assert_string_equal(h, how);
	free(d);
}

static void
test_policy_domain(void **state)
{
	char *d = NULL;
	const char *h;

	(void)state;
	expect_domain("example.com", "example.com", NULL);
	expect_domain("Example.COM.", "Example.COM.", NULL);	/* the engine normalises */
	expect_domain("[192.0.2.1]", "[192.0.2.1]", NULL);
	/* STS-2: the policy domain is the recipient domain of an address */
	expect_domain("user@example.com", "example.com", "the domain of the address");
	expect_domain("<user@example.com>", "example.com", "the domain of the address");
	expect_domain("mailto:tls@example.com", "example.com", "the domain of the address");
	expect_domain("\"a@b\"@example.com", "example.com", "the domain of the address");
	/* STS-12: the policy URL names mta-sts.<policy domain> */
	expect_domain("https://mta-sts.example.com/.well-known/mta-sts.txt", "example.com",
	    "the policy domain of the policy URL");
	expect_domain("https://MTA-STS.example.com:443/", "example.com", "the policy domain of the policy URL");
	expect_domain("https://www.example.com/", "www.example.com", "the host of the URL");
	/* STS-1: the TXT record name */
	expect_domain("_mta-sts.example.com", "example.com", "the policy domain of the TXT record name");
	assert_non_null(cli_policy_domain("https:///x", &d, &h));
	assert_non_null(cli_policy_domain("https://u@evil.example/", &d, &h));
	assert_non_null(cli_policy_domain("user@", &d, &h));
	assert_non_null(cli_policy_domain("", &d, &h));
	assert_null(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_globals_after_the_command),
		cmocka_unit_test(test_policy_domain),
	};

	return cmocka_run_group_tests_name("cli_args", tests, NULL, NULL);
}

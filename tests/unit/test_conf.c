/* Unit tests of the configuration table, parser and error messages. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "conf/conf.h"

static struct conf *
parse(const char *text, struct strlist *errors)
{
	return conf_parse_buffer("t.conf", text, strlen(text), errors);
}

/* Parse text expecting exactly one error that contains needle. */
static void
expect_error(const char *text, const char *needle)
{
	struct strlist errors = { 0 };
	struct conf *c = parse(text, &errors);

	assert_null(c);
	assert_int_equal(errors.count, 1);
	if (strstr(errors.items[0], needle) == NULL)
		fail_msg("error '%s' lacks '%s'", errors.items[0], needle);
	strlist_clear(&errors);
}

static void
test_defaults(void **state)
{
	struct strlist errors = { 0 };
	struct conf *c = conf_load(NULL, &errors);

	(void)state;
	assert_non_null(c);
	assert_true(c->dns_dnssec);
	assert_int_equal(c->dns_forwarders.count, 0);
	assert_string_equal(c->tls_min_version, "1.2");
	assert_int_equal(c->policy_fetch_timeout, 60);
	assert_int_equal(c->policy_max_body, 65536);
	assert_int_equal(c->policy_refresh_interval, 86400);
	assert_int_equal(c->policy_cache_size, 64 * 1024 * 1024);
	conf_free(c);
}

static void
test_full_file(void **state)
{
	struct strlist errors = { 0 };
	struct conf *c = parse(
	    "# comment\n"
	    "state_dir = /tmp/x   # trailing comment\n"
	    "\n[dns]\n"
	    "forwarders = 127.0.0.1 ::1@5353\n"
	    "dnssec = no\n"
	    "timeout = 2m\n"
	    "[tls]\nmin_version = 1.3\n"
	    "[policy]\nmax_body = 32K\ncache_size = 1G\nrefresh_interval = 12h\n"
	    "override = a.example:enforce b.example.:none\n", &errors);

	(void)state;
	assert_non_null(c);
	assert_string_equal(c->state_dir, "/tmp/x");
	assert_int_equal(c->dns_forwarders.count, 2);
	assert_string_equal(c->dns_forwarders.items[1], "::1@5353");
	assert_false(c->dns_dnssec);
	assert_int_equal(c->dns_timeout, 120);
	assert_int_equal(conf_tls_min_version(c), TLS1_3_VERSION);
	assert_int_equal(c->policy_max_body, 32768);
	assert_int_equal(c->policy_cache_size, 1024UL * 1024 * 1024);
	assert_int_equal(c->policy_refresh_interval, 43200);
	assert_string_equal(conf_policy_override(c, "a.example"), "enforce");
	assert_string_equal(conf_policy_override(c, "b.example"), "none");
	assert_null(conf_policy_override(c, "c.example"));
	/* [tls] dane defaults to no when DNSSEC is off */
	assert_false(c->tls_dane);
	conf_free(c);
}

/* DANE-17: dane-only makes DANE mandatory per domain; it is not an MTA-STS mode. */
static void
test_dane_keys(void **state)
{
	struct strlist errors = { 0 };
	struct conf *c;

	(void)state;
	c = parse("[policy]\noverride = a.example:dane-only a.example:testing b.example.:dane-only\n",
	    &errors);
	assert_non_null(c);
	assert_true(c->tls_dane);	/* default with dnssec = yes */
	assert_true(conf_dane_required(c, "a.example"));
	assert_true(conf_dane_required(c, "b.example"));
	assert_false(conf_dane_required(c, "c.example"));
	/* the engine sees only MTA-STS modes */
	assert_string_equal(conf_policy_override(c, "a.example"), "testing");
	assert_null(conf_policy_override(c, "b.example"));
	conf_free(c);

	c = parse("[tls]\ndane = no\n", &errors);
	assert_non_null(c);
	assert_false(c->tls_dane);
	assert_false(conf_dane_required(c, "a.example"));
	conf_free(c);

	expect_error("[dns]\ndnssec = no\n[tls]\ndane = yes\n",
	    "t.conf:4: [tls] dane: yes needs [dns] dnssec = yes");
	expect_error("[tls]\ndane = no\n[policy]\noverride = a.example:dane-only\n",
	    "t.conf:4: [policy] override: a.example:dane-only requires DANE, which is off");
	expect_error("[dns]\ndnssec = no\n[policy]\noverride = a.example:dane-only\n",
	    "requires DANE, which is off");
}

static void
test_errors_name_line_and_key(void **state)
{
	(void)state;
	expect_error("[dns]\ntmeout = 5\n", "t.conf:2: [dns] unknown key 'tmeout'");
	expect_error("[dns]\ntimeout = abc\n", "t.conf:2: [dns] timeout: 'abc' is not a duration");
	expect_error("[dns]\ntimeout = 0\n", "t.conf:2: [dns] timeout: 0 is out of range");
	expect_error("[dns]\ndnssec = maybe\n", "t.conf:2: [dns] dnssec: 'maybe' is not yes or no");
	expect_error("[dns]\nforwarders = 1.2.3.4 resolver.example\n",
	    "t.conf:2: [dns] forwarders: 'resolver.example' is not an IP address");
	expect_error("[dns]\nforwarders = 1.2.3.4@99999\n", "bad port");
	expect_error("[tls]\nmin_version = 1.1\n", "t.conf:2: [tls] min_version: '1.1' is not one of 1.2|1.3");
	expect_error("[policy]\nmax_body = 10\n", "t.conf:2: [policy] max_body: 10 is out of range");
	expect_error("[policy]\noverride = a.example:strict\n", "mode must be enforce, testing, none or dane-only");
	expect_error("[policy]\noverride = nocolon\n", "is not DOMAIN:MODE");
	expect_error("[nope]\n", "t.conf:1: unknown section [nope]");
	expect_error("[dns\n", "malformed section header");
	expect_error("state_dir\n", "t.conf:1: expected 'key = value'");
	expect_error("state_dir = relative/path\n", "t.conf:1: state_dir: 'relative/path' is not an absolute path");
	expect_error("log_level = chatty\n", "log_level: must be err");
	expect_error("[dns]\ntimeout = 5\ntimeout = 6\n", "t.conf:3: [dns] timeout: set twice (first at line 2)");
}

static void
test_all_errors_reported(void **state)
{
	struct strlist errors = { 0 };

	(void)state;
	assert_null(parse("[dns]\ntimeout = x\ndnssec = x\n[tls]\nmin_version = x\n", &errors));
	assert_int_equal(errors.count, 3);
	strlist_clear(&errors);
}

static void
test_limits(void **state)
{
	struct strlist errors = { 0 };
	char *big = malloc(CONF_MAX_LINE + 10);

	(void)state;
	memset(big, 'a', CONF_MAX_LINE + 9);
	big[CONF_MAX_LINE + 9] = '\0';
	assert_null(parse(big, &errors));
	assert_non_null(strstr(errors.items[0], "line longer than"));
	strlist_clear(&errors);
	free(big);
	assert_null(conf_parse_buffer("t.conf", "a\0b = c\n", 8, &errors));
	assert_non_null(strstr(errors.items[0], "NUL byte"));
	strlist_clear(&errors);
}

static void
test_missing_file(void **state)
{
	struct strlist errors = { 0 };

	(void)state;
	assert_null(conf_load("/nonexistent/stsproxy.conf", &errors));
	assert_non_null(strstr(errors.items[0], "/nonexistent/stsproxy.conf: cannot open"));
	strlist_clear(&errors);
}

/*
 * Every key set away from its default, so a round trip that loses or
 * mangles any key shows. A key added to the table must be added here:
 * test_print_round_trip names it otherwise.
 */
static const char nondefault_text[] =
    "state_dir = /tmp/st\nlog_level = debug\nlog_levels = dns=warning upstream=debug\n"
    "log_target = file\nlog_file = /tmp/st/x.log\nlog_facility = local3\nlog_format = json\n"
    "pid_file = /tmp/st/p.pid\nmetrics_listen = 127.0.0.1:9100\nhostname = relay.example.net\n"
    "user = nobody\nworkers = auto\nallow_root = yes\n"
    "[server]\nlisten = 127.0.0.2:2525 [::1]:2526 unix:/tmp/st/s.sock\nunix_mode = 0600\n"
    "lmtp_listen = 127.0.0.2:2424 unix:/tmp/st/l.sock\nlmtp_max_domains = 20\n"
    "unix_group = mail\nallow_clients = 10.0.0.0/8 192.0.2.1\nmax_connections = 7\n"
    "max_connections_per_client = 3\nmax_message_size = 10M\nmax_recipients = 250\n"
    "allow_open_relay = yes\nallow_bare_newline = yes\ncommand_timeout = 61s\n"
    "helo_timeout = 12s\ndata_timeout = 2m\ndata_deadline = 7m\ndata_min_rate = 2k\n"
    "shutdown_timeout = 9s\n"
    "tls_cert_file = /tmp/st/c.pem\ntls_key_file = /tmp/st/c.key\n"
    "[upstream]\nport = 2525\nconnect_timeout = 7s\ncommand_timeout = 8s\ndata_timeout = 11s\n"
    "max_attempts = 3\nipv6 = no\nreuse = no\nreuse_idle_timeout = 3s\nreuse_max_messages = 5\n"
    "reuse_pool_size = 6\n"
    "[dns]\nforwarders = 127.0.0.53 ::1@5353\ntrust_anchor_file = /tmp/st/ta.key\ndnssec = no\n"
    "timeout = 4s\n"
    "[tls]\nca_file = /tmp/st/ca.pem\nca_path = /tmp/st/ca\nmin_version = 1.3\n"
    "[policy]\nfetch_timeout = 5s\nmax_body = 32K\nrefresh_interval = 2h\ncache_size = 1G\n"
    "override = a.example:enforce b.example:none\nsimulate = enforce\n"
    "[report]\nflush_interval = 2s\ndb_size = 512M\norganization = Example Org\n"
    "contact = tlsrpt@example.net\nsubmitter = example.net\nsend_success_only_reports = yes\n"
    "retry_interval = 5m\ndkim_key = /tmp/st/a.pem /tmp/st/b.pem\ndkim_selector = s1 s2\n"
    "dkim_domain = example.net\nsubmission_relay = 127.0.0.1:587\nmax_delay = 1h\n"
    "[store]\nbackend = postgresql\npostgresql = hostaddr=192.0.2.10 dbname=st user=st\n"
    "share_policies = yes\ntimeout = 5s\nbuffer = 500\n";

/* What check-config prints is itself a valid configuration, with every key's value. */
static void
round_trip(struct conf *c)
{
	struct strlist errors = { 0 };
	struct conf *again;
	char *text = NULL, *text2 = NULL, label[96];
	size_t len = 0, len2 = 0;
	FILE *f = open_memstream(&text, &len);

	conf_print(c, f);
	fclose(f);
	again = conf_parse_buffer("printed", text, len, &errors);
	if (again == NULL)
		fail_msg("printed configuration refused: %s", errors.count ? errors.items[0] : "?");
	for (size_t i = 0; i < conf_key_count(); i++)
		if (!conf_key_equal(c, again, i))
			fail_msg("%s changed in the print round trip", conf_key_label(i, label, sizeof(label)));
	/* Printing is stable: the reparsed configuration prints the same text. */
	f = open_memstream(&text2, &len2);
	conf_print(again, f);
	fclose(f);
	assert_int_equal(len, len2);
	assert_memory_equal(text, text2, len);
	conf_free(again);
	free(text);
	free(text2);
}

static void
test_print_round_trip(void **state)
{
	struct strlist errors = { 0 };
	struct conf *def = conf_load(NULL, &errors), *c;
	char label[96];

	(void)state;
	assert_non_null(def);
	round_trip(def);
	c = parse(nondefault_text, &errors);
	if (c == NULL)
		fail_msg("non-default test file refused: %s", errors.items[0]);
	for (size_t i = 0; i < conf_key_count(); i++)
		if (conf_key_equal(def, c, i))
			fail_msg("%s keeps its default in nondefault_text: give it another value there",
			    conf_key_label(i, label, sizeof(label)));
	round_trip(c);
	conf_free(c);
	conf_free(def);
}

/* Parse text expecting success; returns the conf (caller frees). */
static struct conf *
expect_ok(const char *text)
{
	struct strlist errors = { 0 };
	struct conf *c = parse(text, &errors);

	if (c == NULL)
		fail_msg("'%s' refused: %s", text, errors.items[0]);
	return c;
}

/* Issue 11 §4: an error suggests the fix when it can be guessed. */
static void
test_suggestions(void **state)
{
	(void)state;
	/* the right key in the wrong place */
	expect_error("listen = 127.0.0.1:25\n", "t.conf:1: unknown key 'listen'; did you mean [server] listen?");
	expect_error("[server]\nstate_dir = /x\n",
	    "[server] unknown key 'state_dir'; did you mean state_dir (a top-level key, before any [section])?");
	/* typos: a missing letter, a swap, a case slip; this section first */
	expect_error("[dns]\ntmeout = 5\n", "t.conf:2: [dns] unknown key 'tmeout'; did you mean timeout?");
	expect_error("[server]\nlistne = 127.0.0.1:25\n", "unknown key 'listne'; did you mean listen?");
	expect_error("usre = mail\n", "unknown key 'usre'; did you mean user?");
	expect_error("[server]\nLISTEN = 127.0.0.1:25\n", "unknown key 'LISTEN'; did you mean listen?");
	expect_error("[policy]\nmax_bdy = 1\n", "unknown key 'max_bdy'; did you mean max_body?");
	expect_error("[upstream]\nreuse_idle = 1\n", "unknown key 'reuse_idle'");
	expect_error("[sever]\n", "t.conf:1: unknown section [sever]; did you mean [server]?");
	expect_error("[nope]\n", "t.conf:1: unknown section [nope]");
	/* nothing close: no guess */
	expect_error("[dns]\nzzzzzzzz = 1\n", "[dns] unknown key 'zzzzzzzz'");
	{
		struct strlist errors = { 0 };

		assert_null(parse("[dns]\nzzzzzzzz = 1\n", &errors));
		assert_null(strstr(errors.items[0], "did you mean"));
		strlist_clear(&errors);
	}
	/* suggestions are bounded per file: a file of typos costs no more than 32 */
	{
		struct strlist errors = { 0 };
		struct strbuf sb;

		strbuf_init(&sb);
		strbuf_printf(&sb, "[dns]\n");
		for (int i = 0; i < 40; i++)
			strbuf_printf(&sb, "tmeout = 1\n");
		assert_null(parse(sb.data, &errors));
		assert_int_equal(errors.count, 40);
		assert_non_null(strstr(errors.items[31], "did you mean timeout?"));
		assert_null(strstr(errors.items[32], "did you mean"));
		strlist_clear(&errors);
		strbuf_free(&sb);
	}
	/* lists are space-separated */
	expect_error("[server]\nallow_clients = 192.168.1.0/24, 10.0.0.0/8\n",
	    "t.conf:2: [server] allow_clients: '192.168.1.0/24,': lists are space-separated");
	expect_error("[server]\nallow_clients = 192.168.1.0/24,10.0.0.0/8\n",
	    "(lists are space-separated, not comma-separated)");
	expect_error("[report]\ndkim_selector = a,b\ndkim_key = /a /b\n", "lists are space-separated");
}

/* Issue 11 §4: 0.0.0.0/0 or ::/0 with a listen address others reach is an open relay. */
static void
test_open_relay(void **state)
{
	struct conf *c;

	(void)state;
	expect_error("[server]\nlisten = 0.0.0.0:25\nallow_clients = 0.0.0.0/0\n",
	    "t.conf:3: [server] allow_clients: 0.0.0.0/0 with listen 0.0.0.0:25 (not loopback) makes an open relay");
	expect_error("[server]\nlisten = 127.0.0.1:25 [2001:db8::1]:25\nallow_clients = 127.0.0.0/8 ::/0\n",
	    "::/0 with listen [2001:db8::1]:25 (not loopback) makes an open relay");
	expect_error("[server]\nlisten = 192.0.2.1:25\nallow_clients = 0.0.0.0/0\n",
	    "set [server] allow_open_relay = yes");
	/* loopback and unix: listeners reach only this host */
	c = expect_ok("[server]\nlisten = 127.0.0.2:25 [::1]:25 unix:/run/s\nallow_clients = 0.0.0.0/0 ::/0\n");
	assert_int_equal(c->warnings.count, 0);
	conf_free(c);
	/* a wide but not universal network is the admin's call */
	c = expect_ok("[server]\nlisten = 0.0.0.0:25\nallow_clients = 10.0.0.0/8\n");
	assert_int_equal(c->warnings.count, 0);
	conf_free(c);
	/* the admin means it: it starts, with a warning */
	c = expect_ok("[server]\nlisten = 0.0.0.0:25\nallow_clients = 0.0.0.0/0\nallow_open_relay = yes\n");
	assert_int_equal(c->warnings.count, 1);
	assert_non_null(strstr(c->warnings.items[0], "OPEN RELAY"));
	conf_free(c);
	/* an LMTP listener relays as much as an SMTP one */
	expect_error("[server]\nlmtp_listen = 0.0.0.0:2424\nallow_clients = 0.0.0.0/0\n",
	    "t.conf:3: [server] allow_clients: 0.0.0.0/0 with lmtp_listen 0.0.0.0:2424 (not loopback) "
	    "makes an open relay");
	c = expect_ok("[server]\nlmtp_listen = 127.0.0.1:2424 unix:/run/l\nallow_clients = 0.0.0.0/0\n");
	assert_int_equal(c->warnings.count, 0);
	conf_free(c);
}

/* LMTP-6: LMTP is never offered on port 25; the error names file, line and key. */
static void
test_lmtp_listen(void **state)
{
	struct conf *c;

	(void)state;
	expect_error("[server]\nlmtp_listen = 127.0.0.1:2424 127.0.0.1:25\n",
	    "t.conf:2: [server] lmtp_listen: '127.0.0.1:25': LMTP must not be offered on port 25 "
	    "(RFC 2033 section 5); use another port, or a unix: socket");
	expect_error("[server]\nlmtp_listen = [::1]:25\n", "'[::1]:25': LMTP must not be offered on port 25");
	expect_error("[server]\nlmtp_listen = unix:relative\n", "a Unix socket needs an absolute path");
	/* the SMTP listener may use 25, and LMTP any other port or a socket */
	c = expect_ok("[server]\nlisten = 127.0.0.1:25\nlmtp_listen = 127.0.0.1:24 [::1]:2424 unix:/run/l\n"
	    "lmtp_max_domains = 1\n");
	assert_int_equal(c->server_lmtp_listen.count, 3);
	assert_int_equal(c->server_lmtp_max_domains, 1);
	conf_free(c);
	c = expect_ok("");
	assert_int_equal(c->server_lmtp_listen.count, 0);
	assert_int_equal(c->server_lmtp_max_domains, 50);
	conf_free(c);
	expect_error("[server]\nlmtp_max_domains = 0\n", "lmtp_max_domains");
}

/* Issue 11 §4: contact becomes MAIL FROM: a bare address, or mailto:, nothing else. */
static void
test_contact(void **state)
{
	struct conf *c;

	(void)state;
	c = expect_ok("[report]\ncontact = tls-reports@example.com\n");
	conf_free(c);
	c = expect_ok("[report]\ncontact = mailto:tls-reports@example.com\n");
	assert_string_equal(c->report_contact, "mailto:tls-reports@example.com");
	conf_free(c);
	expect_error("[report]\ncontact = https://example.com/tls\n",
	    "t.conf:2: [report] contact: 'https://example.com/tls' is not an email address; mailed reports "
	    "are sent from it (MAIL FROM and From:)");
	expect_error("[report]\ncontact = TLS team <tls@example.com>\n", "is not an email address");
	expect_error("[report]\ncontact = mailto:tls@example.com?subject=x\n", "is not an email address");
	expect_error("[report]\ncontact = tls@localhost\n", "is not an email address");
	expect_error("[report]\ncontact = @example.com\n", "is not an email address");
}

static void
test_key_rules(void **state)
{
	(void)state;
	expect_error("[report]\ndkim_key = /a.pem /b.pem\ndkim_selector = s1\n",
	    "t.conf:2: [report] dkim_key: 2 keys but 1 selector in dkim_selector: give one selector per key");
	expect_error("[report]\ndkim_selector = s1\n", "t.conf:2: [report] dkim_selector: 0 keys but 1 selector");
	expect_error("[report]\ndkim_key = /1 /2 /3 /4 /5\ndkim_selector = a b c d e\n", "5 keys; at most 4");
	expect_error("[report]\ndkim_key = key.pem\ndkim_selector = s\n", "'key.pem' is not an absolute path");
	expect_error("[server]\ntls_key_file = /k.pem\n",
	    "t.conf:2: [server] tls_key_file: set, but tls_cert_file is empty");
	/* Issue 17: the shared store. libpq checks the string, and its message is the reason. */
	expect_error("[store]\npostgresql = hostaddr=192.0.2.1 dbnmae=x\n",
	    "t.conf:2: [store] postgresql: not a libpq connection string: invalid connection option \"dbnmae\"");
	expect_error("[store]\npostgresql = postgresql://st:secret@db.example/st\n",
	    "t.conf:2: [store] postgresql: has a password: put it in a file");
	expect_error("[store]\npostgresql = host=db password=x\n", "has a password");
	expect_error("[store]\nbackend = postgresql\n",
	    "t.conf:2: [store] backend: postgresql needs [store] postgresql");
	expect_error("[store]\nshare_policies = yes\n",
	    "t.conf:2: [store] share_policies: yes needs [store] backend = postgresql");
	{
		struct strlist errors = { 0 };
		struct conf *c = parse("[store]\npostgresql = host=db.example passfile=/etc/st/pgpass\n", &errors);

		assert_non_null(c);
		assert_int_equal(c->warnings.count, 1);	/* set, but backend is lmdb */
		assert_non_null(strstr(c->warnings.items[0], "backend is lmdb"));
		conf_free(c);
	}
}

/* Issue 11 §4: a STSPROXY_* variable that sets nothing is a warning naming it. */
static void
test_unknown_environment(void **state)
{
	struct strlist errors = { 0 };
	struct conf *c;

	(void)state;
	setenv("STSPROXY_SERVER_LISTN", "127.0.0.1:25", 1);
	setenv("STSPROXY_TEST_SOMETHING", "1", 1);	/* the test and build scripts' own */
	c = conf_load(NULL, &errors);
	assert_non_null(c);
	assert_int_equal(c->warnings.count, 1);
	assert_string_equal(c->warnings.items[0], "environment STSPROXY_SERVER_LISTN sets no key and is "
	    "ignored; did you mean STSPROXY_SERVER_LISTEN?");
	conf_free(c);
	unsetenv("STSPROXY_SERVER_LISTN");
	setenv("STSPROXY_FROBNICATE", "1", 1);
	c = conf_load(NULL, &errors);
	assert_int_equal(c->warnings.count, 1);
	assert_string_equal(c->warnings.items[0], "environment STSPROXY_FROBNICATE sets no key and is ignored");
	conf_free(c);
	unsetenv("STSPROXY_FROBNICATE");
	/* The environment also takes part in the rules between keys. */
	setenv("STSPROXY_SERVER_LISTEN", "0.0.0.0:25", 1);
	setenv("STSPROXY_SERVER_ALLOW_CLIENTS", "0.0.0.0/0", 1);
	assert_null(conf_load(NULL, &errors));
	assert_int_equal(errors.count, 1);
	assert_non_null(strstr(errors.items[0], "environment STSPROXY_SERVER_ALLOW_CLIENTS: [server] "
	    "allow_clients: 0.0.0.0/0 with listen 0.0.0.0:25"));
	strlist_clear(&errors);
	unsetenv("STSPROXY_SERVER_LISTEN");
	unsetenv("STSPROXY_SERVER_ALLOW_CLIENTS");
	unsetenv("STSPROXY_TEST_SOMETHING");
}

/* check-config -n: only what differs from the defaults, and where it was set. */
static void
test_print_changed(void **state)
{
	struct conf *c = expect_ok("workers = 1\nhostname = r.example.com\n[dns]\nforwarders = 127.0.0.1\n");
	char *text = NULL;
	size_t len = 0, n;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	n = conf_print_changed(c, f);
	fclose(f);
	assert_int_equal(n, 2);
	assert_string_equal(text, "hostname = r.example.com   # t.conf:2\n\n[dns]\nforwarders = 127.0.0.1   # t.conf:4\n");
	free(text);
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_dane_keys),
		cmocka_unit_test(test_errors_name_line_and_key),
		cmocka_unit_test(test_all_errors_reported),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_print_round_trip),
		cmocka_unit_test(test_suggestions),
		cmocka_unit_test(test_open_relay),
		cmocka_unit_test(test_lmtp_listen),
		cmocka_unit_test(test_contact),
		cmocka_unit_test(test_key_rules),
		cmocka_unit_test(test_unknown_environment),
		cmocka_unit_test(test_print_changed),
	};

	return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}

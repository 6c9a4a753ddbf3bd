#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_CONF

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <strings.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/ssl.h>

#include "conf/conf.h"
#include "conf/log.h"
#include "conf/netaddr.h"

enum conf_type {
	CONF_T_STRING,
	CONF_T_PATH,
	CONF_T_BOOL,
	CONF_T_DURATION,
	CONF_T_SIZE,
	CONF_T_LIST,
	CONF_T_ENUM,
	CONF_T_COUNT,
};

/*
 * A list item validator returns NULL when the item is fine, otherwise a
 * reason (static or from xasprintf into *owned, which the caller frees).
 */
typedef const char *(*conf_item_check)(const char *item, char **owned);

struct conf_key {
	const char	*section;	/* "" for keys before any [section] */
	const char	*name;
	enum conf_type	 type;
	const char	*def;		/* parsed like a file value */
	size_t		 offset;
	unsigned long long min, max;	/* DURATION (seconds), SIZE (bytes), COUNT */
	const char	*choices;	/* ENUM: "a|b|c" */
	conf_item_check	 check;		/* LIST items, STRING values */
	const char	*doc;
};

static const char *check_forwarder(const char *item, char **owned);
static const char *check_override(const char *item, char **owned);
static const char *check_log_level(const char *item, char **owned);
static const char *check_log_levels(const char *item, char **owned);
static const char *check_workers(const char *item, char **owned);
static const char *check_listen(const char *item, char **owned);
static const char *check_lmtp_listen(const char *item, char **owned);
static const char *check_cidr(const char *item, char **owned);
static const char *check_hostname(const char *item, char **owned);
static const char *check_relay(const char *item, char **owned);
static const char *check_mode(const char *item, char **owned);
static const char *check_contact(const char *item, char **owned);
static const char *check_abs_path(const char *item, char **owned);
static const char *check_selector(const char *item, char **owned);
static const char *check_conninfo(const char *item, char **owned);

#define OFF(f) offsetof(struct conf, f)

static const struct conf_key conf_keys[] = {
	{ "", "state_dir", CONF_T_PATH, DEFAULT_STATE_DIR, OFF(state_dir), 0, 0, NULL, NULL,
	  "Directory for the persistent databases (policy cache, reports). Created if missing." },
	{ "", "log_level", CONF_T_STRING, "info", OFF(log_level), 0, 0, NULL, check_log_level,
	  "Least severe level logged: err, warning, notice, info or debug." },
	{ "", "log_levels", CONF_T_LIST, "", OFF(log_levels), 0, 0, NULL, check_log_levels,
	  "Per-subsystem levels that override log_level, as SUBSYSTEM=LEVEL items, e.g. "
	  "\"upstream=debug dns=warning\". Subsystems: main, conf, dns, policy, smtp, upstream, report." },
	{ "", "log_target", CONF_T_ENUM, "stderr", OFF(log_target), 0, 0, "stderr|syslog|file", NULL,
	  "Where serve logs: stderr (for systemd and containers), syslog, or file (log_file; SIGUSR1 reopens it "
	  "after rotation)." },
	{ "", "log_file", CONF_T_PATH, "/var/log/stsproxy/stsproxy.log", OFF(log_file), 0, 0, NULL, NULL,
	  "Log file when log_target = file. Opened before switching user; its directory must be writable by "
	  "user for SIGUSR1 to open a fresh file after rotation." },
	{ "", "log_facility", CONF_T_ENUM, "mail", OFF(log_facility), 0, 0,
	  "mail|daemon|local0|local1|local2|local3|local4|local5|local6|local7", NULL,
	  "Syslog facility when log_target = syslog." },
	{ "", "log_format", CONF_T_ENUM, "kv", OFF(log_format), 0, 0, "kv|json", NULL,
	  "kv: key=value lines; json: one JSON object per line with the same keys plus ts (ISO 8601) and "
	  "level, counts and sizes as JSON numbers (stsproxy(8), LOGGING)." },
	{ "", "pid_file", CONF_T_PATH, "", OFF(pid_file), 0, 0, NULL, NULL,
	  "Write the process id of serve here at start (before switching user) and remove it at exit. Empty: none." },
	{ "", "metrics_listen", CONF_T_STRING, "", OFF(metrics_listen), 0, 0, NULL, check_relay,
	  "ADDRESS:PORT for the Prometheus endpoint /metrics and the health check /healthz. Empty: off." },
	{ "", "hostname", CONF_T_STRING, "", OFF(hostname), 0, 0, NULL, check_hostname,
	  "Name used in the greeting, in Received headers and in EHLO to upstream servers. "
	  "Empty: the system host name. Also how stsproxy recognises itself in an MX list (RFC 5321 section 5.1)." },

	{ "", "user", CONF_T_STRING, "stsproxy", OFF(user), 0, 0, NULL, NULL,
	  "When started as root, stsproxy binds its sockets, opens its databases and keys, then runs as "
	  "this user (and its primary group), which owns state_dir. Create it with "
	  "useradd --system --user-group --no-create-home stsproxy." },
	{ "", "workers", CONF_T_STRING, "1", OFF(workers), 0, 0, NULL, check_workers,
	  "Worker processes serving clients: a count, or auto for one per core. Each worker binds the listen "
	  "addresses with SO_REUSEPORT and has its own event loop; the databases are shared. Limits such as "
	  "max_connections apply per worker. unix: listeners are served by the first worker." },
	{ "", "allow_root", CONF_T_BOOL, "no", OFF(allow_root), 0, 0, NULL, NULL,
	  "yes: keep running as root instead of switching to user. Not recommended." },

	{ "server", "listen", CONF_T_LIST, "127.0.0.1:8461", OFF(server_listen), 0, 0, NULL, check_listen,
	  "Addresses the relay accepts clients on, as ADDRESS:PORT, [IPV6]:PORT or unix:/PATH "
	  "(a Unix-domain socket for local MTAs; access is by file permission, see unix_mode). "
	  "The default port 8461 (after RFC 8461) is one no common mail-stack component uses: not 25, 465, "
	  "587 or 2525, not the amavisd-new ports 10024 to 10027 (10025 is where Postfix hosts re-inject "
	  "filtered mail, so a relay there clashes or loops), nor rspamd, spamd, clamd, LMTP, ManageSieve "
	  "or the OpenDKIM and OpenDMARC milters." },
	{ "server", "lmtp_listen", CONF_T_LIST, "", OFF(server_lmtp_listen), 0, 0, NULL, check_lmtp_listen,
	  "Addresses where the relay speaks LMTP (RFC 2033) instead of SMTP, in the same forms as listen; "
	  "same allow_clients, limits, unix_mode and unix_group. One LMTP transaction takes recipients of "
	  "any number of domains (up to lmtp_max_domains), each delivered through its own upstream, and the "
	  "client gets one reply per recipient after the data: the recommended set-up for Postfix, Exim and "
	  "Sendmail (stsproxy(8), LMTP). Never port 25 (RFC 2033 section 5). STARTTLS is offered on TCP when "
	  "tls_cert_file is set, never on a Unix socket. Empty: no LMTP listener." },
	{ "server", "unix_mode", CONF_T_STRING, "0660", OFF(server_unix_mode), 0, 0, NULL, check_mode,
	  "Permissions of unix: listen sockets (octal)." },
	{ "server", "unix_group", CONF_T_STRING, "", OFF(server_unix_group), 0, 0, NULL, NULL,
	  "Group of unix: listen sockets, e.g. postfix. Empty: the group of the user stsproxy starts as." },
	{ "server", "allow_clients", CONF_T_LIST, "127.0.0.0/8 ::1/128", OFF(server_allow_clients), 0, 0, NULL, check_cidr,
	  "Client networks allowed to relay, as ADDRESS/PREFIX (or a single address). Every other client gets "
	  "554 5.7.1 at connect: stsproxy is never an open relay." },
	{ "server", "allow_open_relay", CONF_T_BOOL, "no", OFF(server_allow_open_relay), 0, 0, NULL, NULL,
	  "stsproxy refuses to start when allow_clients contains 0.0.0.0/0 or ::/0 and a listen address is "
	  "not loopback: whoever reaches that address could relay mail through it (an open relay). "
	  "yes: start anyway, with a warning at every start; only for a relay that a firewall or a "
	  "private network already shields." },
	{ "server", "max_connections", CONF_T_COUNT, "500", OFF(server_max_connections), 1, 100000, NULL, NULL,
	  "Most client connections at once (per worker), lowered at start with a warning when the descriptor "
	  "limit cannot hold them (see LIMITS in stsproxy(8)). When full, the oldest connection still waiting "
	  "for HELO/EHLO after a second is closed with 421 4.7.0 to make room; without one, the new client "
	  "gets 421 4.7.0 at connect." },
	{ "server", "max_connections_per_client", CONF_T_COUNT, "50", OFF(server_max_per_client), 1, 100000, NULL, NULL,
	  "Most connections at once from one client address. When reached, that address's oldest connection "
	  "still waiting for HELO/EHLO is closed to make room as for max_connections; without one, the new "
	  "client gets 421 4.7.0 at connect." },
	{ "server", "max_message_size", CONF_T_SIZE, "50M", OFF(server_max_message_size), 65536, 1ULL << 32, NULL, NULL,
	  "Largest message accepted, advertised as SIZE; larger ones get 552 5.3.4." },
	{ "server", "max_recipients", CONF_T_COUNT, "1000", OFF(server_max_recipients), 100, 100000, NULL, NULL,
	  "Most recipients in one transaction (RFC 5321 requires at least 100); more get 452 4.5.3." },
	{ "server", "lmtp_max_domains", CONF_T_COUNT, "50", OFF(server_lmtp_max_domains), 1, 1000, NULL, NULL,
	  "Most recipient domains in one LMTP transaction, each with an upstream connection of its own; "
	  "recipients of further domains get 452 4.5.3 and the client sends them in its next transaction. "
	  "50 matches Postfix's default recipients per delivery." },
	{ "server", "allow_bare_newline", CONF_T_BOOL, "no", OFF(server_allow_bare_newline), 0, 0, NULL, NULL,
	  "no: a command line that ends in a bare LF instead of CR LF (RFC 5321 section 2.3.8) gets "
	  "550 5.5.2 Error: bare <LF> received and the connection is closed, as Postfix does with "
	  "smtpd_forbid_bare_newline. yes: accept such commands, for a legacy client that cannot be fixed. "
	  "The message body is unaffected: there bare LF and bare CR are always normalised to CR LF." },
	{ "server", "command_timeout", CONF_T_DURATION, "5m", OFF(server_command_timeout), 1, 3600, NULL, NULL,
	  "Time a client may take for a whole command line, counted from when stsproxy is ready for it (RFC 5321 "
	  "section 4.5.3.2 asks for at least 5 minutes); bytes trickling in do not extend it. Then 421 4.4.2." },
	{ "server", "helo_timeout", CONF_T_DURATION, "30s", OFF(server_helo_timeout), 1, 3600, NULL, NULL,
	  "Time from the greeting (and from the end of a STARTTLS handshake) to a successful HELO or EHLO; "
	  "then 421 4.4.2. Mail servers send EHLO at once; a connection idle before it only holds a slot." },
	{ "server", "data_timeout", CONF_T_DURATION, "5m", OFF(server_data_timeout), 1, 3600, NULL, NULL,
	  "Time a client may leave the message body idle; then 421 4.4.2." },
	{ "server", "data_deadline", CONF_T_DURATION, "5m", OFF(server_data_deadline), 1, 86400, NULL, NULL,
	  "Time every message body gets in total, however small, from the 354 to the final dot; each "
	  "data_min_rate bytes received add one second. A slower client gets 421 4.4.2 and keeps its message." },
	{ "server", "data_min_rate", CONF_T_SIZE, "1k", OFF(server_data_min_rate), 1, 1ULL << 30, NULL, NULL,
	  "Bytes per second that extend data_deadline: a body of N bytes may take data_deadline + N / "
	  "data_min_rate seconds. Time the relay makes the client wait for a slow MX does not count." },
	{ "server", "shutdown_timeout", CONF_T_DURATION, "60s", OFF(server_shutdown_timeout), 1, 3600, NULL, NULL,
	  "On SIGTERM, transactions in flight may finish for this long; then the remaining clients get "
	  "421 4.3.2 (their messages stay queued with them) and stsproxy exits." },
	{ "server", "tls_cert_file", CONF_T_PATH, "", OFF(server_tls_cert_file), 0, 0, NULL, NULL,
	  "PEM certificate chain offered to clients with STARTTLS. Empty: STARTTLS is not offered." },
	{ "server", "tls_key_file", CONF_T_PATH, "", OFF(server_tls_key_file), 0, 0, NULL, NULL,
	  "PEM private key for tls_cert_file." },

	{ "upstream", "port", CONF_T_COUNT, "25", OFF(upstream_port), 1, 65535, NULL, NULL,
	  "TCP port of the recipient domains' MX servers." },
	{ "upstream", "connect_timeout", CONF_T_DURATION, "30s", OFF(upstream_connect_timeout), 1, 600, NULL, NULL,
	  "Time allowed to open a TCP connection to one MX address." },
	{ "upstream", "command_timeout", CONF_T_DURATION, "5m", OFF(upstream_command_timeout), 5, 3600, NULL, NULL,
	  "Time allowed for an upstream reply to the greeting, EHLO, STARTTLS, MAIL, RCPT and DATA, and for the TLS handshake." },
	{ "upstream", "data_timeout", CONF_T_DURATION, "10m", OFF(upstream_data_timeout), 10, 3600, NULL, NULL,
	  "Time allowed for the upstream reply to the end of the message (RFC 5321 section 4.5.3.2.6 asks for 10 minutes)." },
	{ "upstream", "max_attempts", CONF_T_COUNT, "10", OFF(upstream_max_attempts), 2, 100, NULL, NULL,
	  "Most MX addresses tried for one transaction (RFC 5321 section 5.1: at least two)." },
	{ "upstream", "ipv6", CONF_T_BOOL, "yes", OFF(upstream_ipv6), 0, 0, NULL, NULL,
	  "Also connect to MX servers over IPv6 (IPv6 addresses are tried before IPv4 ones)." },
	{ "upstream", "reuse", CONF_T_BOOL, "yes", OFF(upstream_reuse), 0, 0, NULL, NULL,
	  "Keep a connection that ended a transaction cleanly (RSET, 250) for the next transaction to the same "
	  "MX host and address. A connection opened under a policy serves any later transaction whose policy "
	  "allows that host; one opened without a policy never serves a domain with a policy." },
	{ "upstream", "reuse_idle_timeout", CONF_T_DURATION, "10s", OFF(upstream_reuse_idle_timeout), 1, 300, NULL, NULL,
	  "How long an idle connection is kept before QUIT." },
	{ "upstream", "reuse_max_messages", CONF_T_COUNT, "100", OFF(upstream_reuse_max_messages), 1, 100000, NULL, NULL,
	  "Transactions one connection carries before it is closed." },
	{ "upstream", "reuse_pool_size", CONF_T_COUNT, "200", OFF(upstream_reuse_pool_size), 1, 100000, NULL, NULL,
	  "Most idle connections kept per worker; the oldest is closed to make room." },

	{ "dns", "forwarders", CONF_T_LIST, "", OFF(dns_forwarders), 0, 0, NULL, check_forwarder,
	  "Recursive resolvers to forward queries to, as ADDRESS or ADDRESS@PORT. "
	  "Empty: full recursion from the root (/etc/resolv.conf is not read). Loopback forwarders are "
	  "allowed. Special-use names (test., invalid., onion., home.arpa., private reverse zones) are "
	  "resolved like any other name; only localhost. is answered locally." },
	{ "dns", "trust_anchor_file", CONF_T_PATH, DEFAULT_ROOT_ANCHOR, OFF(dns_trust_anchor_file), 0, 0, NULL, NULL,
	  "DNSSEC trust anchor file (DS or DNSKEY records in zone-file format). "
	  "The default is Debian's dns-root-data root anchor." },
	{ "dns", "dnssec", CONF_T_BOOL, "yes", OFF(dns_dnssec), 0, 0, NULL, NULL,
	  "Validate DNSSEC. Bogus answers are then never used." },
	{ "dns", "timeout", CONF_T_DURATION, "10s", OFF(dns_timeout), 1, 300, NULL, NULL,
	  "Time allowed for one DNS query before it counts as a timeout." },

	{ "tls", "ca_file", CONF_T_PATH, "", OFF(tls_ca_file), 0, 0, NULL, NULL,
	  "PEM file of trusted CA certificates. Empty (with ca_path empty): the system trust store." },
	{ "tls", "ca_path", CONF_T_PATH, "", OFF(tls_ca_path), 0, 0, NULL, NULL,
	  "Directory of hashed CA certificates, as made by openssl rehash." },
	{ "tls", "min_version", CONF_T_ENUM, "1.2", OFF(tls_min_version), 0, 0, "1.2|1.3", NULL,
	  "Lowest TLS version accepted for policy fetches and upstream SMTP (RFC 8461 requires 1.2 or later)." },
	{ "tls", "dane", CONF_T_BOOL, "yes", OFF(tls_dane), 0, 0, NULL, NULL,
	  "Authenticate MX hosts with DANE (RFC 7672): an MX whose DNSSEC-signed TLSA records at "
	  "_25._tcp.<host> are usable is authenticated by them alone, and MTA-STS never overrides a DANE "
	  "failure (RFC 8461 section 2); an MX without usable TLSA records keeps MTA-STS or opportunistic TLS. "
	  "Needs [dns] dnssec = yes; with dnssec = no the default is no. Require DANE for a domain with "
	  "[policy] override = DOMAIN:dane-only." },

	{ "policy", "fetch_timeout", CONF_T_DURATION, "60s", OFF(policy_fetch_timeout), 1, 600, NULL, NULL,
	  "Total time allowed for one HTTPS policy fetch, connection to last byte (RFC 8461 section 3.3 suggests 60s)." },
	{ "policy", "max_body", CONF_T_SIZE, "65536", OFF(policy_max_body), 1024, 1024 * 1024, NULL, NULL,
	  "Largest policy body accepted; a larger one is a fetch failure (RFC 8461 section 3.3 suggests 64 KiB)." },
	{ "policy", "refresh_interval", CONF_T_DURATION, "1d", OFF(policy_refresh_interval), 300, 31557600, NULL, NULL,
	  "A cached policy older than this is fetched again in the background, whatever the TXT record says "
	  "(RFC 8461 sections 3.3 and 10.2)." },
	{ "policy", "cache_size", CONF_T_SIZE, "64M", OFF(policy_cache_size), 1024 * 1024, 1ULL << 36, NULL, NULL,
	  "Maximum size of the policy cache database (the LMDB map size). About 2 KiB per domain." },
	{ "policy", "override", CONF_T_LIST, "", OFF(policy_override), 0, 0, NULL, check_override,
	  "Force a mode for domains, as DOMAIN:MODE with MODE enforce, testing or none. "
	  "The discovered policy keeps its mx patterns; only its mode changes. For testing. "
	  "MODE dane-only makes DANE mandatory for the domain (RFC 7672 section 6): an MX without "
	  "usable DNSSEC-signed TLSA records is not used (dane-required), and with none left the "
	  "message is deferred. A domain may have both a mode and dane-only." },
	{ "policy", "simulate", CONF_T_ENUM, "off", OFF(policy_simulate), 0, 0, "off|enforce", NULL,
	  "enforce: for every domain whose policy is in testing mode, also log and record the reply "
	  "enforce mode would have given the client (event=sts_simulate), while delivering as testing does; "
	  "and for every domain with usable TLSA records on some MX but no DOMAIN:dane-only override, log "
	  "the reply dane-only would have given when a message goes to an MX without DANE and no MX "
	  "with usable TLSA records is left (event=dane_simulate)." },

	{ "report", "flush_interval", CONF_T_DURATION, "5s", OFF(report_flush_interval), 1, 300, NULL, NULL,
	  "Session outcomes are written to the report database in one transaction at most this often; "
	  "a crash loses at most this window, never the database." },
	{ "report", "db_size", CONF_T_SIZE, "256M", OFF(report_db_size), 1024 * 1024, 1ULL << 36, NULL, NULL,
	  "Maximum size of the TLS-RPT database (<state_dir>/reports.mdb, the LMDB map size)." },
	{ "report", "organization", CONF_T_STRING, "", OFF(report_organization), 0, 0, NULL, NULL,
	  "organization-name of the reports (RFC 8460 section 4.4). Empty: the host name." },
	{ "report", "contact", CONF_T_STRING, "", OFF(report_contact), 0, 0, NULL, check_contact,
	  "contact-info of the reports, and the sender (MAIL FROM and From:) of mailed reports: an email "
	  "address, user@example.com; the form mailto:user@example.com is accepted and used without its "
	  "scheme. Empty: postmaster@ the host name." },
	{ "report", "submitter", CONF_T_STRING, "", OFF(report_submitter), 0, 0, NULL, NULL,
	  "Submitter domain (file names, TLS-Report-Submitter). Empty: the domain of contact, which "
	  "RFC 8460 requires the submitter to be." },
	{ "report", "send_success_only_reports", CONF_T_BOOL, "no", OFF(report_send_success_only), 0, 0, NULL, NULL,
	  "Also send reports for days without any failure." },
	{ "report", "retry_interval", CONF_T_DURATION, "10m", OFF(report_retry_interval), 1, 21600, NULL, NULL,
	  "First wait after a failed report delivery; each further failure doubles it, up to 6 hours, "
	  "for 24 hours after the first attempt (RFC 8460 section 5.5)." },
	{ "report", "dkim_key", CONF_T_LIST, "", OFF(report_dkim_key), 0, 0, NULL, check_abs_path,
	  "PEM private keys (RSA and/or Ed25519, at most 4) that sign mailed reports, one DKIM-Signature each "
	  "(RFC 8460 section 3 requires a signature). Paired in order with dkim_selector." },
	{ "report", "dkim_selector", CONF_T_LIST, "", OFF(report_dkim_selector), 0, 0, NULL, check_selector,
	  "DKIM selector of each dkim_key, in the same order. Publish each public key with s=tlsrpt "
	  "or s=email:tlsrpt (RFC 8460 section 3)." },
	{ "report", "dkim_domain", CONF_T_STRING, "", OFF(report_dkim_domain), 0, 0, NULL, check_hostname,
	  "d= of the signatures. Empty: the submitter domain." },
	{ "report", "submission_relay", CONF_T_STRING, "", OFF(report_submission_relay), 0, 0, NULL, check_relay,
	  "Send mailed reports through this SMTP server (ADDRESS:PORT) instead of the rua domain's MX. "
	  "Opportunistic TLS; no authentication." },
	{ "report", "max_delay", CONF_T_DURATION, "4h", OFF(report_max_delay), 0, 86400, NULL, NULL,
	  "Reports leave after 00:00 UTC plus a random delay up to this (RFC 8460 section 4.1), "
	  "so that a fleet of senders does not hit receivers at once." },

	{ "store", "backend", CONF_T_ENUM, "lmdb", OFF(store_backend), 0, 0, "lmdb|postgresql", NULL,
	  "Where the TLS-RPT counters and outbox live. lmdb: <state_dir>/reports.mdb on this host. "
	  "postgresql: the database of [store] postgresql, shared by a fleet of relays, so that they "
	  "send one report per domain and destination (docs/fleet.md). Run stsproxy store init first." },
	{ "store", "postgresql", CONF_T_STRING, "", OFF(store_postgresql), 0, 0, NULL, check_conninfo,
	  "libpq connection string (host=... dbname=... user=...; or a postgresql:// URI). No password: "
	  "it comes from the file passfile= names or from the standard PGPASSFILE (~/.pgpass). "
	  "Prefer hostaddr= to host=: a host name is resolved with a blocking lookup at each (re)connect." },
	{ "store", "share_policies", CONF_T_BOOL, "no", OFF(store_share_policies), 0, 0, NULL, NULL,
	  "yes: the MTA-STS policy cache lives in the database too, so one fetch serves the fleet; each "
	  "relay keeps its in-process memo and a copy in <state_dir>/policy.mdb for when the database "
	  "is down. Needs backend = postgresql." },
	{ "store", "timeout", CONF_T_DURATION, "2s", OFF(store_timeout), 1, 60, NULL, NULL,
	  "Longest wait for the database in one step (connect, query, commit); after it the step "
	  "counts as failed and the store as degraded, and mail flows on." },
	{ "store", "buffer", CONF_T_COUNT, "100000", OFF(store_buffer), 1, 10000000, NULL, NULL,
	  "While the database is unreachable, counter records kept in memory before they are written "
	  "(spilled) to <state_dir>/reports.mdb, where a restart finds them too; they are spilled after "
	  "a minute in any case. Spilled counts reach the database once when it is back." },
};

#define NKEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

static const char *
check_log_level(const char *item, char **owned)
{
	(void)owned;
	return log_level_parse(item) < 0 ? "must be err, warning, notice, info or debug" : NULL;
}

static const char *
check_workers(const char *item, char **owned)
{
	char *end;
	long n;

	(void)owned;
	if (strcmp(item, "auto") == 0)
		return NULL;
	n = strtol(item, &end, 10);
	return (*end != '\0' || n < 1 || n > 64) ? "must be auto or a count from 1 to 64" : NULL;
}

static const char *
check_log_levels(const char *item, char **owned)
{
	const char *eq = strchr(item, '=');
	char sub[32];

	if (eq == NULL || (size_t)(eq - item) >= sizeof(sub))
		return (*owned = xasprintf("\"%s\" is not SUBSYSTEM=LEVEL", item));
	memcpy(sub, item, (size_t)(eq - item));
	sub[eq - item] = '\0';
	if (log_subsystem_parse(sub) < 0)
		return (*owned = xasprintf("unknown subsystem \"%s\" (main, conf, dns, policy, smtp, "
		    "upstream, report)", sub));
	if (log_level_parse(eq + 1) < 0)
		return (*owned = xasprintf("level \"%s\" must be err, warning, notice, info or debug", eq + 1));
	return NULL;
}

static const char *
check_listen(const char *item, char **owned)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *why;

	if (strncmp(item, "unix:", 5) == 0) {
		if (item[5] != '/' || strlen(item + 5) >= 108) {
			*owned = xasprintf("'%s': a Unix socket needs an absolute path under 108 bytes", item);
			return *owned;
		}
		return NULL;
	}
	why = netaddr_parse_hostport(item, &ss, &len);

	if (why == NULL)
		return NULL;
	*owned = xasprintf("'%s': %s", item, why);
	return *owned;
}

/* LMTP-6: LMTP is never offered on port 25, where SMTP clients expect SMTP. */
static const char *
check_lmtp_listen(const char *item, char **owned)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *why = check_listen(item, owned);

	if (why != NULL || strncmp(item, "unix:", 5) == 0)
		return why;
	if (netaddr_parse_hostport(item, &ss, &len) == NULL &&
	    ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port) == 25) {
		*owned = xasprintf("'%s': LMTP must not be offered on port 25 (RFC 2033 section 5); "
		    "use another port, or a unix: socket", item);
		return *owned;
	}
	return NULL;
}

static const char *
check_mode(const char *item, char **owned)
{
	char *end;
	long m = strtol(item, &end, 8);

	(void)owned;
	return (*item == '\0' || *end != '\0' || m < 0 || m > 0777) ? "must be an octal mode such as 0660" : NULL;
}

static const char *
check_relay(const char *item, char **owned)
{
	return item[0] == '\0' ? NULL : check_listen(item, owned);
}

/*
 * The contact is also the envelope sender and From: of mailed reports, so
 * it must be a plain address; a URI there used to reach the MX verbatim
 * (MAIL FROM:<mailto:x@y>, refused with 501) and every report bounced.
 * mailto: is what RFC 8460 rua= uses, so that form is accepted and
 * rpt_identity_init() drops the scheme.
 */
static const char *
check_contact(const char *item, char **owned)
{
	const char *addr = item, *at;
	char *norm = NULL;
	bool ok;

	if (item[0] == '\0')
		return NULL;
	if (strncasecmp(addr, "mailto:", 7) == 0)
		addr += 7;
	at = strrchr(addr, '@');
	ok = at != NULL && at != addr && strcspn(addr, " \t<>()[]\\,;:\"%?") == strlen(addr) &&
	    (norm = domain_normalize(at + 1)) != NULL && strchr(norm, '.') != NULL;
	free(norm);
	if (ok)
		return NULL;
	*owned = xasprintf("'%s' is not an email address; mailed reports are sent from it (MAIL FROM "
	    "and From:), so write it as user@example.com (mailto:user@example.com is accepted too)", item);
	return *owned;
}

static const char *
check_abs_path(const char *item, char **owned)
{
	if (item[0] == '/')
		return NULL;
	*owned = xasprintf("'%s' is not an absolute path", item);
	return *owned;
}

/*
 * A libpq connection string, checked by libpq itself so the message is
 * the one psql would give. The password must come from a file
 * (passfile=, PGPASSFILE): a configuration file is read by tools, copied
 * into tickets and printed by check-config.
 */
static const char *
check_conninfo(const char *item, char **owned)
{
	PQconninfoOption *opts;
	char *err = NULL;
	bool password = false;

	if (item[0] == '\0')
		return NULL;
	if ((opts = PQconninfoParse(item, &err)) == NULL) {
		size_t n = err != NULL ? strlen(err) : 0;

		while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
			n--;
		*owned = xasprintf("not a libpq connection string: %.*s", (int)n,
		    err != NULL ? err : "out of memory");
		PQfreemem(err);
		return *owned;
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL)
			password = true;
	PQconninfoFree(opts);
	if (password)
		return "has a password: put it in a file that only the relay's user reads and name it "
		    "with passfile=/path, or use PGPASSFILE or ~/.pgpass (format "
		    "host:port:dbname:user:password)";
	return NULL;
}

/* A DKIM selector is a sub-domain: letters, digits, '-', '.' (RFC 6376 3.1). */
static const char *
check_selector(const char *item, char **owned)
{
	for (const char *p = item; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_') {
			*owned = xasprintf("'%s' is not a DKIM selector (letters, digits, '-' and '.')", item);
			return *owned;
		}
	return NULL;
}

static const char *
check_cidr(const char *item, char **owned)
{
	struct netaddr_cidr c;
	const char *why = netaddr_parse_cidr(item, &c);

	if (why == NULL)
		return NULL;
	*owned = xasprintf("'%s': %s", item, why);
	return *owned;
}

static const char *
check_hostname(const char *item, char **owned)
{
	char *norm;

	if (item[0] == '\0')
		return NULL;
	if ((norm = domain_normalize(item)) == NULL || strchr(norm, '.') == NULL) {
		free(norm);
		*owned = xasprintf("'%s' is not a fully qualified host name", item);
		return *owned;
	}
	free(norm);
	return NULL;
}

static const char *
check_forwarder(const char *item, char **owned)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *at = strchr(item, '@');
	size_t alen = at ? (size_t)(at - item) : strlen(item);
	unsigned char bin[16];

	if (alen == 0 || alen >= sizeof(addr)) {
		*owned = xasprintf("'%s' is not an IP address", item);
		return *owned;
	}
	memcpy(addr, item, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1) {
		*owned = xasprintf("'%s' is not an IP address (host names are not allowed here)", addr);
		return *owned;
	}
	if (at != NULL) {
		char *end;
		long port;

		errno = 0;
		port = strtol(at + 1, &end, 10);
		if (at[1] == '\0' || *end != '\0' || errno != 0 || port < 1 || port > 65535) {
			*owned = xasprintf("'%s' has a bad port (1-65535 after '@')", item);
			return *owned;
		}
	}
	return NULL;
}

static const char *
check_override(const char *item, char **owned)
{
	const char *colon = strrchr(item, ':');
	char *dom;

	if (colon == NULL) {
		*owned = xasprintf("'%s' is not DOMAIN:MODE", item);
		return *owned;
	}
	dom = xstrndup(item, (size_t)(colon - item));
	char *norm = domain_normalize(dom);
	free(dom);
	if (norm == NULL) {
		*owned = xasprintf("'%s' does not start with a valid domain name", item);
		return *owned;
	}
	free(norm);
	if (strcmp(colon + 1, "enforce") != 0 && strcmp(colon + 1, "testing") != 0 &&
	    strcmp(colon + 1, "none") != 0 && strcmp(colon + 1, "dane-only") != 0) {
		*owned = xasprintf("'%s': mode must be enforce, testing, none or dane-only", item);
		return *owned;
	}
	return NULL;
}

/* Parse "<digits>[suffix]" with the given unit table; -1 on error. */
static int
parse_scaled(const char *v, const char *suffixes, const unsigned long long *mult,
    unsigned long long *out)
{
	char *end;
	unsigned long long n;

	if (!isdigit((unsigned char)v[0]))
		return -1;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0)
		return -1;
	if (*end != '\0') {
		const char *s = end[1] == '\0' ? strchr(suffixes, *end) : NULL;

		if (s == NULL || *end == '\0')
			return -1;
		unsigned long long m = mult[s - suffixes];
		if (n > ULLONG_MAX / m)
			return -1;
		n *= m;
	}
	*out = n;
	return 0;
}

static void
add_error(struct strlist *errors, const char *file, int line, const struct conf_key *k,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
add_error(struct strlist *errors, const char *file, int line, const struct conf_key *k,
    const char *fmt, ...)
{
	struct strbuf sb;
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	strbuf_init(&sb);
	if (line > 0)
		strbuf_printf(&sb, "%s:%d: ", file, line);
	else
		strbuf_printf(&sb, "%s: ", file);
	if (k != NULL) {
		if (k->section[0] != '\0')
			strbuf_printf(&sb, "[%s] ", k->section);
		strbuf_printf(&sb, "%s: ", k->name);
	}
	strbuf_printf(&sb, "%s", msg);
	strlist_add(errors, sb.data);
	strbuf_free(&sb);
	free(msg);
}

/* Store value into conf for key k; on error append it and return -1. */
static int
conf_set(struct conf *conf, const struct conf_key *k, const char *value,
    const char *file, int line, struct strlist *errors)
{
	void *field = (char *)conf + k->offset;
	static const unsigned long long dur_mult[] = { 1, 60, 3600, 86400 };
	static const unsigned long long size_mult[] = { 1024, 1024 * 1024, 1024ULL * 1024 * 1024,
		1024, 1024 * 1024, 1024ULL * 1024 * 1024 };
	unsigned long long n;
	char *owned = NULL;
	const char *why;

	switch (k->type) {
	case CONF_T_PATH:
		if (value[0] != '\0' && value[0] != '/') {
			add_error(errors, file, line, k, "'%s' is not an absolute path", value);
			return -1;
		}
		/* FALLTHROUGH */
	case CONF_T_STRING:
		if (k->check != NULL && (why = k->check(value, &owned)) != NULL) {
			add_error(errors, file, line, k, "%s", why);
			free(owned);
			return -1;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 0;
	case CONF_T_ENUM: {
		size_t vl = strlen(value);
		const char *c = k->choices;
		bool ok = false;

		while (*c) {
			size_t cl = strcspn(c, "|");
			if (cl == vl && strncmp(c, value, vl) == 0)
				ok = true;
			c += cl + (c[cl] == '|');
		}
		if (!ok) {
			add_error(errors, file, line, k, "'%s' is not one of %s", value, k->choices);
			return -1;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 0;
	}
	case CONF_T_BOOL:
		if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "on") ||
		    !strcmp(value, "1"))
			*(bool *)field = true;
		else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "off") ||
		    !strcmp(value, "0"))
			*(bool *)field = false;
		else {
			add_error(errors, file, line, k, "'%s' is not yes or no", value);
			return -1;
		}
		return 0;
	case CONF_T_DURATION:
		if (parse_scaled(value, "smhd", dur_mult, &n) < 0) {
			add_error(errors, file, line, k,
			    "'%s' is not a duration (seconds, or a number with s, m, h or d)", value);
			return -1;
		}
		if (n < k->min || n > k->max) {
			add_error(errors, file, line, k, "%s is out of range (%llus to %llus)", value,
			    k->min, k->max);
			return -1;
		}
		*(unsigned *)field = (unsigned)n;
		return 0;
	case CONF_T_SIZE:
		if (parse_scaled(value, "KMGkmg", size_mult, &n) < 0) {
			add_error(errors, file, line, k,
			    "'%s' is not a size (bytes, or a number with K, M or G)", value);
			return -1;
		}
		if (n < k->min || n > k->max) {
			add_error(errors, file, line, k, "%s is out of range (%llu to %llu bytes)",
			    value, k->min, k->max);
			return -1;
		}
		*(size_t *)field = (size_t)n;
		return 0;
	case CONF_T_COUNT:
		if (parse_scaled(value, "", NULL, &n) < 0) {
			add_error(errors, file, line, k, "'%s' is not a number", value);
			return -1;
		}
		if (n < k->min || n > k->max) {
			add_error(errors, file, line, k, "%s is out of range (%llu to %llu)",
			    value, k->min, k->max);
			return -1;
		}
		*(unsigned *)field = (unsigned)n;
		return 0;
	case CONF_T_LIST: {
		struct strlist *l = field;
		char *copy = xstrdup(value), *save = NULL;
		int rc = 0;

		strlist_clear(l);
		for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
			/* "10.0.0.0/8, 192.168.0.0/16" is the commonest list typo. */
			if (tok[strlen(tok) - 1] == ',') {
				add_error(errors, file, line, k, "'%s': lists are space-separated; "
				    "remove the comma", tok);
				rc = -1;
				continue;
			}
			if (k->check != NULL && (why = k->check(tok, &owned)) != NULL) {
				add_error(errors, file, line, k, "%s%s", why, strchr(tok, ',') ?
				    " (lists are space-separated, not comma-separated)" : "");
				free(owned);
				owned = NULL;
				rc = -1;
				continue;
			}
			strlist_add(l, tok);
		}
		free(copy);
		return rc;
	}
	}
	fatalx("conf_set: unknown type %d", (int)k->type);
}

static const struct conf_key *
conf_key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(conf_keys[i].section, section) && !strcmp(conf_keys[i].name, name))
			return &conf_keys[i];
	return NULL;
}

static bool
section_known(const char *section)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(conf_keys[i].section, section))
			return true;
	return false;
}

/* ---- "did you mean": suggestions for names that are not ours ---------- */

#define SUGGEST_MAX_LEN	64
#define CONF_MAX_HINTS	32	/* unknown names per file that get a "did you mean" */

/*
 * Edit distance between two names, ASCII case ignored, where swapping two
 * neighbours counts as one edit (optimal string alignment): "listne" is
 * one edit from "listen". SIZE_MAX for names too long to be ours, or
 * whose lengths alone put them more than limit edits apart.
 */
static size_t
edit_distance(const char *a, const char *b, size_t limit)
{
	unsigned short d[SUGGEST_MAX_LEN + 1][SUGGEST_MAX_LEN + 1];
	size_t la = strlen(a), lb = strlen(b);

	if (la > SUGGEST_MAX_LEN || lb > SUGGEST_MAX_LEN || (la > lb ? la - lb : lb - la) > limit)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned short)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned short)j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
			unsigned short v = (unsigned short)(d[i - 1][j - 1] + (ca != cb));

			if (d[i - 1][j] + 1 < v)
				v = (unsigned short)(d[i - 1][j] + 1);
			if (d[i][j - 1] + 1 < v)
				v = (unsigned short)(d[i][j - 1] + 1);
			if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
			    tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < v)
				v = (unsigned short)(d[i - 2][j - 2] + 1);
			d[i][j] = v;
		}
	return d[la][lb];
}

/* How far a typo may be from the name it stands for: a third of it, 1 to 3 edits. */
static size_t
suggest_limit(const char *typed)
{
	size_t n = strlen(typed) / 3;

	return n < 1 ? 1 : n > 3 ? 3 : n;
}

/* " ([server] listen)": how a key is named where it lives. */
static void
key_place(struct strbuf *sb, const struct conf_key *k)
{
	if (k->section[0] != '\0')
		strbuf_printf(sb, "[%s] %s", k->section, k->name);
	else
		strbuf_printf(sb, "%s (a top-level key, before any [section])", k->name);
}

/* "; did you mean ...?" for an unknown key in section, or "". Caller frees. */
static char *
key_hint(const char *section, const char *key)
{
	const struct conf_key *best = NULL;
	size_t best_d = SIZE_MAX;
	struct strbuf sb;

	/*
	 * The nearest name, this section winning ties: a typo ("listne"), or
	 * the right name in the wrong place (listen written above [server],
	 * distance 0 in another section).
	 */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < NKEYS; i++) {
			const struct conf_key *k = &conf_keys[i];
			size_t d;

			if ((strcmp(k->section, section) == 0) != (pass == 0))
				continue;
			if ((d = edit_distance(key, k->name, suggest_limit(key))) < best_d) {
				best_d = d;
				best = k;
			}
		}
	strbuf_init(&sb);
	if (best != NULL && best_d <= suggest_limit(key)) {
		strbuf_printf(&sb, "; did you mean ");
		if (strcmp(best->section, section) == 0)
			strbuf_printf(&sb, "%s", best->name);
		else
			key_place(&sb, best);
		strbuf_printf(&sb, "?");
	}
	return sb.data != NULL ? strbuf_steal(&sb) : xstrdup("");
}

/* "; did you mean [server]?" for an unknown section, or "". Caller frees. */
static char *
section_hint(const char *section)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;

	for (size_t i = 0; i < NKEYS; i++) {
		size_t d = edit_distance(section, conf_keys[i].section, suggest_limit(section));

		if (conf_keys[i].section[0] != '\0' && d < best_d) {
			best_d = d;
			best = conf_keys[i].section;
		}
	}
	if (best != NULL && best_d <= suggest_limit(section))
		return xasprintf("; did you mean [%s]?", best);
	return xstrdup("");
}

/* ---- loading ------------------------------------------------------------ */

static struct conf *
conf_defaults(void)
{
	struct conf *conf = xcalloc(1, sizeof(*conf));
	struct strlist errors = { 0 };

	conf->origins = xcalloc(NKEYS, sizeof(*conf->origins));
	for (size_t i = 0; i < NKEYS; i++)
		if (conf_set(conf, &conf_keys[i], conf_keys[i].def, "defaults", 0, &errors) < 0)
			fatalx("embedded default invalid: %s", errors.items[0]);
	return conf;
}

/* Remember where key k got its value; where is owned by the conf from now on. */
static void
set_origin(struct conf *conf, const struct conf_key *k, char *where)
{
	size_t idx = (size_t)(k - conf_keys);

	free(conf->origins[idx]);
	conf->origins[idx] = where;
}

static const char *
origin_of(const struct conf *conf, const char *section, const char *name)
{
	const struct conf_key *k = conf_key_find(section, name);
	const char *o = k != NULL ? conf->origins[k - conf_keys] : NULL;

	return o != NULL ? o : "defaults";
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Parse buf into conf (over its defaults). 0, or -1 with errors appended. */
static int
parse_into(struct conf *conf, const char *name, const char *buf, size_t len, struct strlist *errors)
{
	int seen_line[NKEYS] = { 0 };
	char section[64] = "";
	size_t nerr = errors->count;
	int lineno = 0;
	/* Suggestions cost an edit distance per known key: bounded per file. */
	int hints_left = CONF_MAX_HINTS;

	if (len > CONF_MAX_FILE_SIZE) {
		add_error(errors, name, 0, NULL, "file is larger than %d bytes", CONF_MAX_FILE_SIZE);
		return -1;
	}
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		char *line, *p, *eq;

		lineno++;
		if (ll > CONF_MAX_LINE) {
			add_error(errors, name, lineno, NULL, "line longer than %d bytes", CONF_MAX_LINE);
			pos += ll + 1;
			continue;
		}
		line = xstrndup(buf + pos, ll);
		pos += ll + 1;
		if (strlen(line) != ll) {
			add_error(errors, name, lineno, NULL, "NUL byte in line");
			free(line);
			continue;
		}
		/* '#' starts a comment at the start of a line or after blank space. */
		for (p = line; *p; p++)
			if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
				*p = '\0';
				break;
			}
		p = trim(line);
		if (*p == '\0') {
			free(line);
			continue;
		}
		if (*p == '[') {
			char *close = strchr(p, ']');

			if (close == NULL || close[1] != '\0' || close - p - 1 <= 0 ||
			    (size_t)(close - p - 1) >= sizeof(section)) {
				add_error(errors, name, lineno, NULL, "malformed section header '%s'", p);
				section[0] = '\0';
				free(line);
				continue;
			}
			*close = '\0';
			snprintf(section, sizeof(section), "%s", trim(p + 1));
			if (!section_known(section)) {
				char *hint = hints_left-- > 0 ? section_hint(section) : xstrdup("");

				add_error(errors, name, lineno, NULL, "unknown section [%s]%s", section, hint);
				free(hint);
			}
			free(line);
			continue;
		}
		if ((eq = strchr(p, '=')) == NULL) {
			add_error(errors, name, lineno, NULL, "expected 'key = value', got '%s'", p);
			free(line);
			continue;
		}
		*eq = '\0';
		char *key = trim(p), *value = trim(eq + 1);
		const struct conf_key *k = conf_key_find(section, key);

		if (k == NULL) {
			/* Keys under an unknown section were reported with the section. */
			if (section_known(section)) {
				char *hint = hints_left-- > 0 ? key_hint(section, key) : xstrdup("");

				add_error(errors, name, lineno, NULL, "%s%s%sunknown key '%s'%s",
				    section[0] ? "[" : "", section, section[0] ? "] " : "", key, hint);
				free(hint);
			}
			free(line);
			continue;
		}
		size_t idx = (size_t)(k - conf_keys);
		if (seen_line[idx] != 0) {
			add_error(errors, name, lineno, k, "set twice (first at line %d)", seen_line[idx]);
			free(line);
			continue;
		}
		seen_line[idx] = lineno;
		if (conf_set(conf, k, value, name, lineno, errors) == 0)
			set_origin(conf, k, xasprintf("%s:%d", name, lineno));
		free(line);
	}
	return errors->count == nerr ? 0 : -1;
}

static bool
loopback_listen(const char *item)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (strncmp(item, "unix:", 5) == 0)
		return true;
	if (netaddr_parse_hostport(item, &ss, &len) != NULL)
		return false;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	{
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
}

/*
 * Rules between keys, once the file and the environment are in: each
 * error is reported where the deciding key was set.
 */
static int
conf_check_keys(struct conf *conf, struct strlist *errors)
{
	size_t nerr = errors->count;
	const char *everyone = NULL, *exposed = NULL, *exposed_key = "listen";

	for (size_t i = 0; i < conf->server_allow_clients.count; i++) {
		struct netaddr_cidr c;

		if (netaddr_parse_cidr(conf->server_allow_clients.items[i], &c) == NULL && c.prefix == 0)
			everyone = conf->server_allow_clients.items[i];
	}
	for (size_t i = 0; i < conf->server_listen.count && exposed == NULL; i++)
		if (!loopback_listen(conf->server_listen.items[i]))
			exposed = conf->server_listen.items[i];
	for (size_t i = 0; i < conf->server_lmtp_listen.count && exposed == NULL; i++)
		if (!loopback_listen(conf->server_lmtp_listen.items[i])) {
			exposed = conf->server_lmtp_listen.items[i];
			exposed_key = "lmtp_listen";
		}
	if (everyone != NULL && exposed != NULL && !conf->server_allow_open_relay)
		add_error(errors, origin_of(conf, "server", "allow_clients"), 0,
		    conf_key_find("server", "allow_clients"),
		    "%s with %s %s (not loopback) makes an open relay: any host that reaches %s "
		    "could send mail anywhere through it; list your clients' networks, or set "
		    "[server] allow_open_relay = yes if a firewall or a private network shields it",
		    everyone, exposed_key, exposed, exposed);
	else if (everyone != NULL && exposed != NULL)
		strlist_add(&conf->warnings, "OPEN RELAY: [server] allow_clients contains 0.0.0.0/0 or ::/0 "
		    "and listen or lmtp_listen has an address that is not loopback; any host that reaches it can relay "
		    "mail (allowed by [server] allow_open_relay = yes)");

	if (conf->report_dkim_key.count != conf->report_dkim_selector.count) {
		bool keys_set = conf->origins[conf_key_find("report", "dkim_key") - conf_keys] != NULL;

		add_error(errors, origin_of(conf, "report", keys_set ? "dkim_key" : "dkim_selector"), 0,
		    conf_key_find("report", keys_set ? "dkim_key" : "dkim_selector"),
		    "%zu key%s but %zu selector%s in dkim_selector: give one selector per key, in the same order",
		    conf->report_dkim_key.count, conf->report_dkim_key.count == 1 ? "" : "s",
		    conf->report_dkim_selector.count, conf->report_dkim_selector.count == 1 ? "" : "s");
	} else if (conf->report_dkim_key.count > 4)
		add_error(errors, origin_of(conf, "report", "dkim_key"), 0, conf_key_find("report", "dkim_key"),
		    "%zu keys; at most 4 sign a report", conf->report_dkim_key.count);

	if (strcmp(conf->store_backend, "postgresql") == 0 && conf->store_postgresql[0] == '\0')
		add_error(errors, origin_of(conf, "store", "backend"), 0, conf_key_find("store", "backend"),
		    "postgresql needs [store] postgresql, the connection string of the database");
	if (conf->store_share_policies && strcmp(conf->store_backend, "postgresql") != 0)
		add_error(errors, origin_of(conf, "store", "share_policies"), 0,
		    conf_key_find("store", "share_policies"),
		    "yes needs [store] backend = postgresql: the policies are shared through its database");
	if (strcmp(conf->store_backend, "postgresql") != 0 && conf->store_postgresql[0] != '\0')
		strlist_add(&conf->warnings, "[store] postgresql is set but backend is lmdb: the database "
		    "is not used");

	/* DANE rests on DNSSEC: without validation there is no secure TLSA record. */
	if (!conf->dns_dnssec && conf->tls_dane) {
		if (conf->origins[conf_key_find("tls", "dane") - conf_keys] != NULL)
			add_error(errors, origin_of(conf, "tls", "dane"), 0, conf_key_find("tls", "dane"),
			    "yes needs [dns] dnssec = yes: without DNSSEC no TLSA record is secure "
			    "(RFC 7672 section 2.1.1)");
		conf->tls_dane = false;
	}
	for (size_t i = 0; i < conf->policy_override.count && !conf->tls_dane; i++) {
		const char *item = conf->policy_override.items[i], *colon = strrchr(item, ':');

		if (colon != NULL && strcmp(colon + 1, "dane-only") == 0) {
			add_error(errors, origin_of(conf, "policy", "override"), 0,
			    conf_key_find("policy", "override"),
			    "%s requires DANE, which is off ([tls] dane = no or [dns] dnssec = no)", item);
			break;
		}
	}

	/* Without a certificate the key would be ignored and STARTTLS silently off. */
	if (conf->server_tls_key_file[0] != '\0' && conf->server_tls_cert_file[0] == '\0')
		add_error(errors, origin_of(conf, "server", "tls_key_file"), 0,
		    conf_key_find("server", "tls_key_file"),
		    "set, but tls_cert_file is empty: STARTTLS needs both");
	return errors->count == nerr ? 0 : -1;
}

struct conf *
conf_parse_buffer(const char *name, const char *buf, size_t len, struct strlist *errors)
{
	struct conf *conf = conf_defaults();

	if (parse_into(conf, name, buf, len, errors) < 0 || conf_check_keys(conf, errors) < 0) {
		conf_free(conf);
		return NULL;
	}
	return conf;
}

struct conf *
conf_load(const char *path, struct strlist *errors)
{
	FILE *f;
	struct strbuf sb;
	char chunk[8192];
	size_t n;
	struct conf *conf = conf_defaults();
	int rc;

	if (path != NULL) {
		if ((f = fopen(path, "r")) == NULL) {
			add_error(errors, path, 0, NULL, "cannot open: %s", strerror(errno));
			conf_free(conf);
			return NULL;
		}
		strbuf_init(&sb);
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
			strbuf_append(&sb, chunk, n);
			if (sb.len > CONF_MAX_FILE_SIZE)
				break;
		}
		if (ferror(f)) {
			add_error(errors, path, 0, NULL, "read error: %s", strerror(errno));
			fclose(f);
			strbuf_free(&sb);
			conf_free(conf);
			return NULL;
		}
		fclose(f);
		rc = parse_into(conf, path, sb.data ? sb.data : "", sb.len, errors);
		strbuf_free(&sb);
		if (rc < 0) {
			conf_free(conf);
			return NULL;
		}
	}
	if (conf_apply_env(conf, errors) < 0 || conf_check_keys(conf, errors) < 0) {
		conf_free(conf);
		return NULL;
	}
	return conf;
}

char *
conf_env_name(const char *section, const char *name)
{
	char *v = xasprintf("STSPROXY_%s%s%s", section, section[0] ? "_" : "", name);

	for (char *p = v; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return v;
}

/*
 * STSPROXY_* variables that are not configuration: the test clock read by
 * the binary (STSPROXY_TEST_TIME_OFFSET) and those of the build and test
 * scripts, which share the prefix.
 */
static const char *const env_not_keys[] = {
	"STSPROXY_TEST_", "STSPROXY_SKIP_", "STSPROXY_BUILD_", "STSPROXY_EXIM_",
};

/* A STSPROXY_* variable that sets nothing is most likely a typo: say so. */
static void
warn_unknown_env(struct conf *conf)
{
	for (char **e = environ; e != NULL && *e != NULL; e++) {
		const char *eq = strchr(*e, '=');
		char var[128], *best = NULL;
		size_t best_d = SIZE_MAX;
		bool known = false;

		if (strncmp(*e, "STSPROXY_", 9) != 0 || eq == NULL)
			continue;
		snprintf(var, sizeof(var), "%.*s", (int)(eq - *e), *e);
		for (size_t i = 0; i < sizeof(env_not_keys) / sizeof(env_not_keys[0]); i++)
			known |= strncmp(var, env_not_keys[i], strlen(env_not_keys[i])) == 0;
		for (size_t i = 0; i < NKEYS && !known; i++) {
			char *name = conf_env_name(conf_keys[i].section, conf_keys[i].name);
			size_t d = edit_distance(var + 9, name + 9, suggest_limit(var + 9));

			known = strcmp(name, var) == 0;
			if (d < best_d) {
				best_d = d;
				free(best);
				best = name;
			} else
				free(name);
		}
		if (!known) {
			char *w = xasprintf("environment %s sets no key and is ignored%s%s%s", var,
			    best != NULL && best_d <= suggest_limit(var + 9) ? "; did you mean " : "",
			    best != NULL && best_d <= suggest_limit(var + 9) ? best : "",
			    best != NULL && best_d <= suggest_limit(var + 9) ? "?" : "");

			strlist_add(&conf->warnings, w);
			free(w);
		}
		free(best);
	}
}

int
conf_apply_env(struct conf *conf, struct strlist *errors)
{
	size_t nerr = errors->count;

	for (size_t i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		char *var = conf_env_name(k->section, k->name), *where;
		const char *value = getenv(var);

		if (value != NULL) {
			/* Containers configure through the environment; it wins over the file. */
			where = xasprintf("environment %s", var);
			if (conf_set(conf, k, value, where, 0, errors) == 0)
				set_origin(conf, k, where);
			else
				free(where);
		}
		free(var);
	}
	warn_unknown_env(conf);
	return errors->count == nerr ? 0 : -1;
}

void
conf_free(struct conf *conf)
{
	if (conf == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		void *field = (char *)conf + conf_keys[i].offset;

		switch (conf_keys[i].type) {
		case CONF_T_STRING:
		case CONF_T_PATH:
		case CONF_T_ENUM:
			free(*(char **)field);
			break;
		case CONF_T_LIST:
			strlist_clear(field);
			break;
		default:
			break;
		}
		if (conf->origins != NULL)
			free(conf->origins[i]);
	}
	free(conf->origins);
	strlist_clear(&conf->warnings);
	free(conf);
}

static void
format_value(const struct conf *conf, const struct conf_key *k, struct strbuf *sb)
{
	const void *field = (const char *)conf + k->offset;

	switch (k->type) {
	case CONF_T_STRING:
	case CONF_T_PATH:
	case CONF_T_ENUM:
		strbuf_printf(sb, "%s", *(char *const *)field);
		break;
	case CONF_T_BOOL:
		strbuf_printf(sb, "%s", *(const bool *)field ? "yes" : "no");
		break;
	case CONF_T_DURATION:
		strbuf_printf(sb, "%us", *(const unsigned *)field);
		break;
	case CONF_T_SIZE:
		strbuf_printf(sb, "%zu", *(const size_t *)field);
		break;
	case CONF_T_COUNT:
		strbuf_printf(sb, "%u", *(const unsigned *)field);
		break;
	case CONF_T_LIST: {
		const struct strlist *l = field;
		for (size_t i = 0; i < l->count; i++)
			strbuf_printf(sb, "%s%s", i ? " " : "", l->items[i]);
		break;
	}
	}
}

void
conf_print(const struct conf *conf, FILE *out)
{
	const char *section = NULL;

	fprintf(out, "# effective stsproxy configuration\n");
	for (size_t i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		struct strbuf sb;

		if (section == NULL || strcmp(section, k->section) != 0) {
			section = k->section;
			if (section[0] != '\0')
				fprintf(out, "\n[%s]\n", section);
		}
		strbuf_init(&sb);
		format_value(conf, k, &sb);
		fprintf(out, "%s = %s\n", k->name, sb.data ? sb.data : "");
		strbuf_free(&sb);
	}
}

size_t
conf_key_count(void)
{
	return NKEYS;
}

const char *
conf_key_label(size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s", conf_keys[i].section[0] ? "[" : "", conf_keys[i].section,
	    conf_keys[i].section[0] ? "] " : "", conf_keys[i].name);
	return buf;
}

bool
conf_key_equal(const struct conf *a, const struct conf *b, size_t i)
{
	const struct conf_key *k = &conf_keys[i];
	const void *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;

	switch (k->type) {
	case CONF_T_STRING:
	case CONF_T_PATH:
	case CONF_T_ENUM:
		return strcmp(*(char *const *)fa, *(char *const *)fb) == 0;
	case CONF_T_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	case CONF_T_DURATION:
	case CONF_T_COUNT:
		return *(const unsigned *)fa == *(const unsigned *)fb;
	case CONF_T_SIZE:
		return *(const size_t *)fa == *(const size_t *)fb;
	case CONF_T_LIST:
		return strlist_equal(fa, fb);
	}
	return false;
}

size_t
conf_print_changed(const struct conf *conf, FILE *out)
{
	struct conf *def = conf_defaults();
	const char *section = "";
	size_t n = 0;

	for (size_t i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		struct strbuf now, was;

		strbuf_init(&now);
		strbuf_init(&was);
		format_value(conf, k, &now);
		format_value(def, k, &was);
		if (strcmp(now.data ? now.data : "", was.data ? was.data : "") != 0) {
			if (strcmp(section, k->section) != 0) {
				section = k->section;
				fprintf(out, "%s[%s]\n", n > 0 ? "\n" : "", section);
			}
			fprintf(out, "%s = %s", k->name, now.data ? now.data : "");
			if (conf->origins != NULL && conf->origins[i] != NULL)
				fprintf(out, "   # %s", conf->origins[i]);
			fputc('\n', out);
			n++;
		}
		strbuf_free(&now);
		strbuf_free(&was);
	}
	conf_free(def);
	return n;
}

static const char *
type_name(const struct conf_key *k)
{
	switch (k->type) {
	case CONF_T_STRING: return "string";
	case CONF_T_PATH: return "path";
	case CONF_T_BOOL: return "yes|no";
	case CONF_T_DURATION: return "duration";
	case CONF_T_SIZE: return "size";
	case CONF_T_LIST: return "list";
	case CONF_T_ENUM: return k->choices;
	case CONF_T_COUNT: return "number";
	}
	return "?";
}

/* roff needs a backslash before '-' and a leading '.' or '\'' escaped. */
static void
roff_text(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '-' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
}

void
conf_print_man_keys(FILE *out)
{
	const char *section = NULL;

	for (size_t i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (section == NULL || strcmp(section, k->section) != 0) {
			section = k->section;
			fprintf(out, ".SS %s\n", section[0] ? "" : "Top level (before any section)");
			if (section[0])
				fprintf(out, ".RB [ %s ]\n", section);
		}
		fprintf(out, ".TP\n.BR %s \" = \" ", k->name);
		roff_text(out, type_name(k));
		fprintf(out, "\n");
		roff_text(out, k->doc);
		fprintf(out, "\nDefault: ");
		if (k->def[0] == '\0')
			fprintf(out, "empty.\n");
		else {
			fprintf(out, "\\fB");
			roff_text(out, k->def);
			fprintf(out, "\\fR.\n");
		}
		if (k->type == CONF_T_DURATION)
			fprintf(out, "Range %llus to %llus.\n", k->min, k->max);
		else if (k->type == CONF_T_SIZE)
			fprintf(out, "Range %llu to %llu bytes.\n", k->min, k->max);
		else if (k->type == CONF_T_COUNT)
			fprintf(out, "Range %llu to %llu.\n", k->min, k->max);
	}
}

/* The first override item for domain whose mode is (dane) or is not (!dane) dane-only. */
static const char *
override_find(const struct conf *conf, const char *domain, bool dane)
{
	size_t dl = strlen(domain);

	for (size_t i = 0; i < conf->policy_override.count; i++) {
		const char *item = conf->policy_override.items[i];
		const char *colon = strrchr(item, ':');
		size_t il = (size_t)(colon - item);

		if (il > 0 && item[il - 1] == '.')
			il--;
		if (il == dl && strncasecmp(item, domain, dl) == 0 &&
		    (strcmp(colon + 1, "dane-only") == 0) == dane)
			return colon + 1;
	}
	return NULL;
}

const char *
conf_policy_override(const struct conf *conf, const char *domain)
{
	return override_find(conf, domain, false);
}

bool
conf_dane_required(const struct conf *conf, const char *domain)
{
	return conf->tls_dane && override_find(conf, domain, true) != NULL;
}

int
conf_tls_min_version(const struct conf *conf)
{
	return strcmp(conf->tls_min_version, "1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

/*
 * conf.h - the configuration of one stsproxy process.
 *
 * One table of keys (conf.c) drives parsing, validation, the effective
 * configuration printed by `stsproxy check-config` and the KEYS section of
 * stsproxy.conf(5). A struct conf is immutable once conf_load() returns
 * it; a reload builds a new one and swaps the pointer.
 */
#ifndef STSPROXY_CONF_H
#define STSPROXY_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "conf/util.h"

/** Hard bounds on the configuration file itself. */
#define CONF_MAX_FILE_SIZE	(1024 * 1024)
#define CONF_MAX_LINE		4096

struct conf {
	/* top level */
	char		*state_dir;
	char		*log_level;
	char		*log_target;		/* "stderr", "syslog" or "file" */
	char		*log_file;		/* log_target = file */
	struct strlist	 log_levels;		/* "subsystem=level" items */
	char		*log_facility;
	char		*log_format;		/* "kv" or "json" */
	char		*metrics_listen;	/* "addr:port"; empty: off */
	char		*pid_file;		/* empty: none */
	char		*hostname;		/* empty: the system host name */
	char		*user;			/* run as this user when started as root */
	bool		 allow_root;
	char		*workers;		/* "auto" or a count */

	/* [server]: the client-facing leg */
	struct strlist	 server_listen;		/* "addr:port", "[v6]:port" */
	struct strlist	 server_lmtp_listen;	/* the same, speaking LMTP; never port 25 */
	struct strlist	 server_allow_clients;	/* CIDRs */
	char		*server_unix_mode;	/* octal */
	char		*server_unix_group;
	unsigned	 server_max_connections;
	unsigned	 server_max_per_client;
	size_t		 server_max_message_size;
	unsigned	 server_max_recipients;
	unsigned	 server_lmtp_max_domains;	/* routes in one LMTP transaction */
	bool		 server_allow_bare_newline;	/* commands may end in a bare LF */
	unsigned	 server_command_timeout;	/* seconds, for a whole command line */
	unsigned	 server_helo_timeout;	/* seconds from the greeting to HELO/EHLO */
	unsigned	 server_data_timeout;	/* seconds the body may stay idle */
	unsigned	 server_data_deadline;	/* seconds every body gets in total */
	size_t		 server_data_min_rate;	/* bytes per second beyond data_deadline */
	unsigned	 server_shutdown_timeout;	/* seconds */
	char		*server_tls_cert_file;	/* empty: no STARTTLS */
	char		*server_tls_key_file;
	bool		 server_allow_open_relay;	/* allow_clients 0/0 with a public listen */

	/* [upstream]: the MX-facing leg */
	unsigned	 upstream_port;
	unsigned	 upstream_connect_timeout;	/* seconds */
	unsigned	 upstream_command_timeout;
	unsigned	 upstream_data_timeout;
	unsigned	 upstream_max_attempts;
	bool		 upstream_ipv6;
	bool		 upstream_reuse;
	unsigned	 upstream_reuse_idle_timeout;	/* seconds */
	unsigned	 upstream_reuse_max_messages;
	unsigned	 upstream_reuse_pool_size;

	/* [dns] */
	struct strlist	 dns_forwarders;	/* "addr" or "addr@port"; empty: recursion */
	char		*dns_trust_anchor_file;
	bool		 dns_dnssec;
	unsigned	 dns_timeout;		/* seconds */

	/* [tls] */
	char		*tls_ca_file;		/* empty: system store */
	char		*tls_ca_path;
	char		*tls_min_version;	/* "1.2" or "1.3" */
	bool		 tls_dane;		/* DANE (RFC 7672); false whenever dns_dnssec is */

	/* [policy] */
	unsigned	 policy_fetch_timeout;	/* seconds */
	size_t		 policy_max_body;	/* bytes */
	unsigned	 policy_refresh_interval; /* seconds */
	size_t		 policy_cache_size;	/* bytes: LMDB map size */
	struct strlist	 policy_override;	/* "domain:mode" */
	char		*policy_simulate;	/* "off" or "enforce" */

	/* [report]: TLS-RPT */
	unsigned	 report_flush_interval;	/* seconds */
	size_t		 report_db_size;
	char		*report_organization;	/* empty: hostname */
	char		*report_contact;	/* empty: postmaster@hostname */
	char		*report_submitter;	/* empty: domain of contact */
	bool		 report_send_success_only;
	unsigned	 report_max_delay;	/* seconds */
	unsigned	 report_retry_interval;	/* seconds */
	struct strlist	 report_dkim_key;	/* PEM paths */
	struct strlist	 report_dkim_selector;	/* one per key */
	char		*report_dkim_domain;	/* empty: submitter */
	char		*report_submission_relay; /* "addr:port", empty: MX */

	/* [store]: where counters, outbox (and shared policies) live */
	char		*store_backend;		/* "lmdb" or "postgresql" */
	char		*store_postgresql;	/* libpq conninfo, no password */
	bool		 store_share_policies;
	unsigned	 store_timeout;		/* seconds */
	unsigned	 store_buffer;		/* records held in memory before spilling */

	/* Not keys: what conf_load() learnt on the way. */
	struct strlist	 warnings;	/* dubious but accepted: shown by check-config, logged by serve */
	char		**origins;	/* per key of the table: "file:line", "environment VAR", or NULL
					 * for the default; private to conf.c */
};

/**
 * Load the configuration from path, or the embedded defaults when path is
 * NULL, then the STSPROXY_* environment, then check the keys against each
 * other (an open relay, DKIM keys without selectors). Every problem is
 * appended to errors as "file:line: [section] key: reason", with the fix
 * when one can be guessed (a misspelled key, a key of another section,
 * commas in a list); on any error the result is NULL. What is accepted
 * but dubious (an unknown STSPROXY_* variable, allow_open_relay in use)
 * is in conf->warnings. Caller owns the result.
 */
struct conf *conf_load(const char *path, struct strlist *errors);

/**
 * The same from a buffer, without the environment; name stands in for the
 * file name in errors.
 */
struct conf *conf_parse_buffer(const char *name, const char *buf, size_t len,
    struct strlist *errors);

void conf_free(struct conf *conf);

/**
 * Apply STSPROXY_<SECTION>_<KEY> environment variables (STSPROXY_<KEY>
 * for top-level keys), which override the file; conf_load() calls it.
 * Errors name the variable. 0, or -1 with errors appended.
 */
int conf_apply_env(struct conf *conf, struct strlist *errors);

/** The environment variable for a key ("STSPROXY_SERVER_LISTEN"). Caller frees. */
char *conf_env_name(const char *section, const char *name);

/** Write the effective configuration in the file's own syntax. */
void conf_print(const struct conf *conf, FILE *out);

/** The number of keys in the table; keys are numbered 0 to this - 1. */
size_t conf_key_count(void);

/** "[section] name" of key i, written to buf (len bytes); returns buf. */
const char *conf_key_label(size_t i, char *buf, size_t len);

/** true if key i has the same value in a and b (compared as its type). */
bool conf_key_equal(const struct conf *a, const struct conf *b, size_t i);

/**
 * Write only the keys whose value differs from the embedded default, each
 * with a comment saying where it was set (like postconf -n). Returns how
 * many were written.
 */
size_t conf_print_changed(const struct conf *conf, FILE *out);

/** Write the KEYS section of stsproxy.conf(5), generated from the table. */
void conf_print_man_keys(FILE *out);

/**
 * The MTA-STS mode forced by [policy] override for domain (already
 * normalised): "enforce", "testing", "none", or NULL. dane-only items are
 * not modes (conf_dane_required()). The returned string is owned by conf.
 */
const char *conf_policy_override(const struct conf *conf, const char *domain);

/**
 * Whether [policy] override makes DANE mandatory for domain (already
 * normalised) with DOMAIN:dane-only (RFC 7672 section 6, DANE-17).
 */
bool conf_dane_required(const struct conf *conf, const char *domain);

/** TLS protocol version constant (e.g. TLS1_2_VERSION) for tls_min_version. */
int conf_tls_min_version(const struct conf *conf);

#endif

/*
 * preflight.h - everything serve needs from the host before it binds,
 * checked without keeping anything (nginx -t).
 *
 * One function runs the checks for both `stsproxy serve` (before it binds
 * or forks workers) and `stsproxy check-config`, so a configuration that
 * passes check-config starts: the user to switch to and the unix_group
 * exist, state_dir is a usable directory, pid_file and log_file can be
 * written, the DNSSEC trust anchor, the CA store, the STARTTLS
 * certificate and key and the DKIM keys load, and every listen address
 * and metrics_listen is distinct and can be bound now; for check-config,
 * the shared store answers and has the schema this build needs.
 *
 * An address that is already taken is looked up in /proc to name the
 * process holding it. For check-config (PREFLIGHT_F_RUNNING_OK) an
 * address held by the running stsproxy is expected, the way nginx -t is
 * run next to a running nginx before a reload: it is a warning, not an
 * error. Anything else holding it (amavisd on 10025, say) is an error.
 */
#ifndef STSPROXY_PREFLIGHT_H
#define STSPROXY_PREFLIGHT_H

#include "conf/conf.h"

/** An address held by a running stsproxy is a warning (check-config), not an error (serve). */
#define PREFLIGHT_F_RUNNING_OK	0x01
/**
 * Connect to the shared store ([store] backend = postgresql) and check its
 * schema (check-config). serve does not: it starts degraded without the
 * database, so that mail flows.
 */
#define PREFLIGHT_F_STORE	0x02

/**
 * Run every check on conf (borrowed). What would stop serve is appended
 * to errors, what deserves a look but does not stop it to warnings (the
 * configuration's own warnings are not repeated). Checks run as the
 * calling user, as serve would: the user switch and its checks apply
 * only when running as root without allow_root. 0 if serve would start,
 * -1 otherwise.
 */
int preflight_check(const struct conf *conf, unsigned flags, struct strlist *errors,
    struct strlist *warnings);

/**
 * serve's use of preflight_check(): log the configuration's warnings and
 * every finding (event=config_warning, event=startup_failed). 0 if serve
 * may go on to bind, -1 otherwise.
 */
int preflight_serve(const struct conf *conf);

#endif

/*
 * cmd_serve.c - `stsproxy serve`: run the relay in the foreground.
 *
 * Logs to stderr (a supervisor such as systemd or a container runtime
 * collects it). SIGTERM and SIGINT stop accepting, give open sessions a
 * 421 and leave once they are gone; SIGPIPE is ignored.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conf/log.h"
#include "policy/dns_probe.h"
#include "policy/tls.h"
#include "cli/commands.h"
#include "proxy/limits.h"
#include "proxy/listener.h"
#include "proxy/metrics_http.h"
#include "cli/preflight.h"
#include "proxy/runtime.h"
#include "policy/resolver.h"
#include "proxy/report_mailer.h"
#include "proxy/upstream.h"
#include "proxy/upstream_pool.h"
#include "proxy/workers.h"
#include "report/outcome.h"
#include "report/rpt_sender.h"
#include "report/rpt_store.h"

struct serve {
	const char		*path;		/* the configuration file, or NULL */
	struct smtp_server_env	*env;
	const struct conf	*conf;		/* in effect */
	struct conf		*retired[64];	/* earlier ones, alive for their sessions */
	size_t			 nretired;
	struct event		*sighup, *sigusr1;
	bool			 debug_flag;	/* -d: debug everywhere, whatever the file says */
	struct runtime		*rt;
	struct listener		*listener;
	struct event		*sigterm, *sigint, *drain, *deadline;
	struct rpt_store	*reports;
	struct rpt_sender	*sender;
	struct rpt_mailer	 mailer;
	struct metrics_http	*metrics;
	struct dns_probe	*probe;		/* worker 0: the start-up look at the DNS path */
	bool			 stopping;
};

/* Give state_dir and what is in it to uid/gid: files the tools made as root included. */
static int
chown_state(const char *dir, uid_t uid, gid_t gid)
{
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (chown(dir, uid, gid) < 0 || chmod(dir, 0700) < 0)
		return -1;
	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char *path;

		if (e->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", dir, e->d_name);
		if (lchown(path, uid, gid) < 0)
			rc = -1;
		free(path);
	}
	closedir(d);
	return rc;
}

/*
 * Least privilege: root is needed to bind port 25 and to read keys; the
 * relay itself runs as [user]. Everything privileged is already open.
 */
static int
drop_privileges(const struct conf *conf)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;
	if (conf->allow_root) {
		log_warnx("event=running_as_root reason=\"allow_root = yes\"");
		return 0;
	}
	if ((pw = getpwnam(conf->user)) == NULL) {
		log_err("event=startup_failed reason=\"user %s does not exist: create it "
		    "(useradd --system --user-group --no-create-home %s), set user, or set allow_root = yes\"",
		    conf->user, conf->user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_err("event=startup_failed reason=\"user %s is root; set allow_root = yes to run as root\"",
		    conf->user);
		return -1;
	}
	if (chown_state(conf->state_dir, pw->pw_uid, pw->pw_gid) < 0) {
		log_err("event=startup_failed state_dir=%s reason=%s", conf->state_dir,
		    log_quote(strerror(errno)));
		return -1;
	}
	/* so that SIGUSR1 can reopen it as the user when it was not rotated */
	if (log_file_name() != NULL && chown(log_file_name(), pw->pw_uid, pw->pw_gid) < 0)
		log_warnx("event=log_file_chown_failed log_file=%s reason=%s", log_file_name(),
		    log_quote(strerror(errno)));
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		log_err("event=startup_failed reason=\"cannot switch to user %s: %s\"", conf->user,
		    strerror(errno));
		return -1;
	}
	/* Make sure there is no way back. */
	if (setuid(0) == 0) {
		log_err("event=startup_failed reason=\"could regain root after switching to %s\"", conf->user);
		return -1;
	}
	log_notice("event=privileges_dropped user=%s uid=%u gid=%u", conf->user,
	    (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
	return 0;
}

static void
drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct serve *sv = arg;
	struct timeval tv = { 0, 100 * 1000 };

	(void)fd;
	(void)what;
	if (listener_sessions(sv->listener) == 0 && upstream_count() == 0) {
		upstream_pool_flush();
		if (upstream_pool_size() > 0) {
			evtimer_add(sv->drain, &tv);	/* their QUITs */
			return;
		}
		event_base_loopexit(sv->rt->base, NULL);
		return;
	}
	evtimer_add(sv->drain, &tv);
}

/* Keys read only at start-up: a change is reported, not applied. */
static void
warn_restart_keys(const struct conf *old, const struct conf *new)
{
	struct {
		const char *name;
		bool changed;
	} keys[] = {
		{ "[server] listen", !strlist_equal(&old->server_listen, &new->server_listen) },
		{ "[server] lmtp_listen", !strlist_equal(&old->server_lmtp_listen, &new->server_lmtp_listen) },
		{ "state_dir", strcmp(old->state_dir, new->state_dir) != 0 },
		{ "user", strcmp(old->user, new->user) != 0 },
		{ "[dns] forwarders", !strlist_equal(&old->dns_forwarders, &new->dns_forwarders) },
		{ "[tls] ca_file", strcmp(old->tls_ca_file, new->tls_ca_file) != 0 },
		{ "[server] tls_cert_file", strcmp(old->server_tls_cert_file, new->server_tls_cert_file) != 0 },
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (keys[i].changed)
			log_warnx("event=reload_needs_restart key=%s reason=\"read at start-up only; "
			    "the old value stays until a restart\"", log_quote(keys[i].name));
}

static int
facility_of(const char *name)
{
	static const struct { const char *name; int value; } f[] = {
		{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "local0", LOG_LOCAL0 },
		{ "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
		{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 },
		{ "local7", LOG_LOCAL7 },
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (strcmp(f[i].name, name) == 0)
			return f[i].value;
	return LOG_MAIL;
}

/*
 * Target, format and levels from conf. The debug flag (-d) wins over
 * log_level. A log file that cannot be opened leaves the current target
 * in place and fails the call, so a reload cannot silence the daemon.
 */
static int
apply_logging(const struct conf *conf, bool debug_flag)
{
	bool to_file = strcmp(conf->log_target, "file") == 0;
	const char *why;

	if (to_file && (log_file_name() == NULL || strcmp(log_file_name(), conf->log_file) != 0) &&
	    log_set_file(conf->log_file, &why) < 0) {
		log_err("event=log_file_failed log_file=%s reason=%s", conf->log_file, log_quote(why));
		return -1;
	}
	if (!to_file)
		(void)log_set_file(NULL, &why);
	log_set_target(strcmp(conf->log_target, "syslog") == 0, "stsproxy",
	    facility_of(conf->log_facility));
	log_set_json(strcmp(conf->log_format, "json") == 0);
	log_set_level(debug_flag ? LOG_LEVEL_DEBUG : (enum log_level)log_level_parse(conf->log_level));
	for (int i = 0; i < LOG_SUB_COUNT; i++)
		log_set_subsystem_level((enum log_subsystem)i, -1);
	for (size_t i = 0; i < conf->log_levels.count && !debug_flag; i++) {
		const char *item = conf->log_levels.items[i], *eq = strchr(item, '=');
		char sub[32];

		snprintf(sub, sizeof(sub), "%.*s", (int)(eq - item), item);
		log_set_subsystem_level((enum log_subsystem)log_subsystem_parse(sub), log_level_parse(eq + 1));
	}
	return 0;
}

/* SIGUSR1: logrotate has moved the file away; start a new one. */
static void
on_sigusr1(evutil_socket_t sig, short what, void *arg)
{
	const char *why;

	(void)sig;
	(void)what;
	(void)arg;
	if (log_reopen(&why) < 0)
		log_err("event=log_reopen_failed log_file=%s reason=%s", log_file_name(), log_quote(why));
	else
		log_notice("event=log_reopened log_file=%s", log_file_name() ? log_file_name() : "-");
}

/* SIGHUP: parse, validate, then swap; on any error the running one stays. */
static void
on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct serve *sv = arg;
	struct strlist errors = { 0 };
	struct conf *conf;

	(void)sig;
	(void)what;
	conf = conf_load(sv->path, &errors);
	if (conf == NULL) {
		for (size_t i = 0; i < errors.count; i++)
			log_err("event=reload_failed error=%s", log_quote(errors.items[i]));
		log_err("event=reload_failed errors=%zu reason=\"keeping the running configuration\"",
		    errors.count);
		strlist_clear(&errors);
		return;
	}
	if (sv->nretired == sizeof(sv->retired) / sizeof(sv->retired[0])) {
		log_err("event=reload_failed reason=\"too many reloads without a restart\"");
		conf_free(conf);
		return;
	}
	warn_restart_keys(sv->conf, conf);
	for (size_t i = 0; i < conf->warnings.count; i++)
		log_warnx("event=config_warning warning=%s", log_quote(conf->warnings.items[i]));
	sv->retired[sv->nretired++] = conf;
	sv->conf = conf;
	sv->rt->conf = conf;
	policy_engine_set_conf(sv->rt->engine, conf);
	listener_reconfigure(sv->listener, conf);
	(void)apply_logging(conf, sv->debug_flag);
	limits_log(conf);
	log_notice("event=reloaded path=%s", sv->path ? sv->path : "(embedded defaults)");
}

static void
shutdown_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct serve *sv = arg;

	(void)fd;
	(void)what;
	log_notice("event=shutdown_timeout sessions=%u", listener_sessions(sv->listener));
	listener_abort(sv->listener);
}

static const char *
health(void *arg)
{
	struct serve *sv = arg;

	if (sv->stopping)
		return "stopping";
	if (sv->reports == NULL)
		return "report database not open";
	if (!policy_cache_enabled(sv->rt->cache))
		return "policy cache database not open";
	return resolver_health(sv->rt->resolver);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct serve *sv = arg;

	(void)what;
	if (sv->stopping) {
		log_notice("event=stopping_now signal=%d", (int)sig);
		event_base_loopexit(sv->rt->base, NULL);
		return;
	}
	sv->stopping = true;
	log_notice("event=stopping signal=%d sessions=%u", (int)sig, listener_sessions(sv->listener));
	listener_shutdown(sv->listener);
	{
		struct timeval tv = { sv->conf->server_shutdown_timeout, 0 };

		sv->deadline = evtimer_new(sv->rt->base, shutdown_deadline, sv);
		evtimer_add(sv->deadline, &tv);
	}
	drain_check(-1, 0, sv);
}

struct serve_args {
	const char	*path;
	bool		 debug_flag;
};

static int serve_worker(const struct conf *conf, void *arg);

void
cmd_serve_usage(FILE *out)
{
	fprintf(out, "usage: stsproxy [-c FILE] [-d] serve [--foreground]\n"
	    "\n"
	    "Run the relay in the foreground (for systemd, containers and supervisors;\n"
	    "--foreground is accepted so scripts can say so). It makes the checks of\n"
	    "check-config first and does not start when one fails.\n");
}

int
cmd_serve(const struct conf *conf, const char *path, int argc, char **argv)
{
	struct serve_args args;
	unsigned n;

	/* serve always stays in the foreground (systemd, containers, supervisors);
	 * --foreground is accepted so scripts can say so. */
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--foreground") != 0)) {
		cmd_serve_usage(stderr);
		return EXIT_ERROR;
	}
	args.path = path;
	args.debug_flag = log_get_level() >= LOG_LEVEL_DEBUG;
	signal(SIGPIPE, SIG_IGN);
	if (apply_logging(conf, args.debug_flag) < 0)
		return EXIT_ERROR;
	/* The same checks as check-config, before anything is bound or forked. */
	if (preflight_serve(conf) < 0)
		return EXIT_ERROR;
	if ((n = workers_count(conf)) > 1)
		return workers_supervise(conf, path, n, serve_worker, &args);
	return serve_worker(conf, &args);
}

/* One relay process: the whole relay, or one of several workers. */
static int
serve_worker(const struct conf *conf, void *arg)
{
	const struct serve_args *args = arg;
	const char *path = args->path;
	struct smtp_server_env env = { .ops = &upstream_default_ops };
	struct serve sv = { 0 };
	char *err = NULL;
	int rc = EXIT_ERROR;

	sv.debug_flag = args->debug_flag;
	if ((sv.rt = runtime_new(conf)) == NULL)
		return EXIT_ERROR;
	env.rt = sv.rt;
	sv.path = path;
	sv.conf = conf;
	sv.env = &env;
	if (strchr(sv.rt->hostname, '.') == NULL)
		log_warnx("event=hostname_not_qualified hostname=%s reason=\"many MX servers refuse an "
		    "EHLO name that is not fully qualified; set hostname in the configuration\"",
		    sv.rt->hostname);
	if (conf->server_tls_cert_file[0] != '\0') {
		const char *key = conf->server_tls_key_file[0] ? conf->server_tls_key_file :
		    conf->server_tls_cert_file;

		if ((env.tls_ctx = tls_server_ctx_new(conf, conf->server_tls_cert_file, key, &err)) == NULL) {
			log_err("event=startup_failed reason=%s", log_quote(err));
			goto out;
		}
	}
	/* Without the report database mail still flows; only TLS-RPT is lost.
	 * Every worker records; one sends, so each report goes out once. */
	if ((sv.reports = rpt_store_open(conf, sv.rt->base)) != NULL) {
		struct rpt_identity id;

		outcome_set_hook(rpt_store_hook, sv.reports);
		rpt_identity_init(&id, conf, sv.rt->hostname);
		report_mailer_init(&sv.mailer, sv.rt);
		if (worker_index() == 0)
			sv.sender = rpt_sender_new(sv.rt->base, conf, sv.rt->resolver, sv.rt->ssl_ctx,
			    sv.reports, &id, &sv.mailer);
	} else
		log_warnx("event=reports_disabled reason=\"the report database cannot be opened\"");
	/* Before the listeners: what is open now is part of the budget. */
	(void)limits_init();
	limits_log(conf);
	if ((sv.listener = listener_new(&env, &err)) == NULL) {
		log_err("event=startup_failed reason=%s", log_quote(err));
		goto out;
	}
	if (conf->metrics_listen[0] != '\0' && worker_index() == 0 &&
	    (sv.metrics = metrics_http_new(sv.rt->base, conf->metrics_listen, health, &sv, &err)) == NULL) {
		log_err("event=startup_failed reason=%s", log_quote(err));
		goto out;
	}
	if (conf->pid_file[0] != '\0' && !workers_forked()) {
		FILE *pf = fopen(conf->pid_file, "w");

		if (pf == NULL || fprintf(pf, "%ld\n", (long)getpid()) < 0 || fclose(pf) != 0) {
			log_err("event=startup_failed pid_file=%s reason=%s", conf->pid_file,
			    log_quote(strerror(errno)));
			goto out;
		}
	}
	if (drop_privileges(conf) < 0)
		goto out;
	sv.sigterm = evsignal_new(sv.rt->base, SIGTERM, on_signal, &sv);
	sv.sigint = evsignal_new(sv.rt->base, SIGINT, on_signal, &sv);
	sv.sighup = evsignal_new(sv.rt->base, SIGHUP, on_sighup, &sv);
	evsignal_add(sv.sighup, NULL);
	sv.sigusr1 = evsignal_new(sv.rt->base, SIGUSR1, on_sigusr1, &sv);
	evsignal_add(sv.sigusr1, NULL);
	sv.drain = evtimer_new(sv.rt->base, drain_check, &sv);
	evsignal_add(sv.sigterm, NULL);
	evsignal_add(sv.sigint, NULL);
	log_notice("event=started version=%s config=%s hostname=%s starttls=%s worker=%u", PACKAGE_VERSION,
	    log_quote(path ? path : "embedded defaults"), sv.rt->hostname, env.tls_ctx ? "yes" : "no",
	    worker_index());
	/* Worker 0 serves /healthz; one probe (and one warning) is enough. */
	if (worker_index() == 0)
		sv.probe = dns_probe_start(sv.rt->base, conf, sv.rt->resolver);
	event_base_dispatch(sv.rt->base);
	log_notice("event=stopped");
	rc = 0;
out:
	free(err);
	if (sv.sigterm) event_free(sv.sigterm);
	if (sv.sigint) event_free(sv.sigint);
	if (sv.sighup) event_free(sv.sighup);
	if (sv.sigusr1) event_free(sv.sigusr1);
	if (sv.deadline) event_free(sv.deadline);
	if (sv.drain) event_free(sv.drain);
	dns_probe_free(sv.probe);
	listener_free(sv.listener);
	upstream_pool_free_all();
	metrics_http_free(sv.metrics);
	outcome_set_hook(NULL, NULL);
	rpt_sender_free(sv.sender);
	rpt_store_close(sv.reports);
	if (env.tls_ctx)
		SSL_CTX_free(env.tls_ctx);
	runtime_free(sv.rt);
	if (conf->pid_file[0] != '\0' && !workers_forked() && unlink(conf->pid_file) < 0 && errno != ENOENT)
		log_warnx("event=pid_file_left pid_file=%s reason=%s", conf->pid_file,
		    log_quote(strerror(errno)));
	for (size_t i = 0; i < sv.nretired; i++)
		conf_free(sv.retired[i]);
	return rc;
}

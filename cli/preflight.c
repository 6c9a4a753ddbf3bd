#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_MAIN

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf/log.h"
#include "conf/netaddr.h"
#include "policy/resolver.h"
#include "policy/tls.h"
#include "cli/preflight.h"
#include "report/rpt_mail.h"
#include "report/rpt_report.h"

/* serve switches to [user] only when started as root without allow_root. */
static bool
switches_user(const struct conf *conf)
{
	return geteuid() == 0 && !conf->allow_root;
}

static void
check_identity(const struct conf *conf, struct strlist *errors)
{
	struct passwd *pw;
	bool unix_listen = false;

	/* The same refusals as serve's switch of user, before anything is bound. */
	if (switches_user(conf)) {
		if ((pw = getpwnam(conf->user)) == NULL)
			strlist_addf(errors, "user %s does not exist: create it (useradd --system --user-group "
			    "--no-create-home %s), set user, or set allow_root = yes", conf->user, conf->user);
		else if (pw->pw_uid == 0)
			strlist_addf(errors, "user %s is root; set allow_root = yes to run as root", conf->user);
	}
	for (size_t i = 0; i < conf->server_listen.count; i++)
		unix_listen |= strncmp(conf->server_listen.items[i], "unix:", 5) == 0;
	for (size_t i = 0; i < conf->server_lmtp_listen.count; i++)
		unix_listen |= strncmp(conf->server_lmtp_listen.items[i], "unix:", 5) == 0;
	if (unix_listen && conf->server_unix_group[0] != '\0' && getgrnam(conf->server_unix_group) == NULL)
		strlist_addf(errors, "[server] unix_group %s does not exist", conf->server_unix_group);
}

/* The directory path lives in; owned by the caller. */
static char *
parent_of(const char *path)
{
	char *copy = xstrdup(path), *dir = xstrdup(dirname(copy));

	free(copy);
	return dir;
}

static void
check_state_dir(const struct conf *conf, struct strlist *errors)
{
	const char *dir = conf->state_dir;
	struct stat st;

	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			strlist_addf(errors, "state_dir %s is not a directory", dir);
		/* As root this still catches a read-only file system. */
		else if (access(dir, R_OK | W_OK | X_OK) != 0)
			strlist_addf(errors, "state_dir %s: %s (the policy cache and the report database live there)",
			    dir, strerror(errno));
	} else if (errno == ENOENT) {
		char *parent = parent_of(dir);

		/* The databases create it (one level, like mkdir). */
		if (access(parent, W_OK | X_OK) != 0)
			strlist_addf(errors, "state_dir %s does not exist and cannot be created in %s: %s", dir, parent,
			    strerror(errno));
		free(parent);
	} else {
		strlist_addf(errors, "state_dir %s: %s", dir, strerror(errno));
	}
}

/* A file serve creates or appends to (pid_file, log_file): before it switches user. */
static void
check_writable_file(const char *key, const char *path, struct strlist *errors)
{
	struct stat st;

	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode))
			strlist_addf(errors, "%s %s is not a regular file", key, path);
		else if (access(path, W_OK) != 0)
			strlist_addf(errors, "%s %s: %s", key, path, strerror(errno));
	} else {
		char *parent = parent_of(path);

		if (access(parent, W_OK | X_OK) != 0)
			strlist_addf(errors, "%s %s cannot be created in %s: %s", key, path, parent, strerror(errno));
		free(parent);
	}
}

static void
check_keys(const struct conf *conf, struct strlist *errors)
{
	SSL_CTX *ctx;
	char *err = NULL;

	if (resolver_check_trust_anchor(conf, &err) < 0) {
		strlist_add(errors, err);
		free(err);
		err = NULL;
	}
	if ((ctx = tls_client_ctx_new(conf, &err)) == NULL) {
		strlist_add(errors, err);
		free(err);
		err = NULL;
	} else
		SSL_CTX_free(ctx);
	if (conf->server_tls_cert_file[0] != '\0') {
		const char *key = conf->server_tls_key_file[0] ? conf->server_tls_key_file :
		    conf->server_tls_cert_file;

		if ((ctx = tls_server_ctx_new(conf, conf->server_tls_cert_file, key, &err)) == NULL) {
			strlist_add(errors, err);
			free(err);
			err = NULL;
		} else
			SSL_CTX_free(ctx);
	}
	if (conf->report_dkim_key.count > 0) {
		struct rpt_identity id;
		struct rpt_dkim_keys keys;
		char host[256];

		/* The d= domain defaults to the submitter, which follows the host name. */
		if (conf->hostname[0] != '\0')
			snprintf(host, sizeof(host), "%s", conf->hostname);
		else if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "localhost.localdomain");
		rpt_identity_init(&id, conf, host);
		if (rpt_dkim_keys_load(&keys, conf, &id, &err) < 0) {
			strlist_addf(errors, "[report] dkim_key: %s", err);
			free(err);
		} else
			rpt_dkim_keys_free(&keys);
	}
}

/* ---- listen addresses ----------------------------------------------------- */

/* An address as 16 bytes (IPv4 as ::ffff:a.b.c.d) plus port, or "any address". */
struct endpoint {
	unsigned char	addr[16];
	bool		any;
	unsigned	port;
	int		family;
};

static void
endpoint_of(const struct sockaddr_storage *ss, struct endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->family = ss->ss_family;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		ep->addr[10] = ep->addr[11] = 0xff;
		memcpy(ep->addr + 12, &sin->sin_addr, 4);
		ep->any = sin->sin_addr.s_addr == htonl(INADDR_ANY);
		ep->port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		memcpy(ep->addr, &sin6->sin6_addr, 16);
		ep->any = IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
		ep->port = ntohs(sin6->sin6_port);
	}
}

/* Two sockets that cannot both listen: the same port on the same or a wildcard address. */
static bool
endpoints_overlap(const struct endpoint *a, const struct endpoint *b)
{
	return a->port == b->port && a->family == b->family &&
	    (a->any || b->any || memcmp(a->addr, b->addr, 16) == 0);
}

/*
 * The inode of the socket listening where ep would bind, from
 * /proc/net/tcp and tcp6 (Linux). IPv4 sockets print their address as the
 * raw 32-bit word in hex, IPv6 ones as four such words. 0 if none.
 */
static unsigned long
tcp_listener_inode(const struct endpoint *ep)
{
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };

	for (size_t fi = 0; fi < 2; fi++) {
		FILE *f = fopen(files[fi], "r");
		char line[512];

		if (f == NULL)
			continue;
		while (fgets(line, sizeof(line), f) != NULL) {
			char hex[33];
			unsigned port, st;
			unsigned long inode;
			struct endpoint other = { .family = fi == 0 ? AF_INET : AF_INET6 };

			if (sscanf(line, " %*u: %32[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*u %*u %lu",
			    hex, &port, &st, &inode) != 4 || st != 0x0A /* LISTEN */)
				continue;
			other.port = port;
			if (fi == 0 && strlen(hex) == 8) {
				uint32_t w = (uint32_t)strtoul(hex, NULL, 16);

				other.addr[10] = other.addr[11] = 0xff;
				memcpy(other.addr + 12, &w, 4);
				other.any = w == 0;
			} else if (fi == 1 && strlen(hex) == 32) {
				for (int i = 0; i < 4; i++) {
					char word[9];
					uint32_t w;

					memcpy(word, hex + 8 * i, 8);
					word[8] = '\0';
					w = (uint32_t)strtoul(word, NULL, 16);
					memcpy(other.addr + 4 * i, &w, 4);
				}
				other.any = IN6_IS_ADDR_UNSPECIFIED((struct in6_addr *)other.addr);
			} else
				continue;
			/* A dual-stack [::] listener holds the IPv4 port too. */
			if (endpoints_overlap(ep, &other) || (ep->family == AF_INET && other.any &&
			    other.family == AF_INET6 && other.port == ep->port)) {
				fclose(f);
				return inode;
			}
		}
		fclose(f);
	}
	return 0;
}

/* The inode of the Unix socket bound at path, from /proc/net/unix. 0 if none. */
static unsigned long
unix_listener_inode(const char *path)
{
	FILE *f = fopen("/proc/net/unix", "r");
	char line[1200], where[1024];
	unsigned long inode;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "%*s %*s %*s %*s %*s %*s %lu %1023s", &inode, where) == 2 &&
		    strcmp(where, path) == 0) {
			fclose(f);
			return inode;
		}
	fclose(f);
	return 0;
}

/*
 * The process holding socket inode: the first one with a descriptor on
 * it (workers share theirs). Root sees every process; others only their
 * own. false if not found.
 */
static bool
socket_owner(unsigned long inode, long *pid, char *comm, size_t commlen)
{
	DIR *proc = opendir("/proc");
	struct dirent *p;
	char want[64];
	bool found = false;

	if (inode == 0 || proc == NULL) {
		if (proc != NULL)
			closedir(proc);
		return false;
	}
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	while (!found && (p = readdir(proc)) != NULL) {
		char path[600], link[64];
		DIR *fds;
		struct dirent *fd;

		if (!isdigit((unsigned char)p->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", p->d_name);
		if ((fds = opendir(path)) == NULL)
			continue;
		while (!found && (fd = readdir(fds)) != NULL) {
			ssize_t n;

			snprintf(path, sizeof(path), "/proc/%s/fd/%s", p->d_name, fd->d_name);
			if ((n = readlink(path, link, sizeof(link) - 1)) > 0) {
				link[n] = '\0';
				found = strcmp(link, want) == 0;
			}
		}
		closedir(fds);
		if (found) {
			FILE *f;

			*pid = strtol(p->d_name, NULL, 10);
			snprintf(comm, commlen, "?");
			snprintf(path, sizeof(path), "/proc/%s/comm", p->d_name);
			if ((f = fopen(path, "r")) != NULL) {
				if (fgets(comm, (int)commlen, f) != NULL)
					comm[strcspn(comm, "\n")] = '\0';
				fclose(f);
			}
		}
	}
	closedir(proc);
	return found;
}

/* The process in pid_file, if it is alive. */
static bool
pid_file_alive(const struct conf *conf, long *pid)
{
	FILE *f;
	bool alive = false;

	if (conf->pid_file[0] == '\0' || (f = fopen(conf->pid_file, "r")) == NULL)
		return false;
	if (fscanf(f, "%ld", pid) == 1 && *pid > 0)
		alive = kill((pid_t)*pid, 0) == 0 || errno == EPERM;
	fclose(f);
	return alive;
}

/* Say who holds an address serve needs, and whether that stops it. */
static void
explain_in_use(const struct conf *conf, unsigned flags, const char *key, const char *item,
    unsigned long inode, struct strlist *errors, struct strlist *warnings)
{
	char comm[64];
	long pid;

	if (socket_owner(inode, &pid, comm, sizeof(comm))) {
		if (strcmp(comm, "stsproxy") != 0)
			strlist_addf(errors, "%s %s: in use by %s (pid %ld); choose another address or port", key, item,
			    comm, pid);
		else if (flags & PREFLIGHT_F_RUNNING_OK)
			strlist_addf(warnings, "%s %s: in use by the running stsproxy (pid %ld); fine for a reload "
			    "(SIGHUP), and a new serve can bind it once that one has stopped", key, item, pid);
		else
			strlist_addf(errors, "%s %s: in use by another stsproxy (pid %ld)", key, item, pid);
	} else if ((flags & PREFLIGHT_F_RUNNING_OK) && pid_file_alive(conf, &pid)) {
		strlist_addf(warnings, "%s %s: in use, presumably by the running stsproxy (pid %ld in pid_file); "
		    "run check-config as root to see the process", key, item, pid);
	} else {
		strlist_addf(errors, "%s %s: address already in use%s", key, item, geteuid() == 0 ? "" :
		    " (run check-config as root to see by which process)");
	}
}

/* Bind and release, as serve will bind (SO_REUSEADDR, IPv6 only on IPv6). errno, or 0. */
static int
try_bind(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, e = 0;

	if (fd < 0)
		return errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len) < 0)
		e = errno;
	close(fd);
	return e;
}

static void
check_tcp(const struct conf *conf, unsigned flags, const char *key, const char *item,
    const struct sockaddr_storage *ss, socklen_t len, struct strlist *errors, struct strlist *warnings)
{
	struct endpoint ep;
	int e = try_bind(ss, len);

	if (e == 0)
		return;
	endpoint_of(ss, &ep);
	if (e == EADDRINUSE)
		explain_in_use(conf, flags, key, item, tcp_listener_inode(&ep), errors, warnings);
	else if (e == EACCES)
		strlist_addf(errors,
		    "%s %s: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
		    key, item);
	else if (e == EADDRNOTAVAIL)
		strlist_addf(errors, "%s %s: no such address on this host", key, item);
	else
		strlist_addf(errors, "%s %s: cannot bind: %s", key, item, strerror(e));
}

/*
 * unix:/path: its directory must take a new entry; an existing file must
 * be a socket (serve removes a stale one, so anything else would be
 * destroyed) and nobody may be accepting on it.
 */
static void
check_unix(const struct conf *conf, unsigned flags, const char *key, const char *item,
    struct strlist *errors, struct strlist *warnings)
{
	const char *path = item + 5;
	char *dir = parent_of(path);
	struct stat st;

	if (access(dir, W_OK | X_OK) != 0)
		strlist_addf(errors, "%s %s: directory %s: %s", key, item, dir, strerror(errno));
	free(dir);
	if (lstat(path, &st) != 0)
		return;
	if (!S_ISSOCK(st.st_mode)) {
		strlist_addf(errors, "%s %s: %s exists and is not a socket; serve would replace it",
		    key, item, path);
		return;
	}
	{
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			explain_in_use(conf, flags, key, item, unix_listener_inode(path),
			    errors, warnings);
		if (fd >= 0)
			close(fd);
	}
}

struct address {
	const char		*key;	/* "[server] listen", "[server] lmtp_listen" or "metrics_listen" */
	const char		*item;
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	struct endpoint		 ep;
};

static void
check_addresses(const struct conf *conf, unsigned flags, struct strlist *errors,
    struct strlist *warnings)
{
	const struct strlist *lists[] = { &conf->server_listen, &conf->server_lmtp_listen };
	const char *keys[] = { "[server] listen", "[server] lmtp_listen" };
	struct address *a = xcalloc(conf->server_listen.count + conf->server_lmtp_listen.count + 1,
	    sizeof(*a));
	size_t n = 0;

	for (size_t k = 0; k < 2; k++) {
		for (size_t i = 0; i < lists[k]->count; i++) {
			const char *item = lists[k]->items[i];
			bool twice = false;

			if (strncmp(item, "unix:", 5) == 0) {
				for (size_t kk = 0; kk <= k; kk++)
					for (size_t j = 0; j < (kk == k ? i : lists[kk]->count); j++)
						twice |= strcmp(lists[kk]->items[j], item) == 0;
				if (twice)
					strlist_addf(errors, "%s %s is listed twice", keys[k], item);
				check_unix(conf, flags, keys[k], item, errors, warnings);
				continue;
			}
			if (netaddr_parse_hostport(item, &a[n].ss, &a[n].len) != NULL)
				continue;	/* refused at load time */
			a[n].key = keys[k];
			a[n].item = item;
			endpoint_of(&a[n].ss, &a[n].ep);
			n++;
		}
	}
	if (conf->metrics_listen[0] != '\0' &&
	    netaddr_parse_hostport(conf->metrics_listen, &a[n].ss, &a[n].len) == NULL) {
		a[n].key = "metrics_listen";
		a[n].item = conf->metrics_listen;
		endpoint_of(&a[n].ss, &a[n].ep);
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		bool clash = false;

		for (size_t j = 0; j < i && !clash; j++)
			if ((clash = endpoints_overlap(&a[i].ep, &a[j].ep))) {
				if (strcmp(a[i].key, a[j].key) == 0)
					strlist_addf(errors, "%s %s and %s overlap: the same port on the same or the "
					    "wildcard address", a[i].key, a[j].item, a[i].item);
				else if (strcmp(a[i].key, "metrics_listen") != 0)
					strlist_addf(errors, "%s %s clashes with %s %s: the same port on the same "
					    "or the wildcard address", a[i].key, a[i].item, a[j].key, a[j].item);
				else
					strlist_addf(errors, "%s %s clashes with %s %s: give the metrics endpoint a "
					    "port of its own", a[i].key, a[i].item, a[j].key, a[j].item);
			}
		if (!clash)
			check_tcp(conf, flags, a[i].key, a[i].item, &a[i].ss, a[i].len, errors, warnings);
	}
	free(a);
}

int
preflight_check(const struct conf *conf, unsigned flags, struct strlist *errors,
    struct strlist *warnings)
{
	size_t nerr = errors->count;

	check_identity(conf, errors);
	check_state_dir(conf, errors);
	if (conf->pid_file[0] != '\0')
		check_writable_file("pid_file", conf->pid_file, errors);
	if (strcmp(conf->log_target, "file") == 0)
		check_writable_file("log_file", conf->log_file, errors);
	check_keys(conf, errors);
	check_addresses(conf, flags, errors, warnings);
	return errors->count == nerr ? 0 : -1;
}

int
preflight_serve(const struct conf *conf)
{
	struct strlist errors = { 0 }, warnings = { 0 };
	int rc;

	for (size_t i = 0; i < conf->warnings.count; i++)
		log_warnx("event=config_warning warning=%s", log_quote(conf->warnings.items[i]));
	rc = preflight_check(conf, 0, &errors, &warnings);
	for (size_t i = 0; i < warnings.count; i++)
		log_warnx("event=config_warning warning=%s", log_quote(warnings.items[i]));
	for (size_t i = 0; i < errors.count; i++)
		log_err("event=startup_failed reason=%s", log_quote(errors.items[i]));
	strlist_clear(&errors);
	strlist_clear(&warnings);
	return rc;
}

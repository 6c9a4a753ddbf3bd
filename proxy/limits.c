#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_MAIN

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conf/log.h"
#include "proxy/limits.h"
#include "proxy/workers.h"

/* What limits_init() found; before it ran, limits_plan() reads the limit itself. */
static struct {
	bool		known;
	unsigned long	soft, hard;
	unsigned	in_use;
	int		raise_errno;	/* setrlimit failed with this; 0: raised or nothing to do */
} nofile;

/* Descriptors open now: /proc/self/fd, or a probe of the low numbers. */
static unsigned
count_open_fds(unsigned long soft)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned n = 0;

	if (d != NULL) {
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		return n > 0 ? n - 1 : 0;	/* the directory's own descriptor */
	}
	for (int fd = 0; fd < (int)(soft < 4096 ? soft : 4096); fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

/* The kernel's ceiling for RLIMIT_NOFILE when the hard limit says unlimited. */
static rlim_t
nr_open(void)
{
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");
	unsigned long v = 0;

	if (f != NULL) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v > 0 ? (rlim_t)v : 1024 * 1024;
}

static void
read_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	nofile.soft = rl.rlim_cur == RLIM_INFINITY ? (unsigned long)nr_open() : (unsigned long)rl.rlim_cur;
	nofile.hard = rl.rlim_max == RLIM_INFINITY ? (unsigned long)nr_open() : (unsigned long)rl.rlim_max;
	nofile.known = true;
}

int
limits_init(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_cur != rl.rlim_max) {
		struct rlimit want = rl;

		want.rlim_cur = rl.rlim_max == RLIM_INFINITY ? nr_open() : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &want) < 0)
			nofile.raise_errno = errno;
	}
	read_limit();
	nofile.in_use = count_open_fds(nofile.soft);
	return nofile.known ? 0 : -1;
}

void
limits_plan(const struct conf *conf, struct limits_plan *p)
{
	unsigned long avail, sessions, pool;

	memset(p, 0, sizeof(*p));
	if (!nofile.known)
		read_limit();
	p->soft = nofile.soft;
	p->hard = nofile.hard;
	p->in_use = nofile.in_use;
	p->max_connections = conf->server_max_connections;
	p->pool_size = conf->upstream_reuse ? conf->upstream_reuse_pool_size : 0;
	p->needed = p->in_use + LIMITS_FD_ALLOWANCE + p->pool_size +
	    LIMITS_FDS_PER_SESSION * p->max_connections;
	if (!nofile.known || p->needed <= p->soft)
		return;
	/*
	 * Too few descriptors. Sessions come first; the pool only saves
	 * round trips, so it gets what the sessions leave, and while the pool
	 * is the larger figure it shrinks with the sessions (three descriptors
	 * a session: its socket, its upstream, one parked connection).
	 */
	avail = p->soft > p->in_use + LIMITS_FD_ALLOWANCE ? p->soft - p->in_use - LIMITS_FD_ALLOWANCE : 0;
	pool = p->pool_size;
	if (avail >= pool + LIMITS_FDS_PER_SESSION * (unsigned long)pool)
		sessions = (avail - pool) / LIMITS_FDS_PER_SESSION;
	else
		sessions = avail / (LIMITS_FDS_PER_SESSION + (pool > 0 ? 1 : 0));
	if (sessions < 1)
		sessions = 1;
	if (sessions < p->max_connections)
		p->max_connections = (unsigned)sessions;
	if (pool > 0) {
		unsigned long left = avail > LIMITS_FDS_PER_SESSION * (unsigned long)p->max_connections ?
		    avail - LIMITS_FDS_PER_SESSION * (unsigned long)p->max_connections : 0;

		if (left < 1)
			left = 1;
		if (left < pool)
			p->pool_size = (unsigned)left;
	}
	p->lowered = true;
}

unsigned
limits_max_connections(const struct conf *conf)
{
	struct limits_plan p;

	limits_plan(conf, &p);
	return p.max_connections;
}

unsigned
limits_pool_size(const struct conf *conf)
{
	struct limits_plan p;

	limits_plan(conf, &p);
	return p.pool_size;
}

void
limits_log(const struct conf *conf)
{
	struct limits_plan p;
	unsigned pool;
	char also[64] = "";

	limits_plan(conf, &p);
	if (nofile.raise_errno != 0)
		log_warnx("event=fd_limit_raise_failed soft=%lu hard=%lu reason=%s", p.soft, p.hard,
		    log_quote(strerror(nofile.raise_errno)));
	if (!p.lowered) {
		log_notice("event=fd_limit worker=%u soft=%lu hard=%lu in_use=%u max_connections=%u "
		    "reuse_pool_size=%u needed=%u", worker_index(), p.soft, p.hard, p.in_use,
		    p.max_connections, p.pool_size, p.needed);
		return;
	}
	pool = conf->upstream_reuse ? conf->upstream_reuse_pool_size : 0;
	if (p.pool_size < pool)
		snprintf(also, sizeof(also), " and reuse_pool_size = %u", p.pool_size);
	log_warnx("event=fd_limit worker=%u soft=%lu hard=%lu in_use=%u max_connections=%u "
	    "reuse_pool_size=%u needed=%u reason=\"the descriptor limit is too low for max_connections = %u "
	    "and reuse_pool_size = %u: raise it to %u (LimitNOFILE= in the systemd unit, ulimit -n), "
	    "or set max_connections = %u%s; until then clients beyond %u get 421 4.7.0\"",
	    worker_index(), p.soft, p.hard, p.in_use, p.max_connections, p.pool_size, p.needed,
	    conf->server_max_connections, pool, p.needed, p.max_connections, also, p.max_connections);
}

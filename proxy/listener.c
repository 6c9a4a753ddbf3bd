#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_SMTP

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <grp.h>
#include <unistd.h>
#ifdef HAVE_MALLOC_TRIM
#include <malloc.h>
#endif

#include <event2/event.h>
#include <event2/listener.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "conf/netaddr.h"
#include "proxy/limits.h"
#include "proxy/listener.h"
#include "proxy/workers.h"

/* Out of descriptors: accepting pauses this long, doubling up to the maximum. */
#define ACCEPT_BACKOFF_MIN_MS	100
#define ACCEPT_BACKOFF_MAX_MS	1000
/* At most one event=accept_failed line per this many milliseconds. */
#define ACCEPT_LOG_INTERVAL_MS	1000
/* Most waiting clients answered 421 through the reserve descriptor per failure. */
#define RESERVE_REFUSALS	1024
/*
 * Connections the kernel queues for accept(). A burst beyond it has its
 * SYNs dropped and retried after 1, 3, 7 s, which looks like a relay
 * that does not answer; 511 as nginx and redis use (the kernel caps it
 * at net.core.somaxconn).
 */
#define LISTEN_BACKLOG		511
/*
 * A connection this young may still be about to send EHLO (MTAs do at
 * once): it is not closed to make room, the newcomer gets 421 instead.
 */
#define EVICT_MIN_IDLE_MS	1000
/* Memory goes back to the system this long after sessions closed ... */
#define TRIM_DELAY_SECONDS	2
/* ... when this many fewer are open than at the peak since, or none is. */
#define TRIM_AFTER_SESSIONS	64

struct session_slot {
	struct smtp_server	*session;
	struct session_slot	*prev, *next;
	long long		 since;		/* accepted (mono_ms) */
	bool			 leaving;	/* evicted, flushing its 421 */
};

struct listener {
	const struct smtp_server_env	*env;
	struct smtp_server_env		 lmtp_env;	/* env, speaking LMTP */
	const struct conf		*conf;
	struct evconnlistener		**socks;
	bool				*sock_lmtp;	/* per socket: an lmtp_listen address */
	size_t				 nsocks;
	struct netaddr_cidr		*allow;
	size_t				 nallow;
	struct session_slot		*sessions;	/* oldest first */
	struct session_slot		*newest;
	unsigned			 nsessions;
	unsigned			 nleaving;	/* evicted ones among them */
	bool				 shutting_down;

	/*
	 * Out of descriptors (EMFILE, ENFILE): the reserve descriptor is
	 * given up for a moment to accept waiting clients and tell them 421,
	 * and accepting pauses instead of spinning on a listener that stays
	 * readable. Failures are counted and logged once a second at most.
	 */
	int				 reserve_fd;
	struct event			*resume;
	unsigned			 backoff_ms;	/* 0: accepting normally */
	long long			 logged_at_ms;
	unsigned long			 failures, refused;	/* since the last line */
	unsigned long			 episode_failures, episode_refused;

	/*
	 * glibc keeps the heap closed sessions freed for reuse: a moment
	 * after many sessions went away, malloc_trim() hands back the pages
	 * that are wholly free (3,000 idle connections gone: 16 MB left
	 * instead of 18.6, from 10 at start).
	 */
	struct event			*trim;
	unsigned			 peak;		/* most sessions since the last trim */
};

/* A one-line refusal before any SMTP state exists; best effort. */
static void
refuse(evutil_socket_t fd, const char *line)
{
	ssize_t n = send(fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);

	(void)n;
	evutil_closesocket(fd);
}

static bool
client_allowed(const struct listener *l, const struct sockaddr *sa)
{
	/* A Unix-domain client got past the socket's file permissions. */
	if (sa->sa_family == AF_UNIX)
		return true;
	for (size_t i = 0; i < l->nallow; i++)
		if (netaddr_cidr_contains(&l->allow[i], sa))
			return true;
	return false;
}

static unsigned
sessions_from(const struct listener *l, const struct sockaddr *sa)
{
	unsigned n = 0;

	for (const struct session_slot *s = l->sessions; s; s = s->next)
		if (!s->leaving && netaddr_same_host(smtp_server_peer(s->session), sa))
			n++;
	return n;
}

/*
 * The relay is full: rather than refuse a client, close the oldest
 * connection that has not said HELO/EHLO (from sa's host only when sa is
 * set) and has been idle for EVICT_MIN_IDLE_MS at least. Real MTAs send
 * EHLO at once; such a connection only holds a slot. true when one was
 * closed.
 */
static bool
make_room(struct listener *l, const struct sockaddr *sa, const char *why)
{
	long long now = mono_ms();

	/* Oldest first: once one is too young, so are all that follow. */
	for (struct session_slot *s = l->sessions; s && now - s->since >= EVICT_MIN_IDLE_MS; s = s->next) {
		if (s->leaving || !smtp_server_awaiting_helo(s->session))
			continue;
		if (sa != NULL && !netaddr_same_host(smtp_server_peer(s->session), sa))
			continue;
		smtp_server_evict(s->session, why, (unsigned)((now - s->since) / 1000));
		s->leaving = true;
		l->nleaving++;
		return true;
	}
	return false;
}

struct slot_owner {
	struct session_slot	 slot;
	struct listener		*listener;
};

static void
slot_closed(void *arg, struct smtp_server *session)
{
	struct slot_owner *o = arg;
	struct listener *l = o->listener;

	(void)session;
	if (o->slot.prev)
		o->slot.prev->next = o->slot.next;
	else
		l->sessions = o->slot.next;
	if (o->slot.next)
		o->slot.next->prev = o->slot.prev;
	else
		l->newest = o->slot.prev;
	if (o->slot.leaving)
		l->nleaving--;
	l->nsessions--;
	if (!evtimer_pending(l->trim, NULL)) {
		struct timeval tv = { TRIM_DELAY_SECONDS, 0 };

		evtimer_add(l->trim, &tv);
	}
	metrics_set("stsproxy_sessions", "", l->nsessions);
	free(o);
}

static void load_allow_list(struct listener *l);

static void
trim_memory(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	(void)fd;
	(void)what;
	if (l->peak < l->nsessions + TRIM_AFTER_SESSIONS && !(l->nsessions == 0 && l->peak > 0))
		return;
#ifdef HAVE_MALLOC_TRIM
	(void)malloc_trim(0);
#endif
	l->peak = l->nsessions;
}

static void
accept_cb(struct evconnlistener *el, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct listener *l = arg;
	struct slot_owner *o;
	char ip[64], line[512];
	unsigned max;
	bool lmtp = false;

	(void)salen;
	for (size_t i = 0; i < l->nsocks; i++)
		if (l->socks[i] == el)
			lmtp = l->sock_lmtp[i];
	netaddr_ntop(sa, ip, sizeof(ip));
	if (!client_allowed(l, sa)) {
		log_notice("event=client_refused client=%s reason=\"not in [server] allow_clients\"", ip);
		metrics_add("stsproxy_connections_refused_total", "reason=\"not_allowed\"", 1);
		snprintf(line, sizeof(line), "554 5.7.1 %s: %s is not allowed to relay through this host\r\n",
		    l->env->rt->hostname, ip);
		refuse(fd, line);
		return;
	}
	if (l->backoff_ms != 0) {
		log_notice("event=accept_resumed failures=%lu refused=%lu", l->episode_failures,
		    l->episode_refused);
		l->backoff_ms = 0;
		l->episode_failures = l->episode_refused = 0;
	}
	max = limits_max_connections(l->conf);
	if (l->shutting_down || (l->nsessions - l->nleaving >= max &&
	    !make_room(l, NULL, "max_connections reached"))) {
		metrics_add("stsproxy_connections_refused_total", "reason=\"max_connections\"", 1);
		log_warnx("event=client_refused client=%s reason=\"max_connections (%u) reached\"", ip, max);
		snprintf(line, sizeof(line), "421 4.7.0 %s Too many connections, try again later\r\n",
		    l->env->rt->hostname);
		refuse(fd, line);
		return;
	}
	if (sessions_from(l, sa) >= l->conf->server_max_per_client &&
	    !make_room(l, sa, "max_connections_per_client reached")) {
		metrics_add("stsproxy_connections_refused_total", "reason=\"max_per_client\"", 1);
		log_warnx("event=client_refused client=%s reason=\"max_connections_per_client (%u) reached\"",
		    ip, l->conf->server_max_per_client);
		snprintf(line, sizeof(line), "421 4.7.0 %s Too many connections from %s, try again later\r\n",
		    l->env->rt->hostname, ip);
		refuse(fd, line);
		return;
	}
	evutil_make_socket_nonblocking(fd);
	/* Replies are small writes answered by the next command: with Nagle's
	 * algorithm and the peer's delayed ACK each would wait ~40 ms. */
	if (sa->sa_family != AF_UNIX) {
		int one = 1;

		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	o = xcalloc(1, sizeof(*o));
	o->listener = l;
	o->slot.session = smtp_server_new(lmtp ? &l->lmtp_env : l->env, fd, sa, slot_closed, o);
	o->slot.since = mono_ms();
	o->slot.prev = l->newest;
	if (l->newest)
		l->newest->next = &o->slot;
	else
		l->sessions = &o->slot;
	l->newest = &o->slot;
	l->nsessions++;
	if (l->nsessions > l->peak)
		l->peak = l->nsessions;
	metrics_add("stsproxy_connections_total", "", 1);
	metrics_set("stsproxy_sessions", "", l->nsessions);
}

/*
 * Give up the reserve descriptor for a moment to accept the clients
 * waiting on lfd and tell them 421, instead of leaving them to time out.
 * How many were answered.
 */
static unsigned
refuse_with_reserve(struct listener *l, evutil_socket_t lfd)
{
	char line[512];
	unsigned n;

	if (l->reserve_fd < 0)
		return 0;
	snprintf(line, sizeof(line), "421 4.3.2 %s Out of resources, try again later\r\n",
	    l->env->rt->hostname);
	close(l->reserve_fd);
	for (n = 0; n < RESERVE_REFUSALS; n++) {
		evutil_socket_t fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			break;
		refuse(fd, line);
	}
	l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return n;
}

static void
accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	(void)fd;
	(void)what;
	if (l->shutting_down)
		return;
	for (size_t i = 0; i < l->nsocks; i++)
		evconnlistener_enable(l->socks[i]);
}

/*
 * accept() failed. The listener stays readable, so going on at once
 * would spin and log in a loop (EMFILE): answer who waits, pause every
 * socket with a growing back-off, and log at most once a second.
 */
static void
accept_error_cb(struct evconnlistener *el, void *arg)
{
	struct listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();
	unsigned refused = 0;
	struct timeval tv;
	long long now = mono_ms();

	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
		refused = refuse_with_reserve(l, evconnlistener_get_fd(el));
	if (refused > 0)
		metrics_add("stsproxy_connections_refused_total", "reason=\"out_of_descriptors\"", refused);
	l->backoff_ms = l->backoff_ms == 0 ? ACCEPT_BACKOFF_MIN_MS :
	    l->backoff_ms * 2 > ACCEPT_BACKOFF_MAX_MS ? ACCEPT_BACKOFF_MAX_MS : l->backoff_ms * 2;
	for (size_t i = 0; i < l->nsocks; i++)
		evconnlistener_disable(l->socks[i]);
	tv.tv_sec = l->backoff_ms / 1000;
	tv.tv_usec = (l->backoff_ms % 1000) * 1000;
	evtimer_add(l->resume, &tv);
	l->failures++;
	l->refused += refused;
	l->episode_failures++;
	l->episode_refused += refused;
	if (l->logged_at_ms != 0 && now - l->logged_at_ms < ACCEPT_LOG_INTERVAL_MS)
		return;
	log_err("event=accept_failed reason=%s failures=%lu refused=%lu paused_ms=%u sessions=%u",
	    log_quote(evutil_socket_error_to_string(err)), l->failures, l->refused, l->backoff_ms,
	    l->nsessions);
	l->logged_at_ms = now;
	l->failures = l->refused = 0;
}

/* A Unix-domain socket for local MTAs, owned and moded as configured. */
static struct evconnlistener *
unix_listener(struct listener *l, const char *key, const char *path, char **err)
{
	struct sockaddr_un sun;
	struct evconnlistener *el;
	mode_t mode = (mode_t)strtol(l->conf->server_unix_mode, NULL, 8);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	/* A stale socket from an earlier run would make bind fail. */
	if (unlink(path) < 0 && errno != ENOENT) {
		*err = xasprintf("[server] %s: cannot remove old %s: %s", key, path, strerror(errno));
		return NULL;
	}
	el = evconnlistener_new_bind(l->env->rt->base, accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, LISTEN_BACKLOG, (struct sockaddr *)&sun,
	    sizeof(sun));
	if (el == NULL) {
		*err = xasprintf("[server] %s: cannot listen on unix:%s: %s", key, path, strerror(errno));
		return NULL;
	}
	evconnlistener_set_error_cb(el, accept_error_cb);
	if (chmod(path, mode) < 0) {
		*err = xasprintf("[server] unix_mode: chmod %s: %s", path, strerror(errno));
		evconnlistener_free(el);
		return NULL;
	}
	if (l->conf->server_unix_group[0] != '\0') {
		struct group *gr = getgrnam(l->conf->server_unix_group);

		if (gr == NULL || chown(path, (uid_t)-1, gr->gr_gid) < 0) {
			*err = xasprintf("[server] unix_group: cannot give %s to group %s", path,
			    l->conf->server_unix_group);
			evconnlistener_free(el);
			return NULL;
		}
	}
	return el;
}

/* Bind the addresses of one key ("listen" or "lmtp_listen"); 0 or -1 with *err set. */
static int
bind_all(struct listener *l, const char *key, const struct strlist *items, bool lmtp, char **err)
{
	for (size_t i = 0; i < items->count; i++) {
		const char *item = items->items[i];
		struct sockaddr_storage ss;
		socklen_t len;
		struct evconnlistener *el;

		if (strncmp(item, "unix:", 5) == 0) {
			/* one socket file, one owner: the first worker */
			if (worker_index() != 0)
				continue;
			if ((el = unix_listener(l, key, item + 5, err)) == NULL)
				return -1;
		} else {
			if (netaddr_parse_hostport(item, &ss, &len) != NULL) {
				*err = xasprintf("[server] %s: bad address %s", key, item);
				return -1;
			}
			el = evconnlistener_new_bind(l->env->rt->base, accept_cb, l,
			    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
			    (workers_forked() ? LEV_OPT_REUSEABLE_PORT : 0) |
			    (ss.ss_family == AF_INET6 ? LEV_OPT_BIND_IPV6ONLY : 0), LISTEN_BACKLOG,
			    (struct sockaddr *)&ss, (int)len);
			if (el == NULL) {
				*err = xasprintf("[server] %s: cannot listen on %s: %s", key, item,
				    strerror(errno));
				return -1;
			}
			evconnlistener_set_error_cb(el, accept_error_cb);
		}
		l->sock_lmtp[l->nsocks] = lmtp;
		l->socks[l->nsocks++] = el;
		log_notice("event=listening address=%s protocol=%s", item, lmtp ? "lmtp" : "smtp");
	}
	return 0;
}

struct listener *
listener_new(const struct smtp_server_env *env, char **err)
{
	const struct conf *conf = env->rt->conf;
	struct listener *l = xcalloc(1, sizeof(*l));
	size_t n = conf->server_listen.count + conf->server_lmtp_listen.count;

	l->env = env;
	l->lmtp_env = *env;
	l->lmtp_env.lmtp = true;
	l->conf = conf;
	/* Kept for the moment accept() runs out of descriptors: see refuse_with_reserve(). */
	l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	l->resume = evtimer_new(env->rt->base, accept_resume, l);
	l->trim = evtimer_new(env->rt->base, trim_memory, l);
	load_allow_list(l);
	l->socks = xcalloc(n + 1, sizeof(*l->socks));
	l->sock_lmtp = xcalloc(n + 1, sizeof(*l->sock_lmtp));
	if (bind_all(l, "listen", &conf->server_listen, false, err) < 0 ||
	    bind_all(l, "lmtp_listen", &conf->server_lmtp_listen, true, err) < 0) {
		listener_free(l);
		return NULL;
	}
	return l;
}

static void
load_allow_list(struct listener *l)
{
	free(l->allow);
	l->nallow = 0;
	l->allow = xcalloc(l->conf->server_allow_clients.count + 1, sizeof(*l->allow));
	for (size_t i = 0; i < l->conf->server_allow_clients.count; i++)
		if (netaddr_parse_cidr(l->conf->server_allow_clients.items[i], &l->allow[l->nallow]) == NULL)
			l->nallow++;
}

void
listener_reconfigure(struct listener *l, const struct conf *conf)
{
	l->conf = conf;
	load_allow_list(l);
}

void
listener_shutdown(struct listener *l)
{
	l->shutting_down = true;
	evtimer_del(l->resume);
	for (size_t i = 0; i < l->nsocks; i++)
		evconnlistener_disable(l->socks[i]);
	for (struct session_slot *s = l->sessions; s; s = s->next)
		smtp_server_shutdown(s->session);
}

void
listener_abort(struct listener *l)
{
	for (struct session_slot *s = l->sessions; s; s = s->next)
		smtp_server_abort(s->session);
}

unsigned
listener_sessions(const struct listener *l)
{
	return l->nsessions;
}

void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->nsocks; i++)
		evconnlistener_free(l->socks[i]);
	if (l->resume != NULL)
		event_free(l->resume);
	if (l->trim != NULL)
		event_free(l->trim);
	if (l->reserve_fd >= 0)
		close(l->reserve_fd);
	free(l->socks);
	free(l->sock_lmtp);
	free(l->allow);
	free(l);
}

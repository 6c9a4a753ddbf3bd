#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "conf/util.h"
#include "proxy/workers.h"

/* A worker that exits with an error sooner than this after its start
 * failed to start: starting it again would fail the same way. */
#define STARTUP_GRACE	5

static unsigned my_index;
static bool forked;
static volatile sig_atomic_t got_hup, got_term, got_usr1, got_chld;

unsigned
workers_count(const struct conf *conf)
{
	long n;

	if (strcmp(conf->workers, "auto") == 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
	}
	n = strtol(conf->workers, NULL, 10);
	return n < 1 ? 1 : (unsigned)n;
}

unsigned
worker_index(void)
{
	return my_index;
}

bool
workers_forked(void)
{
	return forked;
}

static void
on_signal(int sig)
{
	switch (sig) {
	case SIGHUP: got_hup = 1; break;
	case SIGUSR1: got_usr1 = 1; break;
	case SIGCHLD: got_chld = 1; break;
	default: got_term = 1; break;
	}
}

static const int handled[] = { SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGCHLD };
#define NHANDLED (sizeof(handled) / sizeof(handled[0]))

static pid_t
spawn(unsigned i, const struct conf *conf, int (*run)(const struct conf *, void *), void *arg,
    const sigset_t *oldmask)
{
	pid_t pid = fork();

	if (pid != 0) {
		if (pid < 0)
			log_err("event=worker_fork_failed worker=%u reason=%s", i, log_quote(strerror(errno)));
		else
			log_info("event=worker_started worker=%u pid=%ld", i, (long)pid);
		return pid;
	}
	my_index = i;
	forked = true;
	for (size_t k = 0; k < NHANDLED; k++)
		signal(handled[k], SIG_DFL);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	metrics_use_slot(i);
	_exit(run(conf, arg));
}

static void
forward(const pid_t *pids, unsigned n, int sig)
{
	for (unsigned i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], sig);
}

int
workers_supervise(const struct conf *conf, const char *path, unsigned n,
    int (*run)(const struct conf *, void *), void *arg)
{
	pid_t *pids = xcalloc(n, sizeof(*pids));
	time_t *since = xcalloc(n, sizeof(*since));
	struct conf *reloaded = NULL;
	sigset_t block, oldmask, waitmask;
	struct sigaction sa;
	bool stopping = false;
	int rc = 0;

	if (metrics_share(n) < 0)
		log_warnx("event=metrics_not_shared reason=\"mmap failed: /metrics shows worker 0 only\"");
	if (conf->pid_file[0] != '\0') {
		FILE *pf = fopen(conf->pid_file, "w");

		if (pf == NULL || fprintf(pf, "%ld\n", (long)getpid()) < 0 || fclose(pf) != 0) {
			log_err("event=startup_failed pid_file=%s reason=%s", conf->pid_file,
			    log_quote(strerror(errno)));
			free(pids);
			free(since);
			return 2;
		}
	}
	sigemptyset(&block);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	for (size_t k = 0; k < NHANDLED; k++) {
		sigaddset(&block, handled[k]);
		sigaction(handled[k], &sa, NULL);
	}
	sigprocmask(SIG_BLOCK, &block, &oldmask);
	waitmask = oldmask;
	for (size_t k = 0; k < NHANDLED; k++)
		sigdelset(&waitmask, handled[k]);
	for (unsigned i = 0; i < n; i++) {
		pids[i] = spawn(i, conf, run, arg, &oldmask);
		since[i] = time(NULL);
	}
	log_notice("event=supervisor_started workers=%u pid=%ld", n, (long)getpid());
	for (;;) {
		bool any = false;

		if (!got_hup && !got_term && !got_usr1 && !got_chld)
			sigsuspend(&waitmask);
		if (got_chld) {
			pid_t pid;
			int status;

			got_chld = 0;
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
				for (unsigned i = 0; i < n; i++) {
					if (pids[i] != pid)
						continue;
					pids[i] = 0;
					if (WIFSIGNALED(status))
						log_err("event=worker_died worker=%u pid=%ld signal=%d", i, (long)pid,
						    WTERMSIG(status));
					else
						log_msg(stopping ? LOG_LEVEL_INFO : LOG_LEVEL_WARNING,
						    "event=worker_exited worker=%u pid=%ld exit_status=%d", i, (long)pid,
						    WEXITSTATUS(status));
					if (stopping)
						break;
					if (WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
					    time(NULL) - since[i] < STARTUP_GRACE) {
						log_err("event=startup_failed reason=\"worker %u could not start; "
						    "stopping the others\"", i);
						stopping = true;
						rc = WEXITSTATUS(status);
						forward(pids, n, SIGTERM);
						break;
					}
					sleep(1);	/* no tight loop if it keeps dying */
					pids[i] = spawn(i, reloaded ? reloaded : conf, run, arg, &oldmask);
					since[i] = time(NULL);
				}
			}
		}
		if (got_term) {
			got_term = 0;
			/* a second signal makes the workers exit at once, as with one process */
			log_notice("event=stopping workers=%u", n);
			stopping = true;
			forward(pids, n, SIGTERM);
		}
		if (got_hup) {
			struct strlist errors = { 0 };
			struct conf *c;

			got_hup = 0;
			/* the workers reload (and log errors) themselves; this copy is for restarts */
			if ((c = conf_load(path, &errors)) != NULL) {
				if (reloaded != NULL)
					conf_free(reloaded);
				reloaded = c;
			}
			strlist_clear(&errors);
			forward(pids, n, SIGHUP);
		}
		if (got_usr1) {
			const char *why;

			got_usr1 = 0;
			if (log_reopen(&why) < 0)
				log_err("event=log_reopen_failed reason=%s", log_quote(why));
			forward(pids, n, SIGUSR1);
		}
		for (unsigned i = 0; i < n; i++)
			any = any || pids[i] > 0;
		if (stopping && !any)
			break;
	}
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	if (conf->pid_file[0] != '\0')
		unlink(conf->pid_file);
	if (reloaded != NULL)
		conf_free(reloaded);
	free(pids);
	free(since);
	log_notice("event=stopped");
	return rc;
}

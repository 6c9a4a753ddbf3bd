#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/util.h"
#include "policy/dbthread.h"

struct dbjob {
	dbjob_run	 run;
	dbjob_done	 done;
	void		*arg;
	bool		 cancelled;	/* loop side only */
	/* dbthread_call(): the caller waits on the thread's cond for this */
	bool		 sync, finished;
	struct dbjob	*next;
};

struct dbthread {
	char		*name;
	struct event	*wake;		/* read end of the pipe, on the loop */
	int		 pipe[2];
	pthread_t	 thread;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;		/* work queued, stop, or a sync job finished */
	struct dbjob	*queue, **queue_tail;	/* under lock */
	struct dbjob	*finished, **finished_tail;	/* under lock */
	bool		 stop;		/* under lock */
	size_t		 backlog;	/* loop side: submitted, done() not yet run */
};

static void
append(struct dbjob ***tail, struct dbjob *job)
{
	job->next = NULL;
	**tail = job;
	*tail = &job->next;
}

static void *
thread_main(void *arg)
{
	struct dbthread *t = arg;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		struct dbjob *job;

		while (t->queue == NULL && !t->stop)
			pthread_cond_wait(&t->cond, &t->lock);
		if ((job = t->queue) == NULL)
			break;		/* stopping, and the queue is empty */
		if ((t->queue = job->next) == NULL)
			t->queue_tail = &t->queue;
		pthread_mutex_unlock(&t->lock);
		job->run(job->arg);
		pthread_mutex_lock(&t->lock);
		if (job->sync) {
			job->finished = true;
			pthread_cond_broadcast(&t->cond);
			continue;
		}
		append(&t->finished_tail, job);
		/* One byte per batch of finished jobs is enough to wake the loop. */
		if (t->finished == job) {
			char c = 0;

			while (write(t->pipe[1], &c, 1) < 0 && errno == EINTR)
				;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

/* On the loop: done() for everything the thread finished. */
static void
run_finished(struct dbthread *t)
{
	struct dbjob *list;

	pthread_mutex_lock(&t->lock);
	list = t->finished;
	t->finished = NULL;
	t->finished_tail = &t->finished;
	pthread_mutex_unlock(&t->lock);
	while (list != NULL) {
		struct dbjob *job = list;

		list = job->next;
		t->backlog--;
		job->done(job->arg, job->cancelled);
		free(job);
	}
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	run_finished(arg);
}

struct dbthread *
dbthread_new(struct event_base *base, const char *name)
{
	struct dbthread *t = xcalloc(1, sizeof(*t));

	t->name = xstrdup(name);
	t->queue_tail = &t->queue;
	t->finished_tail = &t->finished;
	if (pipe(t->pipe) < 0)
		fatalx("dbthread %s: pipe: %s", name, strerror(errno));
	for (int i = 0; i < 2; i++) {
		fcntl(t->pipe[i], F_SETFL, fcntl(t->pipe[i], F_GETFL) | O_NONBLOCK);
		fcntl(t->pipe[i], F_SETFD, FD_CLOEXEC);
	}
	t->wake = event_new(base, t->pipe[0], EV_READ | EV_PERSIST, on_wake, t);
	event_add(t->wake, NULL);
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	if (pthread_create(&t->thread, NULL, thread_main, t) != 0)
		fatalx("dbthread %s: cannot start the thread", name);
	return t;
}

void
dbthread_free(struct dbthread *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	/* A done() may submit more (a release after a cancel): run those here. */
	for (;;) {
		struct dbjob *job;

		run_finished(t);
		if ((job = t->queue) == NULL)
			break;
		if ((t->queue = job->next) == NULL)
			t->queue_tail = &t->queue;
		job->run(job->arg);
		append(&t->finished_tail, job);
	}
	event_free(t->wake);
	close(t->pipe[0]);
	close(t->pipe[1]);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t->name);
	free(t);
}

struct dbjob *
dbthread_submit(struct dbthread *t, dbjob_run run, dbjob_done done, void *arg)
{
	struct dbjob *job = xcalloc(1, sizeof(*job));

	job->run = run;
	job->done = done;
	job->arg = arg;
	t->backlog++;
	pthread_mutex_lock(&t->lock);
	append(&t->queue_tail, job);
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return job;
}

void
dbjob_cancel(struct dbjob *job)
{
	if (job != NULL)
		job->cancelled = true;
}

void
dbthread_call(struct dbthread *t, dbjob_run fn, void *arg)
{
	struct dbjob job = { .run = fn, .arg = arg, .sync = true };

	pthread_mutex_lock(&t->lock);
	append(&t->queue_tail, &job);
	pthread_cond_broadcast(&t->cond);
	while (!job.finished)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

size_t
dbthread_backlog(struct dbthread *t)
{
	return t->backlog;
}

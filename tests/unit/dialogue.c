#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "tests/unit/dialogue.h"

#define DIALOGUE_MAX_FILES	128

void
dialogue_peer_reset(struct dialogue_peer *peer, int fd)
{
	peer->fd = fd;
	peer->closed = false;
	peer->inlen = 0;
}

size_t
dialogue_unescape(char *s)
{
	char *o = s;

	for (char *p = s; *p; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			*o++ = *p == 'r' ? '\r' : *p == 'n' ? '\n' : *p == 't' ? '\t' :
			    *p == '0' ? '\0' : *p;
		} else
			*o++ = *p;
	}
	*o = '\0';
	return (size_t)(o - s);
}

void
dialogue_pump(struct dialogue_peer *peer, int ms)
{
	event_base_loop(peer->base, EVLOOP_NONBLOCK);
	if (peer->fd >= 0 && !peer->closed) {
		struct pollfd p = { .fd = peer->fd, .events = POLLIN };

		if (poll(&p, 1, ms) > 0) {
			ssize_t n = read(peer->fd, peer->inbuf + peer->inlen,
			    sizeof(peer->inbuf) - peer->inlen - 1);

			if (n > 0)
				peer->inlen += (size_t)n;
			else if (n == 0 || (errno != EAGAIN && errno != EINTR))
				peer->closed = true;
		}
	} else
		usleep((useconds_t)ms * 1000);
	event_base_loop(peer->base, EVLOOP_NONBLOCK);
}

char *
dialogue_line(struct dialogue_peer *peer)
{
	for (int i = 0; i < 3000; i++) {
		char *eol = memchr(peer->inbuf, '\n', peer->inlen);

		if (eol != NULL) {
			size_t len = (size_t)(eol - peer->inbuf) + 1;
			char *line = strndup(peer->inbuf, len - (len > 1 && eol[-1] == '\r' ? 2 : 1));

			memmove(peer->inbuf, peer->inbuf + len, peer->inlen - len);
			peer->inlen -= len;
			return line;
		}
		if (peer->closed)
			return NULL;
		dialogue_pump(peer, 1);
	}
	return NULL;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
dialogue_run_folder(const char *group, const char *folder, void (*run)(void **state),
    int (*teardown)(void **state))
{
	const char *srcdir = getenv("srcdir") ? getenv("srcdir") : ".";
	char dir[4096];
	struct CMUnitTest tests[DIALOGUE_MAX_FILES];
	char *names[DIALOGUE_MAX_FILES];
	size_t n = 0;
	DIR *d;
	struct dirent *e;
	int rc;

	snprintf(dir, sizeof(dir), "%s/tests/data/%s", srcdir, folder);
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "cannot open %s\n", dir);
		return 1;
	}
	while ((e = readdir(d)) != NULL && n < DIALOGUE_MAX_FILES) {
		size_t l = strlen(e->d_name);

		if (l > 4 && strcmp(e->d_name + l - 4, ".dlg") == 0) {
			char *p = malloc(strlen(dir) + l + 2);

			sprintf(p, "%s/%s", dir, e->d_name);
			names[n++] = p;
		}
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), by_name);
	for (size_t i = 0; i < n; i++)
		tests[i] = (struct CMUnitTest){ strrchr(names[i], '/') + 1, run, NULL, teardown,
		    names[i] };
	rc = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	return rc;
}

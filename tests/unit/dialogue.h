/*
 * dialogue.h - what the dialogue-driven unit tests share: test_smtp_server
 * plays the client of a session, test_upstream the MX server of one; both
 * read scripted lines from tests/data/<module>/ *.dlg files, write them to
 * a socket with escapes, and read the other side's lines while the event
 * loop runs.
 */
#ifndef STSPROXY_TEST_DIALOGUE_H
#define STSPROXY_TEST_DIALOGUE_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;

/** The test's end of a connection to the code under test. */
struct dialogue_peer {
	struct event_base	*base;		/* run while waiting; borrowed */
	int			 fd;		/* -1: none yet (the loop still runs) */
	bool			 closed;	/* the other side closed */
	char			 inbuf[65536];	/* read, not yet taken as lines */
	size_t			 inlen;
};

/** Start over on fd (-1 for none): nothing buffered, not closed. */
void dialogue_peer_reset(struct dialogue_peer *peer, int fd);

/** Decode \r \n \t \0 \\ escapes in place; returns the new length (a \0 makes a NUL byte). */
size_t dialogue_unescape(char *s);

/** Run the loop, wait up to ms for bytes from the other side, run the loop again. */
void dialogue_pump(struct dialogue_peer *peer, int ms);

/**
 * The next line from the other side without its CR LF, or NULL when none
 * came within 3 s or the other side closed. Caller frees.
 */
char *dialogue_line(struct dialogue_peer *peer);

/**
 * Run one cmocka test per tests/data/<folder>/ *.dlg file, in name order,
 * under $srcdir; the test function gets the file's path as its state, and
 * teardown (may be NULL) runs after each, failed or not. Returns the
 * failures, or 1 when the folder cannot be read.
 */
int dialogue_run_folder(const char *group, const char *folder, void (*run)(void **state),
    int (*teardown)(void **state));

#endif

/*
 * smtp_reply.h - SMTP replies: parse what an untrusted upstream sends,
 * build what we send, and keep both as the lines a client will see.
 *
 * A reply is kept line by line so it can be relayed exactly as the
 * upstream gave it (PRX: code, enhanced code and every line). Decisions
 * use only the code (SMTP-9). Bounded: a server that sends endless
 * continuation lines or very long ones gets a parse error, not our memory.
 */
#ifndef STSPROXY_SMTP_REPLY_H
#define STSPROXY_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

#define SMTP_REPLY_LINE_MAX	1024	/* RFC 5321 §4.5.3.1.5 asks for 512 */
#define SMTP_REPLY_LINES_MAX	64

/** A complete or partial reply. Initialise with smtp_reply_init(). */
struct smtp_reply {
	int	 code;				/* 0 until the first line */
	char	 enhanced[16];			/* "4.7.5" from the first line, or "" */
	char	*lines[SMTP_REPLY_LINES_MAX];	/* text after "ddd-"/"ddd ", owned */
	size_t	 nlines;
	bool	 complete;
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_clear(struct smtp_reply *r);

enum smtp_reply_status {
	SMTP_REPLY_MORE,	/* a continuation line: feed the next */
	SMTP_REPLY_DONE,	/* the last line: r is complete */
	SMTP_REPLY_ERROR,	/* malformed; reason set */
};

/**
 * Add one line (without CR LF) to r. Checks the code (three digits,
 * 2-5 first digit), the separator and that every line has the same code
 * (SMTP-9). *reason is a static string on error.
 */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
    const char **reason);

/**
 * Make r a one-line reply: code, enhanced code (may be NULL) and a
 * printf-formatted text. Non-printable bytes in the text become '?'.
 */
void smtp_reply_set(struct smtp_reply *r, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * smtp_reply_set() for a reply stsproxy makes itself (spec §11), as
 * opposed to one it relays from an MX unchanged (PRX): a 4xx ends with
 * "[stsproxy session ID]", so the client's queue entry leads to the
 * session's log lines.
 */
void smtp_reply_own(struct smtp_reply *r, const char *session, int code, const char *enhanced,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/** Deep copy. */
void smtp_reply_copy(struct smtp_reply *dst, const struct smtp_reply *src);

/** Write r as SMTP lines "ddd-text" ... "ddd text" (CR LF) to out. */
void smtp_reply_write(const struct smtp_reply *r, struct evbuffer *out);

/** The whole reply on one line ("451 4.7.5 text / more text"), for logs. */
char *smtp_reply_flatten(const struct smtp_reply *r);

/** 2, 3, 4 or 5: the class of r (SMTP-9). */
int smtp_reply_class(const struct smtp_reply *r);

/** true if a line of an EHLO reply (after the first) names keyword. */
bool smtp_reply_has_keyword(const struct smtp_reply *r, const char *keyword, const char **args);

#endif

/*
 * data_filter.h - the message body between client and upstream, made
 * safe for SMTP (the defence against SMTP smuggling).
 *
 * The client's dot-stuffed DATA stream is copied to the upstream as it
 * arrives, so memory stays bounded whatever the message size. The one
 * thing that must never pass is a line break or an end-of-data the
 * upstream would read differently from us. So:
 *   - only CR LF "." CR LF, where the first CR LF is a real one (or the
 *     start of the body), ends the message;
 *   - a bare LF or bare CR is normalised to CR LF (RFC 5321 §2.3.8 forbids
 *     them), and a line that starts after such a normalised break with a
 *     "." gets one more "." so it can never read as end-of-data upstream;
 *   - a NUL byte is removed (RFC 5322 §3.5 and RFC 6152 allow none in
 *     text; we offer no BINARYMIME): a receiver that drops NULs itself
 *     would otherwise read CR LF NUL "." CR LF as end-of-data. It still
 *     counts as a byte of its line, so a "." that follows it at the start
 *     of a line is stuffed, and ".", NUL, CR LF becomes an empty line;
 *   - every line we emit therefore ends in CR LF, carries no NUL, and the
 *     only "." line we emit is the terminator.
 * Pure code over bytes; the fuzz target checks these invariants and that
 * the end of data is exactly where the client put it.
 */
#ifndef STSPROXY_DATA_FILTER_H
#define STSPROXY_DATA_FILTER_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

enum data_filter_state {
	DATA_FILTER_S_BOL,	/* start of a line after a real CR LF */
	DATA_FILTER_S_BOL_NORM,	/* start of a line after a normalised break */
	DATA_FILTER_S_TEXT,
	DATA_FILTER_S_CR,	/* saw CR, waiting for LF */
	DATA_FILTER_S_DOT,	/* saw "." at the start of a real line */
	DATA_FILTER_S_DOT_CR,	/* saw ".\r" there */
	DATA_FILTER_S_DOT_NUL,	/* saw "." then NULs there; nothing emitted yet */
	DATA_FILTER_S_DONE,
};

/** Small, caller-allocated state; no resources to free. */
struct data_filter {
	enum data_filter_state	state;
	unsigned long long	bytes_in;	/* client bytes consumed */
	unsigned long long	bytes_out;	/* bytes emitted, terminator included */
	unsigned long		bare_lf;	/* normalised bare LFs */
	unsigned long		bare_cr;	/* normalised bare CRs */
	unsigned long		nul;		/* removed NUL bytes */
};

void data_filter_init(struct data_filter *f);

/**
 * Consume bytes from in (len bytes), appending the safe form to out.
 * Stops right after the end-of-data sequence, so bytes the client
 * pipelined after it stay with the caller. Returns the number of bytes
 * consumed; *done is set once end-of-data has been seen (its ".\r\n" is
 * in out).
 */
size_t data_filter_feed(struct data_filter *f, const char *in, size_t len,
    struct evbuffer *out, bool *done);

#endif

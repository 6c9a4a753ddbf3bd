/*
 * tag_value.h - the "tag=value" list of the _mta-sts and _smtp._tls TXT
 * records. RFC 8461 section 3.1 and RFC 8460 section 3 share the grammar
 * (STS-3, RPT-2), case-sensitive:
 *
 *   record    = version-field *(delimiter field) [delimiter]
 *   delimiter = *WSP ";" *WSP
 *   field     = name "=" value
 *   name      = (ALPHA / DIGIT) 0*31(ALPHA / DIGIT / "_" / "-" / ".")
 *   ext-value = 1*(%x21-3A / %x3C / %x3E-7E)   (no space, ";" or "=")
 *
 * Only the values of the known fields differ (id=, rua=), so a cursor
 * walks one record field by field: the caller reads the value of each
 * field it knows and lets tag_value_skip_extension() read the others.
 * Pure functions over untrusted bytes: no allocation, no I/O; a record
 * may hold any byte, NUL included, and is never read past its length.
 */
#ifndef STSPROXY_TAG_VALUE_H
#define STSPROXY_TAG_VALUE_H

#include <stdbool.h>
#include <stddef.h>

/** The longest field name the grammar allows. */
#define TAG_VALUE_MAX_NAME	32

/**
 * A cursor over one record. p is the next byte to read; a value reader
 * may advance it (never past end). reason (may be NULL when reason_len
 * is 0) is borrowed from the caller and receives the first error.
 */
struct tag_value {
	const unsigned char	*start;		/* the record, for error offsets */
	const unsigned char	*p;
	const unsigned char	*end;
	char			*reason;
	size_t			 reason_len;
};

/** What tag_value_next() found. */
enum tag_value_step {
	TAG_VALUE_FIELD,	/* a field: its name is set, p is at its value */
	TAG_VALUE_END,		/* the record ended (after an optional final delimiter) */
	TAG_VALUE_ERROR,	/* the grammar is broken; reason says where */
};

/**
 * Start reading rec (len bytes): check the length against max_len and
 * that rec starts with version (e.g. "v=STSv1"), and place the cursor
 * after it. false with a reason otherwise.
 */
bool tag_value_begin(struct tag_value *tv, const char *rec, size_t len, size_t max_len,
    const char *version, char *reason, size_t reason_len);

/**
 * Read a delimiter and the next field's name and "=". On
 * TAG_VALUE_FIELD, *name and *name_len point into the record and the
 * caller must read the value (its own grammar, or
 * tag_value_skip_extension()) before calling again.
 */
enum tag_value_step tag_value_next(struct tag_value *tv, const char **name, size_t *name_len);

/** Read an extension value (at least one byte). false with a reason if empty. */
bool tag_value_skip_extension(struct tag_value *tv);

/**
 * Read the longest run of bytes that accept() takes; returns where it
 * starts and sets *len (0 when the next byte is not taken).
 */
const char *tag_value_take(struct tag_value *tv, bool (*accept)(unsigned char c), size_t *len);

/** Skip spaces and tabs. */
void tag_value_skip_wsp(struct tag_value *tv);

/** true when a value may end here: at the end, a space, a tab or ";". */
bool tag_value_at_value_end(const struct tag_value *tv);

/** The offset of at (a pointer into the record), for error messages. */
size_t tag_value_offset(const struct tag_value *tv, const void *at);

/** Write a reason (printf-style) and return false. */
bool tag_value_fail(struct tag_value *tv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** What a record's parser made of one field (see tag_value_parse()). */
enum tag_value_field {
	TAG_VALUE_KNOWN,	/* a field it knows, value read */
	TAG_VALUE_EXTENSION,	/* not its field: read and ignored (STS-5, RPT-5) */
	TAG_VALUE_BAD,		/* its value breaks the grammar: tag_value_fail() was called */
};

/**
 * Parse a whole record: tag_value_begin(), then each field through
 * field(), which reads the values of the fields it knows; the others are
 * read as extensions. The field named required must be KNOWN at least
 * once. true, or false with a reason.
 */
bool tag_value_parse(const char *rec, size_t len, size_t max_len, const char *version,
    const char *required,
    enum tag_value_field (*field)(void *arg, struct tag_value *tv, const char *name,
    size_t name_len), void *arg, char *reason, size_t reason_len);

/** ALPHA / DIGIT. */
bool tag_value_is_alnum(unsigned char c);

/**
 * Which record of a TXT RRset to parse (STS-7, STS-11, RPT-4): those that
 * begin with version followed by a delimiter or the end are candidates
 * ("v=STSv10" is not). Returns the number of candidates; with exactly one,
 * *which is its index; otherwise reason says "no TXT record starts with
 * ..." or "N TXT records start with ...; exactly one is required".
 */
size_t tag_value_select(const char *const *records, const size_t *lens, size_t count,
    const char *version, size_t *which, char *reason, size_t reason_len);

#endif

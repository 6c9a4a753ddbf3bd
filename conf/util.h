/*
 * util.h - allocation wrappers, invariant checks and small string helpers
 * shared by every layer.
 *
 * Allocation failure is not a recoverable condition for a mail relay that
 * bounds its memory per connection: the x* wrappers abort with a log line.
 */
#ifndef STSPROXY_UTIL_H
#define STSPROXY_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdnoreturn.h>

/** malloc() that aborts on failure. Caller owns the result. */
void *xmalloc(size_t size);
/** calloc() that aborts on failure. Caller owns the result. */
void *xcalloc(size_t nmemb, size_t size);
/** realloc() that aborts on failure. */
void *xrealloc(void *ptr, size_t size);
/** strdup() that aborts on failure; NULL in, NULL out. */
char *xstrdup(const char *s);
/** strndup() that aborts on failure. */
char *xstrndup(const char *s, size_t n);
/** asprintf() that aborts on failure. Caller owns the result. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** vasprintf() that aborts on failure. Caller owns the result. */
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/** A broken invariant: log and abort. Never for bad input. */
noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Milliseconds of CLOCK_MONOTONIC: for deadlines that wall-clock jumps must not move. */
long long mono_ms(void);

/** Lower-case ASCII in place; returns s. */
char *str_lower(char *s);
/** true if s ends with suffix (case-insensitive ASCII). */
bool str_endswith_ci(const char *s, const char *suffix);

/**
 * Normalise a domain name for lookups and cache keys: lower-case, no
 * trailing dot. Returns a new string, or NULL if the name is empty, too
 * long (> 253), has an empty or over-long label, or bytes outside
 * letters, digits, '-', '_' and '.'. Caller owns the result.
 */
char *domain_normalize(const char *name);

/** A growable, NUL-terminated byte string. */
struct strbuf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};
void strbuf_init(struct strbuf *sb);
void strbuf_append(struct strbuf *sb, const char *s, size_t n);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Hand the buffer to the caller (who frees it) and reset sb. */
char *strbuf_steal(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);

/** A growable array of owned strings. */
struct strlist {
	char	**items;
	size_t	  count;
};
void strlist_add(struct strlist *l, const char *s);
/** strlist_add() of a printf-formatted string. */
void strlist_addf(struct strlist *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strlist_clear(struct strlist *l);
void strlist_copy(struct strlist *dst, const struct strlist *src);
/** true if both hold the same strings in the same order. */
bool strlist_equal(const struct strlist *a, const struct strlist *b);

#endif

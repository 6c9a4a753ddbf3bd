/*
 * log.h - key=value log lines to stderr or syslog.
 *
 * Every line an administrator reads is "key=value ..." so it can be
 * grepped and parsed; the caller writes the keys, this module adds the
 * level and, for stderr, a timestamp.
 */
#ifndef STSPROXY_LOG_H
#define STSPROXY_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_CRIT,
	LOG_LEVEL_ERR,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_NOTICE,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/** Send lines to syslog (true) or stderr (false), keeping those <= level. */
void log_init(const char *ident, bool use_syslog, enum log_level level);
void log_set_level(enum log_level level);
/** Switch between stderr and syslog (facility: LOG_MAIL, LOG_DAEMON, LOG_LOCALn). */
void log_set_target(bool use_syslog, const char *ident, int facility);
/**
 * Write lines to the file at path (appending, created 0640) instead of
 * stderr; NULL goes back to stderr. On error the current target stays
 * and *why says what failed. The path is copied.
 */
int log_set_file(const char *path, const char **why);
/** Reopen the log file after rotation (SIGUSR1); 0 when there is none. */
int log_reopen(const char **why);
/** The current log file, or NULL. Owned by log.c. */
const char *log_file_name(void);
/**
 * One JSON object per line instead of key=value (for log shippers): the
 * pairs as members, ts as ISO 8601 UTC with milliseconds, numeric keys
 * (log_key_numeric) as JSON numbers, everything else as strings.
 */
void log_set_json(bool json);
/** true if key's values are numbers (a JSON number in log_format = json). */
bool log_key_numeric(const char *key);
enum log_level log_get_level(void);

/*
 * Subsystems whose level can be set apart from log_level (log_levels =
 * "dns=debug upstream=notice"). Each .c file names its subsystem by
 * defining LOG_SUBSYSTEM before including this header; files that do not
 * log as "main".
 */
enum log_subsystem {
	LOG_SUB_MAIN,		/* daemon lifecycle, commands, metrics endpoint */
	LOG_SUB_CONF,
	LOG_SUB_DNS,		/* resolver and MX resolution */
	LOG_SUB_POLICY,		/* MTA-STS discovery, fetch, cache */
	LOG_SUB_SMTP,		/* listener and client sessions */
	LOG_SUB_UPSTREAM,	/* MX connections and delivery outcomes */
	LOG_SUB_REPORT,		/* TLS-RPT storage, building, sending */
	LOG_SUB_COUNT
};

/** "main", "dns", ...; -1 if unknown. */
int log_subsystem_parse(const char *name);
const char *log_subsystem_name(enum log_subsystem sub);
/** Give sub its own threshold; level -1 makes it follow log_level again. */
void log_set_subsystem_level(enum log_subsystem sub, int level);

/* Effective threshold per subsystem, kept by log.c; read by log_enabled(). */
extern unsigned char log_threshold[LOG_SUB_COUNT];

/** Cheap check the macros make before formatting anything. */
static inline bool
log_enabled(enum log_subsystem sub, enum log_level level)
{
	return (unsigned)level <= log_threshold[sub];
}
/** Parse "err", "warning", "notice", "info", "debug"; -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/** Write one line unconditionally; use the macros, which filter first. */
void log_write(enum log_subsystem sub, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifndef LOG_SUBSYSTEM
#define LOG_SUBSYSTEM LOG_SUB_MAIN
#endif

/*
 * The arguments are evaluated only when the line will be written, so a
 * debug line costs one comparison on the message path.
 */
#define log_msg(level, ...) do {					\
	enum log_level log_lvl_ = (level);				\
	if (log_enabled(LOG_SUBSYSTEM, log_lvl_))			\
		log_write(LOG_SUBSYSTEM, log_lvl_, __VA_ARGS__);	\
} while (0)

#define log_err(...)     log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warnx(...)   log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/**
 * Quote a value for a key=value line: returned as-is when it has no space,
 * quote, '=' or control byte, otherwise in double quotes with '"' and '\'
 * escaped and control bytes as \xNN. Returns a pointer into a small ring
 * of static buffers, one per thread (valid for the next 7 calls of that
 * thread); long values are cut.
 */
const char *log_quote(const char *value);

/**
 * An e-mail address as Postfix logs it, "<address>" ("<>" for the null
 * path), quoted like log_quote() when it needs to be; for to= and from=,
 * so grepping an address from the client's queue finds every line about
 * it. Same ring of buffers as log_quote().
 */
const char *log_quote_address(const char *address);

#endif

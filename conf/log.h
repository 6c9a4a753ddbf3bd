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
/** One JSON object per line instead of key=value (for log shippers). */
void log_set_json(bool json);
enum log_level log_get_level(void);
/** Parse "err", "warning", "notice", "info", "debug"; -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)     log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warnx(...)   log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/**
 * Quote a value for a key=value line: returned as-is when it has no space,
 * quote, '=' or control byte, otherwise in double quotes with '"' and '\'
 * escaped and control bytes as \xNN. Returns a pointer into a small ring
 * of static buffers (valid for the next 7 calls); long values are cut.
 */
const char *log_quote(const char *value);

#endif

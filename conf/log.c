#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "conf/log.h"

static bool log_to_syslog;
static FILE *log_file;		/* log_target = file; NULL: stderr */
static char *log_file_path;
static bool log_json;
static enum log_level log_max = LOG_LEVEL_INFO;
static int sub_level[LOG_SUB_COUNT] = { -1, -1, -1, -1, -1, -1, -1 };
unsigned char log_threshold[LOG_SUB_COUNT] = {
	LOG_LEVEL_INFO, LOG_LEVEL_INFO, LOG_LEVEL_INFO, LOG_LEVEL_INFO,
	LOG_LEVEL_INFO, LOG_LEVEL_INFO, LOG_LEVEL_INFO,
};

static const char *const sub_names[LOG_SUB_COUNT] = {
	"main", "conf", "dns", "policy", "smtp", "upstream", "report",
};

static void
recompute_thresholds(void)
{
	for (int i = 0; i < LOG_SUB_COUNT; i++)
		log_threshold[i] = (unsigned char)(sub_level[i] >= 0 ? sub_level[i] : (int)log_max);
}

int
log_subsystem_parse(const char *name)
{
	for (int i = 0; i < LOG_SUB_COUNT; i++)
		if (strcasecmp(name, sub_names[i]) == 0)
			return i;
	return -1;
}

const char *
log_subsystem_name(enum log_subsystem sub)
{
	return sub_names[sub];
}

void
log_set_subsystem_level(enum log_subsystem sub, int level)
{
	sub_level[sub] = level;
	recompute_thresholds();
}

static const char *const level_names[] = {
	"crit", "err", "warning", "notice", "info", "debug",
};
static const int level_syslog[] = {
	LOG_CRIT, LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG,
};

void
log_init(const char *ident, bool use_syslog, enum log_level level)
{
	log_to_syslog = use_syslog;
	log_max = level;
	recompute_thresholds();
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_target(bool use_syslog, const char *ident, int facility)
{
	if (log_to_syslog)
		closelog();
	log_to_syslog = use_syslog;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, facility);
}

int
log_set_file(const char *path, const char **why)
{
	FILE *f = NULL;

	if (path != NULL) {
		/* O_APPEND so that lines from other writers (e.g. a worker) never interleave mid-line */
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

		if (fd < 0 || (f = fdopen(fd, "a")) == NULL) {
			*why = strerror(errno);
			if (fd >= 0)
				close(fd);
			return -1;
		}
		setvbuf(f, NULL, _IOLBF, 0);
	}
	if (log_file != NULL)
		fclose(log_file);
	log_file = f;
	if (path != log_file_path) {
		free(log_file_path);
		log_file_path = path ? strdup(path) : NULL;
	}
	return 0;
}

int
log_reopen(const char **why)
{
	if (log_file_path == NULL)
		return 0;
	return log_set_file(log_file_path, why);
}

const char *
log_file_name(void)
{
	return log_file_path;
}

void
log_set_json(bool json)
{
	log_json = json;
}

/*
 * Keys whose values are counts, sizes, seconds or ids of the system: a
 * JSON number in log_format = json. A list and not the value's shape,
 * because an all-digit value is not always a number (a policy id, a
 * session id). Keep it sorted (bsearch) and in step with stsproxy(8).
 */
static const char *const numeric_keys[] = {
	"after_unanswered", "attempts", "bare_cr", "bare_lf", "count", "domains", "due",
	"errors", "evicted", "exit_status", "gid", "http_status", "lost_records", "max_age",
	"messages", "mx_count", "parked", "pid", "qtype", "rcpts", "records", "replayed_batches", "sessions", "signal", "size", "size_over", "spilled_batches", "uid", "unanswered", "with_failures",
	"worker", "workers",
};

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(a, *(const char *const *)b);
}

bool
log_key_numeric(const char *key)
{
	return bsearch(key, numeric_keys, sizeof(numeric_keys) / sizeof(numeric_keys[0]),
	    sizeof(numeric_keys[0]), key_cmp) != NULL;
}

/* A member's value: a JSON integer for a numeric key with an integer value. */
static json_t *
json_value(const char *key, const char *val, size_t vl)
{
	size_t i = val[0] == '-' ? 1 : 0;

	if (vl > i && vl - i <= 18 && log_key_numeric(key)) {
		while (i < vl && val[i] >= '0' && val[i] <= '9')
			i++;
		if (i == vl)
			return json_integer(strtoll(val, NULL, 10));
	}
	return json_stringn(val, vl);
}

/*
 * The line as a JSON object: every key=value pair becomes a member
 * (quoted values unescaped as log_quote() wrote them; numeric keys as
 * numbers). A line that does not parse goes out whole as "msg".
 */
static char *
kv_to_json(const char *ts, const char *level, const char *line)
{
	json_t *o = json_object();
	const char *p = line;
	char *out;
	bool ok = true;

	if (ts != NULL)
		json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "level", json_string(level));
	while (*p && ok) {
		const char *eq = strchr(p, '='), *sp = strchr(p, ' ');
		char key[64], val[1024];
		size_t kl, vl = 0;

		if (eq == NULL || (sp != NULL && sp < eq) || (kl = (size_t)(eq - p)) == 0 ||
		    kl >= sizeof(key)) {
			ok = false;
			break;
		}
		memcpy(key, p, kl);
		key[kl] = '\0';
		p = eq + 1;
		if (*p == '"') {
			for (p++; *p && *p != '"' && vl + 1 < sizeof(val); p++) {
				if (*p == '\\' && p[1] == 'x' && p[2] && p[3]) {
					unsigned c;

					if (sscanf(p + 2, "%2x", &c) == 1)
						val[vl++] = (char)c;
					p += 3;
				} else if (*p == '\\' && p[1]) {
					val[vl++] = *++p;
				} else
					val[vl++] = *p;
			}
			if (*p != '"') {
				ok = false;
				break;
			}
			p++;
		} else {
			while (*p && *p != ' ' && vl + 1 < sizeof(val))
				val[vl++] = *p++;
		}
		val[vl] = '\0';
		json_object_set_new(o, key, json_value(key, val, vl));
		while (*p == ' ')
			p++;
	}
	if (!ok) {
		json_decref(o);
		o = json_object();
		if (ts != NULL)
			json_object_set_new(o, "ts", json_string(ts));
		json_object_set_new(o, "level", json_string(level));
		json_object_set_new(o, "msg", json_string(line));
	}
	out = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	return out;
}

void
log_set_level(enum log_level level)
{
	log_max = level;
	recompute_thresholds();
}

enum log_level
log_get_level(void)
{
	return log_max;
}

int
log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	return level_names[level];
}

void
log_write(enum log_subsystem sub, enum log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	(void)sub;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_to_syslog) {
		if (log_json) {
			char *j = kv_to_json(NULL, level_names[level], line);

			syslog(level_syslog[level], "%s", j ? j : line);
			free(j);
		} else
			syslog(level_syslog[level], "level=%s %s", level_names[level], line);
		return;
	}
	char stamp[32], full[48];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(full, sizeof(full), "%s.%03ldZ", stamp, ts.tv_nsec / 1000000);
	if (log_json) {
		char *j = kv_to_json(full, level_names[level], line);

		fprintf(log_file ? log_file : stderr, "%s\n", j ? j : line);
		free(j);
		return;
	}
	fprintf(log_file ? log_file : stderr, "%s level=%s %s\n", full, level_names[level], line);
}

const char *
log_quote(const char *value)
{
	/* Per thread: the store's database threads log too. */
	static _Thread_local char ring[8][512];
	static _Thread_local unsigned slot;
	char *out = ring[slot++ % 8];
	size_t o = 0, cap = sizeof(ring[0]);
	bool plain = value[0] != '\0';

	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f)
			plain = false;
	if (plain && strlen(value) < cap) {
		memcpy(out, value, strlen(value) + 1);
		return out;
	}
	out[o++] = '"';
	for (const unsigned char *p = (const unsigned char *)value; *p && o + 6 < cap; p++) {
		if (*p == '"' || *p == '\\') {
			out[o++] = '\\';
			out[o++] = (char)*p;
		} else if (*p < ' ' || *p == 0x7f) {
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
		} else {
			out[o++] = (char)*p;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

const char *
log_quote_address(const char *address)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "<%s>", address);
	return log_quote(buf);
}

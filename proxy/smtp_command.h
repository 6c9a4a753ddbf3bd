/*
 * smtp_command.h - parse one SMTP command line from an untrusted client.
 *
 * Pure functions over bytes, no I/O: the server session calls them and
 * the fuzz target tests/fuzz/fuzz_smtp_command.c hammers them. Every
 * rejection comes with the reply the client should get (RFC 5321 §4.2,
 * RFC 3463 enhanced codes), so no caller invents its own wording.
 */
#ifndef STSPROXY_SMTP_COMMAND_H
#define STSPROXY_SMTP_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

/** RFC 5321 §4.5.3.1: command lines of 512 octets at least; we take more
 * because SMTPUTF8 addresses and DSN parameters make real lines longer. */
#define SMTP_LINE_MAX		2048
/** RFC 5321 §4.5.3.1.3: a path of 256 octets at least. */
#define SMTP_PATH_MAX		512
#define SMTP_DOMAIN_MAX		255
#define SMTP_PARAMS_MAX		16
#define SMTP_PARAM_VALUE_MAX	512

#define SMTP_VERBS(X)			\
	X(SMTP_VERB_UNKNOWN,	"")	\
	X(SMTP_VERB_HELO,	"HELO")	\
	X(SMTP_VERB_EHLO,	"EHLO")	\
	X(SMTP_VERB_LHLO,	"LHLO")	\
	X(SMTP_VERB_MAIL,	"MAIL")	\
	X(SMTP_VERB_RCPT,	"RCPT")	\
	X(SMTP_VERB_DATA,	"DATA")	\
	X(SMTP_VERB_BDAT,	"BDAT")	\
	X(SMTP_VERB_RSET,	"RSET")	\
	X(SMTP_VERB_NOOP,	"NOOP")	\
	X(SMTP_VERB_QUIT,	"QUIT")	\
	X(SMTP_VERB_VRFY,	"VRFY")	\
	X(SMTP_VERB_EXPN,	"EXPN")	\
	X(SMTP_VERB_HELP,	"HELP")	\
	X(SMTP_VERB_STARTTLS,	"STARTTLS") \
	X(SMTP_VERB_AUTH,	"AUTH")

#define SMTP_VERB_ENUM(sym, name) sym,
enum smtp_verb { SMTP_VERBS(SMTP_VERB_ENUM) SMTP_VERB_COUNT };
#undef SMTP_VERB_ENUM

const char *smtp_verb_name(enum smtp_verb verb);

/** A reply chosen by a parser: "code enhanced text". Static strings. */
struct smtp_error {
	int		 code;
	const char	*enhanced;
	const char	*text;
};

/** A command line split into verb and argument. */
struct smtp_command {
	enum smtp_verb	 verb;
	const char	*arg;		/* points into the caller's line; "" if none */
};

/**
 * Split line (len bytes, no CRLF, NUL-terminated) into verb and argument.
 * Verbs are case-insensitive (RFC 5321 §2.4). Returns 0, or -1 with *err
 * set for a NUL byte, a control character or an empty line. An unknown
 * verb is not an error here: verb is SMTP_VERB_UNKNOWN.
 */
int smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd,
    struct smtp_error *err);

struct smtp_param {
	char	key[32];			/* upper-cased */
	char	value[SMTP_PARAM_VALUE_MAX + 1];	/* as sent; "" when none */
	bool	has_value;
};

/** The argument of MAIL FROM: or RCPT TO:. */
struct smtp_path {
	char	address[SMTP_PATH_MAX + 1];	/* between < >, source route removed */
	char	domain[SMTP_DOMAIN_MAX + 1];	/* lower-cased; "" for <> and <postmaster> */
	bool	null_path;			/* MAIL FROM:<> */
	bool	utf8;				/* address has non-ASCII bytes */
	bool	address_literal;		/* RCPT to user@[literal]: refused, address set */
	struct smtp_param params[SMTP_PARAMS_MAX];
	size_t	nparams;
};

/**
 * Parse "FROM:<path> params" (is_mail) or "TO:<path> params". Accepts
 * the common "FROM: <path>" form. Domains of the form [literal] are
 * rejected for RCPT: MTA-STS needs a domain to look up. Returns 0, or -1
 * with *err set.
 */
int smtp_path_parse(const char *arg, bool is_mail, struct smtp_path *out, struct smtp_error *err);

/** The parameter named key (upper case), or NULL. */
const struct smtp_param *smtp_path_param(const struct smtp_path *path, const char *key);

/** true if s is valid xtext (RFC 3461 §4), as ENVID and ORCPT require. */
bool smtp_xtext_valid(const char *s);

#endif

#include "config.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "proxy/smtp_command.h"

#define SMTP_VERB_NAME(sym, name) name,
static const char *const verb_names[] = { SMTP_VERBS(SMTP_VERB_NAME) };
#undef SMTP_VERB_NAME

const char *
smtp_verb_name(enum smtp_verb verb)
{
	if ((unsigned)verb >= SMTP_VERB_COUNT || verb == SMTP_VERB_UNKNOWN)
		return "unknown";
	return verb_names[verb];
}

static int
fail(struct smtp_error *err, int code, const char *enhanced, const char *text)
{
	err->code = code;
	err->enhanced = enhanced;
	err->text = text;
	return -1;
}

int
smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd, struct smtp_error *err)
{
	size_t vl;

	cmd->verb = SMTP_VERB_UNKNOWN;
	cmd->arg = "";
	if (len > SMTP_LINE_MAX)
		return fail(err, 500, "5.5.2", "Line too long");
	if (strlen(line) != len)
		return fail(err, 500, "5.5.2", "NUL byte in command");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		/* A CR here is a bare CR inside a command: a smuggling vector. */
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(err, 500, "5.5.2", "Control character in command");
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0)
		return fail(err, 500, "5.5.2", "Empty command");
	vl = strcspn(line, " ");
	if (vl > len)
		vl = len;
	for (int v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
		if (strlen(verb_names[v]) == vl && strncasecmp(line, verb_names[v], vl) == 0) {
			cmd->verb = (enum smtp_verb)v;
			break;
		}
	}
	cmd->arg = line + vl;
	while (*cmd->arg == ' ')
		cmd->arg++;
	return 0;
}

const struct smtp_param *
smtp_path_param(const struct smtp_path *path, const char *key)
{
	for (size_t i = 0; i < path->nparams; i++)
		if (strcmp(path->params[i].key, key) == 0)
			return &path->params[i];
	return NULL;
}

bool
smtp_xtext_valid(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '+') {
			if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]) ||
			    islower((unsigned char)s[1]) || islower((unsigned char)s[2]))
				return false;
			s += 2;
		} else if (c < 33 || c > 126 || c == '=')
			return false;
	}
	return true;
}

/* Letters, digits, '-' and '.', or any UTF-8 byte in an SMTPUTF8 domain. */
static bool
domain_valid(const char *d, size_t len)
{
	if (len == 0 || len > SMTP_DOMAIN_MAX || d[0] == '.' || d[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];

		if (!(isalnum(c) || c == '-' || c == '.' || c == '_' || c >= 0x80))
			return false;
		if (c == '.' && d[i + 1] == '.')
			return false;
	}
	return true;
}

static int
parse_params(const char *p, struct smtp_path *out, struct smtp_error *err)
{
	while (*p) {
		struct smtp_param *prm;
		size_t kl, vl;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		if (out->nparams == SMTP_PARAMS_MAX)
			return fail(err, 501, "5.5.4", "Too many parameters");
		prm = &out->params[out->nparams];
		kl = 0;
		while (isalnum((unsigned char)p[kl]) || (kl > 0 && p[kl] == '-'))
			kl++;
		if (kl == 0 || kl >= sizeof(prm->key) || (p[kl] != '=' && p[kl] != ' ' && p[kl] != '\0'))
			return fail(err, 501, "5.5.4", "Malformed parameter");
		for (size_t i = 0; i < kl; i++)
			prm->key[i] = (char)toupper((unsigned char)p[i]);
		prm->key[kl] = '\0';
		p += kl;
		prm->has_value = false;
		prm->value[0] = '\0';
		if (*p == '=') {
			p++;
			vl = strcspn(p, " ");
			if (vl == 0 || vl > SMTP_PARAM_VALUE_MAX)
				return fail(err, 501, "5.5.4", "Malformed parameter value");
			for (size_t i = 0; i < vl; i++) {
				unsigned char c = (unsigned char)p[i];
				/* RFC 5321 esmtp-value, widened to UTF-8 by RFC 6531. */
				if (c < 33 || c == '=' || c == 0x7f)
					return fail(err, 501, "5.5.4", "Malformed parameter value");
			}
			memcpy(prm->value, p, vl);
			prm->value[vl] = '\0';
			prm->has_value = true;
			p += vl;
		}
		for (size_t i = 0; i < out->nparams; i++)
			if (strcmp(out->params[i].key, prm->key) == 0)
				return fail(err, 501, "5.5.4", "Duplicate parameter");
		out->nparams++;
	}
	return 0;
}

int
smtp_path_parse(const char *arg, bool is_mail, struct smtp_path *out, struct smtp_error *err)
{
	const char *prefix = is_mail ? "FROM:" : "TO:";
	const char *bad_addr = is_mail ? "5.1.7" : "5.1.3";
	size_t pl = strlen(prefix), alen = 0;
	const char *p, *at = NULL;
	bool quoted = false;

	memset(out, 0, sizeof(*out));
	if (strncasecmp(arg, prefix, pl) != 0)
		return fail(err, 501, "5.5.4", is_mail ? "Syntax: MAIL FROM:<address> [parameters]" :
		    "Syntax: RCPT TO:<address> [parameters]");
	p = arg + pl;
	while (*p == ' ')
		p++;
	if (*p != '<')
		return fail(err, 501, bad_addr, "Address must be in angle brackets");
	p++;
	/* A source route (RFC 5321 §4.1.2, obsolete) is accepted and dropped. */
	if (*p == '@') {
		const char *colon = strchr(p, ':');
		const char *close = strchr(p, '>');

		if (colon == NULL || (close != NULL && close < colon))
			return fail(err, 501, bad_addr, "Malformed source route");
		p = colon + 1;
	}
	for (;; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\0')
			return fail(err, 501, bad_addr, "Missing '>' after address");
		if (quoted) {
			if (c == '\\') {
				if (p[1] == '\0')
					return fail(err, 501, bad_addr, "Malformed quoted string");
				if (alen + 2 > SMTP_PATH_MAX)
					return fail(err, 501, bad_addr, "Address too long");
				out->address[alen++] = *p++;
				out->address[alen++] = *p;
				continue;
			}
			if (c == '"')
				quoted = false;
		} else if (c == '"' && (alen == 0)) {
			quoted = true;
		} else if (c == '>') {
			break;
		} else if (c == '@') {
			at = out->address + alen;
		} else if (c == ' ' || c == '<' || c == '"' || c == '\\' || c == '(' || c == ')' ||
		    c == ',' || c == ';' || (c == '[' && at == NULL)) {
			return fail(err, 501, bad_addr, "Invalid character in address");
		}
		if (c >= 0x80)
			out->utf8 = true;
		if (alen >= SMTP_PATH_MAX)
			return fail(err, 501, bad_addr, "Address too long");
		out->address[alen++] = (char)c;
	}
	if (quoted)
		return fail(err, 501, bad_addr, "Unterminated quoted string");
	out->address[alen] = '\0';
	p++;
	if (*p != '\0' && *p != ' ')
		return fail(err, 501, "5.5.4", "Garbage after address");

	if (alen == 0) {
		if (!is_mail)
			return fail(err, 501, "5.1.3", "Empty recipient address");
		out->null_path = true;
	} else if (at == NULL) {
		if (is_mail || strcasecmp(out->address, "postmaster") != 0)
			return fail(err, 501, bad_addr, "Address must be local-part@domain");
	} else {
		const char *dom = at + 1;
		size_t dl = strlen(dom);

		if (at == out->address)
			return fail(err, 501, bad_addr, "Empty local part");
		if (dom[0] == '[') {
			/* STS-2: no policy applies to an address literal,
			 * and a relay by domain cannot route one. */
			out->address_literal = !is_mail;
			if (!is_mail)
				return fail(err, 550, "5.1.2",
				    "Address literals cannot be relayed: MTA-STS needs a domain name");
			if (dom[dl - 1] != ']' || dl < 3)
				return fail(err, 501, bad_addr, "Malformed address literal");
		} else if (!domain_valid(dom, dl)) {
			return fail(err, 501, bad_addr, "Malformed domain");
		}
		if (dl > SMTP_DOMAIN_MAX)
			return fail(err, 501, bad_addr, "Domain too long");
		for (size_t i = 0; i < dl; i++)
			out->domain[i] = (char)tolower((unsigned char)dom[i]);
		out->domain[dl] = '\0';
	}
	return parse_params(p, out, err);
}

#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_UPSTREAM

#include <stddef.h>
#include <string.h>

#include "conf/log.h"
#include "report/outcome.h"

#define OUTCOME_ACTION_NAME(sym, name) name,
static const char *const action_names[] = { OUTCOME_ACTIONS(OUTCOME_ACTION_NAME) };
#undef OUTCOME_ACTION_NAME

static outcome_hook hook;
static void *hook_arg;

const char *
outcome_action_name(enum outcome_action action)
{
	if ((size_t)action >= sizeof(action_names) / sizeof(action_names[0]))
		return "?";
	return action_names[action];
}

void
outcome_set_hook(outcome_hook fn, void *arg)
{
	hook = fn;
	hook_arg = arg;
}

static const char *
opt(const char *s)
{
	return s && *s ? s : "-";
}

/*
 * Whether this MX meets the policy: "pass" or "fail" under an MTA-STS
 * policy in force, "none" without one (a plaintext delivery to a domain
 * without a policy failed nothing) and under DANE (dane= says how that
 * went), "-" for a policy-level record with no MX.
 */
static const char *
sts_verdict(const struct delivery_outcome *o)
{
	if (o->action == OUTCOME_ACTION_POLICY)
		return "-";
	if (o->policy_type == NULL || strcmp(o->policy_type, "sts") != 0)
		return "none";
	return o->sts_pass ? "pass" : "fail";
}

void
outcome_record(const struct delivery_outcome *o)
{
	struct strbuf patterns;

	strbuf_init(&patterns);
	if (o->mx_patterns != NULL)
		for (size_t i = 0; i < o->mx_patterns->count; i++)
			strbuf_printf(&patterns, "%s%s", i ? "," : "", o->mx_patterns->items[i]);
	log_msg(o->result != RPT_RESULT_NONE || o->would_defer ? LOG_LEVEL_NOTICE : LOG_LEVEL_INFO,
	    "session=%s event=outcome domain=%s to=%s policy_type=%s mode=%s policy_id=%s "
	    "mx_patterns=%s mx=%s ip=%s action=%s starttls=%s tls=%s cipher=%s sts=%s result=%s "
	    "reason=%s would_defer=%s dane=%s dane_record=%s reply=%s%s",
	    o->session, opt(o->policy_domain), log_quote(opt(o->recipients)), opt(o->policy_type),
	    opt(o->mode), opt(o->policy_id), log_quote(opt(patterns.data)), opt(o->mx_host), opt(o->ip),
	    outcome_action_name(o->action), o->starttls_offered ? "yes" : "no", opt(o->tls_version),
	    opt(o->cipher), sts_verdict(o), rpt_result_type_name(o->result),
	    log_quote(opt(o->reason)), o->would_defer ? "yes" : "no", o->dane ? o->dane : "off",
	    log_quote(opt(o->dane_record)), log_quote(opt(o->upstream_reply)),
	    o->unreported ? " report=no" : "");
	strbuf_free(&patterns);
	if (hook != NULL && !o->unreported)
		hook(hook_arg, o);
}

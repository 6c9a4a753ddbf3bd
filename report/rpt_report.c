#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "report/rpt_report.h"

void
rpt_identity_init(struct rpt_identity *id, const struct conf *conf, const char *hostname)
{
	const char *at;

	snprintf(id->organization, sizeof(id->organization), "%s",
	    conf->report_organization[0] ? conf->report_organization : hostname);
	/* The contact is the envelope sender and From: of mailed reports, so
	 * it must be a bare address; [report] contact accepts mailto: too. */
	if (conf->report_contact[0])
		snprintf(id->contact, sizeof(id->contact), "%s",
		    conf->report_contact + (strncasecmp(conf->report_contact, "mailto:", 7) == 0 ? 7 : 0));
	else
		snprintf(id->contact, sizeof(id->contact), "postmaster@%s", hostname);
	/* RPT-15: the submitter is the domain of contact-info. */
	at = strrchr(id->contact, '@');
	snprintf(id->submitter, sizeof(id->submitter), "%s", conf->report_submitter[0] ?
	    conf->report_submitter : at ? at + 1 : hostname);
}

time_t
rpt_day_start(const char *day)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (strlen(day) != 10 || (end = strptime(day, "%Y-%m-%d", &tm)) == NULL || *end != '\0')
		return -1;
	return timegm(&tm);
}

struct build {
	json_t		*policies;
	long long	 failures;
};

static void
add_policy(void *arg, const char *day, const char *domain, json_t *rec)
{
	struct build *b = arg;
	json_t *details = json_array(), *d, *out;
	long long fail = 0;
	const char *k;

	(void)day;
	(void)domain;
	json_object_foreach(json_object_get(rec, "failures"), k, d) {
		json_array_append(details, d);
		fail += json_integer_value(json_object_get(d, "failed-session-count"));
	}
	out = json_pack("{s:O, s:{s:I, s:I}}", "policy", json_object_get(rec, "policy"),
	    "summary", "total-successful-session-count",
	    (json_int_t)json_integer_value(json_object_get(rec, "success")),
	    "total-failure-session-count", (json_int_t)fail);
	if (json_array_size(details) > 0)
		json_object_set(out, "failure-details", details);
	json_decref(details);
	json_array_append_new(b->policies, out);
	b->failures += fail;
}

json_t *
rpt_report_build(struct rpt_store *store, const struct rpt_identity *id, const char *day,
    const char *domain, long long *failures)
{
	struct build b = { json_array(), 0 };
	char start[32], end[32], *rid;
	json_t *report;

	if (rpt_day_start(day) < 0 ||
	    rpt_store_foreach(store, day, domain, add_policy, &b) <= 0) {
		json_decref(b.policies);
		return NULL;
	}
	snprintf(start, sizeof(start), "%sT00:00:00Z", day);
	snprintf(end, sizeof(end), "%sT23:59:59Z", day);
	rid = xasprintf("%s.%s@%s", day, domain, id->submitter);
	report = json_pack("{s:s, s:{s:s, s:s}, s:s, s:s, s:o}",
	    "organization-name", id->organization,
	    "date-range", "start-datetime", start, "end-datetime", end,
	    "contact-info", id->contact,
	    "report-id", rid,
	    "policies", b.policies);
	free(rid);
	if (failures != NULL)
		*failures = b.failures;
	return report;
}

struct day_domains {
	struct strlist	*all, *failed;
};

/* Records come in key order (day, domain, policy): one entry per domain. */
static void
domains_visit(void *arg, const char *day, const char *domain, json_t *rec)
{
	struct day_domains *dd = arg;

	(void)day;
	if (dd->all->count == 0 || strcmp(dd->all->items[dd->all->count - 1], domain) != 0)
		strlist_add(dd->all, domain);
	if (json_object_size(json_object_get(rec, "failures")) > 0 && (dd->failed->count == 0 ||
	    strcmp(dd->failed->items[dd->failed->count - 1], domain) != 0))
		strlist_add(dd->failed, domain);
}

int
rpt_report_domains(struct rpt_store *store, const char *day, const char *domain,
    struct strlist *all, struct strlist *with_failures)
{
	struct day_domains dd = { all, with_failures };

	return rpt_store_foreach(store, day, domain, domains_visit, &dd) < 0 ? -1 : 0;
}

char *
rpt_report_filename(const struct rpt_identity *id, const char *day, const char *domain)
{
	time_t begin = rpt_day_start(day);
	char alnum[16];
	size_t n = 0;

	/* The optional unique-id part: the day's digits, alphanumeric as RPT-11 asks. */
	for (const char *p = day; *p && n + 1 < sizeof(alnum); p++)
		if (isalnum((unsigned char)*p))
			alnum[n++] = *p;
	alnum[n] = '\0';
	return xasprintf("%s!%s!%lld!%lld!%s.json.gz", id->submitter, domain, (long long)begin,
	    (long long)begin + 86399, alnum);
}

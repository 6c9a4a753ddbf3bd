/*
 * rpt_mail.h - a report as an email (RFC 8460 §5.3): multipart/report
 * with a human-readable part and the gzipped report attached under its
 * RPT-11 name, TLS-Report-Domain and TLS-Report-Submitter headers, the
 * RPT-16 Subject, and one DKIM signature per configured key (RPT-17).
 */
#ifndef STSPROXY_RPT_MAIL_H
#define STSPROXY_RPT_MAIL_H

#include <time.h>

#include <jansson.h>

#include "conf/conf.h"
#include "report/dkim.h"
#include "report/rpt_report.h"

/** The keys of [report] dkim_key / dkim_selector / dkim_domain. */
struct rpt_dkim_keys {
	struct dkim_key	keys[4];
	size_t		count;
};

/** Load the configured keys. 0, or -1 with *err set (caller frees). */
int rpt_dkim_keys_load(struct rpt_dkim_keys *keys, const struct conf *conf,
    const struct rpt_identity *id, char **err);
void rpt_dkim_keys_free(struct rpt_dkim_keys *keys);

/**
 * The complete message (CR LF line ends) for report (borrowed) about
 * domain on day, to the address to, signed with keys. Caller frees.
 */
char *rpt_mail_build(const struct rpt_identity *id, const struct rpt_dkim_keys *keys,
    json_t *report, const char *day, const char *domain, const char *to, time_t now);

#endif

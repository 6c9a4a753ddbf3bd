/*
 * report_mailer.h - mails TLS reports through the relay's own upstream
 * engine: the recipient domain's MX set, opportunistic TLS, cleartext
 * allowed, MTA-STS not enforced and the session left out of the reports
 * (RPT-18). Handed to report/ as a struct rpt_mailer.
 */
#ifndef STSPROXY_REPORT_MAILER_H
#define STSPROXY_REPORT_MAILER_H

#include "proxy/runtime.h"
#include "report/rpt_deliver.h"

/** A mailer over rt (borrowed, must outlive every job). */
void report_mailer_init(struct rpt_mailer *mailer, struct runtime *rt);

#endif

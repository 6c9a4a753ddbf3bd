/*
 * rpt_sender.h - daily TLS-RPT delivery inside the daemon.
 *
 * After each UTC day ends, and a random delay up to [report] max_delay
 * (RPT-10), the day's reports are planned: one outbox entry per policy
 * domain and destination of its _smtp._tls record (report/rpt_outbox.h).
 * Entries are kept in the report database, so a restart loses none, and
 * delivered through report/rpt_deliver.c, the path `stsproxy report send`
 * takes too: a destination that has the report already is not sent it
 * again, and a failed delivery is retried with exponential backoff from
 * [report] retry_interval until 24 hours after the first attempt (RPT-19).
 */
#ifndef STSPROXY_RPT_SENDER_H
#define STSPROXY_RPT_SENDER_H

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "policy/resolver.h"
#include "report/rpt_deliver.h"
#include "report/rpt_report.h"
#include "report/rpt_store.h"

struct event_base;
struct rpt_sender;

/**
 * All borrowed, outliving the sender. mailer may be NULL: mailto:
 * destinations are then skipped.
 */
struct rpt_sender *rpt_sender_new(struct event_base *base, const struct conf *conf,
    struct resolver *resolver, SSL_CTX *ssl_ctx, struct rpt_store *store,
    const struct rpt_identity *id, const struct rpt_mailer *mailer);

/** Stop; deliveries in flight are abandoned and stay pending in the outbox. */
void rpt_sender_free(struct rpt_sender *sender);

#endif

/*
 * rpt_sender.h - daily TLS-RPT delivery inside the daemon.
 *
 * After each UTC day ends, and a random delay up to [report] max_delay
 * (RPT-10), the day's reports are planned: one outbox entry per policy
 * domain and https: destination of its _smtp._tls record. Entries are
 * kept in the report database, so a restart loses none, and retried with
 * exponential backoff from [report] retry_interval until 24 hours after
 * the first attempt (RPT-19).
 */
#ifndef STSPROXY_RPT_SENDER_H
#define STSPROXY_RPT_SENDER_H

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "policy/resolver.h"
#include "report/rpt_report.h"
#include "report/rpt_store.h"

struct event_base;
struct rpt_sender;
struct rpt_destinations;

/** The usable destinations of a domain's _smtp._tls record, or why none. */
typedef void (*rpt_destinations_cb)(void *arg, const char *domain, const struct strlist *rua,
    const char *why_none);

/**
 * Look up _smtp._tls.<domain> and select the record (RPT-1 ... RPT-5).
 * cb runs once, later, with rua NULL and a reason when there is none.
 * 0, or -1 (no callback) when the query cannot start.
 */
int rpt_destinations_lookup(struct resolver *resolver, const char *domain,
    rpt_destinations_cb cb, void *arg);

/** All borrowed, outliving the sender. */
struct rpt_sender *rpt_sender_new(struct event_base *base, const struct conf *conf,
    struct resolver *resolver, SSL_CTX *ssl_ctx, struct rpt_store *store,
    const struct rpt_identity *id);

/** Stop; deliveries in flight are abandoned and stay pending in the outbox. */
void rpt_sender_free(struct rpt_sender *sender);

#endif

/*
 * upstream_internal.h - what only the tests need: start an upstream
 * transaction on an MX set and a policy given directly, without DNS or
 * the policy engine, so test_upstream can drive the state machine
 * against a scripted server on loopback. (The daemon's own fixed-route
 * case, a submission relay, is upstream_new_relay() in upstream.h.)
 */
#ifndef STSPROXY_UPSTREAM_INTERNAL_H
#define STSPROXY_UPSTREAM_INTERNAL_H

#include "policy/dane.h"
#include "policy/mx_resolve.h"
#include "policy/sts_policy.h"
#include "proxy/upstream.h"

/**
 * As upstream_new_flags(), with the MX set (hosts, copied) and the
 * policy already known: patterns NULL means no policy. rt needs base,
 * conf, ssl_ctx and hostname only.
 */
struct upstream *upstream_new_resolved(struct runtime *rt, const char *session, const char *domain,
    const struct smtp_path *mail, const struct mx_host *hosts, size_t nhosts, enum sts_mode mode,
    const struct strlist *patterns, unsigned flags, upstream_cb cb, void *arg);

/**
 * Before the upstream is ready: host i's DANE facts (tlsa, owned from
 * now on) as if looked up under an MX set that was DNSSEC-secure or not
 * (mx_walk_set_dane()).
 */
void upstream_set_dane(struct upstream *up, size_t i, struct dane_tlsa *tlsa, bool mx_secure);

#endif

/*
 * dns_probe.h - one look at the DNS resolution path when the relay starts.
 *
 * By default the resolver recurses from the root and ignores
 * /etc/resolv.conf. Where outbound DNS is blocked (containers, corporate
 * networks) every message would be deferred after [dns] timeout with no
 * hint, so the relay asks once, on the loop, whether the configured path
 * answers:
 *
 *   - recursion (no forwarders): ". NS" through the resolver must come
 *     back with data; a root server always has it.
 *   - forwarders: a plain UDP query for ". NS" straight to each forwarder;
 *     any reply, even REFUSED (a lab's authoritative-only server), proves
 *     the forwarder reachable. libunbound cannot tell this apart: it turns
 *     REFUSED into SERVFAIL, and says SERVFAIL too when no forwarder can
 *     be reached (at once without a route, after ~17 s when they are
 *     silent).
 *
 * On failure the probe logs a warning saying what to set, marks the
 * resolver unhealthy (/healthz 503 with the same hint) until a definite
 * answer arrives, and asks again every DNS_PROBE_RETRY_SECONDS.
 */
#ifndef STSPROXY_DNS_PROBE_H
#define STSPROXY_DNS_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "policy/resolver.h"

struct event_base;
struct dns_probe;

/** How long a failed probe waits before asking again. */
#define DNS_PROBE_RETRY_SECONDS	60

/**
 * Start probing the path conf describes through resolver (both borrowed:
 * they must outlive the probe). Never blocks. NULL on a local failure,
 * logged. The caller frees the probe with dns_probe_free().
 */
struct dns_probe *dns_probe_start(struct event_base *base, const struct conf *conf,
    struct resolver *resolver);

/** Cancel whatever is pending and free; NULL is fine. */
void dns_probe_free(struct dns_probe *probe);

/**
 * true when the len bytes in buf are a DNS response (QR set) to the query
 * with this id; *rcode then holds its RCODE. Only the 12-byte header is
 * read. Exposed for the fuzz target.
 */
bool dns_probe_reply_ok(const unsigned char *buf, size_t len, uint16_t id, int *rcode);

#endif

/*
 * mx_walk.h - the routes of one upstream transaction: which MX and
 * address to try next, what the policy allows there, and when to give
 * up with which reply. Route selection apart from the SMTP dialogue
 * (upstream.c), as OpenSMTPD keeps mta.c apart from mta_session.c.
 *
 * The walk looks up the recipient domain's MX set and its MTA-STS
 * policy in parallel, then goes through the MXs in preference order
 * (STS-42). In the strict phase (enforce, and testing's evaluation) an
 * MX the policy does not list is skipped and recorded (STS-36a, STS-54)
 * and every attempt has to meet the policy: STARTTLS and a certificate
 * verified for the MX host. The opportunistic phase is delivery without
 * a policy (none found, mode none) and testing's fallback once the
 * strict walk found nothing (STS-44); there a failed TLS handshake is
 * retried in the clear on the same address. [upstream] max_attempts
 * bounds the attempts.
 *
 * DANE (RFC 7672) is one more verdict per route: with the MX set in, the
 * walk asks policy/dane.c for every host's TLSA records in parallel, and
 * before handing out a host it decides the host's regime with
 * route_regime_decide(): an MX with usable TLSA records is authenticated
 * by DANE alone and MTA-STS never overrides a DANE failure (STS-46),
 * though enforce's mx filter still applies (STS-47); a failed TLSA lookup
 * makes the MX unreachable (DANE-3); unusable records still forbid
 * cleartext (DANE-9); [policy] override DOMAIN:dane-only makes every MX
 * without usable records unreachable (DANE-17). Preference order never
 * changes (DANE-4). Only a host whose TLSA answer is still out makes
 * mx_walk_next() wait.
 *
 * The dialogue reports how each attempt failed; the kinds of failure
 * choose the reply when no MX is left (spec §11), never a 5xx for a
 * policy or DANE failure (STS-41, STS-43).
 */
#ifndef STSPROXY_MX_WALK_H
#define STSPROXY_MX_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "policy/dane.h"
#include "policy/mx_resolve.h"
#include "policy/sts_policy.h"
#include "proxy/runtime.h"
#include "proxy/smtp_reply.h"
#include "proxy/upstream_record.h"

struct mx_walk;

/** Why an attempt failed: chooses the enhanced status code of the give-up reply. */
enum mx_fail {
	MX_FAIL_CONNECT,	/* TCP, greeting, EHLO, timeouts: 4.4.1 */
	MX_FAIL_STARTTLS,	/* STARTTLS missing where required: 4.7.4 */
	MX_FAIL_POLICY,		/* not in the policy, the certificate, DANE: 4.7.5 */
	MX_FAIL_DNS,		/* the TLSA lookup failed (DANE-3): 4.4.3 */
};

/** One attempt: an MX address, and what its regime asks of the connection. */
struct mx_route {
	const char		*mx_host;	/* the MX's name, valid while the walk lives */
	struct sockaddr_storage	 addr;
	bool			 strict;	/* the walk's policy phase (enforce, testing's evaluation) */
	bool			 plaintext;	/* the same address again, without STARTTLS */
	struct route_regime	 regime;	/* DANE, MTA-STS, opportunistic: tls_required, authenticate */
	const struct strlist	*dane_names;	/* DANE-TA reference identifiers; valid while the walk lives */
};

enum mx_walk_step {
	MX_WALK_TRY,		/* the route is the next attempt */
	MX_WALK_GIVE_UP,	/* nothing left: the reply is for every recipient */
	MX_WALK_WAIT,		/* the next MX's TLSA answer is still out: ready runs again */
};

/**
 * mx_walk_next() may be called: the MX set and the policy are both in,
 * or (again) after MX_WALK_WAIT, the TLSA answer it waited for. From the
 * event loop, never from inside a call of the walk.
 */
typedef void (*mx_walk_ready_cb)(void *arg);

/**
 * Look up txn->domain's MX set and, unless txn->flags has
 * UPSTREAM_F_NO_POLICY, its policy, which goes into txn->policy. rt
 * and txn are borrowed and must outlive the walk. ready runs once, from
 * the event loop, never from inside this call.
 */
struct mx_walk *mx_walk_new(struct runtime *rt, struct upstream_txn *txn, mx_walk_ready_cb ready,
    void *arg);

/**
 * As mx_walk_new(), with the MX set (hosts, copied) already known and
 * txn->policy as the caller filled it in: nothing is looked up, and
 * without mx_walk_set_dane() no DANE. rt needs base and conf only.
 */
struct mx_walk *mx_walk_new_resolved(struct runtime *rt, struct upstream_txn *txn,
    const struct mx_host *hosts, size_t nhosts, mx_walk_ready_cb ready, void *arg);

/**
 * For a walk from mx_walk_new_resolved(): host i's DANE facts (tlsa,
 * owned from now on) as if looked up, under an MX set that was
 * DNSSEC-secure or not (tests; DANE-TA reference identifiers). tlsa NULL:
 * its lookup is still out, until a later call gives the answer (and
 * ready runs if the walk waits for it). The other hosts have DANE off
 * until given theirs.
 */
void mx_walk_set_dane(struct mx_walk *walk, size_t i, struct dane_tlsa *tlsa, bool mx_secure);

/** Cancel what is pending (no callback) and free. NULL is fine. */
void mx_walk_free(struct mx_walk *walk);

/**
 * The next route, or the reply to give up with (reply: initialised by
 * the caller, which clears it), or MX_WALK_WAIT until ready runs again.
 * Call after ready; after MX_WALK_GIVE_UP no more.
 */
enum mx_walk_step mx_walk_next(struct mx_walk *walk, struct mx_route *route,
    struct smtp_reply *reply);

/** The attempt on the last route failed (kind, reason): it goes into the give-up reply. */
void mx_walk_failed(struct mx_walk *walk, enum mx_fail kind, const char *reason);

/**
 * TLS failed on the last route in the opportunistic phase: the next
 * route is the same address without STARTTLS (RFC 3207 §4.1 leaves that
 * to the client; the strict phase never does it).
 */
void mx_walk_retry_plaintext(struct mx_walk *walk);

#endif

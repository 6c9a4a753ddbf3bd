/*
 * dane.h - DANE for SMTP (RFC 7672): the TLSA records of one MX host,
 * whether they can authenticate it, and which regime governs the MX.
 *
 * A host's DANE facts (struct dane_tlsa) come from DNS in the order of
 * RFC 7672 section 2.2: DANE applies only when the MX RRset, CNAME chain
 * included, was DNSSEC-secure (DANE-5) and so were the host's address
 * records (DANE-6); then `_<port>._tcp.<base>` TLSA is asked for each
 * candidate base in turn (DANE-7): the CNAME-expanded host name, then the
 * name the MX record gave. Any failure of that lookup (bogus, SERVFAIL,
 * timeout, malformed) makes the host unusable (DANE-3), never "no DANE".
 * The answers come from policy/resolver.c, which keeps them in process
 * for their TTL like every other answer.
 *
 * Records are parsed here (bounded; tests/fuzz/fuzz_tlsa.c) and judged
 * usable as OpenSSL's verifier will take them: DANE-TA(2) and DANE-EE(3)
 * only (PKIX-TA(0)/PKIX-EE(1) are unusable, DANE-14), selectors Cert(0)
 * and SPKI(1), matching types Full(0), SHA2-256(1) and SHA2-512(2) with
 * data of the right length and a DER object that parses. Matching itself
 * is OpenSSL's (policy/tls.c), never done here.
 *
 * route_regime_decide() says what governs one MX: DANE, MTA-STS or
 * opportunistic TLS (RFC 8461 section 2, STS-46, STS-47, DANE-8,
 * DANE-17). The relay's MX walk (proxy/mx_walk.c) and `stsproxy policy`
 * both call it, so they cannot disagree.
 */
#ifndef STSPROXY_DANE_H
#define STSPROXY_DANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/util.h"
#include "policy/mx_resolve.h"
#include "policy/resolver.h"
#include "policy/result_type.h"

#define RR_TLSA			52
/** Records kept per TLSA RRset; a larger RRset is treated as malformed (DANE-3). */
#define DANE_RECORDS_MAX	64

/** TLSA certificate usages (RFC 7218 acronyms). */
#define DANE_USAGE_PKIX_TA	0
#define DANE_USAGE_PKIX_EE	1
#define DANE_USAGE_DANE_TA	2
#define DANE_USAGE_DANE_EE	3

/** One TLSA record (RFC 6698 section 2.1). */
struct dane_record {
	uint8_t			 usage, selector, mtype;
	unsigned char		*data;		/* certificate association data, owned */
	size_t			 len;
	const char		*unusable;	/* NULL when usable, else why (static) */
};

/*
 * What DNS says about DANE for one MX host, in the order the checks run.
 * X(symbol, name for logs and JSON)
 */
#define DANE_STATES(X)							\
	X(DANE_S_OFF,		"off")		/* not asked: [tls] dane = no, a report mail, a relay, an IP as MX name (DANE-18) */ \
	X(DANE_S_MX_INSECURE,	"mx-insecure")	/* the MX RRset was not secure (DANE-5) */ \
	X(DANE_S_ADDR_INSECURE,	"address-insecure") /* the host's address records were not secure (DANE-6) */ \
	X(DANE_S_NONE,		"no-tlsa")	/* DNSSEC proves there is no TLSA record */ \
	X(DANE_S_INSECURE,	"tlsa-insecure") /* TLSA records (or their absence) not secure */ \
	X(DANE_S_USABLE,	"usable")	/* secure, at least one usable record */ \
	X(DANE_S_UNUSABLE,	"unusable")	/* secure, records, none usable (DANE-8, DANE-9) */ \
	X(DANE_S_FAILED,	"lookup-failed") /* bogus, SERVFAIL, timeout or malformed (DANE-3) */

#define DANE_STATE_ENUM(sym, name) sym,
enum dane_state { DANE_STATES(DANE_STATE_ENUM) };
#undef DANE_STATE_ENUM

const char *dane_state_name(enum dane_state state);

/** The DANE facts of one MX host. */
struct dane_tlsa {
	enum dane_state		 state;
	char			 host[256];	/* the MX host name, as the MX record gave it */
	char			 base[256];	/* the TLSA base domain ("" when no RRset was found) */
	char			 qname[272];	/* the TLSA query of base, or of the last candidate asked */
	char			 reason[256];	/* why this state, one clause for logs and replies */
	enum dns_status		 status;	/* of the deciding TLSA answer (OK when none was asked) */
	enum dns_security	 security;
	enum rpt_result_type	 failure;	/* DANE_S_FAILED: dnssec-invalid or tlsa-invalid */
	struct dane_record	*records;
	size_t			 count, usable;
	struct strlist		 text;		/* "u s m hex" per record: RFC 8460 policy-string */
	char			 id[17];	/* RRset identity: base and records, in any order */
	char			 params[128];	/* parameters of the usable records: "DANE-EE 3 1 1, ..." */
};

/** Empty DANE facts for host (copied), state DANE_S_OFF. Caller frees. */
struct dane_tlsa *dane_tlsa_new(const char *host);

/** A deep copy. Caller frees. */
struct dane_tlsa *dane_tlsa_copy(const struct dane_tlsa *tlsa);

void dane_tlsa_free(struct dane_tlsa *tlsa);

/** Set state and the reason (printf) without records. */
void dane_tlsa_set_state(struct dane_tlsa *tlsa, enum dane_state state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Add one TLSA RDATA of len bytes (RFC 6698 section 2.1: usage, selector,
 * matching type, then the data). 0, or -1 with *why when the RDATA is
 * malformed (shorter than four bytes, or the RRset already holds
 * DANE_RECORDS_MAX records). A well-formed record with parameters
 * OpenSSL cannot use is added as unusable (dane_record.unusable).
 */
int dane_tlsa_add_rdata(struct dane_tlsa *tlsa, const unsigned char *rdata, size_t len,
    const char **why);

/**
 * The same from the presentation form "3 1 1 0123abcd..." (hex digits,
 * spaces allowed between them), for tests and the command line. 0, or -1
 * with *why.
 */
int dane_tlsa_add_text(struct dane_tlsa *tlsa, const char *text, const char **why);

/**
 * The records are in: base is their TLSA base domain. Sets the state
 * (DANE_S_USABLE, or DANE_S_UNUSABLE when none is usable), id, text,
 * params and reason.
 */
void dane_tlsa_finish(struct dane_tlsa *tlsa, const char *base);

/**
 * The DANE facts of h that need no TLSA query, or NULL when a lookup is
 * due: an insecure MX RRset (DANE-5), insecure address records (DANE-6),
 * an IP address as the MX name (DANE-18). Caller frees.
 */
struct dane_tlsa *dane_precheck(const struct mx_host *h, bool mx_secure);

struct dane_lookup;
/** result is the callee's to keep and free. */
typedef void (*dane_lookup_cb)(void *arg, struct dane_tlsa *result);

/**
 * Look up the TLSA records of h (DANE-7) on resolver (borrowed) for
 * port. cb runs exactly once, later, from the loop, unless
 * dane_lookup_cancel() comes first. NULL (and no callback) if the query
 * cannot start.
 */
struct dane_lookup *dane_lookup_start(struct resolver *resolver, const struct mx_host *h,
    unsigned port, dane_lookup_cb cb, void *arg);

/** Cancel: no callback, everything freed. NULL is fine. */
void dane_lookup_cancel(struct dane_lookup *lookup);

struct dane_hosts;
/** Host i's DANE facts are in; result is the callee's to keep and free. */
typedef void (*dane_host_cb)(void *arg, size_t i, struct dane_tlsa *result);

/**
 * The DANE facts of every host of an MX set (hosts, read during this
 * call only), in parallel, as the relay, `stsproxy policy` and
 * `stsproxy check` need them: no TLSA query where dane_precheck() decides, none for a host
 * without addresses, a lookup for the others. cb runs once per host: at
 * once, from inside this call, for the hosts that need no query, later
 * from the loop for the others. NULL when there is nothing left to wait
 * for (every cb has run); otherwise a handle for dane_hosts_cancel(),
 * dead once the last cb has started.
 */
struct dane_hosts *dane_hosts_start(struct resolver *resolver, const struct mx_host *hosts,
    size_t nhosts, bool mx_secure, unsigned port, dane_host_cb cb, void *arg);

/** Cancel the lookups still out: no more callbacks. NULL is fine. */
void dane_hosts_cancel(struct dane_hosts *hosts);

/**
 * The reference identifiers a DANE-TA(2) certificate may name besides
 * the TLSA base domain (DANE-12), into out: the MX host name when the
 * base is its CNAME-expanded form, and with a secure MX lookup the next
 * hop (the recipient domain) and where CNAMEs led it (next_hop_canon,
 * NULL if none). Duplicates and the base itself are left out.
 */
void dane_reference_ids(const struct dane_tlsa *tlsa, const char *next_hop,
    const char *next_hop_canon, bool mx_secure, struct strlist *out);

/*
 * The regime that governs one MX. X(symbol, name for logs and JSON)
 */
#define REGIME_KINDS(X)							\
	X(REGIME_DANE,		"dane")		/* usable TLSA: DANE alone authenticates (DANE-10, STS-47) */ \
	X(REGIME_DANE_TLS,	"dane-tls-only") /* secure TLSA, none usable: STARTTLS, no authentication (DANE-9) */ \
	X(REGIME_MTA_STS,	"mta-sts")	/* no usable TLSA: the MTA-STS policy authenticates */ \
	X(REGIME_OPPORTUNISTIC,	"opportunistic") /* neither: STARTTLS when offered, cleartext allowed */ \
	X(REGIME_UNREACHABLE,	"unreachable")	/* TLSA lookup failed (DANE-3), or DANE required (DANE-17) */

#define REGIME_KIND_ENUM(sym, name) sym,
enum regime_kind { REGIME_KINDS(REGIME_KIND_ENUM) };
#undef REGIME_KIND_ENUM

const char *regime_kind_name(enum regime_kind kind);

/** What one MX gets, and what that asks of its connection. */
struct route_regime {
	enum regime_kind	 kind;
	bool			 tls_required;	/* no delivery in the clear (a policy, DANE-9) */
	bool			 authenticate;	/* the certificate must pass (PKIX for MTA-STS, else DANE) */
	enum rpt_result_type	 failure;	/* REGIME_UNREACHABLE: dnssec-invalid, tlsa-invalid or dane-required */
	char			 reason[320];	/* why this regime, one clause */
	const struct dane_tlsa	*tlsa;		/* the host's DANE facts, borrowed; NULL when DANE is off */
};

/**
 * Decide the regime of one MX (RFC 8461 section 2, RFC 7672 section 2.2):
 * tlsa its DANE facts (NULL: DANE off), dane_required from [policy]
 * override DOMAIN:dane-only, sts_strict when an MTA-STS policy is being
 * applied to this MX (enforce, or testing's evaluation; the caller
 * applies the policy's mx filter first, STS-47). Usable TLSA records
 * always win (STS-46); unusable ones still forbid cleartext (DANE-9).
 */
void route_regime_decide(const struct dane_tlsa *tlsa, bool dane_required, bool sts_strict,
    struct route_regime *out);

#endif

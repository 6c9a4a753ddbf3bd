/*
 * tls.h - the one TLS module: client contexts, SNI and host-name checks,
 * and the mapping of verification errors to RFC 8460 result types.
 *
 * Used by the HTTPS policy fetcher and by the upstream SMTP leg, so both
 * apply exactly the same PKIX rules (STS-14, STS-38, STS-39, STS-40).
 */
#ifndef STSPROXY_TLS_H
#define STSPROXY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

#include <openssl/x509v3.h>

#include "conf/conf.h"
#include "policy/dane.h"
#include "policy/result_type.h"

/** Room for a matched TLSA record as text ("3 1 1 " and 64 bytes of hex, or a cut Full(0)). */
#define TLS_DANE_MATCH_MAX	144

/** What a completed handshake proved about the server. */
enum tls_auth {
	TLS_AUTH_NONE,	/* TLS without authentication */
	TLS_AUTH_PKIX,	/* chains to the trust store and names the host (MTA-STS) */
	TLS_AUTH_DANE,	/* a usable TLSA record matched (RFC 7672) */
};

/**
 * Host-name check flags for every peer: "*" only as a whole left-most
 * label (STS-39, DANE-13) and no CN fallback without SANs (STS-38).
 */
#define TLS_HOST_CHECK_FLAGS \
	(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT)

/**
 * A verifying client context: trust store from [tls] ca_file/ca_path (or
 * the system's), minimum version from [tls] min_version. NULL on error
 * with *err set (caller frees). Caller owns the context (SSL_CTX_free).
 */
SSL_CTX *tls_client_ctx_new(const struct conf *conf, char **err);

/**
 * A client SSL for host: SNI set to host, certificate required to chain
 * to the trust store and to carry a DNS-ID matching host (no CN fallback,
 * "*" only as a whole left-most label). Caller owns the SSL.
 */
SSL *tls_client_new(SSL_CTX *ctx, const char *host);

/**
 * Forget the cached client sessions (resumption is per host name and only
 * for sessions whose certificate verified for it). For exit and tests.
 */
void tls_session_cache_clear(void);

/**
 * A client SSL for an upstream SMTP server: SNI and the name check as
 * tls_client_new(), but the handshake completes whatever the
 * certificate, so the caller decides with tls_peer_verdict() according to
 * the policy mode (enforce fails, testing and opportunistic record).
 * Caller owns the SSL.
 */
SSL *tls_smtp_client_new(SSL_CTX *ctx, const char *host);

/**
 * A client SSL for an upstream SMTP server authenticated by DANE (RFC 7672
 * section 3) with OpenSSL's own verifier, never by hand: SNI and the
 * primary reference identifier are tlsa->base (DANE-15, DANE-12), names
 * (may be NULL) holds the other reference identifiers of DANE-TA(2)
 * certificates (dane_reference_ids(); "*" only as a whole left-most label,
 * DANE-13); DANE-EE(3) ignores names and expiry (DANE-11); PKIX-TA(0) and
 * PKIX-EE(1) records are never handed over (DANE-14); digests follow RFC
 * 7671 section 9 (DANE-16). A cached session is offered only if it was
 * verified under the same TLSA RRset (tlsa->id). As with
 * tls_smtp_client_new(), the handshake completes whatever the certificate
 * and tls_peer_verdict() judges it. NULL when OpenSSL accepts none of the
 * records: there is nothing to authenticate with. Caller owns the SSL.
 */
SSL *tls_dane_client_new(SSL_CTX *ctx, const struct dane_tlsa *tlsa, const struct strlist *names);

/**
 * After a completed handshake on an SSL from tls_smtp_client_new() or
 * tls_dane_client_new(): does the server pass? For the first, MTA-STS
 * (STS-38): RPT_RESULT_NONE when the certificate chains to the trust
 * store and names the host. For the second, DANE: when a TLSA record
 * matched (or matched when the resumed session was made). Otherwise the
 * result type, with reason ("certificate expired", "TLSA mismatch
 * (DANE-EE 3 1 1)", ...).
 */
enum rpt_result_type tls_peer_verdict(SSL *ssl, char *reason, size_t reason_len);

/** What the completed handshake on ssl proved (TLS_AUTH_NONE when it proved nothing). */
enum tls_auth tls_peer_auth(SSL *ssl);

/** The TLSA record that authenticated ssl, "u s m HEX"; "" if none (or not DANE). */
const char *tls_dane_match(SSL *ssl);

/**
 * A server context for STARTTLS offered to clients, from PEM files.
 * NULL on error with *err set (caller frees). Caller owns the context.
 */
SSL_CTX *tls_server_ctx_new(const struct conf *conf, const char *cert_file, const char *key_file,
    char **err);

/** Result type for an X509_V_ERR_* verification result (X509_V_OK: NONE). */
enum rpt_result_type tls_verify_result_type(long verify_result);

/**
 * Explain why the handshake on ssl failed, for logs and replies: the
 * certificate error if verification failed, otherwise the OpenSSL error
 * queue (which it drains). Returns the result type; writes reason.
 */
enum rpt_result_type tls_failure_reason(SSL *ssl, unsigned long ssl_error,
    char *reason, size_t reason_len);

/** What a peer presented, for `stsproxy policy` and outcome records. */
struct tls_peer_info {
	char	version[16];	/* "TLSv1.3" */
	char	cipher[64];
	char	subject[256];	/* one line, RFC 2253 */
	char	issuer[256];
	char	dns_names[512];	/* subjectAltName DNS entries, ", "-separated */
	time_t	not_after;	/* 0 when unknown */
};

/** Fill info from an established or failed connection. */
void tls_peer_describe(SSL *ssl, struct tls_peer_info *info);

/**
 * The DNS names of cert's subjectAltName, ", "-separated, into out
 * (truncated with "..." when longer); "" when there are none. These are
 * the only names MTA-STS accepts (STS-38), so they are what an operator
 * needs to see when a host name does not match.
 */
void tls_cert_dns_names(X509 *cert, char *out, size_t len);

#endif

/*
 * mx_probe.h - one diagnostic session with one address of an MX, for
 * `stsproxy check`: connect, greeting, EHLO, STARTTLS, TLS handshake,
 * EHLO again, QUIT. No MAIL command is ever sent.
 *
 * The certificate is judged by the TLS module exactly as the relay
 * judges it (tls_smtp_client_new() and tls_peer_verdict(): chain to the
 * trust store, DNS-ID for the MX host name, STS-38/39/40), and replies
 * are parsed by the relay's bounded SMTP reply parser. Every step has
 * its own timeout.
 *
 * mx_probe_set_dane() has the certificate judged by DANE instead, as the
 * relay judges an MX with usable TLSA records.
 *
 * MX_PROBE_TLS is the same handshake and verdict straight after connect,
 * for HTTPS endpoints (an https: rua of a _smtp._tls record); nothing is
 * sent over it.
 */
#ifndef STSPROXY_MX_PROBE_H
#define STSPROXY_MX_PROBE_H

#include <stdbool.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "policy/result_type.h"
#include "policy/tls.h"

struct event_base;
struct mx_probe;

enum mx_probe_mode {
	MX_PROBE_SMTP,		/* SMTP with STARTTLS */
	MX_PROBE_TLS,		/* TLS from the first byte (HTTPS) */
};

/** What the session found; valid only during the callback. */
struct mx_probe_result {
	const char		*host;		/* the name the certificate must cover */
	char			 address[64];	/* "192.0.2.1" or "2001:db8::1" */
	unsigned		 port;
	bool			 connected;
	int			 connect_errno;	/* errno of a failed connect, else 0 */
	char			 greeting[256];	/* first greeting line, "" if none */
	bool			 ehlo_ok;
	bool			 starttls_offered;
	bool			 tls_done;	/* a handshake completed */
	struct tls_peer_info	 peer;		/* when tls_done */
	/* The TLS verdict, once the session got far enough to have one:
	 * RPT_RESULT_NONE when STARTTLS worked and the certificate is valid
	 * for host; otherwise the RFC 8460 result type and why. */
	bool			 verdict_known;
	enum rpt_result_type	 verdict;
	char			 verdict_reason[256];
	bool			 ehlo_tls_ok;	/* EHLO answered after STARTTLS */
	/* Where and why the session broke off, if it did ("" otherwise). */
	const char		*failed_step;	/* "connect", "greeting", "ehlo", ... */
	char			 error[300];
	unsigned		 elapsed_ms;
};

typedef void (*mx_probe_cb)(void *arg, const struct mx_probe_result *result);

/**
 * Start a session with addr (copied) for host (copied). ssl_ctx (from
 * tls_client_ctx_new()) and base are borrowed and must outlive the probe.
 * helo is the name said in EHLO (copied). timeout bounds each step in
 * seconds. cb runs exactly once, later, from the loop, unless
 * mx_probe_cancel() is called first; the probe is freed after cb returns.
 * Never NULL.
 */
struct mx_probe *mx_probe_start(struct event_base *base, SSL_CTX *ssl_ctx,
    enum mx_probe_mode mode, const char *host, const struct sockaddr *addr, const char *helo,
    unsigned timeout, mx_probe_cb cb, void *arg);

/**
 * Right after mx_probe_start() (MX_PROBE_SMTP): judge the certificate by
 * DANE with these TLSA records (usable ones; tlsa and names borrowed, they
 * must outlive the probe), exactly as the relay does (tls_dane_client_new()),
 * instead of by PKIX. The verdict says "DANE authenticated (...)" or why
 * not ("TLSA mismatch (DANE-EE 3 1 1)", tlsa-invalid, ...).
 */
void mx_probe_set_dane(struct mx_probe *probe, const struct dane_tlsa *tlsa,
    const struct strlist *names);

/** Hang up and free; the callback will not run. NULL is fine. */
void mx_probe_cancel(struct mx_probe *probe);

#endif

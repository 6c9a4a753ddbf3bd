/*
 * dkim.h - DKIM signatures (RFC 6376) for the reports stsproxy mails,
 * with rsa-sha256 and ed25519-sha256 (RFC 8463) keys, relaxed/relaxed
 * canonicalisation and no l= tag (RPT-17).
 */
#ifndef STSPROXY_DKIM_H
#define STSPROXY_DKIM_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#include "conf/util.h"

/** A signing key: RSA or Ed25519, read from a PEM file. */
struct dkim_key {
	EVP_PKEY	*pkey;
	char		*selector;
	char		*domain;
};

/** Load a private key. 0, or -1 with *err set (caller frees). */
int dkim_key_load(struct dkim_key *key, const char *pem_path, const char *selector,
    const char *domain, char **err);
void dkim_key_free(struct dkim_key *key);

/** "rsa-sha256" or "ed25519-sha256", NULL for an unsupported key. */
const char *dkim_key_algorithm(const struct dkim_key *key);

/**
 * The DKIM-Signature header field (name, value, final CR LF) for msg, a
 * complete message with CR LF line ends. headers is a colon-separated
 * list of the header names to sign. NULL on a signing error. Caller frees.
 */
char *dkim_sign(const struct dkim_key *key, const char *msg, size_t len, const char *headers,
    time_t now);

/** RFC 6376 §3.4.4 relaxed body canonicalisation, appended to out. */
void dkim_canon_body_relaxed(const char *body, size_t len, struct strbuf *out);

/** RFC 6376 §3.4.2 relaxed header canonicalisation of one field, appended to out (no CRLF). */
void dkim_canon_header_relaxed(const char *field, size_t len, struct strbuf *out);

#endif
